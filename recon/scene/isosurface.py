"""Marching cubes on a density field (PyMCubes), with enclosed cavities filled first.

A NeRF fitted to images only needs an opaque shell: space behind the visible surface gets no
gradient and keeps whatever density it started with, so a level set of σ often has inner walls
around pockets of low density. :func:`fill_cavities` marks every below-threshold voxel that is not
connected to the border of the grid as inside before the surface is extracted, so the mesh is the
outer surface only. The shell of a coarse field has pinholes that would connect a pocket to the
outside, so the inside set is first closed morphologically (``close`` voxels), which also fills
concave gaps narrower than about twice that.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

# Imported with the module, not at first use: a first import that a Ctrl-C interrupts half way leaves
# scipy.ndimage unimportable for the rest of the process (seen as a NameError inside scipy).
from scipy import ndimage

from recon.scene.mesh import Mesh


def grid_points(radius: float, resolution: int) -> torch.Tensor:
    """(R, R, R, 3) world points on a regular grid over ``[-radius, radius]³``, indexed [ix, iy, iz]."""
    c = torch.linspace(-radius, radius, resolution)
    return torch.stack(torch.meshgrid(c, c, c, indexing="ij"), dim=-1)


@torch.no_grad()
def density_volume(density_fn: Callable[[torch.Tensor], torch.Tensor], radius: float, resolution: int) -> np.ndarray:
    """σ on :func:`grid_points` as a float64 (R, R, R) array."""
    pts = grid_points(radius, resolution).reshape(-1, 3)
    return density_fn(pts).reshape(resolution, resolution, resolution).double().cpu().numpy()


def fill_cavities(volume: np.ndarray, threshold: float, close: int = 2) -> np.ndarray:
    """Raise below-threshold voxels that are enclosed (not connected to the grid border) above it.

    ``close``: iterations of binary closing applied to the inside set first (0 = none), bridging
    holes in the shell up to about twice that many voxels wide.
    """
    inside = volume > threshold
    closed = ndimage.binary_closing(inside, iterations=close) if close > 0 else inside
    solid = ndimage.binary_fill_holes(closed)
    out = volume.copy()
    holes = solid & ~inside
    # Any value above the threshold works; twice it keeps the walls of a filled pocket well inside.
    out[holes] = max(2.0 * threshold, threshold + 1.0)
    return out


def solid_density_fn(
    density_fn: Callable[[torch.Tensor], torch.Tensor],
    threshold: float,
    radius: float = 1.0,
    resolution: int = 128,
    close: int = 2,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``density_fn`` sampled on a grid, cavities filled (:func:`fill_cavities`), read back by trilinear
    interpolation: points (..., 3) -> σ (...). Zero outside the cube.

    For surface initialisers that take a density and a threshold (e.g. DMTet): the level set of the
    result at ``threshold`` is the outer surface only, without the inner walls of a NeRF's pockets.
    """
    import torch.nn.functional as F

    vol = torch.as_tensor(fill_cavities(density_volume(density_fn, radius, resolution), threshold, close),
                          dtype=torch.float32)
    # grid_sample wants (N, C, D, H, W) with grid x -> W, y -> H, z -> D; the volume is [ix, iy, iz].
    vol = vol.permute(2, 1, 0)[None, None]

    def call(points: torch.Tensor) -> torch.Tensor:
        pts = points.reshape(1, 1, 1, -1, 3).to(vol) / radius
        out = F.grid_sample(vol, pts, mode="bilinear", padding_mode="zeros", align_corners=True)
        return out.reshape(points.shape[:-1]).to(points.dtype)

    return call


def extract_mesh(
    density_fn: Callable[[torch.Tensor], torch.Tensor],
    threshold: float,
    radius: float = 1.0,
    resolution: int = 128,
    color_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
    fill: bool = True,
    close: int = 2,
) -> Mesh:
    """The surface σ = ``threshold`` as a :class:`Mesh` (faces counter-clockwise seen from outside).

    Args:
        density_fn: points (N, 3) -> σ (N,).
        threshold: density level of the surface.
        radius, resolution: the sampling grid over ``[-radius, radius]³``.
        color_fn: optional points (N, 3) -> albedo (N, 3), sampled at the vertices.
        fill: fill enclosed cavities first (:func:`fill_cavities`), after ``close`` closing steps.
    Returns:
        the mesh; empty (0 vertices) when no voxel crosses the threshold.
    """
    import mcubes

    vol = density_volume(density_fn, radius, resolution)
    if fill:
        vol = fill_cavities(vol, threshold, close)
    # Pad with "outside" so surfaces touching the border close instead of leaving holes.
    low = min(float(vol.min()), threshold) - 1.0
    vol = np.pad(vol, 1, constant_values=low)
    verts, faces = mcubes.marching_cubes(vol, threshold)
    verts = (verts - 1.0) / (resolution - 1) * 2 * radius - radius
    # PyMCubes already winds faces counter-clockwise seen from the low (outside) side; the tests check it.
    v = torch.as_tensor(verts, dtype=torch.float32)
    f = torch.as_tensor(faces.astype(np.int64))
    colors = None
    if color_fn is not None and v.shape[0] > 0:
        with torch.no_grad():
            colors = color_fn(v).float().clamp(0, 1)
    return Mesh(v, f, vertex_colors=colors)
