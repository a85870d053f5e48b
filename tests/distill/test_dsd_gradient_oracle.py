"""DSD's gradient against the authors' formula, assembled from diffusers' DDIMScheduler and a raw UNet.

The oracle follows the DSD authors' threestudio code (``compute_grad_dsd``): DDIM from ε* over the grid
with the ODE's CFG, ε_ode read at the grid point at or above t₊ (recon's cached ``grid`` form) or at t₊
itself after a partial DDIM step from the last grid point above it (``t_plus``, the paper's Algorithm 3),
then w(t)[ε̂(x̂(t), t; s) − ε̂(x̂(t₊), t₊; s₊)] with x̂(τ) = √ᾱ_τ x_π + √(1 − ᾱ_τ) ε_ode. The two CFG scales
differ on purpose (s = 3, s₊ = 1.5 or 1, ODE 2): running the t₊ term at the main scale, or mapping a
row to another hypothesis's ε*, fails here.
"""

import pytest
import torch
from diffusers import DDIMScheduler

from recon import seeding
from recon.diffusion import NoiseSchedule, TimestepConfig
from recon.distill import DistillConfig, Hypothesis, build_distiller
from recon.priors.diffusers_unet import DiffusersUNetPrior
from tests.tiny_unet import tiny_unet

S, S_ODE = 3.0, 2.0


def cfg(unet, x, t, context, scale):
    """ε_u + s (ε_c − ε_u) from two raw UNet calls (the conditional call alone at s = 1)."""
    tt = torch.full((x.shape[0],), int(t))
    e_c = unet(x, tt, encoder_hidden_states=context).sample
    if scale == 1:
        return e_c
    e_u = unet(x, tt, encoder_hidden_states=torch.zeros_like(context)).sample
    return e_u + scale * (e_c - e_u)

def sds_oracle(unet, scheduler, x_pi, t, generator, context):
    """DreamFusion's w(t)[ε̂(x_t, t; s) − ε], w = 1 − ᾱ_t, ε the next draw of ``generator``, x_t from diffusers'
    ``add_noise``: one row (1, 4, 8, 8) -> (4, 8, 8)."""
    eps = torch.randn((4, 8, 8), generator=generator, dtype=torch.float64)[None]
    x_t = scheduler.add_noise(x_pi, eps, torch.tensor([t]))
    return ((1 - scheduler.alphas_cumprod[t]) * (cfg(unet, x_t, t, context, S) - eps))[0]


def ddim_end(unet, scheduler, x, context):
    """The end of diffusers' DDIM sampler from x over the whole grid at the ODE's CFG (``pred_original_sample``)."""
    with torch.no_grad():
        for g in scheduler.timesteps:
            out = scheduler.step(cfg(unet, x, int(g), context, S_ODE), g, x)
            x = out.prev_sample
    return out.pred_original_sample


def endpoint_oracle(scheduler, x_pi, t, end, eps):
    """w(t)[ε̂ − ε] with ε̂ = (x̂(t) − √ᾱ_t x_end) / √(1 − ᾱ_t): what the prior predicts for x̂(t) = √ᾱ_t x_π +
    √(1 − ᾱ_t) ε if it denoises to x_end (x̂(t) from diffusers' ``add_noise``); one row -> (4, 8, 8)."""
    ac = scheduler.alphas_cumprod
    x_t = scheduler.add_noise(x_pi, eps, torch.tensor([t]))
    return ((1 - ac[t]) * ((x_t - ac[t].sqrt() * end) / (1 - ac[t]).sqrt() - eps))[0]


def assert_close(got, want, where):
    assert float((got - want).abs().max()) < 1e-10 * max(1.0, float(want.abs().max())), where



@torch.no_grad()
def oracle_grad(unet, scheduler, eps_star, context, x_pi, t, t_plus, scale_plus, target):
    """The authors' DSD gradient for one row (see the module docstring)."""
    ac = scheduler.alphas_cumprod.to(torch.float64)
    grid = [int(g) for g in scheduler.timesteps]  # descending
    x = eps_star
    eps = None
    for g in grid:
        if target == "grid" and g < t_plus:
            break
        if target == "t_plus" and g <= t_plus:
            break
        eps = cfg(unet, x, g, context, S_ODE)
        x0 = (x - (1 - ac[g]).sqrt() * eps) / ac[g].sqrt()
        last, last_x0 = g, x0
        if target == "grid" and g == min(h for h in grid if h >= t_plus):
            break
        x = scheduler.step(eps, g, x).prev_sample
    if target == "t_plus" and last != t_plus:
        x_tp = ac[t_plus].sqrt() * last_x0 + (1 - ac[t_plus]).sqrt() * eps
        eps = cfg(unet, x_tp, t_plus, context, S_ODE)
    x_t = scheduler.add_noise(x_pi, eps, torch.tensor([t]))
    x_tp = scheduler.add_noise(x_pi, eps, torch.tensor([t_plus]))
    diff = cfg(unet, x_t, t, context, S) - cfg(unet, x_tp, t_plus, context, scale_plus)
    return (1 - ac[t]) * diff


