"""Committed DSD (``dsd-commit``): each hypothesis committed by one ODE from its ε*, then refined in every view.

The paper's DSD starts every view's ODE at the hypothesis's ε* and assumes that one ε* gives one object
in all views (its appendix, Fig. 9). Measured on the exact toy-world prior it does not: from one ε* the
per-view ODEs pick different family members at different cameras (``benchmarks/cross_view_agreement.py``:
2 of 160 family–seed pairs pick one member in every view), and the 3D field averages what the views picked —
the torn, half-transparent drum backs of ``docs/toy-world-benchmark.md``. This distiller keeps DSD's
gradient and ε* for the decision, and changes what the views follow:

1. **Commit** (the first ``commit_fraction`` of stage 1's steps, 30 % by default): the stage pins every
   guidance view to one anchor camera (:meth:`anchor_camera`; by default elevation 30°, azimuth 135°, a
   back three-quarter view that shows both the hidden back and its profile), so hypothesis k follows the one
   ODE from ε*_k at that view, and no view pulls it elsewhere. ``commit_target: two_point`` (the default) is
   DSD's gradient at the ODE's current point, as in 2D, where it provably tracks the ODE (Appendix A);
   ``endpoint`` pulls the anchor render toward that ODE's end — the anchor view's sample for ε*_k, computed
   once per hypothesis — with DSD's own weighting: the gradient DSD would give if the prior denoised every
   noised render to that sample (:meth:`endpoint_grad`); no network rows per step.
2. **Follow** (the rest of stage 1, and stage 2): cameras are random again and every view is guided by
   SDS's score w(t)[ε̂(x_t, t; s) − ε] on the field's own render (``commit_follow: sds``). The commit has
   already moved each hypothesis toward its own answer; SDS's mode seeking then pulls every view toward
   the nearest mode of what the field shows, which is that answer, and carves it as sharply as SDS does.

The two commit targets, measured on the toy-world bench (``docs/diversity.md``): with ``two_point`` the commit
ends at t ≈ 0.65 T, before the anchor ODE has decided, and the follow phase settles the answer together with the
per-step random streams (large noise floors, many hypotheses unassigned), but the answers spread over more
members than SDS's. With ``endpoint`` the answer is the anchor ODE's sample — a function of ε*_k alone
(``benchmarks/commit_targets.py`` predicts each hypothesis's member before any 3D work) — so the floors fall,
but a run reaches only the members the ODE reaches, which on the toy-world prior are few, and fidelity drops.
``seed_noise: antithetic`` (:class:`~recon.distill.base.DistillConfig`) pairs the K seed noises of a run as ±ε*, so
their ODEs spread over more members; with the endpoint target it is the CPU recipe's default (docs/diversity.md).

The other ``commit_follow`` settings are the variants measured against it, all with DSD's gradient
w(t)[ε̂(x̂(t), t; s) − ε̂(x̂(t₊), t₊; s₊)], x̂(τ) = √ᾱ_τ x_π + √(1 − ᾱ_τ) ε_ode: ``anchor`` (every view on the
anchor's one ODE; trajectories keyed by hypothesis alone), ``view`` (the paper's per-view ODEs after the
commit), ``fresh`` (new noise per step, as ASD) and ``inversion`` (the ODE through the view's own render, by
DDIM inversion).
"""

from __future__ import annotations

import torch

from recon.diffusion.ddim import ddim_invert
from recon.distill.base import DistillState
from recon.distill.dsd import DSD
from recon.distill.sds import sds_score
from recon.distill.two_point import two_point_difference
from recon.priors.base import Condition


class CommittedDSD(DSD):
    @property
    def commit_steps(self) -> int:
        """Steps of the commit phase: ``commit_fraction`` of the stage's steps."""
        return round(self.config.commit_fraction * self.config.timesteps.total_steps)

    @property
    def plain_commit_steps(self) -> int:
        """Steps at the start during which every step commits, whatever ``commit_every``."""
        return round(self.config.commit_interleave_from * self.config.timesteps.total_steps)

    def committing(self, step: int) -> bool:
        """Is ``step`` a commit step: inside the commit phase and, with ``commit_every`` n > 1, every n-th step
        of it (the steps between follow, so the views the anchor does not show keep being shaped) — except before
        ``commit_interleave_from`` of the stage's steps, where every step commits."""
        return step < self.commit_steps and (step < self.plain_commit_steps or step % self.config.commit_every == 0)

    def anchor_camera(self, step: int) -> tuple[float, float] | None:
        """(elevation°, azimuth°) every guidance view must use at ``step``; None = the stage's own cameras."""
        if self.committing(step) and self.config.commit_pin_views:
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

    def anchor_endpoint(self, cond: Condition, state: DistillState, rows: torch.Tensor) -> torch.Tensor:
        """(B, ...) the end of each row's anchor ODE from its ε*: the anchor view's sample for that hypothesis
        (cached with the trajectory; the whole ODE is paid once per hypothesis, not per step)."""
        assert state.cache is not None
        keys = [state.hypotheses[int(r)].key for r in rows]
        last = [len(self.grid) - 1] * len(rows)
        return state.cache.x0_at(last, state.row_eps_star(rows), keys, self.anchor_condition(cond))

    def endpoint_grad(self, x: torch.Tensor, t: torch.Tensor, x_end: torch.Tensor) -> torch.Tensor:
        """(B, ...) w(t) √(ᾱ_t / (1 − ᾱ_t)) (x − x_end): DSD's gradient w(t)[ε̂(x̂(t), t) − ε_ode] if the
        prior denoised x̂(t) = √ᾱ_t x + √(1 − ᾱ_t) ε_ode to the ODE's end x_end — ε̂ is then ε_ode +
        √(ᾱ_t / (1 − ᾱ_t)) (x − x_end). Same w(t) and t schedule as the two-point form, no network rows."""
        a = self.prior.schedule.alpha(t.clamp(min=0), x)
        return self.weight(t, x) * (a / (1 - a)).sqrt() * (x - x_end)

    def _grad(self, x: torch.Tensor, step: int, cond: Condition, state: DistillState, rows: torch.Tensor):
        t, t_plus = self.sample_t(step, state, rows)
        committing = self.committing(step)
        if committing and self.config.commit_target == "endpoint":
            return self.endpoint_grad(x, t, self.anchor_endpoint(cond, state, rows).to(x)), t, t_plus
        source = "anchor" if committing else self.config.commit_follow
        if source == "anchor":
            noise = self.ode_noise(t_plus, self.anchor_condition(cond), state, rows).to(x)
        elif source == "view":
            noise = self.ode_noise(t_plus, cond, state, rows).to(x)
        elif source == "fresh":
            noise = self.draw_noise(state, rows, x)
        elif source == "sds":
            # Refine what the commit chose with SDS's mode-seeking score: the nearest mode of a committed
            # render is the committed answer, and SDS's single-point gradient carves it sharper.
            eps = self.draw_noise(state, rows, x)
            return self.weight(t, x) * sds_score(self.prior, x, eps, t, cond, self.guidance_scale), t, t_plus
        else:
            live = (t >= 0).nonzero().flatten()
            noise = torch.zeros_like(x)
            if live.numel():
                noise[live] = self.inverted_noise(x[live], t_plus[live], cond.select(live.cpu())).to(x)
        diff = two_point_difference(self.prior, x, noise, t, t_plus, cond, self.guidance_scale,
                                    self.config.plus_guidance_scale)
        return self.weight(t, x) * diff, t, t_plus
