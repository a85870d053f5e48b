"""Score Distillation Sampling (DreamFusion; the paper's Algorithm 4).

grad = w(t) [ε̂(x_t, t; s) − ε],  x_t = √ᾱ_t x_π + √(1 − ᾱ_t) ε,  ε ~ N(0, I) fresh every step.
"""

from __future__ import annotations

import torch

from recon.distill.base import Distiller, DistillState
from recon.priors.base import Condition, Prior


def sds_score(prior: Prior, x: torch.Tensor, eps: torch.Tensor, t: torch.Tensor, cond: Condition,
              scale: float) -> torch.Tensor:
    """(B, ...) ε̂(x_t, t; s) − ε with x_t = √ᾱ_t x + √(1 − ᾱ_t) ε: SDS's score before w(t)."""
    x_t = prior.schedule.add_noise(x, eps, t)
    return prior.predict_noise(x_t, t.to(x.device), cond, scale) - eps


class SDS(Distiller):
    def _grad(self, x: torch.Tensor, step: int, cond: Condition, state: DistillState, rows: torch.Tensor):
        t, _ = self.sample_t(step, state, rows, plus=False)
        eps = self.draw_noise(state, rows, x)
        return self.weight(t, x) * sds_score(self.prior, x, eps, t, cond, self.guidance_scale), t, None
