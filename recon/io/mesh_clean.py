"""Mesh clean-up, floater removal, closing and decimation before export (numpy in, numpy out).

**Floaters** (docs/meshes.md). A connected component is a set of faces joined through shared edges.
The *body* is the component with the largest surface area. A component is *attached* when its surface
comes within ``attach_distance`` × (the body's bounding-box diagonal) of a kept component; attachment
is transitive (a part touching an attached part is kept too). Everything that is not the body or
attached is a floater and is dropped, however large; so a thin part that touches the body — a handle,
a leg, a rod glued on as a separate shell — is kept, and a blob hovering beside it is not. Of the kept
components, "dust" with fewer than ``min_component_faces`` faces or less than
``min_component_area_fraction`` of the kept area is dropped as well. Distances are measured between
surface samples spaced at most ``attach_distance / 2`` of the diagonal apart (plus every vertex), so
the rule holds to within half its tolerance.

**Closing** uses trimesh (already a dependency; MIT, maintained, the library recon reads and writes
meshes with): edges shared by more than two faces lose those faces (:func:`split_nonmanifold_edges`),
then boundary loops of at most ``max_hole_edges`` edges are filled by ``trimesh.repair.fill_holes``
(fans, wound against the hole's rim) and the winding is made consistent (``trimesh.repair.fix_winding``).
pymeshlab has richer repair filters but is GPL-3 and ~100 MB; manifold3d (Apache-2.0) only accepts
meshes that are already closed 2-manifolds, so it can check but not repair one.

Decimation uses ``fast-simplification`` (MIT; the Fast-Quadric-Mesh-Simplification library, which
trimesh's ``simplify_quadric_decimation`` wraps): a small wheel, quadric error metric.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import trimesh
from scipy.spatial import cKDTree


@dataclass
class CleanConfig:
    """``merge_digits``: vertices equal to this many decimals are merged (marching tetrahedra emits one
    vertex per cut edge per tet, so coincident copies are common). ``attach_distance``: gap, as a
    fraction of the body's bounding-box diagonal, under which a component counts as attached (see the
    module docstring for the whole rule). Kept components with fewer than ``min_component_faces``
    faces or less than ``min_component_area_fraction`` of the kept area are dropped as dust.
    ``close``: fill holes of at most ``max_hole_edges`` boundary edges and split non-manifold edges."""

    merge_digits: int = 8
    min_component_faces: int = 8
    min_component_area_fraction: float = 0.0
    attach_distance: float = 0.01
    close: bool = True
    max_hole_edges: int = 64

    def __post_init__(self) -> None:
        from recon.config import ConfigError

        if not 0.0 <= float(self.attach_distance) <= 1.0:
            raise ConfigError(f"export.clean.attach_distance: {self.attach_distance!r} is outside [0, 1] "
                              "(a fraction of the body's bounding-box diagonal)")
        if not 0.0 <= float(self.min_component_area_fraction) <= 1.0:
            raise ConfigError(f"export.clean.min_component_area_fraction: {self.min_component_area_fraction!r} "
                              "is outside [0, 1]")
        if self.max_hole_edges < 0 or self.min_component_faces < 0:
            raise ConfigError("export.clean.max_hole_edges and min_component_faces must be at least 0")


@dataclass
class CleanReport:
    """What :func:`clean_mesh` and :func:`close_mesh` changed and found (figures for docs and tests)."""

    components: int = 0
    floaters: int = 0
    floater_faces: int = 0
    floater_area_fraction: float = 0.0
    dust: int = 0
    nonmanifold_edges: int = 0
    holes_filled: int = 0
    holes_left: int = 0
    boundary_edges: int = 0
    euler: int = 0
    closed: bool = False
    hole_sizes: list[int] = field(default_factory=list)


def clean_mesh(vertices: np.ndarray, faces: np.ndarray, config: CleanConfig | None = None,
               report: CleanReport | None = None) -> tuple[np.ndarray, np.ndarray]:
    """vertices (V, 3), faces (F, 3) -> cleaned (V', 3) float64, (F', 3) int64.

    Merges coincident vertices, drops degenerate (zero-area or repeated-index) and duplicate faces,
    floaters and dust (:func:`keep_attached`) and unreferenced vertices. Face winding is kept.
    """
    config = config or CleanConfig()
    mesh = _merged(vertices, faces, config.merge_digits)
    if len(mesh.faces) == 0:
        return np.zeros((0, 3)), np.zeros((0, 3), np.int64)
    keep = keep_attached(mesh, config, report)
    if not keep.all():
        mesh.update_faces(keep)
        mesh.remove_unreferenced_vertices()
    return np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64)


def _merged(vertices: np.ndarray, faces: np.ndarray, digits: int) -> trimesh.Trimesh:
    mesh = trimesh.Trimesh(np.asarray(vertices, np.float64), np.asarray(faces, np.int64), process=False)
    mesh.merge_vertices(digits_vertex=digits)
    mesh.update_faces(mesh.nondegenerate_faces(height=1e-12))
    mesh.update_faces(mesh.unique_faces())
    mesh.remove_unreferenced_vertices()
    return mesh


def component_labels(mesh: trimesh.Trimesh) -> np.ndarray:
    """(F,) int: connected component of each face (faces joined by shared edges), 0..n-1."""
    return trimesh.graph.connected_component_labels(mesh.face_adjacency, node_count=len(mesh.faces))


def keep_attached(mesh: trimesh.Trimesh, config: CleanConfig | None = None,
                  report: CleanReport | None = None) -> np.ndarray:
    """(F,) bool: faces of the body, of the components attached to it, minus dust (module docstring)."""
    config = config or CleanConfig()
    labels = component_labels(mesh)
    n = int(labels.max()) + 1
    counts = np.bincount(labels, minlength=n)
    areas = np.bincount(labels, weights=mesh.area_faces, minlength=n)
    body = int(np.argmax(areas))
    kept = np.zeros(n, bool)
    kept[body] = True
    if n > 1:
        lo, hi = _bounds(mesh, labels == body)
        tol = config.attach_distance * float(np.linalg.norm(hi - lo))
        kept = _attached(mesh, labels, n, body, tol)
    dust = kept & ((counts < config.min_component_faces)
                   | (areas < config.min_component_area_fraction * areas[kept].sum()))
    dust[body] = False
    if report is not None:
        floaters = ~kept
        report.components = n
        report.floaters = int(floaters.sum())
        report.floater_faces = int(counts[floaters].sum())
        report.floater_area_fraction = float(areas[floaters].sum() / max(areas.sum(), 1e-30))
        report.dust = int(dust.sum())
    return (kept & ~dust)[labels]


def _bounds(mesh: trimesh.Trimesh, face_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pts = mesh.vertices[np.unique(mesh.faces[face_mask])]
    return pts.min(0), pts.max(0)


def _surface_points(mesh: trimesh.Trimesh, face_mask: np.ndarray, spacing: float,
                    max_points: int = 200_000) -> np.ndarray:
    """Every vertex of the masked faces plus area-uniform samples about ``spacing`` apart (seeded)."""
    faces = mesh.faces[face_mask]
    verts = mesh.vertices[np.unique(faces)]
    area = float(mesh.area_faces[face_mask].sum())
    count = int(min(max_points, np.ceil(area / max(spacing, 1e-12) ** 2)))
    if count <= 0 or area <= 0:
        return verts
    sub = trimesh.Trimesh(mesh.vertices, faces, process=False)
    samples, _ = trimesh.sample.sample_surface(sub, count, seed=0)
    return np.vstack([verts, samples])


def _attached(mesh: trimesh.Trimesh, labels: np.ndarray, n: int, body: int, tol: float) -> np.ndarray:
    """(n,) bool: components reachable from ``body`` through gaps of at most ``tol``."""
    spacing = tol / 2
    boxes = [_bounds(mesh, labels == c) for c in range(n)]
    points: dict[int, np.ndarray] = {}
    trees: dict[int, cKDTree] = {}

    def pts(c: int) -> np.ndarray:
        if c not in points:
            points[c] = _surface_points(mesh, labels == c, spacing)
        return points[c]

    def touches(a: int, b: int) -> bool:
        (alo, ahi), (blo, bhi) = boxes[a], boxes[b]
        if np.any(alo - bhi > tol) or np.any(blo - ahi > tol):
            return False
        if a not in trees:
            trees[a] = cKDTree(pts(a))
        d, _ = trees[a].query(pts(b), k=1, distance_upper_bound=tol)
        return bool(np.isfinite(d).any())

    kept = np.zeros(n, bool)
    kept[body] = True
    frontier = [body]
    while frontier:
        a = frontier.pop()
        for b in np.flatnonzero(~kept):
            if touches(a, int(b)):
                kept[b] = True
                frontier.append(int(b))
    return kept


def split_nonmanifold_edges(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, int]:
    """faces without every face that sits on an edge shared by more than two faces; -> (faces, edges)."""
    f = np.asarray(faces, np.int64)
    if len(f) == 0:
        return f, 0
    edges = np.sort(f[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    _, inverse, counts = np.unique(edges, axis=0, return_inverse=True, return_counts=True)
    bad = counts[inverse.ravel()] > 2
    n_bad = int((counts > 2).sum())
    return f[~bad.reshape(-1, 3).any(1)], n_bad


def boundary_loops(faces: np.ndarray) -> list[int]:
    """Edge count of each boundary loop (cycles of edges used by exactly one face)."""
    import networkx as nx

    f = np.asarray(faces, np.int64)
    edges = np.sort(f[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    uniq, counts = np.unique(edges, axis=0, return_counts=True)
    boundary = uniq[counts == 1]
    if len(boundary) == 0:
        return []
    return sorted(len(c) for c in nx.cycle_basis(nx.from_edgelist(boundary.tolist())))


def close_mesh(vertices: np.ndarray, faces: np.ndarray, config: CleanConfig | None = None,
               report: CleanReport | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Split non-manifold edges and fill holes of at most ``config.max_hole_edges`` edges with trimesh
    (module docstring); winding made consistent. -> (vertices, faces); ``report`` gets the counts,
    the Euler characteristic and whether the result is closed (every edge shared by exactly two faces)."""
    config = config or CleanConfig()
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    n_bad = 0
    filled = 0
    if config.close and len(f):
        for _ in range(4):  # removing a fan can expose another non-manifold edge; rarely more than one pass
            f, bad = split_nonmanifold_edges(v, f)
            n_bad += bad
            mesh = trimesh.Trimesh(v, f, process=False)
            loops = boundary_loops(mesh.faces)
            small = [s for s in loops if s <= config.max_hole_edges]
            if small:
                before = len(mesh.faces)
                _fill_small_holes(mesh, config.max_hole_edges)
                filled += len(small) if len(mesh.faces) > before else 0
            trimesh.repair.fix_winding(mesh)
            mesh.remove_unreferenced_vertices()
            v, f = np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64)
            if not bad:
                break
    mesh = trimesh.Trimesh(v, f, process=False)
    if report is not None:
        loops = boundary_loops(f) if len(f) else []
        report.nonmanifold_edges += n_bad
        report.holes_filled += filled
        report.holes_left = len(loops)
        report.hole_sizes = loops
        report.boundary_edges = int(sum(loops))
        report.euler = int(mesh.euler_number) if len(f) else 0
        report.closed = bool(len(f)) and bool(mesh.is_watertight)
    return v, f


