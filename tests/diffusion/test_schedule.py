"""recon's noise schedule and DDIM grid against diffusers' DDIMScheduler (the oracle)."""

import pytest
import torch
from diffusers import DDIMScheduler

from recon.diffusion import DDIMGrid, NoiseSchedule

CONFIGS = [
    dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012),
    dict(beta_schedule="linear", beta_start=0.0001, beta_end=0.02),
    dict(beta_schedule="squaredcos_cap_v2"),
    dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, rescale_betas_zero_snr=True),
    dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, set_alpha_to_one=False),
]


@pytest.mark.parametrize("cfg", CONFIGS)
def test_alphas_cumprod_match_diffusers_bit_for_bit(cfg):
    oracle = DDIMScheduler(**cfg)
    ours = NoiseSchedule.from_config(oracle.config)
    assert torch.equal(ours.alphas_cumprod, oracle.alphas_cumprod.to(torch.float64))
    assert ours.final_alpha_cumprod == float(oracle.final_alpha_cumprod)


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
@pytest.mark.parametrize("steps", [1, 7, 10, 50])
def test_grid_matches_diffusers_set_timesteps(spacing, steps):
    oracle = DDIMScheduler(beta_schedule="scaled_linear", timestep_spacing=spacing, steps_offset=1)
    oracle.set_timesteps(steps)
    grid = DDIMGrid.make(NoiseSchedule.from_config(oracle.config), steps)
    assert list(grid.timesteps) == oracle.timesteps.tolist()
    assert list(grid.prev) == [t - 1000 // steps for t in oracle.timesteps.tolist()]


def test_level_at_or_above():
    grid = DDIMGrid.make(NoiseSchedule.scaled_linear(timestep_spacing="trailing"), 10)
    assert grid.timesteps == (999, 899, 799, 699, 599, 499, 399, 299, 199, 99)
    assert grid.level_at_or_above(999) == 0
    assert grid.level_at_or_above(900) == 0
    assert grid.level_at_or_above(899) == 1
    assert grid.level_at_or_above(550) == 4  # 599 is the smallest grid point >= 550
    assert grid.level_at_or_above(0) == 9
    assert grid.level_at_or_above(5000) == 0


def test_v_prediction_converts_to_epsilon():
    sched = NoiseSchedule.from_config({"beta_schedule": "scaled_linear", "prediction_type": "v_prediction"})
    x0 = torch.randn(2, 3, 4, 4, dtype=torch.float64)
    eps = torch.randn_like(x0)
    t = torch.tensor([100, 700])
    a = sched.alpha(t, x0)
    x_t = sched.add_noise(x0, eps, t)
    v = a.sqrt() * eps - (1 - a).sqrt() * x0  # the definition of v (Salimans & Ho)
    assert torch.allclose(sched.eps_from_model_output(v, x_t, t), eps, atol=1e-12)
