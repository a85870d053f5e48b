"""The ``run.json`` manifest: what a run was (command, config, seeds, input, packages, device), how its
stages went (seconds, prior calls and evaluations) and what it wrote. The schema is documented in
docs/output-format.md; ``recon run --from`` reads it back. Files go through :mod:`recon.io.atomic`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import platform
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from recon.io.atomic import atomic_write_text
from recon.io.errors import InputError
from recon.io.images import file_sha256
from recon.io.report import hypothesis_label

RUN_SCHEMA = "recon.run/1"
DEFAULT_PACKAGES = ("recon", "torch", "numpy", "diffusers", "transformers", "trimesh", "xatlas",
                    "fast-simplification", "pillow", "opencv-python-headless", "rembg", "onnxruntime",
                    "nvdiffrast", "diffrp-nvdiffrast")


@dataclass
class StageRecord:
    """Wall time and prior cost of one pipeline stage."""

    name: str
    seconds: float = 0.0
    prior_calls: int = 0
    prior_evals: int = 0


@dataclass
class RunRecord:
    """Everything needed to reproduce and audit a run (see docs/output-format.md)."""

    command: str
    config: dict[str, Any]
    seeds: list[int]
    input: dict[str, Any] = field(default_factory=dict)
    stages: list[StageRecord] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    packages: dict[str, str] = field(default_factory=dict)
    device: dict[str, Any] = field(default_factory=dict)
    started: str = ""
    finished: str = ""
    schema: str = RUN_SCHEMA

    @contextlib.contextmanager
    def stage(self, name: str, prior: Any = None) -> Iterator[StageRecord]:
        """Time a stage; with ``prior`` (anything with ``counter.calls`` / ``counter.evals``) also count
        the network calls and evaluations it spent."""
        rec = StageRecord(name)
        c0 = _counts(prior)
        t0 = time.perf_counter()
        try:
            yield rec
        finally:
            rec.seconds = round(time.perf_counter() - t0, 4)
            c1 = _counts(prior)
            rec.prior_calls, rec.prior_evals = c1[0] - c0[0], c1[1] - c0[1]
            self.stages.append(rec)


def _counts(prior: Any) -> tuple[int, int]:
    counter = getattr(prior, "counter", None)
    if counter is None:
        return 0, 0
    return int(counter.calls), int(counter.evals)


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def input_record(path: str | Path) -> dict[str, Any]:
    """{"path": absolute path, "sha256": hex, "bytes": size} of an input file."""
    p = Path(path).resolve()
    return {"path": str(p), "sha256": file_sha256(p), "bytes": p.stat().st_size}


def package_versions(names: Sequence[str] = DEFAULT_PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` (absent ones omitted), plus Python's."""
    out = {"python": platform.python_version()}
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


def device_info(device: Any = "cpu") -> dict[str, Any]:
    """Where the run ran: torch device, GPU name and CUDA version when on CUDA, CPU threads, platform."""
    import torch

    info: dict[str, Any] = {"device": str(device), "platform": platform.platform(),
                            "machine": platform.machine(), "torch_threads": torch.get_num_threads()}
    dev = torch.device(device)
    if dev.type == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(dev)
        info["cuda"] = torch.version.cuda
    return info


def run_record_dict(record: RunRecord) -> dict[str, Any]:
    """The manifest as plain data; every hypothesis entry of ``outputs`` (``hypotheses``,
    ``empty_hypotheses``) that has an ``index`` gains its identity: ``"id": [seed, index]`` and
    ``"label"`` (:func:`hypothesis_label`), the seed being the entry's own or the run's."""
    data = asdict(record)
    run_seed = data.get("config", {}).get("seed") if isinstance(data.get("config"), dict) else None
    for key in ("hypotheses", "empty_hypotheses"):
        entries = data.get("outputs", {}).get(key)
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict) or "index" not in entry:
                continue
            seed = entry.get("seed", run_seed)
            if seed is None:
                continue
            entry.setdefault("id", [int(seed), int(entry["index"])])
            entry.setdefault("label", hypothesis_label(seed, entry["index"]))
    return {"schema": data.pop("schema"), **data}


def write_run_json(path: str | Path, record: RunRecord) -> Path:
    return atomic_write_text(path, json.dumps(run_record_dict(record), indent=2, sort_keys=False,
                                              default=str) + "\n")


_REQUIRED = {"schema": str, "command": str, "config": dict, "seeds": list, "input": dict}


def read_run_json(path: str | Path) -> RunRecord:
    """Load a manifest for ``recon run --from``; a wrong or damaged file is an :class:`InputError`."""
    path = Path(path)
    remedy = "pass the run.json that a recon run wrote"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(path, "no such file", "check the path to run.json") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"not a readable JSON file ({' '.join(str(exc).split())})", remedy) from exc
    if not isinstance(data, dict):
        raise InputError(path, "not a recon run manifest (top level is not an object)", remedy)
    for key, tp in _REQUIRED.items():
        if not isinstance(data.get(key), tp):
            raise InputError(path, f"not a recon run manifest (missing or malformed {key!r})", remedy)
    if data["schema"] != RUN_SCHEMA:
        raise InputError(path, f"manifest schema {data['schema']!r} is not {RUN_SCHEMA!r}",
                         "re-run with the recon version that wrote it")
    stages = [StageRecord(**s) for s in data.get("stages", [])]
    fields = {k: data[k] for k in ("command", "config", "seeds", "input", "outputs", "packages", "device",
                                   "started", "finished") if k in data}
    return RunRecord(stages=stages, **fields)


def new_run_record(command: str, config: Any, seeds: Sequence[int], input_path: str | Path | None = None,
                   device: Any = "cpu", extra_input: dict[str, Any] | None = None) -> RunRecord:
    """A record with config (via :func:`recon.config.to_dict`), input hash, versions, device and start time."""
    from recon.config import to_dict

    inp = input_record(input_path) if input_path is not None else {}
    inp.update(extra_input or {})
    return RunRecord(command=command, config=to_dict(config), seeds=[int(s) for s in seeds], input=inp,
                     packages=package_versions(), device=device_info(device), started=now_iso())



__all__ = [
    "RUN_SCHEMA", "RunRecord", "StageRecord", "device_info", "input_record", "new_run_record", "now_iso",
    "package_versions", "read_run_json", "run_record_dict", "write_run_json",
]
