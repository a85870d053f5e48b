"""Must-show 1: DSD reproduces DDIM (paper, Appendix A), with diffusers' DDIMScheduler as the oracle.

Optimisation steps = DDIM steps, δ = T/N (the grid timestep schedule), SGD at lr 1, σ(t) weighting and
x_π initialised at the one-step prediction at T: the sequence of x_π must equal the x0 predictions
(``pred_original_sample``) of diffusers' DDIM sampling from the same ε*, in float64.
"""

import pytest
import torch
from diffusers import DDIMScheduler

from recon import seeding
from recon.diffusion import NoiseSchedule, TimestepConfig
from recon.distill import DistillConfig, Hypothesis, build_distiller, optimize_image
from recon.priors.diffusers_unet import DiffusersUNetPrior
from tests.tiny_unet import tiny_unet

EPS64 = torch.finfo(torch.float64).eps


def float64_bound(oracle, steps: int, scale: float) -> float:
    """What float64 promises for N DDIM steps: each step rounds a handful of operations on values of size
    max|x0| (x0 = (x − √(1−ᾱ) ε)/√ᾱ carries ε's rounding, amplified by 1/√ᾱ, into its own magnitude), CFG
    multiplies the network's rounding by up to 1 + s, and the errors add over the N steps; 16 is the
    handful. Measured (2026-12): ≤ 5.5e-14, bound ~1e-12; a float32 round trip anywhere is ~1e-7."""
    size = max(1.0, max(float(o.abs().max()) for o in oracle))
    return 16 * EPS64 * steps * (1 + scale) * size


def diffusers_x0_sequence(unet, scheduler, eps_star, context, negative, scale):
    """DDIM sampling written against diffusers' scheduler only (the oracle).

    The scheduler keeps ᾱ in float32 and takes square roots there (~2e-6 error here); its tables are
    promoted to float64 — the same values — so that the comparison is limited by float64 alone.
    """
    scheduler.alphas_cumprod = scheduler.alphas_cumprod.to(torch.float64)
    scheduler.final_alpha_cumprod = scheduler.final_alpha_cumprod.to(torch.float64)
    x = eps_star * scheduler.init_noise_sigma
    x0s = []
    for t in scheduler.timesteps:
        with torch.no_grad():
            e_c = unet(x, t, encoder_hidden_states=context).sample
            e_u = unet(x, t, encoder_hidden_states=negative).sample
        eps = e_u + scale * (e_c - e_u) if scale != 1 else e_c
        out = scheduler.step(eps, t, x)
        x0s.append(out.pred_original_sample)
        x = out.prev_sample
    return x0s


@pytest.mark.parametrize("spacing", ["trailing", "leading"])
@pytest.mark.parametrize("method", ["dsd", "sampling"])
@pytest.mark.parametrize("scale", [1.0, 3.0])
def test_dsd_iterates_equal_diffusers_ddim_x0_predictions(spacing, method, scale):
    steps = 10
    unet = tiny_unet(dtype=torch.float64)
    scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                              timestep_spacing=spacing, steps_offset=1 if spacing == "leading" else 0,
                              clip_sample=False, set_alpha_to_one=False)
    scheduler.set_timesteps(steps)
    prior = DiffusersUNetPrior(unet, NoiseSchedule.from_config(scheduler.config), default_guidance_scale=scale)
    context = torch.randn(1, 5, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    cond = prior.condition(embeddings=context)

    config = DistillConfig(method=method, weighting="sigma", timesteps=TimestepConfig(kind="grid"),
                           ode_steps=steps, guidance_scale=scale, plus_guidance_scale=scale,
                           ode_guidance_scale=scale)
    distiller = build_distiller(prior, config)
    seed = 7
    state = distiller.init_state([Hypothesis(seed, 0)])
    # x_π starts at the one-step prediction at T on the trajectory from ε* (level 0 of the grid).
    init = state.cache.x0_at([0], state.row_eps_star(torch.tensor([0])), [Hypothesis(seed, 0).key], cond)
    result = optimize_image(prior, distiller, init, steps, [seed], cond, lr=1.0, optimizer="sgd", keep_history=True)
    ours = [init, *result.history[:-1]]

    eps_star = seeding.eps_star(seed, 0, prior.sample_shape, torch.float64).unsqueeze(0)
    oracle = diffusers_x0_sequence(unet, scheduler, eps_star, context, torch.zeros_like(context), scale)
    assert len(ours) == len(oracle) == steps
    diffs = [float((a - b).abs().max()) for a, b in zip(ours, oracle)]
    print(f"{method} {spacing} s={scale}: max |x_pi - x0_ddim| per step", [f"{d:.1e}" for d in diffs])
    bound = float64_bound(oracle, steps, scale)
    print(f"  bound {bound:.1e}")
    assert max(diffs) < bound
    # The last optimisation step is past t = 0 (σ = 0): it must leave x_π at DDIM's final x0 prediction.
    assert float((result.images - oracle[-1]).abs().max()) < bound
    # And the test is not vacuous: x_π really moves along the way.
    assert float((oracle[-1] - oracle[0]).abs().max()) > 1e-2


def test_recon_ddim_sampler_matches_diffusers():
    from recon.diffusion import DDIMGrid, ddim_sample

    unet = tiny_unet(dtype=torch.float64)
    scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                              timestep_spacing="trailing", clip_sample=False)
    scheduler.set_timesteps(10)
    prior = DiffusersUNetPrior(unet, NoiseSchedule.from_config(scheduler.config))
    context = torch.randn(1, 5, 16, dtype=torch.float64)
    eps_star = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    _, ours = ddim_sample(prior, eps_star, prior.condition(embeddings=context, batch=2), DDIMGrid.make(prior.schedule, 10), 2.0)
    oracle = diffusers_x0_sequence(unet, scheduler, eps_star, context.expand(2, -1, -1), torch.zeros(2, 5, 16, dtype=torch.float64), 2.0)
    assert max(float((a - b).abs().max()) for a, b in zip(ours, oracle)) < float64_bound(oracle, 10, 2.0)
