"""Issue 15: careless and hostile input is refused up front with one clear line, and nothing of the
user's is lost. Every test runs the real CLI in a subprocess and checks the exit status, the one line
and the files on disk before and after (docs/input-safety.md lists the cases)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from cli_helpers import CRATE, ROOT, TINIEST, one_error_line, recon, snapshot


# ------------------------------------------------------------------------- limits, checked up front
@pytest.mark.parametrize("setting, words", [
    ("stage1.steps=1000000000000", "stage1.steps: 1000000000000"),
    ("stage1.steps=-5", "stage1.steps: -5"),
    ("export.texture_size=0", "export.texture_size: 0"),
    ("export.texture_size=1000000", "export.texture_size: 1000000"),
    ("hypotheses=100000", "hypotheses: 100000"),
    ("hypotheses=-1", "hypotheses: -1"),
    ("hypotheses=true", "hypotheses: expected an integer"),
])
def test_out_of_range_settings_are_refused_before_anything_is_written(tmp_path, setting, words):
    out = tmp_path / "out"
    proc = recon("run", CRATE, "--out", out, "--quiet", "--set", setting)
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert words in line
    if "range" in line:
        assert "allowed range" in line and "(" in line  # the range and why
    assert not out.exists()


def test_a_run_that_cannot_fit_in_memory_is_refused_naming_the_setting(tmp_path):
    out = tmp_path / "out"
    proc = recon("run", CRATE, "--out", out, "--quiet", "--set", "stage2.tet_resolution=512",
                 "--hypotheses", "64", env={"RECON_MEMORY_LIMIT": "64GB"})
    assert proc.returncode != 0
    line = one_error_line(proc)
    assert "memory" in line and "lower stage2.tet_resolution" in line
    assert not out.exists()


# ------------------------------------------------------------------------------------ output folders
def test_a_folder_of_user_files_is_refused_and_left_as_it_was(tmp_path):
    out = tmp_path / "mine"
    (out / "meshes").mkdir(parents=True)
    for name in ("index.html", "input.png", "contact_sheet.png", "meshes/hypothesis_0.glb"):
        (out / name).write_bytes(b"the user's own " + name.encode())
    before = snapshot(out)
    proc = recon("run", CRATE, "--out", out, *TINIEST)
    assert proc.returncode != 0
    line = one_error_line(proc)
    assert str(out) in line and "did not write" in line
    assert snapshot(out) == before


def test_rerunning_a_finished_run_moves_its_outputs_aside_and_cleans_killed_writes(run_copy):
    run = run_copy / "run"
    edited = run / "meshes" / "hypothesis_0.glb"
    edited.write_bytes(b"edited by the user")
    stale = run / "checkpoints" / ".stage1.pt.k3j9x0ab.pt"  # what a kill during torch.save leaves
    stale.write_bytes(b"half a checkpoint")
    proc = recon("run", run_copy / "crate.png", "--out", run, *TINIEST)
    assert proc.returncode == 0, proc.stderr
    assert not stale.exists()
    kept = list((run / "replaced").glob("*/meshes/hypothesis_0.glb"))
    assert len(kept) == 1 and kept[0].read_bytes() == b"edited by the user"
    assert edited.read_bytes() != b"edited by the user"


# ------------------------------------------------------------------------------ damaged checkpoints
def _damage(path: Path, how: str) -> None:
    if how == "empty file":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:  # a readable checkpoint without the state the stage needs
        tag = "image_to_3d_" + path.stem
        torch.save({"format": 1, "stage": tag, "state": {}}, path)


@pytest.mark.parametrize("name, how", [("stage1.pt", "empty file"), ("stage1.pt", "empty state"),
                                       ("stage2.pt", "truncated")])
def test_a_damaged_checkpoint_is_named_and_the_folder_is_unchanged(run_copy, name, how):
    run = run_copy / "run"
    _damage(run / "checkpoints" / name, how)
    before = snapshot(run, times=True)
    proc = recon("run", run_copy / "crate.png", "--out", run, *TINIEST)
    assert proc.returncode == 1
    line = one_error_line(proc)
    assert name in line and "delete it" in line
    assert snapshot(run, times=True) == before  # not even rewritten with the same bytes


# ----------------------------------------------------------------------------------------- --from
def _edit_run_json(run: Path, edit) -> Path:
    path = run / "run.json"
    data = json.loads(path.read_text())
    edit(data)
    edited = run.parent / "edited.json"
    edited.write_text(json.dumps(data))
    return edited


@pytest.mark.parametrize("edit, words", [
    (lambda d: d["config"]["stage1"].pop("steps"), "config key stage1.steps is missing"),
    (lambda d: d["input"].update(path=123), "input.path must be a file path"),
    (lambda d: d["config"]["stage1"].update(steps="many"), "stage1.steps: expected an integer"),
    (lambda d: d["config"]["prior"].update(path=["/etc"]), "prior.path"),
    (lambda d: d["config"]["export"].update(texture_size=0), "export.texture_size: 0"),
])
def test_from_refuses_a_run_json_that_breaks_its_schema(run_copy, tmp_path, edit, words):
    edited = _edit_run_json(run_copy / "run", edit)
    out = tmp_path / "again"
    proc = recon("run", "--from", edited, "--out", out, "--quiet")
    assert proc.returncode != 0
    line = one_error_line(proc)
    assert words in line and "edited.json" in line
    assert not out.exists()


def test_from_checks_the_input_sha256_and_force_overrides_it(run_copy, tmp_path):
    photo = run_copy / "crate.png"
    photo.write_bytes(photo.read_bytes() + b"\0")  # the photo changed since the run
    out = tmp_path / "again"
    proc = recon("run", photo, "--from", run_copy / "run" / "run.json", "--out", out, "--quiet")
    assert proc.returncode == 1
    line = one_error_line(proc)
    assert "sha256" in line and "--force" in line and "crate.png" in line
    assert not out.exists()
    # With --force the hash is not the obstacle: this run stops at the next check (a folder of user files).
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    forced = recon("run", photo, "--from", run_copy / "run" / "run.json", "--out", out, "--quiet", "--force")
    assert "sha256" not in one_error_line(forced) and "did not write" in one_error_line(forced)
    assert snapshot(out) == {"notes.txt": b"mine"}


def test_export_of_a_tampered_run_json_names_the_key(run_copy):
    run = run_copy / "run"
    data = json.loads((run / "run.json").read_text())
    data["outputs"]["hypotheses"][0]["index"] = "../x"
    (run / "run.json").write_text(json.dumps(data))
    before = snapshot(run)
    proc = recon("export", run, "--quiet")
    assert proc.returncode == 1
    line = one_error_line(proc)
    assert "run.json" in line and "outputs.hypotheses[0].index" in line and "'../x'" in line
    assert snapshot(run) == before


# ------------------------------------------------------------------------------------------ Ctrl-C
def _interrupt(args: list, after: float | None = None, when: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "recon", *map(str, args)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    start = time.monotonic()
    while when is not None and not when.exists() and time.monotonic() - start < 120 and proc.poll() is None:
        time.sleep(0.05)
    if after is not None:
        time.sleep(after)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.parametrize("after", [0.3, 2.5])
def test_ctrl_c_during_start_up_is_one_line(tmp_path, after):
    out = tmp_path / "out"
    # 2000 stage-1 steps: on a fast machine the tiniest run alone could finish inside 2.5 s (3 s here).
    proc = _interrupt(["run", CRATE, "--out", out, *TINIEST, "--set", "stage1.steps=2000"], after=after)
    assert proc.returncode == 130, proc.stderr
    assert "interrupted" in one_error_line(proc)
    # Nothing half-written: on a loaded machine 2.5 s may already be past the folder's creation, so the
    # folder may exist, but only with what recon writes whole (no temporary file of an interrupted write).
    assert not out.exists() or not [p for p in out.rglob("*") if p.name.startswith(".") or p.suffix == ".tmp"]


def test_ctrl_c_during_stage_1_is_one_line_and_keeps_the_checkpoint(tmp_path):
    out = tmp_path / "out"
    args = ["run", CRATE, "--out", out, *TINIEST, "--set", "stage1.steps=2000"]
    proc = _interrupt(args, when=out / "checkpoints" / "stage1.pt")
    assert proc.returncode == 130, proc.stderr
    assert "resume" in one_error_line(proc)
    assert (out / "checkpoints" / "stage1.pt").is_file()
    assert not list((out / "checkpoints").glob(".*"))  # no temporary file left


# -------------------------------------------------------------------------------- batch and weights
def test_batch_gives_crate_png_and_crate_webp_their_own_folders(tmp_path):
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    rgb = Image.open(CRATE).convert("RGB")  # no alpha and no rembg model here: each fails fast
    rgb.save(folder / "crate.png")
    rgb.save(folder / "crate.webp")
    proc = recon("batch", folder, "--out", tmp_path / "out", "--json", *TINIEST,
                 env={"REMBG_HOME": str(tmp_path / "none"), "U2NET_HOME": str(tmp_path / "none")})
    rows = json.loads(proc.stdout)["items"]
    assert sorted(Path(r["out"]).name for r in rows) == ["crate-png", "crate-webp"]
    assert all("holds a different run" not in (r["error"] or "") for r in rows)


def test_distill2d_refuses_pickle_weights(tmp_path):
    model = tmp_path / "model"
    (model / "unet").mkdir(parents=True)
    (model / "scheduler").mkdir()
    (model / "unet" / "config.json").write_text("{}")
    (model / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"not loaded")
    (model / "scheduler" / "scheduler_config.json").write_text("{}")
    out = tmp_path / "out"
    proc = recon("distill2d", "--prior", model, "--out", out, "--quiet", "--steps", "1", "--seeds", "0")
    assert proc.returncode == 1
    line = one_error_line(proc)
    assert "diffusion_pytorch_model.bin" in line and "safetensors" in line
    assert not out.exists()
