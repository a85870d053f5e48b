"""The distiller interface shared by SDS, ASD, SDI, Consistent3D-style, DSD and sampling-based SD.

A distiller turns a batch of renders x_π (in the prior's model space) into the score-distillation
gradient ∂L/∂x_π for one optimisation step. Rows of the batch belong to hypotheses; each hypothesis
has its own ε* and its own random streams (:class:`DistillState`). ``grad`` reports the network
cost it spent, counted by the prior.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch

from recon import seeding
from recon.diffusion.ddim import DDIMGrid
from recon.diffusion.timesteps import TimestepConfig, TimestepSchedule
from recon.diffusion.trajectory import TrajectoryCache
from recon.priors.base import Condition, Prior

Method = Literal["sds", "asd", "sdi", "consistent3d", "dsd", "dsd-commit", "sampling"]


@dataclass
class DistillConfig:
    """One config for every distiller; each method reads the fields it needs.

    Attributes:
        method: which distiller.
        guidance_scale: CFG scale s of the main term (None: the prior's default).
        weighting: w(t): ``1-alpha`` (threestudio), ``sigma`` (σ(t), the paper's Eq. 7/10 — the
            choice under which DSD reproduces DDIM) or ``one``.
        timesteps: how t is chosen per step.
        delta_ratio: ASD/DSD: t₊ = t + u · delta_ratio · (t − t_min).
        delta_random: u ~ U(0, 1) when true, u = 1 (the paper) when false.
        delta_steps: if set, t₊ = t + delta_steps instead (Algorithm 2's δ = T / N_ddim).
        plus_guidance_scale: CFG scale of the t₊ term (ASD, DSD); 1 = conditional branch only (with
            Perp-Neg: the conditional branch plus the Perp-Neg correction, as the DSD authors' code).
        ode_steps: DSD/sampling: DDIM steps of the trajectory grid.
        ode_spacing: grid layout (None: the prior scheduler's ``timestep_spacing``).
        ode_guidance_scale: CFG along the ODE (None: the prior's default).
        ode_target: DSD/sampling: where ε_ode is read — ``grid``: at the grid point at or above t₊
            (cached, no extra evaluation); ``t_plus``: the ODE integrated to t₊ itself (Algorithm 3;
            one more network row per guidance row and step).
        camera_bin: trajectory-cache key resolution for continuous cameras (0 = exact).
        seed_noise: how the K seed noises ε* of a run are drawn: ``independent`` (each from its own stream)
            or ``antithetic`` (hypothesis 2j + 1 takes −ε*₂ⱼ: each ε* is still N(0, I), but the pair sits on
            opposite sides of every direction, so their ODEs rarely end on one answer). The hypotheses never
            see each other: hypothesis k's ε* is a function of (seed, k) alone.
        cache: reuse trajectory levels across steps (False = the authors' recompute-every-step).
        sdi_inversion_steps, sdi_inversion_guidance: SDI's DDIM inversion.
        commit_fraction, commit_pin_views, commit_target, commit_follow, anchor, commit_inversion_steps,
            commit_inversion_guidance: ``dsd-commit`` (:mod:`recon.distill.committed`): the share of
            a stage's steps whose guidance views are pinned (``commit_pin_views``) to the anchor
            (elevation°, azimuth°) and follow its ODE — ``commit_target`` ``two_point``: DSD's gradient at
            the ODE's current point; ``endpoint``: toward the ODE's end, the anchor view's sample; what guides
            every view after that (``sds``: SDS's
            score on the committed render, the default; ``anchor``: DSD on the same one ODE; ``view``: DSD on
            the paper's per-view ODE from ε*; ``fresh``: DSD with new noise each step, as ASD; ``inversion``:
            DSD on the DDIM inversion of the view's own render, with the two inversion settings).
            ``commit_every`` n > 1 interleaves: within the commit phase only every n-th step is a commit step
            (pinned and committed); the others follow. ``commit_interleave_from``: the share of the stage's
            steps before which every step commits even with n > 1 (a plain commit first, then the interleave).
    """

    method: Method = "dsd"
    guidance_scale: float | None = None
    weighting: Literal["1-alpha", "sigma", "one"] = "1-alpha"
    timesteps: TimestepConfig = field(default_factory=TimestepConfig)
    delta_ratio: float = 0.1
    delta_random: bool = True
    delta_steps: int | None = None
    plus_guidance_scale: float = 1.0
    ode_steps: int = 10
    ode_spacing: str | None = None
    ode_guidance_scale: float | None = None
    ode_target: Literal["grid", "t_plus"] = "grid"
    camera_bin: float = 0.0
    seed_noise: Literal["independent", "antithetic"] = "independent"
    cache: bool = True
    sdi_inversion_steps: int = 10
    sdi_inversion_guidance: float = -7.5
    commit_fraction: float = 0.3
    commit_pin_views: bool = True
    commit_every: int = 1
    commit_interleave_from: float = 0.0
    commit_target: Literal["two_point", "endpoint"] = "two_point"
    commit_follow: Literal["sds", "anchor", "view", "fresh", "inversion"] = "sds"
    anchor: tuple[float, float] = (30.0, 135.0)
    commit_inversion_steps: int = 4
    commit_inversion_guidance: float = 1.0


@dataclass(frozen=True)
class Hypothesis:
    """Identity of one hypothesis: run seed and index k. ε*_k and its noise streams derive from it."""

    seed: int
    index: int

    @property
    def key(self) -> Hashable:
        return (self.seed, self.index)


@dataclass
class DistillState:
    """Per-hypothesis state carried across steps, shared by all rows of that hypothesis.

    Attributes:
        hypotheses: the K hypotheses.
        eps_star: (K, G, *sample_shape) ODE start of each hypothesis: one latent per view of a
            group of G = ``prior.views_per_sample`` jointly denoised views (G = 1 for most priors).
        noise: K generators for per-step noise (SDS, ASD) — separate from ε*'s stream.
        times: K generators for timestep and δ draws.
        cache: trajectory cache (DSD, sampling) or None.
        rows: (B,) hypothesis index of each batch row; default one row per hypothesis.
    """

    hypotheses: tuple[Hypothesis, ...]
    eps_star: torch.Tensor
    noise: list[torch.Generator]
    times: list[torch.Generator]
    cache: TrajectoryCache | None = None
    rows: torch.Tensor | None = None

    def row_index(self, batch: int) -> torch.Tensor:
        rows = torch.arange(len(self.hypotheses)) if self.rows is None else self.rows
        if rows.numel() != batch:
            raise ValueError(
                f"state maps {rows.numel()} rows but the batch has {batch}; use state.for_rows(...)"
            )
        return rows

    def row_eps_star(self, rows: torch.Tensor) -> torch.Tensor:
        """(B, *sample_shape): ε* of each batch row — row i takes view i mod G of its hypothesis's ε*."""
        group = self.eps_star.shape[1]
        slot = torch.arange(rows.numel()) % group
        return self.eps_star[rows.to(self.eps_star.device), slot.to(self.eps_star.device)]

    def for_rows(self, rows: Sequence[int] | torch.Tensor) -> DistillState:
        """The same state (shared ε*, generators and cache) seen by a batch whose row i belongs to
        hypothesis ``rows[i]`` — e.g. ``[0, 0, 1, 1]`` for two views of each of two hypotheses."""
        return DistillState(self.hypotheses, self.eps_star, self.noise, self.times, self.cache,
                            torch.as_tensor(rows, dtype=torch.long))


@dataclass
class GradResult:
    """One step's output. grad: (B, *sample_shape) ∂L/∂x_π (before the 1/B of :func:`sd_loss`);
    t, t_plus: (B,) timesteps used; calls/evals: network calls and rows spent this step."""

    grad: torch.Tensor
    t: torch.Tensor
    t_plus: torch.Tensor | None
    calls: int
    evals: int


def sd_loss(x_pi: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """½‖x_π − sg(x_π − grad)‖² / B, whose gradient w.r.t. x_π is grad / B."""
    target = (x_pi - grad).detach()
    return 0.5 * (x_pi - target).pow(2).sum() / x_pi.shape[0]


class Distiller(ABC):
    """Base class: timestep schedule, weighting, per-hypothesis state and cost accounting."""

    uses_trajectory = False

    def __init__(self, prior: Prior, config: DistillConfig) -> None:
        self.prior = prior
        self.config = config
        self.grid = DDIMGrid.make(prior.schedule, config.ode_steps, config.ode_spacing)
        self.timesteps = TimestepSchedule(config.timesteps, prior.schedule, self.grid)

    @property
    def name(self) -> str:
        return self.config.method

    @property
    def guidance_scale(self) -> float:
        s = self.config.guidance_scale
        return self.prior.default_guidance_scale if s is None else s

    def init_state(self, hypotheses: Sequence[Hypothesis]) -> DistillState:
        """ε* and random streams for each hypothesis; a trajectory cache if the method needs one."""
        hyps = tuple(hypotheses)
        shape = (self.prior.views_per_sample, *self.prior.sample_shape)
        eps = torch.stack([self.seed_noise(h, shape) for h in hyps])
        cache = None
        if self.uses_trajectory:
            cache = TrajectoryCache(self.prior, self.grid, self.config.ode_guidance_scale,
                                    self.config.camera_bin, self.config.cache, group=self.prior.views_per_sample)
        return DistillState(
            hypotheses=hyps,
            eps_star=eps,
            noise=[seeding.generator(h.seed, h.index, seeding.NOISE) for h in hyps],
            times=[seeding.generator(h.seed, h.index, seeding.TIMESTEPS) for h in hyps],
            cache=cache,
        )

    def seed_noise(self, h: Hypothesis, shape: tuple[int, ...]) -> torch.Tensor:
        """ε* of hypothesis ``h`` (``shape``), per ``seed_noise``: its own draw, or with ``antithetic``
        the negated draw of its even partner (index − 1) when its index is odd."""
        index, sign = h.index, 1.0
        if self.config.seed_noise == "antithetic" and index % 2 == 1:
            index, sign = index - 1, -1.0
        return sign * seeding.eps_star(h.seed, index, shape, self.prior.dtype, self.prior.device)

    def weight(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """w(t), shaped to broadcast against ``like``; zero past t = 0 (t < 0)."""
        schedule = self.prior.schedule
        kind = self.config.weighting
        if kind == "one":
            w = torch.ones_like(schedule.alpha(t, like))
        elif kind == "sigma":
            w = schedule.sigma(t, like)
        else:
            w = 1 - schedule.alpha(t, like)
        valid = (t >= 0).to(like.device).view(-1, *([1] * (like.ndim - 1)))
        return torch.where(valid, w, torch.zeros_like(w))

    def draw_noise(self, state: DistillState, rows: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Fresh N(0, I) per row from that row's hypothesis noise stream; (B, *shape) like ``like``."""
        shape = like.shape[1:]
        out = [torch.randn(shape, generator=state.noise[int(r)], dtype=torch.float64) for r in rows]
        return torch.stack(out).to(device=like.device, dtype=like.dtype)

    def row_generators(self, state: DistillState, rows: torch.Tensor) -> list[torch.Generator]:
        return [state.times[int(r)] for r in rows]

    def sample_t(self, step: int, state: DistillState, rows: torch.Tensor,
                 plus: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(t, t₊ or None) per row. Rows of one jointly denoised group (``prior.views_per_sample``)
        share the group leader's draws, as a multi-view model is trained with one t per sample."""
        group = self.prior.views_per_sample
        gens = self.row_generators(state, rows[::group])
        t = self.timesteps.sample(step, gens)
        t_plus = self.t_plus(step, t, gens).repeat_interleave(group) if plus else None
        return t.repeat_interleave(group), t_plus

    def t_plus(self, step: int, t: torch.Tensor, gens: Sequence[torch.Generator]) -> torch.Tensor:
        """t₊ = t + u · ratio · (t − t_min) (or t + delta_steps), clamped to [t + 1, T − 1]."""
        c = self.config
        top = self.prior.schedule.num_train_timesteps - 1
        if c.timesteps.kind == "grid":
            return torch.full_like(t, self.timesteps.grid_start(step))
        if c.delta_steps is not None:
            tp = t + c.delta_steps
        else:
            t_min = self.timesteps.t_min_at(step)
            if c.delta_random:
                u = torch.stack([torch.rand((), generator=g, dtype=torch.float64) for g in gens])
            else:
                u = torch.ones(t.shape, dtype=torch.float64)
            tp = t + (u * c.delta_ratio * (t - t_min).clamp(min=0).to(torch.float64)).round().long()
        return torch.minimum(torch.maximum(tp, t + 1), torch.full_like(t, top))

    @torch.no_grad()
    def grad(self, x_pi: torch.Tensor, step: int, cond: Condition, state: DistillState) -> GradResult:
        """∂L/∂x_π for renders ``x_pi`` (B, *sample_shape) at optimisation step ``step``."""
        calls0, evals0 = self.prior.counter.snapshot()
        rows = state.row_index(x_pi.shape[0])
        grad, t, t_plus = self._grad(x_pi.detach(), step, cond, state, rows)
        calls1, evals1 = self.prior.counter.snapshot()
        return GradResult(grad, t, t_plus, calls1 - calls0, evals1 - evals0)

    @abstractmethod
    def _grad(
        self, x: torch.Tensor, step: int, cond: Condition, state: DistillState, rows: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Return (grad (B, ...), t (B,), t₊ (B,) or None)."""
