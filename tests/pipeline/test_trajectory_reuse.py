"""Stage 2 reuses stage 1's ODE trajectories: fewer prior evaluations, the same meshes to the byte."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

import recon.pipeline.staged_run as staged_run
from recon.diffusion.trajectory import TrajectoryCache
from recon.pipeline.image_to_3d import reconstruct
from tests.pipeline.test_image_to_3d_resume import IMAGE, _api_config, outputs

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _evals(out: Path) -> dict[str, int]:
    return json.loads((out / "run.json").read_text())["outputs"]["guidance_evals"]


def test_stage2_reuses_stage1_trajectories(tmp_path, monkeypatch):
    # The paper's DSD follows ODEs in both stages; the default dsd-commit follows with SDS after its commit, so
    # its stage 2 reads no trajectory and has nothing to reuse.
    config = _api_config()
    config = dataclasses.replace(config, distill=dataclasses.replace(config.distill, method="dsd"))
    reconstruct(IMAGE, config, tmp_path / "shared")
    monkeypatch.setattr(staged_run, "reuse_trajectories", lambda source, target: None)
    reconstruct(IMAGE, config, tmp_path / "separate")

    shared, separate = _evals(tmp_path / "shared"), _evals(tmp_path / "separate")
    assert shared["stage1"] == separate["stage1"]
    assert shared["stage2"] < separate["stage2"], (shared, separate)
    a, b = outputs(tmp_path / "shared"), outputs(tmp_path / "separate")
    assert a.keys() == b.keys() and all(a[n] == b[n] for n in a)


def test_caches_with_other_bins_or_guidance_are_not_shared():
    from recon.distill import build_distiller
    from recon.distill.base import DistillConfig
    from recon.priors import GaussianMixturePrior

    prior = GaussianMixturePrior.pictures(2, 8)
    grid = build_distiller(prior, DistillConfig(method="dsd")).grid
    base = TrajectoryCache(prior, grid, 7.5, camera_bin=15.0)
    assert base.same_paths(TrajectoryCache(prior, grid, 7.5, camera_bin=15.0))
    assert not base.same_paths(TrajectoryCache(prior, grid, 7.5, camera_bin=30.0))
    assert not base.same_paths(TrajectoryCache(prior, grid, 3.0, camera_bin=15.0))
    assert not base.same_paths(TrajectoryCache(GaussianMixturePrior.pictures(2, 8), grid, 7.5, camera_bin=15.0))
    assert not base.same_paths(TrajectoryCache(prior, grid, 7.5, camera_bin=15.0, enabled=False))
