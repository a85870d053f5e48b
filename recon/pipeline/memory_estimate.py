"""Peak-memory estimate of a run, checked before any stage work.

A render size or tet grid far beyond the machine would otherwise fail with an allocator message deep
inside stage 1 or 2, after checkpoints have been written. :func:`check_memory` refuses such a run up
front with one line naming the setting to lower.

The figures are *lower bounds* on what each part certainly allocates (feature grids with their Adam
state, the tet grid, the rendered samples of one step assuming the occupancy grid skips three
quarters of them, the texture being baked, the turntable frames rendered in one call). A run refused
here cannot fit; a run accepted here can still run short of memory with a large prior on a small GPU.
The budget is the memory available now: ``MemAvailable`` of ``/proc/meminfo`` and the cgroup limit on
the CPU, free memory on a CUDA device, or ``$RECON_MEMORY_LIMIT`` (e.g. ``8GB``) where set.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recon.config import ConfigError

BYTES_PER_TET = 150  # measured 116 B/tet for building and extracting a DMTet grid (2026-12, CPU), no gradients
BYTES_PER_SAMPLE = 64  # position, direction, density, colour, weights of one ray sample, forward only
OCCUPIED = 0.25  # share of ray samples assumed to survive the occupancy grid
BYTES_PER_PIXEL_RASTER = 256  # rasteriser outputs, interpolated attributes and their gradients per pixel


@dataclass
class Part:
    """One part of a run's memory: what it is, its bytes and the settings that size it."""

    name: str
    bytes: float  # at this part's peak, with what is held alongside it (the fields, the tet grids)
    settings: str
    own: float = -1.0  # this part's own share of ``bytes``

    def __post_init__(self) -> None:
        if self.own < 0:
            self.own = self.bytes


def _get(obj: Any, dotted: str, default: Any = None) -> Any:
    for part in dotted.split("."):
        if obj is None:
            return default
        obj = getattr(obj, part, None)
    return default if obj is None else obj


def estimate_parts(config: Any) -> list[Part]:
    """Lower bounds of the memory each stage of ``config`` (image or text run) needs at its peak."""
    k = int(_get(config, "hypotheses", 1))
    parts: list[Part] = []

    # Stage 1: the K fields' feature grids (parameter, gradient, two Adam moments) and one step's samples.
    grids = sum(int(r) ** 3 for r in _get(config, "stage1.field.resolutions", []))
    features = int(_get(config, "stage1.field.features", 2))
    occ = int(_get(config, "stage1.occupancy.resolution", 32)) ** 3
    fields = k * (grids * features * 16 + occ * 4)
    samples = int(_get(config, "stage1.volume.samples_per_ray", 32))
    views = max((int(r) ** 2 * int(b) for r, b in zip(_get(config, "stage1.resolutions", []),
                                                       _get(config, "stage1.batch_sizes", []))), default=0)
    rays = int(_get(config, "stage1.reference_rays", 0))
    step = k * (views + rays) * samples * BYTES_PER_SAMPLE * OCCUPIED
    parts.append(Part("stage 1 feature grids", fields, "stage1.field.resolutions, hypotheses"))
    parts.append(Part("stage 1 renders", fields + step,
                      "stage1.resolutions, stage1.batch_sizes, stage1.volume.samples_per_ray, hypotheses", step))

    # Stage 2: K tet grids (about 6 tetrahedra per cube) and one step's rasterised views.
    if _get(config, "stage2_enabled", True):
        tet = int(_get(config, "stage2.tet_resolution", 64))
        tets = k * 6 * tet**3 * BYTES_PER_TET
        res = int(_get(config, "stage2.resolution", 64))
        per_step = int(_get(config, "stage2.guidance_views_per_step", 1)) + int(
            _get(config, "stage2.target_views_per_step", 1))
        raster = k * per_step * res**2 * BYTES_PER_PIXEL_RASTER
        parts.append(Part("stage 2 tet grids", fields + tets, "stage2.tet_resolution, hypotheses", tets))
        parts.append(Part("stage 2 renders", fields + tets + raster,
                          "stage2.resolution, stage2.guidance_views_per_step, hypotheses", raster))

    # Export and report work one hypothesis at a time.
    tex = int(_get(config, "export.texture_size", 1024))
    parts.append(Part("texture bake", fields + tex**2 * 64, "export.texture_size", tex**2 * 64))
    size = int(_get(config, "report.render_size", 128))
    frames = int(_get(config, "report.turntable_frames", 24)) + 2
    frames_bytes = frames * size**2 * BYTES_PER_PIXEL_RASTER
    parts.append(Part("turntable renders", fields + frames_bytes, "report.render_size, report.turntable_frames",
                      frames_bytes))
    if _get(config, "prior.kind") == "library":
        side = int(_get(config, "prior.library.image_size", 32))
        cached = int(_get(config, "prior.library.max_cached_views", 2048))
        parts.append(Part("prior view cache", cached * side**2 * 16 * 4,
                          "prior.library.image_size, prior.library.max_cached_views"))
    return parts


_UNITS = {"": 1, "B": 1, "K": 1e3, "KB": 1e3, "M": 1e6, "MB": 1e6, "G": 1e9, "GB": 1e9, "T": 1e12, "TB": 1e12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_size(text: str) -> float:
    """``"8GB"`` -> 8e9; ``"512MiB"``, ``"1e9"`` likewise. ValueError otherwise."""
    m = re.fullmatch(r"\s*([0-9.eE+]+)\s*([A-Za-z]*)\s*", text)
    if not m or m.group(2).upper() not in _UNITS:
        raise ValueError(f"{text!r} is not a size like 8GB or 512MiB")
    return float(m.group(1)) * _UNITS[m.group(2).upper()]


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def available_memory(device: str) -> tuple[float | None, str]:
    """(bytes available to this run, where that figure comes from); None when unknown."""
    env = os.environ.get("RECON_MEMORY_LIMIT")
    if env:
        try:
            return parse_size(env), "$RECON_MEMORY_LIMIT"
        except ValueError as exc:
            raise ConfigError(f"RECON_MEMORY_LIMIT: {exc}") from exc
    if str(device).startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            free, _ = torch.cuda.mem_get_info()
            return float(free), "free GPU memory"
    found: list[float] = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append(float(line.split()[1]) * 1024)
    except OSError:
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = Path("/sys/fs/cgroup/memory.current").read_text().strip()
        if limit != "max":
            found.append(float(limit) - float(used))
    except (OSError, ValueError):
        pass
    return (min(found), "available memory") if found else (None, "")


def check_memory(config: Any, device: str = "cpu") -> float:
    """Refuse (:class:`ConfigError`, one line) a run whose estimated peak exceeds the memory available;
    returns the estimate (bytes)."""
    parts = estimate_parts(config)
    peak = max(parts, key=lambda p: p.bytes)
    budget, source = available_memory(device)
    if budget is not None and peak.bytes > budget:
        blame = max(parts, key=lambda p: p.own)  # the part whose own size makes the peak
        raise ConfigError(f"this run needs at least {human(peak.bytes)} of memory (its {blame.name} alone "
                          f"{human(blame.own)}), but {human(budget)} is {source}; lower {blame.settings}")
    return peak.bytes
