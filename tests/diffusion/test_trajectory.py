"""The trajectory cache: lazily extended, computed once per (hypothesis, condition key), equal to DDIM."""

import torch

from recon.diffusion import DDIMGrid, TrajectoryCache, ddim_sample
from recon.priors import Condition, GaussianMixturePrior


def test_cached_trajectory_equals_ddim_and_is_computed_once():
    prior = GaussianMixturePrior.pictures(4, 8)
    grid = DDIMGrid.make(prior.schedule, 10)
    eps = torch.randn(2, *prior.sample_shape, dtype=torch.float64)
    cond = prior.condition(batch=2)
    cache = TrajectoryCache(prior, grid, guidance_scale=1.0)
    c0 = prior.counter.snapshot()
    x0 = cache.x0_at([9, 9], eps, ["a", "b"], cond)
    c1 = prior.counter.snapshot()
    assert c1[0] - c0[0] == 10 and c1[1] - c0[1] == 20  # 10 levels, both rows batched per level
    _, ref = ddim_sample(prior, eps, cond, grid)
    assert torch.allclose(x0, ref[9], atol=1e-12)
    c_before = prior.counter.snapshot()
    cache.eps_at([3, 7], eps, ["a", "b"], cond)
    assert prior.counter.snapshot() == c_before  # nothing recomputed
    # a disabled cache recomputes from scratch on every request (the authors' behaviour)
    nocache = TrajectoryCache(prior, grid, guidance_scale=1.0, enabled=False)
    nocache.eps_at([4], eps[:1], ["a"], cond.select([0]))
    c2 = prior.counter.snapshot()
    nocache.eps_at([4], eps[:1], ["a"], cond.select([0]))
    assert prior.counter.snapshot()[1] - c2[1] == 5


def test_camera_bins_share_trajectories():
    prior = GaussianMixturePrior.pictures(4, 8)
    grid = DDIMGrid.make(prior.schedule, 10)
    base = prior.condition(batch=3)
    cams = torch.tensor([[0.0, 10.0, 3.8], [0.0, 11.0, 3.8], [0.0, 40.0, 3.8]])
    cond = Condition(base.tensors, base.tags, cameras=cams)
    eps = torch.randn(1, *prior.sample_shape, dtype=torch.float64).expand(3, -1, -1, -1)
    exact = TrajectoryCache(prior, grid, 1.0, camera_bin=0.0)
    exact.eps_at([0, 0, 0], eps, ["h"] * 3, cond)
    assert len(exact) == 3
    binned = TrajectoryCache(prior, grid, 1.0, camera_bin=15.0)
    binned.eps_at([0, 0, 0], eps, ["h"] * 3, cond)
    assert len(binned) == 2  # 10° and 11° fall into one 15° bin, 40° into another


def test_cache_is_bounded():
    prior = GaussianMixturePrior.pictures(4, 8)
    cache = TrajectoryCache(prior, DDIMGrid.make(prior.schedule, 4), 1.0, max_entries=3)
    eps = torch.randn(1, *prior.sample_shape, dtype=torch.float64)
    for k in range(6):
        cache.eps_at([0], eps, [k], prior.condition())
    assert len(cache) == 3


def test_binned_trajectory_is_conditioned_on_the_bin_centre():
    from recon.priors.library import LibraryPrior, LibraryPriorConfig
    from recon.render.cpu import CpuRasterizer

    prior = LibraryPrior.from_folder(None, CpuRasterizer(), LibraryPriorConfig(image_size=16))
    grid = DDIMGrid.make(prior.schedule, 4)
    eps = torch.randn(1, *prior.sample_shape)

    def first_eps(camera):
        cache = TrajectoryCache(prior, grid, 3.0, camera_bin=10.0)
        return cache.eps_at([1], eps, ["h"], prior.condition(camera=torch.tensor([camera])))

    # 21° and 24° azimuth share the 20° bin: whichever comes first, the trajectory is the bin centre's.
    a, b = first_eps([0.0, 21.0, 3.8]), first_eps([0.0, 24.0, 3.8])
    centre = TrajectoryCache(prior, grid, 3.0).eps_at([1], eps, ["h"], prior.condition(camera=torch.tensor([[0.0, 20.0, 3.8]])))
    assert torch.equal(a, b) and torch.equal(a, centre)
