"""View-dependent prompting for text priors: which of front / side / back / overhead a camera sees,
and the Perp-Neg weights (Armandpour et al. 2023) for blending them.

Rules follow threestudio's prompt processor: every view starts as ``side``; ``front`` when the
azimuth (shifted to [-180, 180)) is within ±front_threshold of 0; ``back`` when it is within
back_threshold of ±180; ``overhead`` when the elevation exceeds overhead_threshold, which wins over
the others. Suffixes are appended: "a chair, front view".

Azimuth 0 is the front (the input view; camera on +Z in recon's world), elevation is degrees above
the horizontal plane — the camera convention of :mod:`recon.render.cameras`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

DIRECTIONS = ("side", "front", "back", "overhead")
SIDE, FRONT, BACK, OVERHEAD = range(4)


@dataclass
class ViewPromptConfig:
    """When and how a prompt gets a view suffix.

    Attributes:
        enabled: False keeps the prompt as given for every camera.
        front_threshold, back_threshold, overhead_threshold: degrees (threestudio's 45, 45, 60).
        suffixes: text appended for side, front, back, overhead.
    """

    enabled: bool = True
    front_threshold: float = 45.0
    back_threshold: float = 45.0
    overhead_threshold: float = 60.0
    suffixes: tuple[str, str, str, str] = (", side view", ", front view", ", back view", ", overhead view")

    def prompts(self, prompt: str) -> list[str]:
        """The four view prompts in :data:`DIRECTIONS` order."""
        return [prompt + suffix for suffix in self.suffixes]


@dataclass
class PerpNegConfig:
    """Perp-Neg's negative-weight curves ``a·exp(-b·r) + c`` (threestudio's defaults)."""

    enabled: bool = False
    f_sb: tuple[float, float, float] = (1.0, 0.5, -0.606)
    f_fsb: tuple[float, float, float] = (1.0, 0.5, 0.967)
    f_fs: tuple[float, float, float] = (4.0, 0.5, -2.426)
    f_sf: tuple[float, float, float] = (4.0, 0.5, -2.426)


def shift_azimuth(azimuth: torch.Tensor) -> torch.Tensor:
    """Degrees -> [-180, 180)."""
    return torch.remainder(azimuth + 180.0, 360.0) - 180.0


def view_direction(elevation: torch.Tensor, azimuth: torch.Tensor, cfg: ViewPromptConfig) -> torch.Tensor:
    """(B,) index into :data:`DIRECTIONS` for cameras at (elevation, azimuth) in degrees."""
    az = shift_azimuth(azimuth.to(torch.float64))
    direction = torch.full(az.shape, SIDE, dtype=torch.long)
    direction[(az > -cfg.front_threshold) & (az < cfg.front_threshold)] = FRONT
    direction[(az > 180 - cfg.back_threshold) | (az < -180 + cfg.back_threshold)] = BACK
    direction[elevation.to(torch.float64) > cfg.overhead_threshold] = OVERHEAD
    return direction


def _decay(abc: tuple[float, float, float], r: torch.Tensor) -> torch.Tensor:
    a, b, c = abc
    return a * torch.exp(-b * r) + c


@dataclass(frozen=True)
class PerpNegPlan:
    """Per row: positive embedding = Σ_j mix[:, j] · view_embedding[j]; two negatives (view indices,
    or -1 for "the unconditional embedding") with weights (already negative, as threestudio applies them)."""

    mix: torch.Tensor  # (B, 4) weights over DIRECTIONS
    negatives: torch.Tensor  # (B, 2) long, index into DIRECTIONS or -1
    weights: torch.Tensor  # (B, 2)


def perp_neg_plan(elevation: torch.Tensor, azimuth: torch.Tensor, view: ViewPromptConfig,
                  cfg: PerpNegConfig) -> PerpNegPlan:
    """Front/side (|az| < 90) or side/back interpolation of the positive prompt and its negatives."""
    direction = view_direction(elevation, azimuth, view)
    az = shift_azimuth(azimuth.to(torch.float64)).abs()
    n = az.shape[0]
    mix = torch.zeros(n, 4, dtype=torch.float64)
    negatives = torch.full((n, 2), -1, dtype=torch.long)
    weights = torch.zeros(n, 2, dtype=torch.float64)
    front_half = az < 90
    r_fs = 1 - az / 90  # 1 = fully front, 0 = fully side
    r_sb = 2 - az / 90  # 1 = fully side, 0 = fully back
    for i in range(n):
        if direction[i] == OVERHEAD:
            mix[i, OVERHEAD] = 1.0
        elif front_half[i]:
            r = r_fs[i]
            mix[i, FRONT], mix[i, SIDE] = r, 1 - r
            negatives[i] = torch.tensor([FRONT, SIDE])
            weights[i, 0] = -_decay(cfg.f_fs, r)
            weights[i, 1] = -_decay(cfg.f_sf, 1 - r)
        else:
            r = r_sb[i]
            mix[i, SIDE], mix[i, BACK] = r, 1 - r
            negatives[i] = torch.tensor([SIDE, FRONT])
            weights[i, 0] = -_decay(cfg.f_sb, r)
            weights[i, 1] = -_decay(cfg.f_fsb, r)
    return PerpNegPlan(mix, negatives, weights)


def perpendicular_component(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The part of each row of x orthogonal to the same row of y; (B, ...) both."""
    dims = tuple(range(1, x.ndim))
    coeff = (x * y).sum(dims, keepdim=True) / (y * y).sum(dims, keepdim=True).clamp_min(1e-6)
    return x - coeff * y
