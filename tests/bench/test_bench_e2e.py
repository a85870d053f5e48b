"""A tiny end-to-end bench (one family, DSD and SDS, K = 2, a few steps, plus the family's floor run): outputs
exist and agree with each other and with the saved meshes; the floor is measured from the pair and used as
the margin; a second run reuses everything; the CLI drives the same API and prints the --json schema."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import trimesh
from click.testing import CliRunner
from PIL import Image

from recon.bench import BenchConfig, run_bench
from recon.bench import metrics as M
from recon.bench import noise_floor as NF
from recon.bench.assign import assign, coverage
from recon.cli import main

TINY = ["stage1.steps=8", "stage2.steps=2", "stage2.tet_resolution=16", "prior.library.image_size=16",
        "stage1.resolutions=[32]", "stage2.resolution=32", "checkpoint_every=4"]


@pytest.fixture(scope="module")
def tiny_bench(tmp_path_factory, one_torch_thread):
    out = tmp_path_factory.mktemp("bench")
    config = BenchConfig(cases="smoke", methods=["dsd", "sds"], families=["crate"], seeds=[0], hypotheses=2,
                         overrides=TINY, points=3000)
    return out, config, run_bench(config, out)


def test_outputs_exist_and_are_consistent(tiny_bench):
    out, _config, result = tiny_bench
    assert result.ran == 3 and result.reused == 0 and result.failed == []  # dsd, sds and dsd's floor run
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
        assert r["nearest_coverage"] == len(set(nearest)) <= 2
        disc = np.array(r["discriminative"])
        assert disc.shape == (2, 4) and (disc >= 0).all()
        a = assign(disc, result.floors["crate"].value)
        assert r["margin"] == result.floors["crate"].value
        assert r["assigned"] == [None if i < 0 else r["members"][i] for i in a]
        assert r["coverage"] == coverage(a) and r["unassigned"] == pytest.approx(float((a < 0).mean()))
        assert r["fidelity"] == pytest.approx(dist.min(axis=1).mean())
        assert r["diversity"] == pytest.approx(np.array(r["pairwise_chamfer"])[0, 1])
        assert r["prior_evals"]["total"] == r["prior_evals"]["stage1"] + r["prior_evals"]["stage2"] > 0
        assert r["peak_rss_mib"] >= r["baseline_rss_mib"] > 0
        assert r["seconds"]["total"] > 0
        for h in r["hypotheses"]:
            assert 0 < h["input_iou"] <= 1 and np.isfinite(h["input_psnr"])
            assert (out / r["dir"] / h["render"]).is_file()
        # a finished run keeps its result and meshes, not its stage states (they only serve a resume)
        assert sorted(p.name for p in (out / r["dir"] / "checkpoints").iterdir()) == ["run_hash.txt"]


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
    assert again.ran == 0 and again.reused == 3
    a = {r["label"]: r["cases"] for r in json.loads(first.json.read_text())["runs"]}
    b = {r["label"]: r["cases"] for r in json.loads(again.json.read_text())["runs"]}
    assert a == b
    looser = BenchConfig(**{**config.__dict__, "tau": 0.2})
    rescored = run_bench(looser, out)
    assert rescored.ran == 0 and rescored.reused == 3
    for r in json.loads(rescored.json.read_text())["runs"]:
        assert all(c["best_fscore"] >= a[r["label"]][n]["best_fscore"] for n, c in r["cases"].items())
        assert r["metrics_key"]["tau"] == 0.2


def test_the_floor_comes_from_the_pair_and_is_recorded(tiny_bench):
    out, _config, result = tiny_bench
    floor = result.floors["crate"]
    assert floor.source == "measured" and floor.label == "dsd" and floor.seeds == [0]
    runs = {r["dir"]: r for r in json.loads(result.json.read_text())["runs"]}
    (main_dir, partner_dir), = floor.runs
    assert main_dir in runs and partner_dir not in runs  # the floor run is not a method run
    partner = json.loads((out / partner_dir / "result.json").read_text())
    main_run = runs[main_dir]
    assert partner["floor"] is True and partner["label"] == "dsd" and partner["seed"] == 0
    assert partner["stream_seeds"]["stage1"] == main_run["stream_seeds"]["stage1"] + NF.STREAM_OFFSET
    assert floor.value == pytest.approx(NF.floor_statistic([(main_run["discriminative"], partner["discriminative"])]))
    assert floor.hypotheses == 2 and 0 <= floor.flips <= 2
    assert NF.read_recorded(out)["crate"].value == pytest.approx(floor.value)
    assert "## Noise floor and coverage per family" in result.markdown.read_text()


def test_cli_json_is_exactly_the_schema_and_reuses_the_runs(tiny_bench):
    out, _config, result = tiny_bench
    before = sorted(p.name for p in (out / "runs").iterdir())
    args = ["bench", "--methods", "dsd,sds", "--families", "crate", "--seeds", "0", "-k", "2", "--points", "3000",
            "--out", str(out), "--json", "--threads", "0"]
    for o in TINY:
        args += ["--set-override", o]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert sorted(p.name for p in (out / "runs").iterdir()) == before  # nothing ran again
    figures = {"coverage", "unassigned", "best_of_k_chamfer", "fidelity", "diversity"}
    assert set(summary) == {"methods", "families"}
    assert set(summary["methods"]) == {"dsd", "sds"}
    assert set(summary["families"]) == {"crate"}
    assert set(summary["families"]["crate"]) == {"noise_floor", "answer_stability", "methods"}
    assert summary["families"]["crate"]["answer_stability"] == pytest.approx(result.floors["crate"].stability)
    assert summary["families"]["crate"]["noise_floor"] == pytest.approx(result.floors["crate"].value)
    bench = json.loads(result.json.read_text())["summary"]
    for name in ("dsd", "sds"):
        for block in (summary["methods"][name], summary["families"]["crate"]["methods"][name]):
            assert set(block) == figures and all(isinstance(v, float) for v in block.values())
        m = summary["methods"][name]
        assert 0.0 <= m["unassigned"] <= 1.0 and 0 <= m["coverage"] <= 2
        assert m["coverage"] == pytest.approx(bench[name]["coverage"]["mean"])
        assert m["best_of_k_chamfer"] == pytest.approx(bench[name]["best_chamfer"]["mean"])


def test_every_floor_seed_gets_a_pair_and_the_floor_comes_from_all(tiny_bench):
    out, config, result = tiny_bench
    two = run_bench(BenchConfig(**{**config.__dict__, "methods": ["dsd"], "seeds": [0, 1], "floor_seeds": 2,
                                   "keep_checkpoints": True}), out)
    assert two.ran == 2 and two.failed == []  # dsd at seed 1 and its floor run; seed 0's pair is reused
    floor = two.floors["crate"]
    # seed 0's pair ran in the fixture (states deleted); seed 1's pair ran now with keep_checkpoints
    kept = [sorted(p.name for p in (out / d / "checkpoints").glob("stage*.pt")) for pair in floor.runs for d in pair]
    assert kept == [[], [], ["stage1.pt", "stage2.pt"], ["stage1.pt", "stage2.pt"]]
    assert floor.seeds == [0, 1] and len(floor.runs) == 2 and floor.hypotheses == 4
    pairs = [tuple(json.loads((out / d / "result.json").read_text())["discriminative"] for d in pair)
             for pair in floor.runs]
    assert floor.value == pytest.approx(NF.floor_statistic(pairs))
    assert floor.value >= result.floors["crate"].value or floor.flips > 0


def test_default_methods_come_from_the_recipe(tiny_bench):
    """No --methods: the resolved config's distill.method (whatever the recipe or --set makes it) and sds."""
    out, config, _ = tiny_bench
    as_dsd = run_bench(BenchConfig(**{**config.__dict__, "methods": None,
                                      "overrides": [*TINY, "distill.method=dsd"]}), out)
    assert [r["label"] for r in as_dsd.results] == ["dsd", "sds"] and as_dsd.ran == 0
    # with distill.method=sds the default method is sds, and sds is not run twice
    as_sds = run_bench(BenchConfig(**{**config.__dict__, "methods": None, "noise_floor": False,
                                      "overrides": [*TINY, "distill.method=sds"]}), out)
    assert [r["label"] for r in as_sds.results] == ["sds"] and as_sds.ran == 0


