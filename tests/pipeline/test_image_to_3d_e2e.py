"""``recon run`` end to end on the embedded LibraryPrior: every output of a run, reproduction from
run.json, and (slow) the CPU demo recipe itself (issue 4, must-show 4)."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import trimesh
from click.testing import CliRunner
from PIL import Image

from recon.cli import main
from tests.pipeline.tiny_run import TINY

ROOT = Path(__file__).resolve().parents[2]
IMAGE = ROOT / "data" / "examples" / "crate.png"


def run(*args: str) -> dict:
    result = CliRunner().invoke(main, ["run", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_run_writes_every_output(tmp_path):
    out = tmp_path / "run"
    summary = run(str(IMAGE), "--out", str(out), *TINY)
    assert [h["index"] for h in summary["hypotheses"]] == [0, 1]
    for k in range(2):
        for ext in ("glb", "obj", "mtl", "png", "ply"):
            assert (out / "meshes" / f"hypothesis_{k}.{ext}").is_file()
        assert (out / f"turntable_{k}.gif").is_file()
        assert Image.open(out / f"turntable_{k}.gif").n_frames == 4
        scene = trimesh.load(out / "meshes" / f"hypothesis_{k}.glb")
        mesh = next(iter(scene.geometry.values()))
        assert len(mesh.faces) <= 2000  # export.target_faces
        assert mesh.visual.material.baseColorTexture is not None
    for name in ("contact_sheet.png", "index.html", "run.json", "input.png"):
        assert (out / name).is_file()
    html = (out / "index.html").read_text()
    assert "http://" not in html and "https://" not in html  # works without network access
    for ref in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert (out / ref).exists(), ref
    record = json.loads((out / "run.json").read_text())
    assert record["input"]["path"] == str(IMAGE.resolve()) and len(record["input"]["sha256"]) == 64
    assert record["seeds"] == [0, 0] and record["config"]["hypotheses"] == 2
    stages = {s["name"]: s for s in record["stages"]}
    assert stages["stage1_nerf"]["prior_evals"] > 0 and stages["stage2_dmtet"]["prior_evals"] > 0
    assert "torch" in record["packages"] and record["device"]["device"] == "cpu"


def test_from_run_json_reproduces_the_meshes(tmp_path):
    first = tmp_path / "first"
    run(str(IMAGE), "--out", str(first), *TINY)
    second = tmp_path / "second"
    run("--from", str(first / "run.json"), "--out", str(second))
    for path in sorted((first / "meshes").iterdir()):
        assert (second / "meshes" / path.name).read_bytes() == path.read_bytes(), path.name


def test_another_run_in_the_same_folder_is_refused(tmp_path):
    out = tmp_path / "run"
    run(str(IMAGE), "--out", str(out), *TINY)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    result = CliRunner().invoke(main, ["run", str(ROOT / "data/examples/drum.png"), "--out", str(out), *TINY])
    assert result.exit_code == 1 and "holds a different run" in result.output
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before  # nothing touched


@pytest.mark.slow
def test_cpu_demo_recipe_end_to_end(tmp_path):
    """The README's demo: the default recipe (configs/cpu-demo.yaml: 64² renders, K = 4, both stages).
    Its wall time is recorded by benchmarks/pipeline_cpu.py in docs/benchmarks.md, not asserted here."""
    out = tmp_path / "demo"
    summary = run(str(IMAGE), "--out", str(out))
    assert len(summary["hypotheses"]) == 4
    record = json.loads((out / "run.json").read_text())
    assert record["config"]["stage1"]["resolutions"] == [64] and record["config"]["hypotheses"] == 4
    for k in range(4):
        mesh = trimesh.load(out / "meshes" / f"hypothesis_{k}.ply")
        assert len(mesh.faces) > 100
        assert np.ptp(mesh.vertices, axis=0).max() == pytest.approx(1.0, abs=1e-3)  # unit box
