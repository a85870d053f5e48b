"""The rasteriser interface: nvdiffrast's rasterize / interpolate / antialias contract.

Every backend (nvdiffrast on CUDA, the CPU rasteriser) implements these three calls with the same
tensor layouts, so either can be swapped in and the CPU one checked against nvdiffrast on a GPU.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class RasterBackend(Protocol):
    """Layouts (nvdiffrast's):

    - ``verts_clip``: (B, V, 4) clip-space positions (OpenGL convention, NDC in [-1, 1],
      y up, depth z/w in [-1, 1]); ``faces``: (F, 3) int32.
    - ``rast``: (B, H, W, 4) = (u, v, z/w, triangle_id + 1), triangle_id + 1 = 0 where empty;
      row 0 is the bottom of the image (y = -1), as nvdiffrast returns it.
    """

    name: str

    def rasterize(
        self, verts_clip: torch.Tensor, faces: torch.Tensor, resolution: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """-> (rast (B, H, W, 4), rast_db or None)."""
        ...

    def interpolate(
        self, attr: torch.Tensor, rast: torch.Tensor, faces: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """attr (B, V, C) or (1, V, C) -> (B, H, W, C) barycentric interpolation, and derivatives or None."""
        ...

    def antialias(
        self, color: torch.Tensor, rast: torch.Tensor, verts_clip: torch.Tensor, faces: torch.Tensor
    ) -> torch.Tensor:
        """Silhouette-edge antialiasing of (B, H, W, C) colour; carries gradients to vertex positions."""
        ...
