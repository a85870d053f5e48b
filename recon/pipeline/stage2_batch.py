"""K stage-2 optimisations stepped together, with one guidance call per step for all of them.

Each hypothesis keeps its own :class:`~recon.pipeline.stage2_dmtet.Stage2` (geometry, optimiser,
camera stream); every step their random views are concatenated hypothesis-major and handed to one
guidance call, so the prior runs once for K hypotheses × V views × CFG branches. The guidance loss
is the mean over rows times K, so each hypothesis gets the same gradient it would get alone.

On the CPU the hypotheses' own work (surface extraction, rendering, regularisers, backward, Adam) runs
on ``workers`` threads with one torch thread each: stage 2's tensors are too small for torch's intra-op
threads to help (one thread was faster than two on the quick start, and two collapsed to 3.4x slower
beside one busy process; docs/benchmarks.md), while whole hypotheses are independent graphs. The prior
still runs once per step, on the calling thread, for all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from recon.pipeline.hypothesis_threads import HypothesisThreads
from recon.pipeline.stage2_dmtet import Stage2
from recon.render.cameras import Cameras

STAGE = "stage2_batch"

BatchGuidance = Callable[[torch.Tensor, Cameras, int], torch.Tensor]


class Stage2Batch:
    """K stage-2 optimisations as one :class:`~recon.pipeline.stage.Stage` (step it with
    :func:`~recon.pipeline.stage.run_stage`).

    Args: stages — one Stage2 per hypothesis (slot order = the guidance's hypothesis order);
    guidance — ``guidance(rgb (K·V, 3, H, W), cameras, step) -> mean loss`` (e.g. DistillGuidance)."""

    def __init__(self, stages: list[Stage2], guidance: BatchGuidance | None, workers: int = 1) -> None:
        if not stages:
            raise ValueError("need at least one stage")
        if any(s._color_module is not None for s in stages):
            workers = 1  # fine-tuned colour modules may share parameters: no concurrent backward into them
        self.stages = stages
        self.guidance = guidance
        self.threads = HypothesisThreads(min(int(workers), len(stages)), "recon-stage2")

    @property
    def workers(self) -> int:
        return self.threads.workers

    def close(self) -> None:
        """Stop the worker threads (a later step starts them again)."""
        self.threads.close()

    checkpoint_tag = STAGE

    @property
    def step_index(self) -> int:
        return self.stages[0].step_index

    @property
    def total_steps(self) -> int:
        return self.stages[0].config.steps

    def step(self) -> list[dict[str, float]]:
        """One step of every hypothesis (one guidance call for all); returns their records."""
        guided = self.guidance is not None

        def begin(s: Stage2):
            mesh, terms = s.begin_step()
            return terms, (s.guidance_views(mesh) if guided else None)

        begun = self.threads.map(begin, self.stages)
        terms = [t for t, _ in begun]
        own = [sum(t.values()) for t in terms]  # each hypothesis's own terms, before guidance joins them
        rgb_grads: list = [None] * len(self.stages)
        if guided:
            rgbs = [v[0] for _, v in begun]
            cams = Cameras.cat([v[1] for _, v in begun])
            k = len(self.stages)
            g = self.stages[0].config.weights.guidance * k * self.guidance(torch.cat(rgbs), cams, self.step_index)
            if g.requires_grad:
                # The guidance loss's gradient on each hypothesis's render; each backward below then runs
                # through one hypothesis's graph only, so the K backward passes are independent.
                rgb_grads = list(torch.autograd.grad(g, rgbs))
            for t in terms:
                t["guidance"] = (g / k).detach()

        def finish(i: int) -> dict[str, float]:
            s = self.stages[i]
            s.optimizer.zero_grad(set_to_none=True)
            outputs, grads = [], []
            if isinstance(own[i], torch.Tensor) and own[i].requires_grad:
                outputs.append(own[i])
                grads.append(torch.ones_like(own[i]))
            if rgb_grads[i] is not None:
                outputs.append(begun[i][1][0])
                grads.append(rgb_grads[i])
            if outputs:
                torch.autograd.backward(outputs, grads)
            return s.apply(terms[i])

        return self.threads.map(finish, range(len(self.stages)))

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
