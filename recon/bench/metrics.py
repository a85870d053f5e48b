"""Ground-truth metrics of the toy-world benchmark: point-set distances between meshes and image scores.

Definitions (also in ``docs/toy-world-benchmark.md``):

- **Surface samples**: n points uniform by area on a mesh (:func:`surface_points`). For a library
  member (a union of overlapping primitives) the points that lie inside another part are dropped
  (:func:`outer_surface_points`): only the outer surface is seen and can be reconstructed.
- **Chamfer-L1** (:func:`chamfer_l1`): ½ (mean_a min_b ‖a − b‖ + mean_b min_a ‖b − a‖), Euclidean (not
  squared) distances in world units, exact nearest neighbours (scipy's KD-tree).
- **F-score@τ** (:func:`fscore`): precision = share of a's points within τ of b, recall = share of b's
  points within τ of a, F = 2PR / (P + R) (0 when both are 0).
- **Nearest member / coverage** (:func:`nearest_members`, :func:`coverage`): each hypothesis is assigned
  the family member at the smallest Chamfer-L1; coverage = number of distinct members assigned.
- **Diversity** (:func:`mean_pairwise`): mean Chamfer-L1 over the K (K − 1) / 2 hypothesis pairs.
- **PSNR / mask IoU** (:func:`psnr`, :func:`mask_iou`) at the input view, against the input.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from recon.render.masks import mask_iou  # noqa: F401  (the bench's input-view IoU, M.mask_iou)
from recon.scene.mesh import Mesh


def surface_samples(mesh: Mesh, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n points uniform by area on ``mesh`` and the face each lies on: ((n, 3) float64, (n,) int64).

    Deterministic for a given mesh and ``seed`` (numpy's PCG64), so a mesh always gives the same points.
    """
    v = mesh.vertices.detach().cpu().double().numpy()
    f = mesh.faces.detach().cpu().numpy()
    if len(f) == 0:
        raise ValueError("cannot sample points on a mesh with no faces")
    tri = v[f]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=-1)
    if not area.sum() > 0:
        raise ValueError("cannot sample points on a mesh of zero area")
    rng = np.random.default_rng(seed)
    face = rng.choice(len(f), size=n, p=area / area.sum())
    r1, r2 = rng.random(n), rng.random(n)
    s = np.sqrt(r1)
    b0, b1 = 1 - s, s * (1 - r2)
    t = tri[face]
    pts = b0[:, None] * t[:, 0] + b1[:, None] * t[:, 1] + (1 - b0 - b1)[:, None] * t[:, 2]
    return pts, face


def surface_points(mesh: Mesh, n: int, seed: int = 0) -> np.ndarray:
    """(n, 3) float64 points uniform by area on ``mesh`` (see :func:`surface_samples`)."""
    return surface_samples(mesh, n, seed)[0]


