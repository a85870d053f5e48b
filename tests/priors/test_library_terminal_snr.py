"""The library prior's zero-terminal-SNR schedule (``prior.library.zero_terminal_snr``).

Oracles: diffusers' own ``rescale_betas_zero_snr`` schedule, and the closed form of what DDIM from N(0, I)
must sample on a Gaussian mixture — its mixture weights — when the start distribution is the forward
process's marginal at T."""

import pytest
import torch

from recon.diffusion import DDIMGrid, ddim_sample
from recon.priors import GaussianMixturePrior
from recon.priors.library import TERMINAL_ALPHA, LibraryPrior, LibraryPriorConfig, library_schedule
from recon.render.cpu import CpuRasterizer


def test_schedule_is_diffusers_zero_snr_rescale_with_the_last_alpha_kept_above_zero():
    diffusers = pytest.importorskip("diffusers")
    ref = diffusers.DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                                  rescale_betas_zero_snr=True).alphas_cumprod.double()
    ours = library_schedule(True).alphas_cumprod
    assert float(ref[-1]) == 0.0
    torch.testing.assert_close(ours[:-1], ref[:-1], rtol=0, atol=0)
    assert float(ours[-1]) == TERMINAL_ALPHA
    plain = diffusers.DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    torch.testing.assert_close(library_schedule(False).alphas_cumprod, plain.alphas_cumprod.double(), rtol=0, atol=0)


def _share_of_the_brighter_member(zero_snr: bool, n: int = 400) -> float:
    # Two equally likely members that differ only in brightness (‖μ‖² 123 vs 2488 over 3072 values): the
    # ODE from N(0, I) must end in each about half the time.
    d = 3072
    means = torch.stack([torch.full((d,), 0.2), torch.full((d,), 0.9)]).double()
    prior = GaussianMixturePrior(means, 0.05, schedule=library_schedule(zero_snr))
    eps = torch.randn(n, d, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x, _ = ddim_sample(prior, eps, prior.condition(batch=n), DDIMGrid.make(prior.schedule, 50), 1.0)
    brighter = (x - means[1]).norm(dim=1) < (x - means[0]).norm(dim=1)
    return float(brighter.double().mean())


def test_ode_from_pure_noise_samples_the_mixture_weights_only_at_zero_terminal_snr():
    # Binomial(400, 0.5): 3 sigma = 0.075.
    assert abs(_share_of_the_brighter_member(True) - 0.5) < 0.075
    # SD's schedule (ᾱ_T = 0.0047) starts from the wrong distribution and under-samples the brighter one.
    assert _share_of_the_brighter_member(False) < 0.3


def test_library_prior_takes_the_schedule_from_its_config():
    prior = LibraryPrior.from_folder(None, CpuRasterizer(), LibraryPriorConfig(image_size=16, zero_terminal_snr=True))
    assert float(prior.schedule.alphas_cumprod[-1]) == TERMINAL_ALPHA
    default = LibraryPrior.from_folder(None, CpuRasterizer(), LibraryPriorConfig(image_size=16))
    assert float(default.schedule.alphas_cumprod[-1]) == pytest.approx(0.0047, abs=1e-4)
