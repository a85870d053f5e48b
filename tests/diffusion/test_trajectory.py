"""The trajectory cache: lazily extended, computed once per (hypothesis, condition key), equal to DDIM.

The DDIM oracle is diffusers' ``DDIMScheduler`` stepping the same noise predictions — not recon's own
``ddim_sample``, which shares ``ddim_step`` with the cache and would agree with it however that step
were broken.
"""

import torch
from diffusers import DDIMScheduler

from recon.diffusion import DDIMGrid, TrajectoryCache
from recon.priors import Condition, GaussianMixturePrior

EPS64 = torch.finfo(torch.float64).eps


def diffusers_ddim(prior, eps_star, cond, steps, scale):
    """(ε, x0) at each grid point of DDIM sampling from ε*, stepped by diffusers' scheduler (eta 0) on
    the prior's noise predictions. The prior's schedule is Stable Diffusion's scaled-linear one, trailing;
    the scheduler's float32 tables are promoted to float64 (same values) so the comparison is float64's."""
    sched = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                          timestep_spacing="trailing", clip_sample=False)
    sched.set_timesteps(steps)
    sched.alphas_cumprod = sched.alphas_cumprod.to(torch.float64)
    sched.final_alpha_cumprod = sched.final_alpha_cumprod.to(torch.float64)
    x, epss, x0s = eps_star, [], []
    for t in sched.timesteps:
        eps = prior.predict_noise(x, int(t), cond, scale)
        out = sched.step(eps, t, x)
        epss.append(eps)
        x0s.append(out.pred_original_sample)
        x = out.prev_sample
    return epss, x0s


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
    epss, x0s = diffusers_ddim(prior, eps, cond, 10, 1.0)
    # float64 rounding of a few operations per step on values of size max|x0| (1/√ᾱ at t = T amplifies
    # ε's rounding into x0), added over 10 steps; measured ~1e-14. A wrong ᾱ or a missing sqrt is ≥ 1e-4.
    bound = 16 * EPS64 * 10 * max(1.0, max(float(v.abs().max()) for v in x0s))
    assert float((x0 - x0s[9]).abs().max()) < bound
    for level in range(10):  # every level: the noise prediction (a function of the sample there) and x0
        rows = [level, level]
        assert float((cache.eps_at(rows, eps, ["a", "b"], cond) - epss[level]).abs().max()) < bound, level
        assert float((cache.x0_at(rows, eps, ["a", "b"], cond) - x0s[level]).abs().max()) < bound, level
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
