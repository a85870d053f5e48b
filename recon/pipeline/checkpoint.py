"""Atomic save / load of stage checkpoints (a dict of tensors, numbers, strings, lists and dicts).

Files are written with ``torch.save`` to a temporary file beside the target and renamed over it, so a crash
leaves the previous checkpoint intact. Loading uses ``weights_only=True``: a checkpoint can hold data only,
never code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from recon.io.atomic import atomic_path

FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, unreadable, or from another stage / format."""


def save_checkpoint(path: str | Path, state: dict[str, Any], stage: str) -> Path:
    """Write ``state`` for ``stage`` atomically to ``path``; returns the path."""
    payload = {"format": FORMAT_VERSION, "stage": stage, "state": state}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path: str | Path, stage: str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The state saved by :func:`save_checkpoint` for ``stage``; CheckpointError with one clear line otherwise."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no checkpoint there; start without --resume or give the right file")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for truncated / foreign files
        raise CheckpointError(f"{path}: not a readable recon checkpoint ({type(err).__name__}); "
                              "delete it to start over") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION or "state" not in payload:
        raise CheckpointError(f"{path}: not a recon checkpoint of format {FORMAT_VERSION}; delete it to start over")
    if payload.get("stage") != stage:
        raise CheckpointError(f"{path}: a checkpoint of stage {payload.get('stage')!r}, expected {stage!r}")
    return payload["state"]


# The keys a run's checkpoint state must hold, by the last part of its stage tag.
REQUIRED_KEYS = {"stage1": ("field", "guidance"), "stage2": ("stages",)}
# Layouts of older recons, by the same part: a key only they hold. (Before one stage interface a run's stage-1
# checkpoint nested the stage's state under "stage", beside "guidance"; now the stage's state holds both.)
OLD_LAYOUTS = {"stage1": "stage"}


def check_checkpoint(path: str | Path, stage: str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """:func:`load_checkpoint`, plus the keys a run's stage state must hold; CheckpointError naming the
    file otherwise. Run on every checkpoint of a folder before any stage work, so a damaged one is
    refused before anything in the folder changes."""
    state = load_checkpoint(path, stage, map_location)
    part = stage.rsplit("_", 1)[-1]
    required = REQUIRED_KEYS.get(part, ())
    old = OLD_LAYOUTS.get(part)
    if isinstance(state, dict) and old in state and any(key not in state for key in required):
        raise CheckpointError(f"{path}: a checkpoint of an older recon, which this one cannot resume; "
                              "delete it to start that stage over")
    if not isinstance(state, dict) or any(key not in state for key in required):
        missing = [k for k in required if not isinstance(state, dict) or k not in state]
        raise CheckpointError(f"{path}: a damaged checkpoint (no {', '.join(map(repr, missing))} in it); "
                              "delete it to start that stage over")
    return state


def restore(path: str | Path, apply, state: dict[str, Any]) -> None:
    """``apply(state)`` (a ``load_state_dict``), with any failure turned into one CheckpointError line
    naming ``path``."""
    try:
        apply(state)
    except CheckpointError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path}: does not fit this run ({type(exc).__name__}: {detail[:160]}); "
                              "delete it to start that stage over") from exc
