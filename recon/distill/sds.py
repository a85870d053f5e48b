"""Score Distillation Sampling (DreamFusion; the paper's Algorithm 4).

grad = w(t) [ε̂(x_t, t; s) − ε],  x_t = √ᾱ_t x_π + √(1 − ᾱ_t) ε,  ε ~ N(0, I) fresh every step.
"""

from __future__ import annotations

import torch

from recon.distill.base import Distiller, DistillState
from recon.priors.base import Condition


class SDS(Distiller):
    def _grad(self, x: torch.Tensor, step: int, cond: Condition, state: DistillState, rows: torch.Tensor):
        t, _ = self.sample_t(step, state, rows, plus=False)
        eps = self.draw_noise(state, rows, x)
        x_t = self.prior.schedule.add_noise(x, eps, t)
        eps_hat = self.prior.predict_noise(x_t, t.to(x.device), cond, self.guidance_scale)
        return self.weight(t, x) * (eps_hat - eps), t, None
