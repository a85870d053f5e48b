"""A tetrahedral grid generated in code: a cube of ``resolution``^3 cells, each split into 6 tetrahedra.

The split is the Kuhn (Freudenthal) triangulation: tetrahedron k of a cell follows the path from corner
(0, 0, 0) to (1, 1, 1) that steps along the axes in the k-th of the 6 axis orders. Every cell uses the same
split, so neighbouring cells cut their shared face along the same diagonal and the grid is conforming.
All tetrahedra are positively oriented (det[v1 - v0, v2 - v0, v3 - v0] > 0), which the marching-tetrahedra
table relies on for consistent outward faces.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch


@dataclass
class TetGrid:
    """vertices (Nv, 3) in [-radius, radius]^3 with Nv = (resolution + 1)^3; tets (Nt, 4) long with
    Nt = 6 * resolution^3; cell_size = 2 * radius / resolution."""

    vertices: torch.Tensor
    tets: torch.Tensor
    resolution: int
    radius: float

    @property
    def cell_size(self) -> float:
        return 2 * self.radius / self.resolution

    def edges(self) -> torch.Tensor:
        """(Ne, 2) long, every grid edge once (lower vertex index first)."""
        pairs = self.tets[:, [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]]].reshape(-1, 2)
        pairs, _ = pairs.sort(dim=1)
        return torch.unique(pairs, dim=0)


def _kuhn_templates() -> torch.Tensor:
    """(6, 4, 3) corner offsets of the 6 tetrahedra of a unit cell, all positively oriented."""
    out = []
    for order in itertools.permutations(range(3)):
        corner = [0, 0, 0]
        verts = [tuple(corner)]
        for axis in order:
            corner[axis] = 1
            verts.append(tuple(corner))
        t = torch.tensor(verts, dtype=torch.float64)
        if torch.det(t[1:] - t[0]) < 0:
            t = t[[0, 2, 1, 3]]
        out.append(t)
    return torch.stack(out).long()


def tet_grid(resolution: int, radius: float = 1.0, device: str | torch.device = "cpu",
             dtype: torch.dtype = torch.float32) -> TetGrid:
    """The grid over [-radius, radius]^3 with ``resolution`` cells per side (recon uses 32-128)."""
    if resolution < 1:
        raise ValueError(f"tet grid resolution must be >= 1, got {resolution}")
    n = resolution + 1
    axis = torch.linspace(-radius, radius, n, dtype=torch.float64)
    gx, gy, gz = torch.meshgrid(axis, axis, axis, indexing="ij")
    vertices = torch.stack([gx, gy, gz], dim=-1).reshape(-1, 3).to(device=device, dtype=dtype)
    cells = torch.arange(resolution, device=device)
    # Flat index of each cell's (0, 0, 0) corner, plus the flat offsets of the 24 template corners.
    base = ((cells[:, None, None] * n + cells[None, :, None]) * n + cells[None, None, :]).reshape(-1, 1)
    t = _kuhn_templates().to(device)
    offsets = ((t[..., 0] * n + t[..., 1]) * n + t[..., 2]).reshape(1, -1)  # (1, 24)
    return TetGrid(vertices, (base + offsets).reshape(-1, 4), resolution, float(radius))
