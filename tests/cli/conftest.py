"""One tiny finished run shared by the tests of this folder (made by the real CLI in a subprocess)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cli_helpers import CRATE, TINIEST, recon


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory) -> Path:
    """A finished tiny ``recon run`` of a copy of the crate photo (folder ``run``, photo ``crate.png``)."""
    root = tmp_path_factory.mktemp("cli_run")
    shutil.copy(CRATE, root / "crate.png")
    proc = recon("run", root / "crate.png", "--out", root / "run", *TINIEST)
    assert proc.returncode == 0, proc.stderr
    return root


@pytest.fixture
def run_copy(finished_run, tmp_path) -> Path:
    """A private copy of the finished run's root (photo + run folder) to damage."""
    dest = tmp_path / "copy"
    shutil.copytree(finished_run, dest)
    return dest
