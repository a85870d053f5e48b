"""Compiled (numba) generalised winding numbers: point × triangle solid angles summed per component.

The NumPy version built (points, triangles, 3) temporaries chunk by chunk; on the quick start's exports it was
71 % of a one-thread export (docs/benchmarks.md). One fused loop needs no temporaries and releases the GIL, so
export threads run it side by side.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def winding_sums(tri, labels, pts, n):  # pragma: no cover - compiled
    """tri (F, 3, 3) float64, labels (F,) int64 in [0, n), pts (P, 3) float64 -> (P, n) winding numbers
    (Van Oosterom and Strackee's solid angle of each triangle, summed per label, over 4π / 2)."""
    out = np.zeros((pts.shape[0], n))
    for p in range(pts.shape[0]):
        px, py, pz = pts[p, 0], pts[p, 1], pts[p, 2]
        for f in range(tri.shape[0]):
            ax, ay, az = tri[f, 0, 0] - px, tri[f, 0, 1] - py, tri[f, 0, 2] - pz
            bx, by, bz = tri[f, 1, 0] - px, tri[f, 1, 1] - py, tri[f, 1, 2] - pz
            cx, cy, cz = tri[f, 2, 0] - px, tri[f, 2, 1] - py, tri[f, 2, 2] - pz
            la = math.sqrt(ax * ax + ay * ay + az * az)
            lb = math.sqrt(bx * bx + by * by + bz * bz)
            lc = math.sqrt(cx * cx + cy * cy + cz * cz)
            num = ax * (by * cz - bz * cy) + ay * (bz * cx - bx * cz) + az * (bx * cy - by * cx)
            den = (la * lb * lc + (ax * bx + ay * by + az * bz) * lc + (ax * cx + ay * cy + az * cz) * lb
                   + (bx * cx + by * cy + bz * cz) * la)
            out[p, labels[f]] += math.atan2(num, den)
    return out / (2 * math.pi)
