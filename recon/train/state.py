"""Training checkpoints as one safetensors file (tensors) plus one JSON file (everything else).

No pickles: module and optimiser tensors are flattened under prefixes (``unet.``, ``opt.main.3.exp_avg``
...), and the optimiser's parameter groups, the step and the loss history go to JSON. Both files are
written atomically (tensors to a new file first, then the JSON that names it), so a checkpoint is either
the old one or the new one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from recon.io.atomic import atomic_path, atomic_write_text


def module_tensors(prefix: str, module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v.detach().clone().contiguous() for k, v in module.state_dict().items()}


def load_module(prefix: str, module: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    head = prefix + "."
    state = {k[len(head):]: v for k, v in tensors.items() if k.startswith(head)}
    module.load_state_dict(state, strict=True)


def optimizer_tensors(prefix: str, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """(tensors, param_groups) of an optimiser's state dict."""
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for index, entry in sd["state"].items():
        for key, value in entry.items():
            tensors[f"{prefix}.{index}.{key}"] = torch.as_tensor(value).detach().clone().contiguous()
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, groups


def load_optimizer(prefix: str, opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor],
                   groups: list[dict]) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    head = prefix + "."
    for name, value in tensors.items():
        if name.startswith(head):
            index, key = name[len(head):].split(".", 1)
            state.setdefault(int(index), {})[key] = value
    fixed = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in groups]
    opt.load_state_dict({"state": state, "param_groups": fixed})


def save_checkpoint(folder: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any], tag: str) -> None:
    """Write ``state-<tag>.safetensors``, then ``state.json`` naming it, then remove older tensor files:
    an interruption at any point leaves a complete checkpoint (the old or the new one)."""
    folder.mkdir(parents=True, exist_ok=True)
    name = f"state-{tag}.safetensors"
    with atomic_path(folder / name) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
    atomic_write_text(folder / "state.json", json.dumps({**meta, "tensors": name}, indent=1, sort_keys=True))
    for old in folder.glob("state-*.safetensors"):
        if old.name != name:
            old.unlink()


def load_checkpoint(folder: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """(tensors, meta), or None when ``folder`` holds no checkpoint."""
    meta_path = folder / "state.json"
    if not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text())
    data_path = folder / str(meta.get("tensors", ""))
    if not data_path.is_file():
        raise FileNotFoundError(f"{data_path}: named by {meta_path} but missing; the checkpoint is incomplete")
    return load_file(str(data_path)), meta
