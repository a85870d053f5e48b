"""A tiny end-to-end bench (one family, DSD and SDS, K = 2, a few steps): outputs exist and agree with each
other and with the saved meshes; a second run reuses everything; the CLI drives the same API."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh
from click.testing import CliRunner
from PIL import Image

from recon.bench import BenchConfig, run_bench
from recon.bench import metrics as M
from recon.cli import main

TINY = ["stage1.steps=12", "stage2.steps=3", "stage2.tet_resolution=24", "prior.library.image_size=16",
        "stage1.resolutions=[32]", "stage2.resolution=32", "checkpoint_every=4"]


@pytest.fixture(scope="module")
def tiny_bench(tmp_path_factory, one_torch_thread):
    out = tmp_path_factory.mktemp("bench")
    config = BenchConfig(cases="smoke", methods=["dsd", "sds"], families=["crate"], seeds=[0], hypotheses=2,
                         overrides=TINY, points=3000)
    return out, config, run_bench(config, out)


def test_outputs_exist_and_are_consistent(tiny_bench):
    out, _config, result = tiny_bench
    assert result.ran == 2 and result.reused == 0 and result.failed == []
    data = json.loads(result.json.read_text())
    assert {r["label"] for r in data["runs"]} == {"dsd", "sds"}
    assert Image.open(result.figure).size[0] > 200
    md = result.markdown.read_text()
    for label in ("| dsd |", "| sds |", "Per run"):
        assert label in md
    for r in data["runs"]:
        assert r["members"] == ["crate/plain", "crate/knob", "crate/fin", "crate/ledge"]
        dist, fs = np.array(r["chamfer"]), np.array(r["fscore"])
        assert dist.shape == fs.shape == (2, 4)
        for m, name in enumerate(r["members"]):
            case = r["cases"][name]
            assert case["best_chamfer"] == pytest.approx(dist[:, m].min())
            assert case["best_fscore"] == pytest.approx(fs[:, m].max())
        nearest = [r["members"][i] for i in dist.argmin(axis=1)]
        assert r["nearest"] == nearest
        assert r["coverage"] == len(set(nearest)) <= 2
        assert r["fidelity"] == pytest.approx(dist.min(axis=1).mean())
        assert r["diversity"] == pytest.approx(np.array(r["pairwise_chamfer"])[0, 1])
        assert r["prior_evals"]["total"] == r["prior_evals"]["stage1"] + r["prior_evals"]["stage2"] > 0
        assert r["peak_rss_mib"] >= r["baseline_rss_mib"] > 0
        assert r["seconds"]["total"] > 0
        for h in r["hypotheses"]:
            assert 0 < h["input_iou"] <= 1 and np.isfinite(h["input_psnr"])
            assert (out / r["dir"] / h["render"]).is_file()


def test_chamfer_agrees_with_trimesh_sampling_of_the_saved_meshes(tiny_bench):
    """The saved meshes, sampled independently by trimesh, give the reported Chamfer to within sampling noise."""
    out, _config, result = tiny_bench
    from recon.bench.bench import family_input  # noqa: F401  (the library's normalised members)
    from recon.pipeline.prior_setup import build_image_prior
    from recon.pipeline.recipes import image_config
    from recon.render.select import select_backend

    base = image_config(None, TINY)
    prior = build_image_prior(base.prior, select_backend("cpu"), "cpu", (base.elevation, 0.0, base.distance))
    gt = {s.name: M.outer_surface_points(s.mesh, 3000) for s in prior.shapes if s.family == "crate"}
    run = json.loads(result.json.read_text())["runs"][0]
    for k, h in enumerate(run["hypotheses"]):
        tm = trimesh.load(out / run["dir"] / h["mesh"], process=False, force="mesh")
        pts = np.asarray(trimesh.sample.sample_surface(tm, 3000, seed=7)[0])
        for m, name in enumerate(run["members"]):
            assert M.chamfer_l1(pts, gt[name]) == pytest.approx(run["chamfer"][k][m], abs=0.004)


def test_second_run_reuses_and_rescoring_needs_no_rerun(tiny_bench):
    out, config, first = tiny_bench
    again = run_bench(config, out)
    assert again.ran == 0 and again.reused == 2
    a = {r["label"]: r["cases"] for r in json.loads(first.json.read_text())["runs"]}
    b = {r["label"]: r["cases"] for r in json.loads(again.json.read_text())["runs"]}
    assert a == b
    looser = BenchConfig(**{**config.__dict__, "tau": 0.2})
    rescored = run_bench(looser, out)
    assert rescored.ran == 0 and rescored.reused == 2
    for r in json.loads(rescored.json.read_text())["runs"]:
        assert all(c["best_fscore"] >= a[r["label"]][n]["best_fscore"] for n, c in r["cases"].items())
        assert r["metrics_key"]["tau"] == 0.2


def test_cli_reuses_the_runs_and_reports_json(tiny_bench):
    out, _config, _ = tiny_bench
    args = ["bench", "--methods", "dsd,sds", "--families", "crate", "--seeds", "0", "-k", "2", "--points", "3000",
            "--out", str(out), "--json", "--threads", "0"]
    for o in TINY:
        args += ["--set-override", o]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["ran"] == 0 and summary["reused"] == 2


@pytest.mark.parametrize("args, words", [
    (["--methods", "dsd,magic"], "unknown method 'magic'"),
    (["--families", "teapot"], "no family 'teapot'"),
    (["--config", "no/such.yaml"], "no such config file"),
    (["--set", "stage1.nonsense=3"], "unknown config key"),
    (["--set-override", "asd:stage1.steps=3", "--methods", "dsd"], "not among the benchmarked methods"),
    (["--seeds", "x"], "--seeds"),
])
def test_cli_bad_input_is_one_line_and_nonzero(tmp_path, args, words):
    res = CliRunner().invoke(main, ["bench", "--out", str(tmp_path / "b"), "--quiet", *args])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], res.output


def test_cli_unwritable_out_dir_is_one_line_and_nonzero(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    res = CliRunner().invoke(main, ["bench", "--out", str(blocker / "bench"), "--quiet"])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "cannot create the output folder" in lines[0]
    assert blocker.read_text() == "not a folder"
