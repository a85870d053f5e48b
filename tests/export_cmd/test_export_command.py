"""``recon export RUN_DIR``: a finished run's meshes rebuilt from its checkpoints and exported again
(issue 5). The oracle for "the same meshes" is the run's own ``meshes/`` folder, reloaded by trimesh;
the image the run was made from is deleted before any export (see conftest.py), and the text run's
model folder is deleted before its export."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from click.testing import CliRunner

from recon.cli import main
from recon.pipeline.reexport import export_run
from tests.pipeline.test_text_to_3d import TINY_SD, sets
from tests.priors.tiny_models import write_sd

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def recon_export(*args: str):
    return CliRunner().invoke(main, ["export", *args, "--quiet"])


def files(folder: Path) -> dict[str, int]:
    """Every file under ``folder`` with its modification time (to prove nothing was touched)."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def hypotheses_of(run: Path) -> list[int]:
    return [h["index"] for h in json.loads((run / "run.json").read_text())["outputs"]["hypotheses"]]


def test_input_image_is_gone(image_run):
    record = json.loads((image_run / "run.json").read_text())
    assert not Path(record["input"]["path"]).exists()  # every export below runs without it


def test_export_with_the_runs_settings_reproduces_its_obj(image_run, tmp_path):
    before = files(image_run)
    out = tmp_path / "x"
    result = recon_export(str(image_run), "--format", "obj", "--out", str(out))
    assert result.exit_code == 0, result.output
    ks = hypotheses_of(image_run)
    assert ks == [0, 1]
    assert sorted(p.name for p in out.iterdir()) == sorted(f"hypothesis_{k}.{e}" for k in ks for e in ("obj", "mtl", "png"))
    for k in ks:
        ours = trimesh.load(out / f"hypothesis_{k}.obj", process=False, force="mesh")
        theirs = trimesh.load(image_run / "meshes" / f"hypothesis_{k}.obj", process=False, force="mesh")
        assert len(ours.vertices) == len(theirs.vertices) and len(ours.faces) == len(theirs.faces)
        np.testing.assert_allclose(ours.vertices, theirs.vertices, atol=1e-6, rtol=0)
        np.testing.assert_array_equal(ours.faces, theirs.faces)
        for ext in ("obj", "mtl", "png"):  # the export is deterministic: the very same bytes
            assert (out / f"hypothesis_{k}.{ext}").read_bytes() == (image_run / "meshes" / f"hypothesis_{k}.{ext}").read_bytes()
    assert files(image_run) == before  # the run folder is untouched


def test_fewer_faces_and_a_smaller_texture(image_run, tmp_path):
    theirs = trimesh.load(image_run / "meshes" / "hypothesis_0.glb", force="mesh")
    limit = len(theirs.faces) // 3
    assert limit > 50
    out = tmp_path / "small"
    result = recon_export(str(image_run), "--format", "glb", "--out", str(out), "--hypothesis", "0",
                          "--set", f"export.target_faces={limit}", "--set", "export.texture_size=64")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["hypothesis_0.glb"]
    scene = trimesh.load(out / "hypothesis_0.glb")
    mesh = next(iter(scene.geometry.values()))
    assert 0 < len(mesh.faces) <= limit
    texture = mesh.visual.material.baseColorTexture
    assert texture is not None and texture.size == (64, 64)