def tiny_setup():
    """A float64 tiny UNet, diffusers' DDIMScheduler (10 trailing steps) as the oracle's schedule, recon's prior
    on both, a text context, three hypotheses and five rows mapped to them (row i → hypothesis rows[i])."""
    unet = tiny_unet(dtype=torch.float64)
    scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                              timestep_spacing="trailing", clip_sample=False, set_alpha_to_one=False)
    scheduler.set_timesteps(10)
    scheduler.alphas_cumprod = scheduler.alphas_cumprod.to(torch.float64)
    scheduler.final_alpha_cumprod = scheduler.final_alpha_cumprod.to(torch.float64)
    prior = DiffusersUNetPrior(unet, NoiseSchedule.from_config(scheduler.config))
    context = torch.randn(1, 5, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    hyps = [Hypothesis(11, 0), Hypothesis(11, 1), Hypothesis(11, 2)]
    rows = torch.tensor([0, 1, 1, 2, 0])
    return unet, scheduler, prior, context, hyps, rows, prior.condition(embeddings=context, batch=len(rows))


@pytest.mark.parametrize("target", ["grid", "t_plus"])
@pytest.mark.parametrize("scale_plus", [1.0, 1.5])
def test_dsd_gradient_equals_the_authors_formula(target, scale_plus):
    unet, scheduler, prior, context, hyps, rows, cond = tiny_setup()
    config = DistillConfig(method="dsd", guidance_scale=S, plus_guidance_scale=scale_plus, ode_guidance_scale=S_ODE,
                           ode_steps=10, ode_target=target,
                           timesteps=TimestepConfig(kind="uniform", t_min=0.2, t_max=0.9, total_steps=10))
    distiller = build_distiller(prior, config)
    state = distiller.init_state(hyps).for_rows(rows)
    x_pi = torch.randn(len(rows), 4, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    checked_off_grid = 0
    for step in range(3):  # later steps read the cache the first one filled
        result = distiller.grad(x_pi, step, cond, state)
        for i, k in enumerate(rows.tolist()):
            t, tp = int(result.t[i]), int(result.t_plus[i])
            eps_star = seeding.eps_star(11, k, (4, 8, 8), torch.float64)[None]
            want = oracle_grad(unet, scheduler, eps_star, context, x_pi[i : i + 1], t, tp, scale_plus, target)[0]
            got = result.grad[i]
            assert float((got - want).abs().max()) < 1e-10 * max(1.0, float(want.abs().max())), (step, i, t, tp)
            checked_off_grid += tp not in [int(g) for g in scheduler.timesteps]
    assert checked_off_grid > 0  # t₊ fell between grid points at least once: the two targets really differ there


def test_dsd_commit_follows_with_the_sds_score_after_the_commit():
    """``dsd-commit`` with ``commit_target: two_point`` and ``commit_follow: sds``: during the commit it is DSD (the oracle above, on this
    camera-free prior every view already shares the one ODE); afterwards each row's gradient is SDS's
    w(t)[ε̂(x_t, t; s) − ε] with x_t = √ᾱ_t x_π + √(1 − ᾱ_t) ε, ε drawn from that row's hypothesis's own
    noise stream (DreamFusion's formula, x_t from diffusers' ``add_noise``)."""
    unet, scheduler, prior, context, hyps, rows, cond = tiny_setup()
    config = DistillConfig(method="dsd-commit", guidance_scale=S, plus_guidance_scale=1.0, ode_guidance_scale=S_ODE,
                           ode_steps=10, commit_fraction=0.5, commit_target="two_point", commit_follow="sds",
                           timesteps=TimestepConfig(kind="uniform", t_min=0.2, t_max=0.9, total_steps=4))
    distiller = build_distiller(prior, config)
    state = distiller.init_state(hyps).for_rows(rows)
    x_pi = torch.randn(len(rows), 4, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    noise = {k: seeding.generator(11, k, seeding.NOISE) for k in range(3)}
    for step in range(4):
        result = distiller.grad(x_pi, step, cond, state)
        for i, k in enumerate(rows.tolist()):
            t = int(result.t[i])
            if step < 2:  # commit: DSD on the one ODE of ε*_k
                eps_star = seeding.eps_star(11, k, (4, 8, 8), torch.float64)[None]
                want = oracle_grad(unet, scheduler, eps_star, context, x_pi[i : i + 1], t, int(result.t_plus[i]),
                                   1.0, "grid")[0]
            else:
                want = sds_oracle(unet, scheduler, x_pi[i : i + 1], t, noise[k], context)
            assert_close(result.grad[i], want, (step, i, t))


def test_dsd_commit_endpoint_pulls_toward_the_end_of_the_ode_of_eps_star():
    """``commit_target: endpoint``: during the commit each row's gradient is what DSD's first term gives when the
    prior denoises x̂(t) = √ᾱ_t x_π + √(1 − ᾱ_t) ε to the end of hypothesis k's ODE: w(t)[ε̂ − ε] with
    ε̂ = (x̂(t) − √ᾱ_t x_end) / √(1 − ᾱ_t), for any ε. x_end is diffusers' DDIM sampler run from ε*_k over the
    whole grid with the ODE's CFG (the last step's ``pred_original_sample``). A row mapped to another
    hypothesis, or an ODE stopped early, fails here."""
    unet, scheduler, prior, context, hyps, rows, cond = tiny_setup()
    config = DistillConfig(method="dsd-commit", guidance_scale=S, ode_guidance_scale=S_ODE, ode_steps=10,
                           commit_fraction=0.5, commit_target="endpoint", commit_follow="sds",
                           timesteps=TimestepConfig(kind="uniform", t_min=0.2, t_max=0.9, total_steps=4))
    distiller = build_distiller(prior, config)
    state = distiller.init_state(hyps).for_rows(rows)
    x_pi = torch.randn(len(rows), 4, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    ends = {}
    for k in range(3):
        ends[k] = ddim_end(unet, scheduler, seeding.eps_star(11, k, (4, 8, 8), torch.float64)[None], context)
    any_eps = torch.randn(4, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(3))[None]
    for step in range(2):
        result = distiller.grad(x_pi, step, cond, state)
        assert result.evals == (0 if step else 3 * 10 * 2)  # the three ODEs once (CFG: two rows), then cached
        for i, k in enumerate(rows.tolist()):
            t = int(result.t[i])
            assert_close(result.grad[i], endpoint_oracle(scheduler, x_pi[i : i + 1], t, ends[k], any_eps), (step, i, t))


def test_interleaved_endpoint_commit_from_antithetic_seed_noise():
    """``commit_every: 2`` with ``seed_noise: antithetic``: within the commit phase the even steps pull toward the
    end of hypothesis k's ODE, started from ε*_k for even k and from −ε*_(k−1) for odd k (diffusers' DDIM sampler
    as the oracle, as above), and the odd steps are SDS's score with the row's own noise stream; the anchor is
    asked for on the commit steps only."""
    unet, scheduler, prior, context, hyps, rows, cond = tiny_setup()
    config = DistillConfig(method="dsd-commit", guidance_scale=S, ode_guidance_scale=S_ODE, ode_steps=10,
                           commit_fraction=1.0, commit_every=2, commit_target="endpoint", commit_follow="sds",
                           seed_noise="antithetic",
                           timesteps=TimestepConfig(kind="uniform", t_min=0.2, t_max=0.9, total_steps=4))
    distiller = build_distiller(prior, config)
    assert [distiller.anchor_camera(s) is not None for s in range(4)] == [True, False, True, False]
    state = distiller.init_state(hyps).for_rows(rows)
    x_pi = torch.randn(len(rows), 4, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    ends = {}
    for k in range(3):
        start = seeding.eps_star(11, k - k % 2, (4, 8, 8), torch.float64)[None] * (-1.0 if k % 2 else 1.0)
        ends[k] = ddim_end(unet, scheduler, start, context)
    noise = {k: seeding.generator(11, k, seeding.NOISE) for k in range(3)}
    any_eps = torch.randn(4, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(3))[None]
    for step in range(4):
        result = distiller.grad(x_pi, step, cond, state)
        for i, k in enumerate(rows.tolist()):
            t = int(result.t[i])
            if step % 2 == 0:
                want = endpoint_oracle(scheduler, x_pi[i : i + 1], t, ends[k], any_eps)
            else:
                want = sds_oracle(unet, scheduler, x_pi[i : i + 1], t, noise[k], context)
            assert_close(result.grad[i], want, (step, i, t))


def test_plain_commit_before_the_interleave():
    """``commit_interleave_from``: every step before that share of the stage commits even with ``commit_every: 2``;
    from there to ``commit_fraction`` only every other step does; after it none (10 steps: 0-2 plain, 3-5 every
    other, 6-9 follow)."""
    _unet, _scheduler, prior, *_ = tiny_setup()
    config = DistillConfig(method="dsd-commit", commit_fraction=0.6, commit_every=2, commit_interleave_from=0.3,
                           commit_target="endpoint", timesteps=TimestepConfig(total_steps=10))
    distiller = build_distiller(prior, config)
    want = [True, True, True, False, True, False, False, False, False, False]
    assert [distiller.committing(s) for s in range(10)] == want
    assert [distiller.anchor_camera(s) is not None for s in range(10)] == want
