"""``recon bench --prior``: the prior reaches every run's config (with that prior's own recipe as the base, then the
case set's budget), the inputs and the ground truth still come from the shape library, and the run folders of two
priors differ. The runs themselves are not executed: ``BenchRun`` is replaced by a recorder."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from click.testing import CliRunner

from recon.bench import BenchConfig
from recon.bench import bench as B
from recon.bench.cases import RunSpec, Variant
from recon.bench.runner import run_folder
from recon.cli import main
from recon.config import ConfigError
from recon.pipeline.run_setup import config_hash


class _Stop(Exception):
    pass


@pytest.fixture
def recorded(monkeypatch):
    """The (spec, config, image, library digest) of every run ``run_bench`` starts; it stops at the last one."""
    seen = []

    class Recorder:
        def __init__(self, spec, config, image, root, gt, settings, extra=None, progress=None, library="",
                     keep_checkpoints=False):
            seen.append({"spec": spec, "config": config, "image": image, "gt": gt, "library": library})
            if len(seen) == want[0]:
                raise _Stop
            self.dir = root / "runs" / spec.key

        def cached(self):
            return None

        def run(self):
            raise RuntimeError("recorded, not run")

    want = [1]
    monkeypatch.setattr(B, "BenchRun", Recorder)
    # the ground-truth figures are not under test: skip their renders
    monkeypatch.setattr(B, "render_views", lambda mesh, views, size, *a: np.ones((2, 2 * len(views), 3)))
    return seen, want


def _run(tmp_path, want, runs, **kwargs):
    want[0] = runs
    config = BenchConfig(cases="smoke", families=["drum"], seeds=[0], points=200, input_size=64, **kwargs)
    with pytest.raises(_Stop):
        B.run_bench(config, tmp_path)


def test_prior_reaches_every_run_and_truth_stays_the_library(tmp_path, recorded, one_torch_thread):
    seen, want = recorded
    _run(tmp_path / "toy", want, 3, prior="toy-zero123", methods=["default", "sds"])  # default, sds, floor run
    assert [s["spec"].variant.label for s in seen] == ["dsd-commit", "sds", "dsd-commit"]
    for s in seen:
        c = s["config"]
        assert (c.prior.kind, c.prior.path) == ("zero123", "toy-zero123")
        assert c.stage1.weights.guidance == 1.0 and c.prior.guidance_scale == 3.0  # configs/toy-zero123.yaml
        assert c.stage2.steps == 10 and c.stage2.tet_resolution == 32  # the smoke budget on top
        assert c.distill.method == s["spec"].variant.method
        assert s["gt"].names == ["drum/flat", "drum/cone", "drum/stub"]  # ground truth: data/library
    assert (tmp_path / "toy" / "inputs" / "drum.png").is_file()
    assert (tmp_path / "toy" / "gt" / "drum_flat.png").is_file()

    library_run = seen[0]
    seen.clear()
    _run(tmp_path / "lib", want, 1, methods=["default"])
    c = seen[0]["config"]
    assert c.prior.kind == "library" and c.stage1.weights.guidance == 3.0  # configs/cpu-demo.yaml
    assert seen[0]["library"] == library_run["library"]  # the same ground-truth library
    sha = "0" * 64
    spec = RunSpec("drum", Variant("dsd-commit"), 0)
    toy_dir = run_folder(tmp_path, spec, config_hash(library_run["config"], sha), library_run["library"])
    lib_dir = run_folder(tmp_path, spec, config_hash(c, sha), seen[0]["library"])
    assert toy_dir != lib_dir
    # the prior alone (same everything else) changes the run hash
    same = dataclasses.replace(c, prior=dataclasses.replace(c.prior, kind="zero123", path="toy-zero123"))
    assert config_hash(same, sha) != config_hash(c, sha)


def test_config_file_of_a_learned_prior_works_too(tmp_path, recorded, one_torch_thread):
    seen, want = recorded
    _run(tmp_path, want, 1, config="configs/toy-zero123.yaml", methods=["sds"])
    c = seen[0]["config"]
    assert (c.prior.kind, c.prior.path, c.distill.method) == ("zero123", "toy-zero123", "sds")
    assert seen[0]["gt"].names == ["drum/flat", "drum/cone", "drum/stub"]


def test_calibrated_methods_need_the_library_prior(tmp_path, recorded):
    config = BenchConfig(cases="smoke", families=["drum"], seeds=[0], prior="toy-zero123", methods=["dsd-cal"])
    with pytest.raises(ConfigError, match="library prior"):
        B.run_bench(config, tmp_path)


def test_cli_passes_prior(tmp_path, monkeypatch):
    got = {}

    def fake_run_bench(config, out, progress=None, **kwargs):
        got["config"] = config
        raise ValueError("stop")

    monkeypatch.setattr(B, "run_bench", fake_run_bench)
    monkeypatch.setattr("recon.bench.run_bench", fake_run_bench)
    result = CliRunner().invoke(main, ["bench", "--prior", "toy-zero123", "--out", str(tmp_path), "--quiet"])
    assert result.exit_code == 1 and "stop" in result.output
    assert got["config"].prior == "toy-zero123"
    result = CliRunner().invoke(main, ["bench", "--out", str(tmp_path), "--quiet"])
    assert got["config"].prior is None
    json.dumps(dataclasses.asdict(got["config"]))  # stays a plain record