def test_no_noise_floor_uses_the_recorded_floor_or_warns(tiny_bench, tmp_path):
    out, config, result = tiny_bench
    quiet = BenchConfig(**{**config.__dict__, "noise_floor": False})
    again = run_bench(quiet, out)
    assert again.ran == 0 and again.floors["crate"].source == "recorded"
    assert again.floors["crate"].value == pytest.approx(result.floors["crate"].value)
    # a folder with the runs but no recorded floor: margin 0 and a warning
    fresh = tmp_path / "fresh"
    shutil.copytree(out / "runs", fresh / "runs")
    warnings: list[str] = []
    bare = run_bench(quiet, fresh, warn=warnings.append)
    assert bare.ran == 0 and bare.floors["crate"].value == 0.0 and bare.floors["crate"].source == "none"
    assert len(warnings) == 1 and "no noise floor for crate" in warnings[0]
    assert all(r["margin"] == 0.0 for r in bare.results)


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


@pytest.mark.slow
def test_k8_on_a_random_library_with_json(tmp_path, one_torch_thread):
    """-k 8 end to end on a family nobody designed (--library), no floor run: margin 0 with a warning."""
    from recon.bench.random_family import write_random_library

    lib = write_random_library(tmp_path / "lib", 5, name="held_out")
    args = ["bench", "--library", str(lib), "--methods", "sds", "--no-noise-floor", "-k", "8", "--points", "2000",
            "--out", str(tmp_path / "out"), "--json", "--set", "stage1.steps=4"]
    for o in TINY[1:]:
        args += ["--set", o]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "warning: no noise floor for held_out" in res.stderr
    summary = json.loads(res.stdout)
    assert set(summary["families"]) == {"held_out"} and summary["families"]["held_out"]["noise_floor"] == 0.0
    m = summary["methods"]["sds"]
    assert 1 <= m["coverage"] <= 3 and (8 * m["unassigned"]).is_integer()
    run = json.loads((tmp_path / "out" / "bench.json").read_text())["runs"][0]
    assert len(run["hypotheses"]) == 8 and np.array(run["discriminative"]).shape == (8, 3)


def test_fidelity_sides_split_the_bench_chamfer(tiny_bench, capsys):
    """benchmarks/fidelity_sides.py: per (family, method, nearest member), ½ (accuracy + completeness) is the mean
    of bench.json's nearest-member Chamfer for those hypotheses, and the counts cover every hypothesis."""
    import importlib.util
    from pathlib import Path

    out, _config, result = tiny_bench
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "fidelity_sides.py"
    spec = importlib.util.spec_from_file_location("fidelity_sides", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = module.sides(out)
    runs = json.loads(result.json.read_text())["runs"]
    assert sum(r["n"] for r in rows) == sum(len(r["hypotheses"]) for r in runs)
    for row in rows:
        chamfers = [r["nearest_chamfer"][k] for r in runs if r["label"] == row["method"]
                    for k, name in enumerate(r["nearest"]) if name == row["member"]]
        assert row["n"] == len(chamfers)
        assert 0.5 * (row["accuracy"] + row["completeness"]) == pytest.approx(np.mean(chamfers), rel=1e-4)
        assert row["accuracy_p95"] >= 0 and row["completeness_p95"] >= 0
    module.main([str(out)])
    assert "| crate | dsd |" in capsys.readouterr().out
