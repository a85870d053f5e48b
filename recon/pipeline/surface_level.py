"""Where a DMTet surface starts from a stage-1 field: the density level whose surface's silhouettes match."""

from __future__ import annotations

from collections.abc import Callable

import torch

from recon.render.backend import RasterBackend
from recon.render.cameras import Cameras
from recon.render.mesh_render import render_mesh
from recon.scene.dmtet import DMTet

DensityFn = Callable[[torch.Tensor], torch.Tensor]

# Candidate DMTet levels, as fractions of the field's largest density on the tet grid.
LEVEL_FRACTIONS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.65)


@torch.no_grad()
def density_max(geometry: DMTet, density_fn: DensityFn) -> float:
    """The largest density of ``density_fn`` on the tet grid's vertices."""
    return float(density_fn(geometry.grid_vertices).max())


@torch.no_grad()
def best_level(geometry: DMTet, density_fn: DensityFn, cameras: Cameras, masks: torch.Tensor,
               backend: RasterBackend, top: float | None = None) -> float | None:
    """The density level whose DMTet surface's silhouettes best match ``masks`` (IoU over all views).

    Args:
        cameras: N cameras at the masks' resolution.
        masks: (N, H, W) bool target silhouettes (the input mask; or the stage-1 field's opacity).
        top: the field's largest density on the grid (computed when None).
    Returns the best of ``top × LEVEL_FRACTIONS``, or None when no level gives a surface. Coarse
    fields differ in scale from run to run (softplus densities of a few units to tens), so a fixed
    level either swallows the object or tears holes in it; the silhouettes decide.
    """
    top = density_max(geometry, density_fn) if top is None else top
    if top <= 0:
        return None
    best, best_iou = None, -1.0
    for level in (top * f for f in LEVEL_FRACTIONS):
        try:
            geometry.init_from_density(density_fn, level, redistance=False)
        except ValueError:
            continue
        mesh = geometry.extract()
        if mesh.num_faces == 0:
            continue
        sil = render_mesh(mesh, cameras, backend, antialias=False).mask[:, 0]
        iou = float((sil & masks).sum()) / max(float((sil | masks).sum()), 1.0)
        if iou > best_iou + 1e-3:
            best, best_iou = level, iou
    return best
