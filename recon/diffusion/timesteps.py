"""Explicit timestep schedules: which diffusion time t each optimisation step uses.

All bounds are fractions of T (0 = clean, 1 = pure noise), as in threestudio's ``min_step_percent``
/ ``max_step_percent``. Random draws come from per-row generators so that each hypothesis has its
own stream and adding hypotheses never changes another's draws.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from recon.diffusion.ddim import DDIMGrid
from recon.diffusion.schedule import NoiseSchedule


@dataclass
class TimestepConfig:
    """How t is chosen per step.

    kind:
        ``uniform``: t ~ U[t_min, t_max] per row (SDS, ASD, SDI); the bounds move linearly to
            ``t_min_end`` / ``t_max_end`` over ``anneal_steps`` (threestudio's zero123 recipe).
        ``anneal``: t falls deterministically from t_max to t_min over ``total_steps``
            (``linear`` or ``sqrt`` in the step fraction), as DSD's Algorithms 1–3 do.
        ``grid``: step i uses the DDIM grid's i-th step (t = the step's target, t₊ = its start),
            the setting in which DSD reproduces DDIM exactly.
    """

    kind: Literal["uniform", "anneal", "grid"] = "uniform"
    t_min: float = 0.02
    t_max: float = 0.98
    t_min_end: float | None = None
    t_max_end: float | None = None
    anneal_steps: int = 0
    anneal: Literal["linear", "sqrt"] = "linear"
    total_steps: int = 600


class TimestepSchedule:
    """Integer timesteps per step and row, from a :class:`TimestepConfig`."""

    def __init__(self, config: TimestepConfig, schedule: NoiseSchedule, grid: DDIMGrid | None = None) -> None:
        if not 0 <= config.t_min <= config.t_max <= 1:
            raise ValueError(f"need 0 <= t_min <= t_max <= 1, got {config.t_min}, {config.t_max}")
        if config.kind == "grid" and grid is None:
            raise ValueError("a grid timestep schedule needs the DDIM grid")
        self.config = config
        self.schedule = schedule
        self.grid = grid

    @property
    def T(self) -> int:
        return self.schedule.num_train_timesteps

    def bounds(self, step: int) -> tuple[float, float]:
        """(t_min, t_max) fractions in force at ``step``."""
        c = self.config
        lo, hi = c.t_min, c.t_max
        if c.kind == "uniform" and c.anneal_steps > 0:
            f = min(step / c.anneal_steps, 1.0)
            if c.t_min_end is not None:
                lo = lo + (c.t_min_end - lo) * f
            if c.t_max_end is not None:
                hi = hi + (c.t_max_end - hi) * f
        return lo, hi

    def t_min_at(self, step: int) -> int:
        """Smallest integer timestep the schedule can use at ``step`` (ASD/DSD's δ rule uses it)."""
        if self.config.kind == "grid":
            return 0
        return int(self.schedule.timestep_from_fraction(self.bounds(step)[0]))

    def sample(self, step: int, generators: Sequence[torch.Generator]) -> torch.Tensor:
        """(B,) long timesteps for one step; one generator per row."""
        c = self.config
        rows = len(generators)
        if c.kind == "grid":
            assert self.grid is not None
            i = min(step, len(self.grid) - 1)
            return torch.full((rows,), self.grid.prev[i], dtype=torch.long)
        if c.kind == "anneal":
            f = min(max(step / max(c.total_steps - 1, 1), 0.0), 1.0)
            if c.anneal == "sqrt":
                f = math.sqrt(f)
            frac = c.t_max - (c.t_max - c.t_min) * f
            return self.schedule.timestep_from_fraction(frac).expand(rows).clone()
        lo, hi = self.bounds(step)
        t_lo = int(self.schedule.timestep_from_fraction(lo))
        t_hi = int(self.schedule.timestep_from_fraction(hi))
        return torch.stack([torch.randint(t_lo, t_hi + 1, (), generator=g) for g in generators])

    def grid_start(self, step: int) -> int:
        """In ``grid`` mode, the grid timestep the step starts from (the paper's t + δ)."""
        assert self.grid is not None
        return self.grid.timesteps[min(step, len(self.grid) - 1)]
