"""The one stage interface and the one loop that runs a stage.

A stage (:class:`~recon.pipeline.stage1_nerf.Stage1`, :class:`~recon.pipeline.stage2_dmtet.Stage2`,
:class:`~recon.pipeline.stage2_batch.Stage2Batch`) owns its state and knows how to take one step;
:func:`run_stage` owns everything around the steps: resume from a checkpoint, progress callbacks,
atomic checkpoints (:mod:`recon.pipeline.checkpoint`) every ``checkpoint_every`` steps and at the end,
and Ctrl-C (:mod:`recon.pipeline.interrupt`: the step in flight finishes, a checkpoint is written, then
``KeyboardInterrupt`` is raised). The image and text runs, the bench and the tests all step stages
through it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from recon.pipeline.checkpoint import load_checkpoint, restore, save_checkpoint
from recon.pipeline.interrupt import StopRequest

Progress = Callable[[int, int, Any], None]
"""progress(steps done, total steps, the step's record), called after every step, before its checkpoint."""


@runtime_checkable
class Stage(Protocol):
    """What :func:`run_stage` needs of a stage.

    ``checkpoint_tag`` names the stage in its checkpoint files (a run may use its own tag instead);
    ``state_dict()`` holds everything a bit-identical resume needs, ``load_state_dict`` restores it
    (including ``step_index``)."""

    checkpoint_tag: str

    @property
    def step_index(self) -> int:
        """Steps taken so far."""
        ...

    @property
    def total_steps(self) -> int:
        """Steps of a full stage (the loop's default end)."""
        ...

    def step(self) -> Any:
        """Take one optimisation step, advance ``step_index`` and return the step's record."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def run_stage(stage: Stage, *, until: int | None = None, checkpoint_path: str | Path | None = None,
              checkpoint_tag: str | None = None, checkpoint_every: int = 0, stop: StopRequest | None = None,
              progress: Progress | None = None, resume: bool | dict[str, Any] = False) -> Stage:
    """Step ``stage`` until ``step_index`` reaches ``until`` (default ``stage.total_steps``); returns it.

    Args:
        checkpoint_path: where checkpoints go (None = no checkpoints, and no resume).
        checkpoint_tag: the stage tag written into (and required of) the file; default ``stage.checkpoint_tag``.
        checkpoint_every: also checkpoint after every step that is a multiple of this (0 = only at the end).
        stop: a :class:`~recon.pipeline.interrupt.StopRequest`; once requested, the loop checkpoints after
            the current step and raises ``KeyboardInterrupt``.
        progress: :data:`Progress`, after every step.
        resume: True = restore ``checkpoint_path`` first when it exists; a dict = restore that state (already
            read from ``checkpoint_path``, e.g. by :func:`~recon.pipeline.checkpoint.check_checkpoint`).
            A checkpoint that does not fit the stage is one :class:`~recon.pipeline.checkpoint.CheckpointError`
            line naming the file.
    """
    tag = checkpoint_tag or stage.checkpoint_tag
    if resume is not False and checkpoint_path is None:
        raise ValueError("resume needs a checkpoint_path")
    if isinstance(resume, dict) or (resume and Path(checkpoint_path).exists()):  # type: ignore[arg-type]
        state = resume if isinstance(resume, dict) else load_checkpoint(checkpoint_path, tag)  # type: ignore[arg-type]
        restore(checkpoint_path, stage.load_state_dict, state)  # type: ignore[arg-type]

    def save() -> None:
        if checkpoint_path is not None:
            save_checkpoint(checkpoint_path, stage.state_dict(), tag)

    total = stage.total_steps if until is None else int(until)
    while stage.step_index < total:
        record = stage.step()
        if progress is not None:
            progress(stage.step_index, total, record)
        requested = stop is not None and stop.requested
        if requested or (checkpoint_every and stage.step_index % checkpoint_every == 0
                         and stage.step_index < total):
            save()
            if requested:
                stop.check()  # type: ignore[union-attr]
    save()
    return stage
