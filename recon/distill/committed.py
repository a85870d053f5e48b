"""Committed DSD (``dsd-commit``): one ODE per hypothesis, followed by every view.

The paper's DSD starts every view's ODE at the hypothesis's ε* and assumes that one ε* gives one object
in all views (its appendix, Fig. 9). Measured on the exact toy-world prior it does not: from one ε* the
per-view ODEs pick different family members at different cameras (``benchmarks/cross_view_agreement.py``:
2 of 160 family–seed pairs pick one member in every view), and the 3D field averages what the views picked —
the torn, half-transparent drum backs of ``docs/toy-world-benchmark.md``. This distiller keeps DSD's
gradient and ε*, and changes which ODE a view follows:

1. **Commit** (the first ``commit_fraction`` of stage 1's steps): the stage pins every guidance view to
   one anchor camera (:meth:`anchor_camera`; by default elevation 30°, azimuth 135°, a back
   three-quarter view that shows both the hidden back and its profile), so hypothesis k follows the one
   ODE from ε*_k at that view — DSD exactly as in 2D, where it provably tracks the ODE (Appendix A).
   The field fits the input at the front and that ODE's sample at the back: one answer per seed.
2. **Follow** (the rest of stage 1, and stage 2): cameras are random again, and every view takes its
   noise from the same anchor ODE (``commit_follow: anchor``; trajectories keyed by hypothesis alone).
   At the anchor that is DSD; elsewhere the noise carries no view-specific choice, so the two-point
   difference sharpens what the field already shows there instead of choosing a member afresh.

The other ``commit_follow`` settings are the variants measured against it (``docs/diversity.md``):
``view`` (the paper's per-view ODEs after the commit), ``fresh`` (new noise per step, as ASD) and
``inversion`` (the ODE through the view's own render, by DDIM inversion). The gradient is DSD's
w(t)[ε̂(x̂(t), t; s) − ε̂(x̂(t₊), t₊; s₊)], x̂(τ) = √ᾱ_τ x_π + √(1 − ᾱ_τ) ε_ode, in every phase.
"""

from __future__ import annotations

import torch

from recon.diffusion.ddim import ddim_invert
from recon.distill.base import DistillState
from recon.distill.dsd import DSD
from recon.distill.two_point import two_point_difference
from recon.priors.base import Condition


class CommittedDSD(DSD):
    @property
    def commit_steps(self) -> int:
        """Steps of the commit phase: ``commit_fraction`` of the stage's steps."""
        return round(self.config.commit_fraction * self.config.timesteps.total_steps)

    def anchor_camera(self, step: int) -> tuple[float, float] | None:
        """(elevation°, azimuth°) every guidance view must use at ``step``; None = the stage's own cameras."""
        if step < self.commit_steps and self.config.commit_pin_views:
            elevation, azimuth = self.config.anchor
            return float(elevation), float(azimuth)
        return None

    def anchor_condition(self, cond: Condition) -> Condition:
        """``cond`` with every row's camera moved to the anchor (one ODE per hypothesis)."""
        if cond.cameras is None or cond.rebuild is None:
            return cond  # not camera-conditioned: every view already shares one ODE
        cams = cond.cameras.detach().clone()
        cams[:, 0], cams[:, 1] = self.config.anchor
        return cond.rebuild(cams)

    def inverted_noise(self, x: torch.Tensor, t_plus: torch.Tensor, cond: Condition) -> torch.Tensor:
        """(B, ...) ε that puts x̂(t₊) on the ODE through the render x itself (DDIM inversion 0 → t₊)."""
        x_tp = ddim_invert(self.prior, x, cond, t_plus, self.config.commit_inversion_steps,
                           self.config.commit_inversion_guidance)
        a = self.prior.schedule.alpha(t_plus, x)
        return (x_tp - a.sqrt() * x) / (1 - a).sqrt()

    def _grad(self, x: torch.Tensor, step: int, cond: Condition, state: DistillState, rows: torch.Tensor):
        t, t_plus = self.sample_t(step, state, rows)
        source = "anchor" if step < self.commit_steps else self.config.commit_follow
        if source == "anchor":
            noise = self.ode_noise(t_plus, self.anchor_condition(cond), state, rows).to(x)
        elif source == "view":
            noise = self.ode_noise(t_plus, cond, state, rows).to(x)
        elif source == "fresh":
            noise = self.draw_noise(state, rows, x)
        else:
            live = (t >= 0).nonzero().flatten()
            noise = torch.zeros_like(x)
            if live.numel():
                noise[live] = self.inverted_noise(x[live], t_plus[live], cond.select(live.cpu())).to(x)
        diff = two_point_difference(self.prior, x, noise, t, t_plus, cond, self.guidance_scale,
                                    self.config.plus_guidance_scale)
        return self.weight(t, x) * diff, t, t_plus
