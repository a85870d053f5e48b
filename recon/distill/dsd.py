"""Diverse Score Distillation (the paper's Eq. 9–10, Algorithms 1 and 3).

Each hypothesis follows the probability-flow ODE that starts at its own ε*. At step i with times
t < t₊, the noise is taken from that ODE: ε_ode = ε̂ on the DDIM trajectory from ε* at the grid
point at or above t₊ (cached; the trajectory never depends on the render), or — ``ode_target:
t_plus``, the paper's Algorithm 3 and the authors' code — at t₊ itself, integrated there by a partial
DDIM step from that grid point and one more network evaluation. Then

    x̂(τ) = √ᾱ_τ x_π + √(1 − ᾱ_τ) ε_ode           (τ ∈ {t, t₊})
    grad = w(t) [ε̂(x̂(t), t; s) − ε̂(x̂(t₊), t₊; s₊)]     (s₊ = 1: one network row)

ε̂(·; s₊) is the prior's own guidance at scale s₊: with Stable Diffusion's Perp-Neg it is
ε_u + s₊(e_pos + Σ_i w_i ⊥(e_i, e_pos)), so at s₊ = 1 the t₊ term keeps the Perp-Neg correction (and costs
the unconditional and negative rows), as the authors' ``compute_grad_dsd`` does with ``use_perp_neg``.

With the ``grid`` timestep schedule, ``sigma`` weighting, SGD at lr 1 and x_π initialised at the
one-step prediction at T, the iterates are exactly DDIM's x0 predictions (paper, Appendix A).
"""

from __future__ import annotations

import torch

from recon.distill.base import Distiller, DistillState
from recon.distill.two_point import two_point_difference
from recon.priors.base import Condition


class DSD(Distiller):
    uses_trajectory = True

    def ode_noise(self, t_plus: torch.Tensor, cond: Condition, state: DistillState, rows: torch.Tensor) -> torch.Tensor:
        """(B, ...) ε on each row's trajectory: at the grid point at or above its t₊ (``ode_target``
        ``grid``, cached), or at t₊ itself (``t_plus``: one more network row per step and row)."""
        assert state.cache is not None
        keys = [state.hypotheses[int(r)].key for r in rows]
        if self.config.ode_target == "t_plus":
            return state.cache.eps_at_time([int(tp) for tp in t_plus], state.row_eps_star(rows), keys, cond)
        levels = [self.grid.level_at_or_above(int(tp)) for tp in t_plus]
        return state.cache.eps_at(levels, state.row_eps_star(rows), keys, cond)

    def _grad(self, x: torch.Tensor, step: int, cond: Condition, state: DistillState, rows: torch.Tensor):
        t, t_plus = self.sample_t(step, state, rows)
        eps_ode = self.ode_noise(t_plus, cond, state, rows).to(x)
        diff = two_point_difference(self.prior, x, eps_ode, t, t_plus, cond, self.guidance_scale,
                                    self.config.plus_guidance_scale)
        return self.weight(t, x) * diff, t, t_plus
