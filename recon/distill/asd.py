"""Asynchronous Score Distillation (ScaleDreamer).

One fresh noise ε for both terms; t₊ = t + 0.1 (t − t_min); no CFG on the t₊ term:
grad = w(t) [ε̂(√ᾱ_t x_π + √(1−ᾱ_t) ε, t; s) − ε̂(√ᾱ_t₊ x_π + √(1−ᾱ_t₊) ε, t₊; 1)].
"""

from __future__ import annotations

import torch

from recon.distill.base import Distiller, DistillState
from recon.distill.two_point import two_point_difference
from recon.priors.base import Condition


class ASD(Distiller):
    def _grad(self, x: torch.Tensor, step: int, cond: Condition, state: DistillState, rows: torch.Tensor):
        t, t_plus = self.sample_t(step, state, rows)
        eps = self.draw_noise(state, rows, x)
        diff = two_point_difference(self.prior, x, eps, t, t_plus, cond, self.guidance_scale,
                                    self.config.plus_guidance_scale)
        return self.weight(t, x) * diff, t, t_plus