def winding_number(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Generalised winding number of closed triangle mesh (vertices (V, 3), faces (F, 3)) at points (N, 3):
    ≈ 1 inside, ≈ 0 outside, independent of face orientation's sign convention up to a global sign
    (Van Oosterom & Strackee's solid angle per triangle, summed, / 4π)."""
    tri = np.asarray(vertices, np.float64)[np.asarray(faces)]  # (F, 3, 3)
    out = np.empty(len(points))
    chunk = max(1, 2_000_000 // max(len(tri), 1))  # bounds the (chunk, F, 3, 3) temporaries
    for i in range(0, len(points), chunk):
        p = np.asarray(points[i:i + chunk], np.float64)
        r = tri[None] - p[:, None, None, :]  # (n, F, 3, 3)
        a, b, c = r[:, :, 0], r[:, :, 1], r[:, :, 2]
        la, lb, lc = (np.linalg.norm(v, axis=-1) for v in (a, b, c))
        det = np.einsum("nfi,nfi->nf", a, np.cross(b, c))
        den = (la * lb * lc + np.einsum("nfi,nfi->nf", a, b) * lc + np.einsum("nfi,nfi->nf", b, c) * la
               + np.einsum("nfi,nfi->nf", c, a) * lb)
        out[i:i + chunk] = 2 * np.arctan2(det, den).sum(1) / (4 * np.pi)
    return np.abs(out)


def mesh_parts(mesh: Mesh) -> list[tuple[np.ndarray, np.ndarray]]:
    """Connected parts of ``mesh`` after merging coincident vertices: [(vertices (V, 3), faces (F, 3))]."""
    import trimesh

    tm = trimesh.Trimesh(mesh.vertices.detach().cpu().double().numpy(), mesh.faces.cpu().numpy(), process=False)
    tm.merge_vertices(digits_vertex=6)
    return [(np.asarray(p.vertices), np.asarray(p.faces)) for p in tm.split(only_watertight=False)]


def outer_surface_points(mesh: Mesh, n: int, seed: int = 0, offset: float = 1e-4) -> np.ndarray:
    """(≤ n, 3) surface samples of a union of closed, outward-facing parts, keeping only the outer surface.

    Each sample is pushed ``offset`` along its face's outward normal; it is hidden (dropped) when that
    point lies inside any part (winding number > ½). This removes a part's surface inside another part
    and the faces where two parts touch flush, which the pushed point enters.
    """
    pts, face = surface_samples(mesh, n, seed)
    parts = mesh_parts(mesh)
    if len(parts) < 2:
        return pts
    normals = mesh.face_normals().detach().cpu().double().numpy()[face]
    probe = pts + offset * normals
    inside = np.zeros(len(pts), bool)
    for v, f in parts:
        inside |= winding_number(probe, v, f) > 0.5
    return pts[~inside]


def nn_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a),) distance from each point of a to its nearest point of b."""
    from scipy.spatial import cKDTree

    return cKDTree(b).query(a, k=1)[0]


def chamfer_l1(a: np.ndarray, b: np.ndarray) -> float:
    """½ (mean_a min_b ‖a − b‖ + mean_b min_a ‖b − a‖)."""
    return 0.5 * (float(nn_distances(a, b).mean()) + float(nn_distances(b, a).mean()))


def fscore(pred: np.ndarray, gt: np.ndarray, tau: float) -> float:
    """F-score at distance ``tau`` between predicted and ground-truth point sets (see the module docstring)."""
    precision = float((nn_distances(pred, gt) < tau).mean())
    recall = float((nn_distances(gt, pred) < tau).mean())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def chamfer_matrix(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> np.ndarray:
    """(len(a), len(b)) Chamfer-L1 between every pair."""
    return np.array([[chamfer_l1(x, y) for y in b] for x in a])


def nearest_members(dist: np.ndarray) -> np.ndarray:
    """(K,) index of the nearest member for each hypothesis, from a (K, M) distance matrix (first on ties)."""
    return np.asarray(dist).argmin(axis=1)


def coverage(assignment: Sequence[int]) -> int:
    """How many distinct members the hypotheses are assigned to."""
    return len(set(int(i) for i in assignment))


def mean_pairwise(dist: np.ndarray) -> float:
    """Mean of the strictly upper triangle of a symmetric (K, K) distance matrix (0 for K < 2)."""
    d = np.asarray(dist)
    k = d.shape[0]
    if k < 2:
        return 0.0
    iu = np.triu_indices(k, 1)
    return float(d[iu].mean())


def psnr(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor, peak: float = 1.0) -> float:
    """10 log10(peak² / MSE) over all values; inf for identical images."""
    x = torch.as_tensor(a, dtype=torch.float64)
    y = torch.as_tensor(b, dtype=torch.float64)
    if x.shape != y.shape:
        raise ValueError(f"PSNR of images of different shapes {tuple(x.shape)} and {tuple(y.shape)}")
    mse = float(((x - y) ** 2).mean())
    return float("inf") if mse == 0 else 10 * float(np.log10(peak**2 / mse))


