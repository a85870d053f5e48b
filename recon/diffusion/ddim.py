"""DDIM: the timestep grid, one deterministic step, inversion, and a reference sampler.

Conventions follow diffusers' ``DDIMScheduler`` (eta = 0) so that it can serve as the oracle:
grids are laid out by ``timestep_spacing``, each step goes from t to ``t − T // N`` and the step
past t = 0 uses ``final_alpha_cumprod``.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from recon.diffusion.schedule import NoiseSchedule

if TYPE_CHECKING:  # priors import the schedule from this package
    from recon.priors.base import Condition, Prior


@dataclass(frozen=True)
class DDIMGrid:
    """A descending grid of N timesteps and, for each, the timestep its DDIM step lands on.

    ``timesteps[0]`` is where sampling starts from pure noise (x = ε*); ``prev[i]`` < 0 means the
    step past t = 0 (ᾱ = ``final_alpha_cumprod``).
    """

    timesteps: tuple[int, ...]
    prev: tuple[int, ...]

    @classmethod
    def make(cls, schedule: NoiseSchedule, num_steps: int, spacing: str | None = None) -> DDIMGrid:
        total = schedule.num_train_timesteps
        if not 1 <= num_steps <= total:
            raise ValueError(f"DDIM steps must be in 1..{total}, got {num_steps}")
        spacing = spacing or schedule.timestep_spacing
        if spacing == "linspace":
            ts = np.linspace(0, total - 1, num_steps).round()[::-1].astype(np.int64)
        elif spacing == "leading":
            ts = (np.arange(0, num_steps) * (total // num_steps)).round()[::-1].astype(np.int64)
            ts = ts + schedule.steps_offset
        elif spacing == "trailing":
            ts = np.round(np.arange(total, 0, -total / num_steps)).astype(np.int64) - 1
        else:
            raise ValueError(f"unknown timestep_spacing {spacing!r} (leading, trailing, linspace)")
        step = total // num_steps
        return cls(tuple(int(t) for t in ts), tuple(int(t) - step for t in ts))

    def __len__(self) -> int:
        return len(self.timesteps)

    def level_at_or_above(self, t: int) -> int:
        """Index of the grid point with the smallest timestep ≥ t (level 0 if t is above the grid)."""
        ascending = self.timesteps[::-1]
        pos = bisect.bisect_left(ascending, t)
        if pos >= len(ascending):
            return 0
        return len(ascending) - 1 - pos


def ddim_step(
    schedule: NoiseSchedule, x_t: torch.Tensor, eps: torch.Tensor, t: int | torch.Tensor, t_prev: int | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic DDIM step t -> t_prev (Eq. 1). Returns (x_{t_prev}, x0 prediction at t)."""
    x0 = schedule.predict_x0(x_t, eps, t)
    a_prev = schedule.alpha(t_prev, x_t)
    return a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps, x0


def ddim_invert(
    prior: Prior,
    x0: torch.Tensor,
    cond: Condition,
    t_target: torch.Tensor,
    num_steps: int,
    guidance_scale: float,
) -> torch.Tensor:
    """Deterministic DDIM inversion of clean samples x0 up to per-row timesteps ``t_target``.

    Each row goes 0 -> t_target[i] in ``num_steps`` equal steps; the steps of all rows are batched
    into one network call per step. x0: (B, ...), t_target: (B,) long. Returns x_{t_target}.
    """
    schedule = prior.schedule
    t_target = t_target.to(torch.long).cpu()
    fracs = torch.linspace(0, 1, num_steps + 1, dtype=torch.float64)
    # Row i visits round(frac * t_target[i]); as in DDIM inversion, x0 itself stands for x at t = 0.
    marks = (fracs.unsqueeze(0) * t_target.unsqueeze(1).to(torch.float64)).round().long()  # (B, n+1)
    x = x0
    for k in range(num_steps):
        t_from, t_to = marks[:, k], marks[:, k + 1]
        eps = prior.predict_noise(x, t_from.to(x0.device), cond, guidance_scale)
        x0_pred = schedule.predict_x0(x, eps, t_from)
        a_to = schedule.alpha(t_to, x0)
        x = a_to.sqrt() * x0_pred + (1 - a_to).sqrt() * eps
    return x


@torch.no_grad()
def ddim_sample(
    prior: Prior,
    eps_star: torch.Tensor,
    cond: Condition,
    grid: DDIMGrid,
    guidance_scale: float | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Reference DDIM sampler from x(T) = ε*. Returns (final sample, x0 prediction at each step)."""
    x = eps_star
    x0s = []
    for t, t_prev in zip(grid.timesteps, grid.prev):
        eps = prior.predict_noise(x, t, cond, guidance_scale)
        x, x0 = ddim_step(prior.schedule, x, eps, t, t_prev)
        x0s.append(x0)
    return x, x0s
