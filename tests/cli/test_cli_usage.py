"""Issue 12's CLI promises: usage errors are one ``error:`` line; every command takes --quiet and --json."""

from __future__ import annotations

import json

import pytest
from cli_helpers import ROOT, one_error_line, recon


@pytest.mark.parametrize("args, words", [
    (["run", "--bogus"], "--bogus"),
    (["models", "list", "--bogus"], "--bogus"),
    (["run", "--hypotheses", "0", "x.png"], "--hypotheses"),
    (["nosuchcommand"], "nosuchcommand"),
])
def test_usage_errors_are_one_error_line(args, words):
    proc = recon(*args)
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert words in line and "Usage:" not in proc.stderr and "Error:" not in proc.stderr
    assert proc.stdout == ""


def test_models_list_json_is_machine_readable():
    proc = recon("models", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert {"zero123-xl", "toy-zero123"} <= {r["name"] for r in rows}
    assert all({"present", "path", "hub_id"} <= set(r) for r in rows)
    quiet = recon("models", "list", "--quiet")
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == ""


def test_models_verify_quiet_prints_nothing_on_success_and_one_line_on_failure(tmp_path):
    ok = recon("models", "verify", ROOT / "models" / "toy-zero123", "--quiet")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == "" and ok.stderr == ""
    bad = recon("models", "verify", tmp_path, "--quiet")
    assert bad.returncode == 1
    assert str(tmp_path) in one_error_line(bad)


@pytest.mark.parametrize("command", [["models", "pull"], ["models", "verify"], ["models", "list"]])
def test_every_models_command_takes_quiet_and_json(command):
    proc = recon(*command, "--help")
    assert proc.returncode == 0
    assert "--quiet" in proc.stdout and "--json" in proc.stdout
