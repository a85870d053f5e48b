"""Consistent3D-style fixed-noise distillation.

SDS with the noise fixed per hypothesis to ε* instead of drawn afresh:
grad = w(t) [ε̂(√ᾱ_t x_π + √(1 − ᾱ_t) ε*, t; s) − ε*]. Consistent3D follows a consistency-model
ODE this way and needs a large CFG (50–100) to work; recon keeps the scale configurable.
"""

from __future__ import annotations

import torch

from recon.distill.base import Distiller, DistillState
from recon.priors.base import Condition


class Consistent3D(Distiller):
    def _grad(self, x: torch.Tensor, step: int, cond: Condition, state: DistillState, rows: torch.Tensor):
        t, _ = self.sample_t(step, state, rows, plus=False)
        eps = state.row_eps_star(rows).to(x)
        x_t = self.prior.schedule.add_noise(x, eps, t)
        eps_hat = self.prior.predict_noise(x_t, t.to(x.device), cond, self.guidance_scale)
        return self.weight(t, x) * (eps_hat - eps), t, None
