"""Noise-schedule maths of the variance-preserving forward process.

``x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε``. ᾱ is built from a diffusers scheduler config exactly as
diffusers builds it (betas in float32, then cumulative product), so recon's DDIM and diffusers'
agree to the bit; everything downstream works in the dtype of the tensors it is given.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

# The diffusers config keys that change ᾱ; the rest (clip_sample, spacing, ...) are sampler choices.
MAX_TRAIN_TIMESTEPS = 100_000  # a larger schedule is a damaged or hostile config, not a model
SCHEDULE_KEYS = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas",
                 "rescale_betas_zero_snr", "prediction_type", "set_alpha_to_one", "timestep_spacing",
                 "steps_offset")


def _cosine_betas(num: int, max_beta: float = 0.999) -> torch.Tensor:
    # Glide's squaredcos_cap_v2, as diffusers' betas_for_alpha_bar computes it.
    def alpha_bar(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    betas = [min(1 - alpha_bar((i + 1) / num) / alpha_bar(i / num), max_beta) for i in range(num)]
    return torch.tensor(betas, dtype=torch.float32)


def _rescale_zero_terminal_snr(betas: torch.Tensor) -> torch.Tensor:
    # Lin et al. 2023, Algorithm 1: shift and scale sqrt(ᾱ) so that ᾱ_T = 0 exactly.
    abar_sqrt = torch.cumprod(1.0 - betas, dim=0).sqrt()
    first, last = abar_sqrt[0].clone(), abar_sqrt[-1].clone()
    abar_sqrt = (abar_sqrt - last) * (first / (first - last))  # same rounding order as diffusers
    abar = abar_sqrt**2
    alphas = torch.cat([abar[0:1], abar[1:] / abar[:-1]])
    return 1 - alphas


@dataclass(frozen=True)
class NoiseSchedule:
    """ᾱ_t for t = 0..T-1 plus the sampler conventions that come with a scheduler config.

    Attributes:
        alphas_cumprod: (T,) float64 tensor of ᾱ_t.
        prediction_type: what the network predicts: ``epsilon`` or ``v_prediction``.
        final_alpha_cumprod: ᾱ used one step past t = 0 (1.0 when ``set_alpha_to_one``).
        timestep_spacing: how a DDIM grid of N steps is laid over [0, T): ``leading``,
            ``trailing`` or ``linspace`` (diffusers' meanings).
        steps_offset: added to ``leading`` grids (diffusers' convention).
    """

    alphas_cumprod: torch.Tensor
    prediction_type: str = "epsilon"
    final_alpha_cumprod: float = 1.0
    timestep_spacing: str = "trailing"
    steps_offset: int = 0

    @property
    def num_train_timesteps(self) -> int:
        return int(self.alphas_cumprod.shape[0])

    @classmethod
    def from_config(cls, config: Mapping[str, Any], timestep_spacing: str | None = None) -> NoiseSchedule:
        """From a diffusers scheduler config (a dict, or ``scheduler_config.json``'s content)."""
        num = config.get("num_train_timesteps", 1000)
        if isinstance(num, bool) or not isinstance(num, int) or not 2 <= num <= MAX_TRAIN_TIMESTEPS:
            raise ValueError(f"scheduler config: num_train_timesteps {num!r} is outside 2..{MAX_TRAIN_TIMESTEPS} "
                             "(diffusion models use 1000); check scheduler/scheduler_config.json")
        if config.get("trained_betas") is not None:
            betas = torch.tensor(config["trained_betas"], dtype=torch.float32)
        else:
            kind = config.get("beta_schedule", "linear")
            start = float(config.get("beta_start", 0.0001))
            end = float(config.get("beta_end", 0.02))
            if kind == "linear":
                betas = torch.linspace(start, end, num, dtype=torch.float32)
            elif kind == "scaled_linear":
                betas = torch.linspace(start**0.5, end**0.5, num, dtype=torch.float32) ** 2
            elif kind == "squaredcos_cap_v2":
                betas = _cosine_betas(num)
            else:
                raise ValueError(f"unsupported beta_schedule {kind!r} (linear, scaled_linear, squaredcos_cap_v2)")
        if config.get("rescale_betas_zero_snr", False):
            betas = _rescale_zero_terminal_snr(betas)
        abar32 = torch.cumprod(1.0 - betas, dim=0)
        final = 1.0 if config.get("set_alpha_to_one", True) else float(abar32[0])
        return cls(
            alphas_cumprod=abar32.to(torch.float64),
            prediction_type=str(config.get("prediction_type", "epsilon")),
            final_alpha_cumprod=float(torch.tensor(final, dtype=torch.float32)),
            timestep_spacing=timestep_spacing or str(config.get("timestep_spacing", "trailing")),
            steps_offset=int(config.get("steps_offset", 0)),
        )

    @classmethod
    def from_pretrained(cls, folder: str | Path, timestep_spacing: str | None = None) -> NoiseSchedule:
        """From a ``scheduler/`` folder (or a file) holding ``scheduler_config.json``."""
        path = Path(folder)
        if path.is_dir():
            path = path / "scheduler_config.json"
        return cls.from_config(json.loads(path.read_text()), timestep_spacing)

    @classmethod
    def scaled_linear(cls, beta_start: float = 0.00085, beta_end: float = 0.012, num: int = 1000,
                      timestep_spacing: str = "trailing", rescale_zero_snr: bool = False) -> NoiseSchedule:
        """Stable Diffusion's / Zero-1-to-3's schedule (rescaled to ᾱ_T = 0 with ``rescale_zero_snr``)."""
        return cls.from_config({"beta_schedule": "scaled_linear", "beta_start": beta_start, "beta_end": beta_end,
                                "num_train_timesteps": num, "rescale_betas_zero_snr": rescale_zero_snr},
                               timestep_spacing)

    # -- per-timestep coefficients; ``t`` may be an int, or a (B,) long tensor; t < 0 means "past 0".
    def alpha(self, t: int | torch.Tensor, like: torch.Tensor | None = None) -> torch.Tensor:
        """ᾱ_t, broadcastable against ``like`` (shape (B, 1, 1, ...) for a (B,) ``t``)."""
        t_tensor = torch.as_tensor(t, dtype=torch.long)
        abar = self.alphas_cumprod
        values = torch.where(
            t_tensor >= 0,
            abar[t_tensor.clamp(min=0)],
            torch.tensor(self.final_alpha_cumprod, dtype=torch.float64),
        )
        if like is None:
            return values
        values = values.to(device=like.device, dtype=like.dtype)
        if values.ndim == 1:
            values = values.view(-1, *([1] * (like.ndim - 1)))
        return values

    def sigma(self, t: int | torch.Tensor, like: torch.Tensor | None = None) -> torch.Tensor:
        """σ(t) = sqrt((1 - ᾱ_t) / ᾱ_t), the paper's noise-to-signal ratio."""
        a = self.alpha(t, like)
        return ((1 - a) / a).sqrt()

    def add_noise(self, x0: torch.Tensor, eps: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(ᾱ_t) x0 + sqrt(1 - ᾱ_t) ε; all (B, ...)."""
        a = self.alpha(t, x0)
        return a.sqrt() * x0 + (1 - a).sqrt() * eps

    def predict_x0(self, x_t: torch.Tensor, eps: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        """One-step data prediction x0 = (x_t - sqrt(1 - ᾱ_t) ε) / sqrt(ᾱ_t)."""
        a = self.alpha(t, x_t)
        return (x_t - (1 - a).sqrt() * eps) / a.sqrt()

    def eps_from_model_output(self, output: torch.Tensor, x_t: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        """Convert a network output to a noise prediction according to ``prediction_type``."""
        if self.prediction_type == "epsilon":
            return output
        a = self.alpha(t, x_t)
        if self.prediction_type == "v_prediction":
            return a.sqrt() * output + (1 - a).sqrt() * x_t
        if self.prediction_type == "sample":
            return (x_t - a.sqrt() * output) / (1 - a).sqrt()
        raise ValueError(f"unsupported prediction_type {self.prediction_type!r}")

    def timestep_from_fraction(self, fraction: float | torch.Tensor) -> torch.Tensor:
        """Integer timestep for a fraction of T (0 -> 0, 1 -> T-1)."""
        frac = torch.as_tensor(fraction, dtype=torch.float64)
        return (frac * (self.num_train_timesteps - 1)).round().long().clamp(0, self.num_train_timesteps - 1)
