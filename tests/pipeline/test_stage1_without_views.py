"""Stage 1 with no known views (text-to-3D): the reference term is skipped and guidance alone trains
the fields; and guidance cameras in MVDream's 4-view groups, in both stages."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from recon.pipeline.camera_groups import CameraSampling, grouped_random_cameras
from recon.pipeline.stage import run_stage
from recon.pipeline.stage1_config import LossWeights, Stage1Config
from recon.pipeline.stage1_nerf import Stage1
from recon.pipeline.stage2_dmtet import Stage2, Stage2Config
from recon.render.cameras import Cameras, random_cameras
from recon.render.cpu import CpuRasterizer
from recon.scene.dmtet import DMTet

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TARGET = torch.tensor([0.9, 0.2, 0.1])  # the colour the toy guidance asks every pixel to take


def small_config(**kw) -> Stage1Config:
    cfg = Stage1Config(steps=12, resolutions=[16], batch_sizes=[2], milestones=[], guidance_background="white",
                       weights=LossWeights(rgb=0.0, mask=0.0, guidance=1.0, normal_smooth=0.0, sparsity=0.0,
                                           opaque=0.0))
    cfg.volume.samples_per_ray = 16
    cfg.field.resolutions = [8, 16]
    return dataclasses.replace(cfg, **kw)


class Recorder:
    """A guidance term with a closed-form optimum: mean squared distance of every pixel to TARGET."""

    def __init__(self) -> None:
        self.cameras: list[Cameras] = []
        self.values: list[float] = []

    def __call__(self, rgb: torch.Tensor, cameras: Cameras, step: int) -> torch.Tensor:
        self.cameras.append(cameras)
        loss = (rgb - TARGET.view(1, 3, 1, 1)).square().mean()
        self.values.append(float(loss.detach()))
        return loss


def test_stage1_needs_views_or_guidance():
    with pytest.raises(ValueError, match="known views, a guidance term, or both"):
        Stage1(small_config(), None, hypotheses=2)


def test_without_views_guidance_alone_trains_every_hypothesis():
    guidance = Recorder()
    stage = Stage1(small_config(lr=0.05), None, hypotheses=2, guidance=guidance)
    before = [p.detach().clone() for p in stage.parameters()]
    results = [stage.step() for _ in range(12)]
    assert all(set(r.losses) == {"guidance", "sparsity", "opaque"} for r in results)  # no rgb / mask term
    assert results[0].renders.shape == (2, 2, 3, 16, 16)
    # The toy guidance's loss falls: the fields learn the target colour from guidance alone.
    assert guidance.values[-1] < 0.5 * guidance.values[0]
    after = list(stage.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(before, after))


def test_without_views_resume_is_bit_identical(tmp_path):
    straight = Stage1(small_config(steps=6), None, hypotheses=2, guidance=Recorder())
    run_stage(straight)
    first = Stage1(small_config(steps=6), None, hypotheses=2, guidance=Recorder())
    run_stage(first, until=3, checkpoint_path=tmp_path / "s1.pt")
    resumed = Stage1(small_config(steps=6), None, hypotheses=2, guidance=Recorder())
    run_stage(resumed, checkpoint_path=tmp_path / "s1.pt", resume=True)
    for a, b in zip(straight.field.parameters(), resumed.field.parameters()):
        assert torch.equal(a, b)


def check_groups(cams: Cameras, group: int) -> None:
    elev, azim, dist = cams.elevation.view(-1, group), cams.azimuth.view(-1, group), cams.distance.view(-1, group)
    assert torch.equal(elev, elev[:, :1].expand_as(elev)) and torch.equal(dist, dist[:, :1].expand_as(dist))
    gaps = torch.remainder(azim.diff(dim=1), 360.0)
    assert torch.allclose(gaps, torch.full_like(gaps, 360.0 / group), atol=1e-3)


def test_grouped_cameras_are_mvdream_groups_and_group_one_is_random_cameras():
    ranges = ((0.0, 30.0), (-180.0, 180.0), (3.0, 4.0), (20.0, 40.0))
    g = torch.Generator().manual_seed(3)
    cams = grouped_random_cameras(12, g, 4, *ranges, 16)
    check_groups(cams, 4)
    assert cams.elevation.min() >= 0 and cams.elevation.max() <= 30
    assert len(set(cams.elevation.tolist())) == 3  # three groups, three elevations
    # group 1 draws exactly what random_cameras draws (image runs keep their cameras)
    same = grouped_random_cameras(5, torch.Generator().manual_seed(3), 1, *ranges, 16)
    ref = random_cameras(5, torch.Generator().manual_seed(3), *ranges, 16)
    assert torch.equal(same.mvp, ref.mvp)
    with pytest.raises(ValueError, match="groups of 4"):
        grouped_random_cameras(6, g, 4, *ranges, 16)


def test_stage1_groups_cameras_and_backgrounds_per_hypothesis():
    cfg = small_config(batch_sizes=[8], cameras=CameraSampling(elevation_range=(0.0, 30.0), group=4),
                       guidance_background="random")
    guidance = Recorder()
    stage = Stage1(cfg, None, hypotheses=2, guidance=guidance)
    stage.step()
    cams = guidance.cameras[0]
    assert len(cams) == 16  # K = 2 hypotheses × 8 views, hypothesis-major
    check_groups(cams, 4)
    background = stage._guidance_background(8).view(4, 4, 3)  # (K·groups, views, rgb)
    assert torch.equal(background, background[:, :1].expand_as(background))
    assert not torch.equal(background[0, 0], background[1, 0])
    with pytest.raises(ValueError, match="groups of 4"):
        Stage1(small_config(batch_sizes=[6], cameras=CameraSampling(group=4)), None, 2, guidance=Recorder())


def test_stage2_guidance_views_in_groups():
    geometry = DMTet(resolution=8)
    geometry.init_from_sdf(lambda p: p.norm(dim=-1) - 0.5)
    cfg = Stage2Config(guidance_views_per_step=8, cameras=CameraSampling(group=4, elevation_range=(0.0, 30.0)),
                       resolution=16)
    stage = Stage2(cfg, geometry, lambda p: torch.ones_like(p) * 0.5, CpuRasterizer(), batched=True)
    rgb, cams = stage.guidance_views(geometry.extract())
    assert rgb.shape == (8, 3, 16, 16)
    check_groups(cams, 4)
    with pytest.raises(ValueError, match="groups of 4"):
        Stage2(dataclasses.replace(cfg, guidance_views_per_step=6), geometry, lambda p: p, CpuRasterizer(),
               batched=True)
