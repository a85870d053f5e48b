"""Tensor shapes: the ones an architecture expects, and the check that weight files hold exactly those.

Expected shapes come from building the architecture named by a config on PyTorch's meta device (no
memory, no tensor data); :func:`compare_shapes` matches every parameter name and shape against the
files' safetensors headers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from recon.priors.weight_files import DTYPE_BYTES, TensorInfo, WeightsError, read_safetensors_header


@dataclass
class ComponentReport:
    """What was checked in one sub-folder."""

    name: str
    files: list[Path]
    tensors: int = 0
    bytes: int = 0
    dtypes: tuple[str, ...] = ()
    variant: str | None = None


def _meta_shapes(build: Callable[[], torch.nn.Module]) -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        model = build()
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def diffusers_shapes(cls_name: str, config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    import diffusers

    cls = getattr(diffusers, cls_name)
    return _meta_shapes(lambda: cls.from_config(config))


def clip_shapes(cls_name: str, folder: Path) -> dict[str, tuple[int, ...]]:
    import transformers

    cls = getattr(transformers, cls_name)
    config_cls = transformers.CLIPTextConfig if cls_name == "CLIPTextModel" else transformers.CLIPVisionConfig
    config = config_cls.from_pretrained(folder)
    return _meta_shapes(lambda: cls(config))


def _normalise_key(key: str) -> str | None:
    """Published names -> names current libraries use; None for tensors the libraries ignore."""
    if key.endswith("position_ids"):
        return None  # buffer saved by older transformers, recomputed on load
    if key.startswith("text_model."):
        key = key[len("text_model."):]  # transformers >= 5 drops the prefix; it renames on load
    for old, new in ((".query.", ".to_q."), (".key.", ".to_k."), (".value.", ".to_v."), (".proj_attn.", ".to_out.0.")):
        if ".attentions." in key and old in key:  # diffusers' pre-0.14 VAE attention names
            key = key.replace(old, new)
    return key


def compare_shapes(files: list[Path], expected: Mapping[str, tuple[int, ...]], what: str,
                   report: ComponentReport) -> dict[str, TensorInfo]:
    """Check the union of ``files`` holds exactly ``expected`` (names normalised), shapes included."""
    found: dict[str, tuple[TensorInfo, Path]] = {}
    for path in files:
        for name, info in read_safetensors_header(path).items():
            key = _normalise_key(name)
            if key is not None:
                found[key] = (info, path)
            report.tensors += 1
            report.bytes += math.prod(info.shape) * DTYPE_BYTES[info.dtype]
    want = {k2: v for k, v in expected.items() if (k2 := _normalise_key(k)) is not None}
    missing = [k for k in want if k not in found]
    if missing:
        raise WeightsError(files[0], f"{len(missing)} tensors of the {what} are missing (first: {missing[0]})",
                           "the file belongs to another model or is incomplete: download it again")
    extra = sorted(set(found) - set(want))
    if extra:
        raise WeightsError(found[extra[0]][1], f"{len(extra)} tensors not in the {what} described by config.json "
                           f"(first: {extra[0]})", "the weights and config.json belong to different models")
    for key, shape in want.items():
        info, path = found[key]
        if info.shape != tuple(shape):
            raise WeightsError(path, f"tensor {key} has shape {list(info.shape)}, the {what} in config.json needs "
                               f"{list(shape)}", "the weights and config.json belong to different models")
    report.dtypes = tuple(sorted({info.dtype for info, _ in found.values()}))
    return {k: v[0] for k, v in found.items()}
