"""Independent oracle for the stage-1 photometric test: an analytic ray cast of a coloured box and the
Chamfer distance of a mesh to the exact box surface. Nothing here uses recon's renderer."""

from __future__ import annotations

import numpy as np
import torch
import trimesh
from scipy.spatial import cKDTree

HALF = torch.tensor([0.45, 0.3, 0.25])  # the true shape: a box with these half-extents, centred at the origin

# One colour per face: index 2 · axis + (1 if the face is on the + side).
FACE_COLORS = torch.tensor([
    [0.9, 0.2, 0.2], [0.2, 0.8, 0.3], [0.2, 0.3, 0.9], [0.9, 0.8, 0.2], [0.8, 0.3, 0.8], [0.2, 0.8, 0.8],
])


def cast(origins: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Slab-test ray cast of the box: rays (..., 3) -> (rgb (..., 3) on white, hit (...,) bool)."""
    half = HALF.to(origins.dtype)
    inv = 1.0 / directions
    t0 = (-half - origins) * inv
    t1 = (half - origins) * inv
    t_near = torch.minimum(t0, t1).amax(-1)
    t_far = torch.maximum(t0, t1).amin(-1)
    hit = (t_far > t_near) & (t_near > 0)
    p = origins + t_near[..., None] * directions
    axis = (p.abs() / half).argmax(-1)
    positive = torch.gather(p, -1, axis[..., None])[..., 0] > 0
    color = FACE_COLORS.to(origins.dtype)[axis * 2 + positive.long()]
    rgb = torch.where(hit[..., None], color, torch.ones_like(color))
    return rgb, hit


def distance_to_box(points: np.ndarray) -> np.ndarray:
    """Exact unsigned distance of points (N, 3) to the box surface."""
    q = np.abs(points) - HALF.numpy()
    outside = np.linalg.norm(np.maximum(q, 0.0), axis=-1)
    inside = np.minimum(q.max(-1), 0.0)
    return np.abs(outside + inside)


def chamfer_to_box(vertices: np.ndarray, faces: np.ndarray, n: int = 30_000) -> float:
    """Symmetric mean Chamfer distance between a mesh and the box surface: exact point-to-box distance of
    mesh samples one way, nearest dense mesh sample of box samples the other way."""
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    pts = np.asarray(mesh.sample(n, seed=0))
    box = trimesh.creation.box(extents=(2 * HALF).numpy())
    gt = np.asarray(box.sample(n, seed=1))
    to_box = distance_to_box(pts).mean()
    to_mesh = cKDTree(pts).query(gt)[0].mean()
    return float(to_box + to_mesh) / 2
