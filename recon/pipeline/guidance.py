"""Score-distillation guidance for the 3D stages: renders in, a loss out, one network call per step.

The stages hand over a hypothesis-major batch of renders (row k·V + v = view v of hypothesis k) and
their cameras. :class:`DistillGuidance` encodes them into the prior's model space (with gradients),
builds the condition at those cameras, asks the distiller for ∂L/∂x for all K·V rows at once (so K
hypotheses × V views × CFG branches are one batched network call, plus any trajectory levels) and
returns ``sd_loss`` — whose gradient w.r.t. the render is the distillation gradient / (K·V).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from recon.distill.base import Distiller, DistillState, Hypothesis, sd_loss
from recon.priors.base import Condition, Prior
from recon.render.cameras import Cameras

ConditionFn = Callable[[torch.Tensor], Condition]
"""cameras (N, 3) absolute (elevation°, azimuth°, distance) -> a condition with N rows."""


def camera_table(cameras: Cameras) -> torch.Tensor:
    """(B, 3) float32 (elevation°, azimuth°, distance) of a camera batch."""
    return torch.stack([cameras.elevation, cameras.azimuth, cameras.distance], dim=1).to(torch.float32)


@dataclass
class GuidanceStats:
    calls: int = 0
    evals: int = 0
    steps: int = 0


class DistillGuidance:
    """A stage's guidance term: ``guidance(rgb (K·V, 3, H, W), cameras, step) -> scalar loss``.

    Args:
        prior: the diffusion prior.
        distiller: the distiller (its timestep schedule runs over this stage's steps).
        hypotheses: the K hypotheses, in the stages' slot order.
        condition: builds the condition for a batch of cameras (image- or text-conditioned).
    """

    def __init__(self, prior: Prior, distiller: Distiller, hypotheses: list[Hypothesis],
                 condition: ConditionFn) -> None:
        self.prior = prior
        self.distiller = distiller
        self.hypotheses = hypotheses
        self.condition = condition
        self.state: DistillState = distiller.init_state(hypotheses)
        self.stats = GuidanceStats()

    def __call__(self, rgb: torch.Tensor, cameras: Cameras, step: int) -> torch.Tensor:
        k = len(self.hypotheses)
        if rgb.shape[0] % k:
            raise ValueError(f"{rgb.shape[0]} renders do not split into {k} hypotheses")
        views = rgb.shape[0] // k
        x = self.prior.encode(rgb)
        cond = self.condition(camera_table(cameras))
        rows = torch.arange(k).repeat_interleave(views)
        result = self.distiller.grad(x, step, cond, self.state.for_rows(rows))
        self.stats.calls += result.calls
        self.stats.evals += result.evals
        self.stats.steps += 1
        return sd_loss(x, result.grad.to(x.dtype))

    def anchor_camera(self, step: int) -> tuple[float, float] | None:
        """(elevation°, azimuth°) the distiller wants every guidance view at on ``step`` (``dsd-commit``'s
        commit phase), or None: the stage draws its own cameras."""
        anchor = getattr(self.distiller, "anchor_camera", None)
        return None if anchor is None else anchor(step)

    # -- resumable state: the random streams (ε* and trajectories are functions of the seeds)
    def state_dict(self) -> dict[str, Any]:
        return {
            "noise": [g.get_state() for g in self.state.noise],
            "times": [g.get_state() for g in self.state.times],
            "stats": (self.stats.calls, self.stats.evals, self.stats.steps),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for g, s in zip(self.state.noise, state["noise"]):
            g.set_state(s)
        for g, s in zip(self.state.times, state["times"]):
            g.set_state(s)
        self.stats = GuidanceStats(*state["stats"])
