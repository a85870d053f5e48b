"""Pick a rasteriser backend: ``auto`` (nvdiffrast where CUDA and nvdiffrast are present, else CPU),
``cpu`` or ``cuda``."""

from __future__ import annotations

from typing import Literal

import torch

from recon.render.backend import RasterBackend
from recon.render.cpu import CpuRasterizer

BackendName = Literal["auto", "cpu", "cuda"]


def nvdiffrast_available() -> bool:
    """True where CUDA is present and nvdiffrast imports."""
    if not torch.cuda.is_available():
        return False
    try:
        import nvdiffrast.torch  # noqa: F401
    except ImportError:
        return False
    return True


def select_backend(name: str = "auto", device: str | torch.device | None = None) -> RasterBackend:
    """A backend by name. ``cuda`` fails with one clear line where CUDA or nvdiffrast is missing."""
    if name == "cpu":
        return CpuRasterizer()
    if name == "cuda" or (name == "auto" and nvdiffrast_available()):
        from recon.render.nvdiffrast_backend import NvdiffrastRasterizer

        return NvdiffrastRasterizer(device or "cuda")
    if name == "auto":
        return CpuRasterizer()
    raise ValueError(f"unknown rasteriser backend {name!r}; use auto, cpu or cuda")
