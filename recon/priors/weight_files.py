"""Weight files on disk: find a component's safetensors file(s) and read their headers, refusing pickles.

Reading a header never loads tensor data: safetensors' own ``safe_open`` gives names, dtypes and shapes,
and checks that the byte ranges exactly cover the file, so a truncated download is caught. Pickle
checkpoints (``.bin``, ``.ckpt``, ``.pt``) are refused: unpickling runs arbitrary code.

Every problem is one :class:`WeightsError` whose message starts with the offending file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open

PICKLE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth", ".pkl")
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
               "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}


class WeightsError(ValueError):
    """One problem with a weight folder. ``path`` is the file or folder at fault."""

    def __init__(self, path: str | Path, problem: str, fix: str = "") -> None:
        self.path = Path(path)
        self.problem = problem
        self.fix = fix
        super().__init__(f"{self.path}: {problem}" + (f"; {fix}" if fix else ""))


@dataclass(frozen=True)
class TensorInfo:
    dtype: str
    shape: tuple[int, ...]


def refuse_pickle(path: Path) -> WeightsError:
    return WeightsError(
        path, "pickle checkpoint refused — recon loads safetensors only (unpickling can run arbitrary code)",
        "download the .safetensors version of this file, or convert it on a trusted machine",
    )


def read_safetensors_header(path: str | Path) -> dict[str, TensorInfo]:
    """Tensor names -> dtype and shape, after checking the file is a complete safetensors file.

    safetensors' own ``safe_open`` parses the header and checks that the tensors' byte ranges exactly
    cover the file (a truncated download fails there); before it, the first bytes are looked at only to
    name a Git LFS pointer or a pickle for what it is.
    """
    path = Path(path)
    if path.suffix in PICKLE_SUFFIXES:
        raise refuse_pickle(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(9)
    except OSError as exc:
        raise WeightsError(path, f"cannot be read ({exc.strerror or exc})") from exc
    if head.startswith(b"version "):
        raise WeightsError(path, "is a Git LFS pointer, not the weights", "fetch the real file (git lfs pull)")
    # A safetensors file is an 8-byte header length, then a JSON header; torch.save writes a zip
    # ("PK\x03\x04"), older pickles start with the protocol opcode 0x80.
    if head[:4] == b"PK\x03\x04" or (head[:1] == b"\x80" and head[8:9] != b"{"):
        raise refuse_pickle(path)
    if len(head) < 9:
        raise WeightsError(path, f"only {size} bytes: not a safetensors file (truncated?)", "download it again")
    try:
        with safe_open(str(path), framework="pt") as f:
            tensors: dict[str, TensorInfo] = {}
            for name in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
                part = f.get_slice(name)
                tensors[name] = TensorInfo(part.get_dtype(), tuple(int(s) for s in part.get_shape()))
    except OSError as exc:
        raise WeightsError(path, f"cannot be read ({exc.strerror or exc})") from exc
    except SafetensorError as exc:
        raise WeightsError(path, _header_problem(str(exc), size), "download it again") from exc
    for name, info in tensors.items():
        if info.dtype not in DTYPE_BYTES:
            raise WeightsError(path, f"tensor {name} has dtype {info.dtype}, which recon does not load",
                               "download it again")
    return tensors


def _header_problem(message: str, size: int) -> str:
    """safetensors' header error, in the words recon's messages use."""
    if "not fully covered" in message:
        return f"is {size} bytes but its header describes another size: truncated or corrupt"
    if "header too small" in message or "header too large" in message:
        return "not a safetensors file (bad header length) or truncated"
    if "JSON" in message:
        return "not a safetensors file (header is not JSON)"
    if "invalid shape, data type, or offset" in message:
        return "a tensor has inconsistent size in the header"
    return f"not a safetensors file or corrupt ({message})"


def _stem_candidates(stem: str) -> list[tuple[str, str | None]]:
    return [(f"{stem}.safetensors", None), (f"{stem}.fp16.safetensors", "fp16")]


def weight_files(folder: Path, stem: str) -> tuple[list[Path], str | None]:
    """The safetensors file(s) of one component and its diffusers/transformers variant (None or 'fp16').

    Handles single files and sharded ``*.safetensors.index.json``. Refuses folders holding only pickles.
    """
    if not folder.is_dir():
        raise WeightsError(folder, "folder missing", "the weight folder is incomplete: pull or copy it again")
    for name, variant in _stem_candidates(stem):
        single = folder / name
        if single.is_file():
            return [single], variant
        index = folder / (name + ".index.json")
        if index.is_file():
            try:
                shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise WeightsError(index, "unreadable shard index", "download it again") from exc
            paths = [folder / s for s in shards]
            for p in paths:
                if not p.is_file():
                    raise WeightsError(p, "shard listed in the index is missing", "download it again")
            return paths, variant
    pickles = sorted(p for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise refuse_pickle(pickles[0])
    raise WeightsError(folder / f"{stem}.safetensors", "weights file missing",
                       "the weight folder is incomplete: pull or copy it again")


def read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise WeightsError(path, "missing", "the weight folder is incomplete: pull or copy it again")
    try:
        value = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WeightsError(path, f"not valid JSON ({exc})", "download it again") from exc
    if not isinstance(value, dict):
        raise WeightsError(path, "not a JSON object", "download it again")
    return value
