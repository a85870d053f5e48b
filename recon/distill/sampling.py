"""Sampling-based score distillation (the paper's Eq. 7–8), the render-independent form of DSD.

Both points lie on the ODE from ε*: x(t₊) = DDIM-Forward(ε*, T → t₊), ε(t₊) = ε̂(x(t₊), t₊),
x0(t₊) its one-step prediction, x(t) = √ᾱ_t x0(t₊) + √(1 − ᾱ_t) ε(t₊), and
grad = w(t) [ε̂(x(t), t; s) − ε(t₊)]. The gradient ignores x_π, so optimisation simply replays the
ODE's x0 trajectory — exact in 2D, but with no correction when a 3D representation drifts (which
is why DSD replaces x(t), x(t₊) by interpolations through x_π).

Points on the DDIM grid come from the trajectory cache; an off-grid t₊ costs one partial DDIM step
from the grid point above it plus one network row.
"""

from __future__ import annotations

import torch

from recon.diffusion.ddim import ddim_step
from recon.distill.base import Distiller, DistillState
from recon.priors.base import Condition


class SamplingSD(Distiller):
    uses_trajectory = True

    def _point(self, t_plus: torch.Tensor, cond: Condition, state: DistillState, rows: torch.Tensor):
        """(x(t₊), ε(t₊)) on each row's ODE."""
        assert state.cache is not None
        schedule = self.prior.schedule
        levels = [self.grid.level_at_or_above(int(tp)) for tp in t_plus]
        keys = [state.hypotheses[int(r)].key for r in rows]
        trajs = state.cache.ensure(levels, state.row_eps_star(rows), keys, cond)
        g = state.cache.group
        x_grid = torch.stack([tr.x[lvl][i % g] for i, (tr, lvl) in enumerate(zip(trajs, levels))])
        e_grid = torch.stack([tr.eps[lvl][i % g] for i, (tr, lvl) in enumerate(zip(trajs, levels))])
        t_grid = torch.tensor([self.grid.timesteps[lvl] for lvl in levels])
        on_grid = t_grid == t_plus
        if bool(on_grid.all()):
            return x_grid, e_grid
        x_tp, _ = ddim_step(schedule, x_grid, e_grid, t_grid, t_plus)
        off = (~on_grid).nonzero().flatten()
        e_tp = e_grid.clone()
        e_tp[off] = self.prior.predict_noise(x_tp[off], t_plus[off].to(x_tp.device), cond.select(off),
                                             state.cache.guidance_scale)
        x_tp = torch.where(on_grid.view(-1, *([1] * (x_grid.ndim - 1))).to(x_grid.device), x_grid, x_tp)
        return x_tp, e_tp

    def _grad(self, x: torch.Tensor, step: int, cond: Condition, state: DistillState, rows: torch.Tensor):
        schedule = self.prior.schedule
        t, t_plus = self.sample_t(step, state, rows)
        x_tp, e_tp = self._point(t_plus, cond, state, rows)
        x_tp, e_tp = x_tp.to(x), e_tp.to(x)
        grad = torch.zeros_like(x)
        live = (t >= 0).nonzero().flatten()
        if live.numel():
            x0_tp = schedule.predict_x0(x_tp[live], e_tp[live], t_plus[live])
            x_t = schedule.add_noise(x0_tp, e_tp[live], t[live])
            e_t = self.prior.predict_noise(x_t, t[live].to(x.device), cond.select(live.cpu()), self.guidance_scale)
            grad[live] = e_t - e_tp[live]
        return self.weight(t, x) * grad, t, t_plus
