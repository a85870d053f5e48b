"""K stage-2 optimisations stepped together, with one guidance call per step for all of them.

Each hypothesis keeps its own :class:`~recon.pipeline.stage2_dmtet.Stage2` (geometry, optimiser,
camera stream); every step their random views are concatenated hypothesis-major and handed to one
guidance call, so the prior runs once for K hypotheses × V views × CFG branches. The guidance loss
is the mean over rows times K, so each hypothesis gets the same gradient it would get alone.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from recon.pipeline.checkpoint import load_checkpoint, save_checkpoint
from recon.pipeline.stage2_dmtet import Stage2
from recon.render.cameras import Cameras

STAGE = "stage2_batch"

BatchGuidance = Callable[[torch.Tensor, Cameras, int], torch.Tensor]


class Stage2Batch:
    """Args: stages — one Stage2 per hypothesis (slot order = the guidance's hypothesis order);
    guidance — ``guidance(rgb (K·V, 3, H, W), cameras, step) -> mean loss`` (e.g. DistillGuidance)."""

    def __init__(self, stages: list[Stage2], guidance: BatchGuidance | None) -> None:
        if not stages:
            raise ValueError("need at least one stage")
        self.stages = stages
        self.guidance = guidance

    @property
    def step(self) -> int:
        return self.stages[0].step

    def train_step(self) -> list[dict[str, float]]:
        begun = [s.begin_step() for s in self.stages]
        terms = [t for _, t in begun]
        total = sum(sum(t.values()) for t in terms)
        if self.guidance is not None:
            views = [s.guidance_views(mesh) for s, (mesh, _) in zip(self.stages, begun)]
            rgb = torch.cat([v[0] for v in views])
            cams = Cameras.cat([v[1] for v in views])
            k = len(self.stages)
            g = self.stages[0].config.w_guidance * k * self.guidance(rgb, cams, self.step)
            total = total + g
            for t in terms:
                t["guidance"] = (g / k).detach()
        for s in self.stages:
            s.optimizer.zero_grad(set_to_none=True)
        total.backward()
        return [s.apply(t) for s, t in zip(self.stages, terms)]

    def run(self, steps: int, checkpoint: str | Path | None = None, checkpoint_every: int = 0,
            callback: Callable[[int, list[dict[str, float]]], None] | None = None) -> None:
        """Step until ``steps`` total; checkpoint every ``checkpoint_every`` steps and at the end."""
        while self.step < steps:
            records = self.train_step()
            if callback is not None:
                callback(self.step, records)
            if checkpoint is not None and checkpoint_every and self.step % checkpoint_every == 0 and self.step < steps:
                self.save(checkpoint)
        if checkpoint is not None:
            self.save(checkpoint)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"stages": [s.state_dict() for s in self.stages]}
        if hasattr(self.guidance, "state_dict"):
            state["guidance"] = self.guidance.state_dict()  # type: ignore[union-attr]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["stages"]) != len(self.stages):
            raise ValueError(f"checkpoint holds {len(state['stages'])} hypotheses, this run {len(self.stages)}")
        for s, st in zip(self.stages, state["stages"]):
            s.load_state_dict(st)
        if "guidance" in state and hasattr(self.guidance, "load_state_dict"):
            self.guidance.load_state_dict(state["guidance"])  # type: ignore[union-attr]

    def save(self, path: str | Path) -> Path:
        return save_checkpoint(path, self.state_dict(), STAGE)

    def load(self, path: str | Path) -> None:
        self.load_state_dict(load_checkpoint(path, STAGE))