def test_default_folder_every_format_and_the_runs_meshes_left_alone(image_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(image_run, run)
    meshes = files(run / "meshes")
    result = CliRunner().invoke(main, ["export", str(run), "--format", "glb,ply", "--format", "obj", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["out"] == str(run / "export")
    assert sorted(summary["files"]) == sorted(str(run / "export" / f"hypothesis_{k}.{e}")
                                              for k in (0, 1) for e in ("glb", "obj", "ply"))
    assert sorted(p.name for p in (run / "export").iterdir()) == sorted(
        f"hypothesis_{k}.{e}" for k in (0, 1) for e in ("glb", "obj", "mtl", "png", "ply"))
    for k in (0, 1):
        for e in ("glb", "ply"):
            assert trimesh.load(run / "export" / f"hypothesis_{k}.{e}", force="mesh").faces.shape[0] > 0
    assert files(run / "meshes") == meshes


def test_a_failure_half_way_leaves_nothing(image_run, tmp_path):
    """Hypothesis 0 is exported, then the export stops: no file of it stays, in a new folder or an old one."""

    def stop_after_first(label: str, done: int, total: int) -> None:
        if done == 1:
            raise RuntimeError("stopped")

    new = tmp_path / "new" / "out"
    with pytest.raises(RuntimeError, match="stopped"):
        export_run(image_run, ["obj"], new, progress=stop_after_first)
    assert not (tmp_path / "new").exists()
    old = tmp_path / "old"
    old.mkdir()
    (old / "mine.txt").write_text("keep")
    with pytest.raises(RuntimeError, match="stopped"):
        export_run(image_run, ["obj"], old, progress=stop_after_first)
    assert [p.name for p in old.iterdir()] == ["mine.txt"]


def _unfinished(run: Path) -> None:
    (run / "checkpoints" / "stage2.pt").unlink()


def _interrupted(run: Path) -> None:  # a run stopped in stage 2 has checkpoints but no run.json yet
    (run / "run.json").unlink()
    _unfinished(run)


def _corrupt_stage2(run: Path) -> None:
    (run / "checkpoints" / "stage2.pt").write_bytes(b"not a checkpoint")


def _truncated_stage1(run: Path) -> None:
    path = run / "checkpoints" / "stage1.pt"
    path.write_bytes(path.read_bytes()[:1000])


def _swapped_checkpoints(run: Path) -> None:  # readable, but stage 1 where stage 2 belongs
    shutil.copy(run / "checkpoints" / "stage1.pt", run / "checkpoints" / "stage2.pt")


def _cuda_run(run: Path) -> None:  # a run made on a GPU machine, exported where there is none
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: a device=cuda run exports here")
    record = json.loads((run / "run.json").read_text())
    record["config"]["device"] = "cuda"
    (run / "run.json").write_text(json.dumps(record))


def _not_a_run(run: Path) -> None:
    shutil.rmtree(run)
    run.mkdir()
    (run / "notes.txt").write_text("hello")


BAD = {
    "missing folder": (lambda run: shutil.rmtree(run), [], "no such folder"),
    "not a recon run": (_not_a_run, [], "not a recon run (no run.json)"),
    "damaged run.json": (lambda run: (run / "run.json").write_text("{"), [], "run.json: not a readable JSON file"),
    "unfinished": (_unfinished, [], "the run has not finished stage 2; run the same recon run command again"),
    "interrupted": (_interrupted, [], "the run has not finished stage 2; run the same recon run command again"),
    "corrupt checkpoint": (_corrupt_stage2, [], "stage2.pt: not a readable recon checkpoint"),
    "truncated checkpoint": (_truncated_stage1, [], "stage1.pt: not a readable recon checkpoint"),
    "wrong checkpoint": (_swapped_checkpoints, [], "stage2.pt: a checkpoint of stage 'image_to_3d_stage1'"),
    "cuda run on a CPU machine": (_cuda_run, [], "the run used device cuda but torch sees no CUDA device here; "
                                                 "add --set device=cpu"),
    "unknown format": (None, ["--format", "glb,stl"], "unknown format 'stl'; choose from glb, obj, ply"),
    "hypothesis out of range": (None, ["--hypothesis", "2"], "hypothesis 2 is out of range; this run has hypotheses 0-1"),
    "negative hypothesis": (None, ["--hypothesis", "-1"], "hypothesis -1 is out of range"),
    "not an export setting": (None, ["--set", "stage2.tet_resolution=8"], "only export.* settings"),
    "unknown export setting": (None, ["--set", "export.colour=red"], "export.colour"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_and_leaves_nothing(image_run, tmp_path, case):
    damage, args, message = BAD[case]
    run = tmp_path / "run"
    shutil.copytree(image_run, run)
    if damage is not None:
        damage(run)
    before = files(run) if run.exists() else None
    result = recon_export(str(run), *args)
    assert result.exit_code != 0
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert not (run / "export").exists()
    assert (files(run) if run.exists() else None) == before


@pytest.mark.parametrize("where", ["a file", "inside a file"])
def test_unwritable_out_is_one_line_and_leaves_nothing(image_run, tmp_path, where):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    out = blocker if where == "a file" else blocker / "sub"
    result = recon_export(str(image_run), "--out", str(out))
    assert result.exit_code != 0 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {out}: "), result.stderr
    assert blocker.read_text() == "a file, not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker"]


def test_text_run_exports_without_its_model(tmp_path):
    """A text run: the prompt's model folder is deleted, the export still rebuilds the same meshes."""
    model = write_sd(tmp_path / "sd")
    run = tmp_path / "text"
    made = CliRunner().invoke(main, ["text", "a wooden chair", "--prior", str(model), "--out", str(run),
                                     *sets(TINY_SD), "--quiet"])
    assert made.exit_code == 0, made.output
    shutil.rmtree(model)
    result = recon_export(str(run))
    assert result.exit_code == 0, result.output
    for k in hypotheses_of(run):
        for ext in ("glb", "obj", "mtl", "png", "ply"):
            assert (run / "export" / f"hypothesis_{k}.{ext}").read_bytes() == \
                (run / "meshes" / f"hypothesis_{k}.{ext}").read_bytes(), (k, ext)
    _unfinished(run)  # the unfinished-run line names the text command
    result = recon_export(str(run), "--out", str(tmp_path / "again"))
    assert result.exit_code == 1
    assert "the run has not finished stage 2; run the same recon text command again" in result.stderr


def test_an_error_with_progress_bars_on_is_still_one_line(tmp_path):
    result = CliRunner().invoke(main, ["export", str(tmp_path / "nope")])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == f"error: {tmp_path / 'nope'}: no such folder; give the output folder of a recon run\n"
