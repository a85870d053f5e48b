"""Analytic oracles for the rasteriser tests: slab ray casts against boxes, edge bands, rotations."""

from __future__ import annotations

import torch


def ray_box(origins: torch.Tensor, dirs: torch.Tensor, half: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
    """Slab-method ray cast against the box |R^T p| <= half (float64). Returns t (...,) of the first hit in
    front of the origin, +inf where the ray misses."""
    o = origins.double() @ rot.double()  # world -> box frame: p_box = R^T p (row vectors: p @ R)
    d = dirs.double() @ rot.double()
    inv = 1 / d
    t0 = (-half.double() - o) * inv
    t1 = (half.double() - o) * inv
    tmin = torch.minimum(t0, t1).max(-1).values
    tmax = torch.maximum(t0, t1).min(-1).values
    hit = (tmax >= tmin) & (tmax > 0)
    t = torch.where(tmin > 0, tmin, tmax)
    return torch.where(hit, t, torch.full_like(t, float("inf")))


def boundary_band(mask: torch.Tensor) -> torch.Tensor:
    """(B, H, W) bool -> pixels whose 3x3 neighbourhood holds both values (within one pixel of an edge)."""
    m = mask.double()[:, None]
    pooled_max = torch.nn.functional.max_pool2d(m, 3, 1, 1)
    pooled_min = -torch.nn.functional.max_pool2d(-m, 3, 1, 1)
    return (pooled_max != pooled_min)[:, 0]


def rotation(axis_angle: tuple[float, float, float]) -> torch.Tensor:
    """(3, 3) rotation matrix from an axis-angle vector (Rodrigues)."""
    v = torch.tensor(axis_angle, dtype=torch.float64)
    theta = v.norm()
    k = v / theta
    kx = torch.tensor([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]], dtype=torch.float64)
    return torch.eye(3, dtype=torch.float64) + torch.sin(theta) * kx + (1 - torch.cos(theta)) * kx @ kx