def _fill_small_holes(mesh: trimesh.Trimesh, max_edges: int) -> None:
    """trimesh.repair.fill_holes on the loops of at most ``max_edges`` edges (larger ones stay open)."""
    if all(s <= max_edges for s in boundary_loops(mesh.faces)):
        trimesh.repair.fill_holes(mesh, use_fan=True)
        return
    # fill_holes fills every loop; fill a copy and keep only the new faces whose rim loop is small.
    import networkx as nx

    f = mesh.faces
    edges = np.sort(f[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    uniq, counts = np.unique(edges, axis=0, return_counts=True)
    boundary = uniq[counts == 1]
    small = set()
    for cycle in nx.cycle_basis(nx.from_edgelist(boundary.tolist())):
        if len(cycle) <= max_edges:
            small.update(cycle)
    n0 = len(mesh.faces)
    trimesh.repair.fill_holes(mesh, use_fan=True)
    new = mesh.faces[n0:]
    keep = np.ones(len(mesh.faces), bool)
    keep[n0:] = np.isin(new, list(small)).all(1)
    mesh.update_faces(keep)


def decimate(vertices: np.ndarray, faces: np.ndarray, target_faces: int,
             aggression: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Quadric decimation to at most ``target_faces`` faces; a mesh already at or below it is returned as is.

    The library can stop a face or two above its target; the target is lowered until the result fits.
    """
    if target_faces < 4:
        raise ValueError(f"target_faces must be at least 4, got {target_faces}")
    if len(faces) <= target_faces:
        return np.asarray(vertices, np.float64), np.asarray(faces, np.int64)
    from fast_simplification import simplify

    goal = target_faces
    for _ in range(8):
        v, f = simplify(np.asarray(vertices, np.float64), np.asarray(faces, np.int32),
                        target_count=goal, agg=aggression)
        if len(f) <= target_faces:
            return np.asarray(v, np.float64), np.asarray(f, np.int64)
        goal = max(4, goal - (len(f) - target_faces) - 1)
    raise RuntimeError(f"decimation could not reach {target_faces} faces (got {len(f)})")
