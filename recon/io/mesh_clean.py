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

**Inner shells.** A kept component (other than the body) whose every vertex lies inside the other kept
components — generalised winding number of their surfaces, summed in absolute value per component, above
1/2 — is an inner shell: a cavity wall or a blob inside the body that marching tetrahedra leaves. It is
invisible from outside, so it is dropped (``drop_inner_shells``). A part poking out of the body has
vertices outside and is kept; two objects side by side enclose neither and are both kept (if the floater
rule keeps them).

**Closing** uses trimesh (already a dependency; MIT, maintained, the library recon reads and writes
meshes with): edges shared by more than two faces lose those faces (:func:`split_nonmanifold_edges`),
then every boundary loop of at most ``max_hole_edges`` edges is cut into simple loops and filled
(:func:`fill_small_holes`: a triangle, or a fan around a new vertex at the loop's centroid, wound against
the rim), so a fill adds no edge that already exists and the result is edge-manifold and closed by
construction; the winding is made consistent (``trimesh.repair.fix_winding``). ``trimesh.repair.fill_holes``
is not used: its fans start at a rim vertex, and a chord that already exists in the mesh becomes a new
non-manifold edge (what the quick-start meshes showed after decimation). The export closes the surface
*after* decimation (which is what makes edges non-manifold) and then applies the floater rule, the inner
shell rule and the dust rule again to what it writes (:func:`finish_mesh`).
pymeshlab has richer repair filters but is GPL-3 and ~100 MB; manifold3d (Apache-2.0) only accepts
meshes that are already closed 2-manifolds, so it can check but not repair one.

Decimation uses ``fast-simplification`` (MIT; the Fast-Quadric-Mesh-Simplification library, which
trimesh's ``simplify_quadric_decimation`` wraps): a small wheel, quadric error metric.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
import trimesh
from scipy.spatial import cKDTree

# Point-triangle pairs the inner-shell test may cost in clean_mesh (about 2 s on one idle core); larger
# raw surfaces are tested after decimation (finish_mesh), where the decimated mesh keeps the cost down.
INNER_SHELL_MAX_PAIRS = 5e7
# fast_simplification keeps the mesh it works on in process-wide C++ globals, filled, simplified and read
# back by three separate calls; export threads (export.parallel_hypotheses) must not interleave them.
_SIMPLIFY_LOCK = threading.Lock()


# How far (× the bounding-box diagonal) unpinch moves the copies of a cut vertex apart: far above float32
# resolution in a unit box (6e-8), far below anything visible.
UNPINCH_OFFSET = 1e-5


@dataclass
class CleanConfig:
    """``merge_digits``: vertices equal to this many decimals are merged (marching tetrahedra emits one
    vertex per cut edge per tet, so coincident copies are common). ``attach_distance``: gap, as a
    fraction of the body's bounding-box diagonal, under which a component counts as attached (see the
    module docstring for the whole rule). Kept components with fewer than ``min_component_faces``
    faces or less than ``min_component_area_fraction`` of the kept area are dropped as dust.
    ``close``: fill holes of at most ``max_hole_edges`` boundary edges and split non-manifold edges.
    ``drop_inner_shells``: drop components enclosed by the other kept components (module docstring).
    ``cut_off_area_fraction``: after decimation, a component the floater rule finds detached is kept when it
    holds at least this fraction of the area — a real part whose thin connection decimation removed (a
    smaller one, a crumb, is dropped)."""

    merge_digits: int = 8
    min_component_faces: int = 8
    min_component_area_fraction: float = 0.0
    attach_distance: float = 0.01
    close: bool = True
    max_hole_edges: int = 64
    drop_inner_shells: bool = True
    cut_off_area_fraction: float = 0.02

    def __post_init__(self) -> None:
        from recon.config import ConfigError

        if not 0.0 <= float(self.attach_distance) <= 1.0:
            raise ConfigError(f"export.clean.attach_distance: {self.attach_distance!r} is outside [0, 1] "
                              "(a fraction of the body's bounding-box diagonal)")
        if not 0.0 <= float(self.cut_off_area_fraction) <= 1.0:
            raise ConfigError(f"export.clean.cut_off_area_fraction: {self.cut_off_area_fraction!r} is outside [0, 1]")
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
    kept_components: int = 0
    late_floaters: int = 0
    late_floater_faces: int = 0
    cut_off: int = 0
    inner_shells: int = 0
    inner_shell_faces: int = 0
    nonmanifold_edges: int = 0
    nonmanifold_vertices: int = 0
    holes_filled: int = 0
    holes_left: int = 0
    boundary_edges: int = 0
    euler: int = 0
    closed: bool = False
    hole_sizes: list[int] = field(default_factory=list)


def clean_mesh(vertices: np.ndarray, faces: np.ndarray, config: CleanConfig | None = None,
               report: CleanReport | None = None, select: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """vertices (V, 3), faces (F, 3) -> cleaned (V', 3) float64, (F', 3) int64.

    Merges coincident vertices, drops degenerate (zero-area or repeated-index) and duplicate faces,
    floaters and dust (:func:`keep_attached`), inner shells (:func:`inner_shells`, on a mesh where the
    test costs at most ``INNER_SHELL_MAX_PAIRS``; :func:`finish_mesh` always runs it) and unreferenced
    vertices. Face winding is kept. ``select=False`` skips the component rules (after decimation, where
    :func:`finish_mesh` applies them).
    """
    config = config or CleanConfig()
    mesh = _merged(vertices, faces, config.merge_digits)
    if len(mesh.faces) == 0:
        return np.zeros((0, 3)), np.zeros((0, 3), np.int64)
    if not select:
        return np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64)
    keep = select_components(mesh, config, report, INNER_SHELL_MAX_PAIRS)
    if not keep.all():
        mesh.update_faces(keep)
        mesh.remove_unreferenced_vertices()
    return np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64)


def select_components(mesh: trimesh.Trimesh, config: CleanConfig | None = None,
                      report: CleanReport | None = None, max_pairs: float | None = None,
                      cut_off_fraction: float | None = None) -> np.ndarray:
    """(F,) bool: the faces the rules keep — the body and what is attached to it (:func:`keep_attached`),
    minus dust and, with ``config.drop_inner_shells``, minus inner shells (:func:`inner_shells`; skipped
    when it would cost more than ``max_pairs`` point-triangle pairs)."""
    config = config or CleanConfig()
    labels = component_labels(mesh)
    keep = keep_attached(mesh, config, report, labels, cut_off_fraction)
    if config.drop_inner_shells:
        inner = inner_shells(mesh, keep, labels, max_pairs)
        if report is not None:
            report.inner_shells += len(np.unique(labels[inner]))
            report.inner_shell_faces += int(inner.sum())
        keep &= ~inner
    if report is not None:
        report.kept_components = len(np.unique(labels[keep]))
    return keep


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
                  report: CleanReport | None = None, labels: np.ndarray | None = None,
                  cut_off_fraction: float | None = None) -> np.ndarray:
    """(F,) bool: faces of the body, of the components attached to it, minus dust (module docstring).

    ``cut_off_fraction`` (the pass after decimation): a detached component with at least this fraction of the
    surface area is kept as a part that decimation cut off, and what is attached to it too; its count goes to
    ``report.cut_off``."""
    config = config or CleanConfig()
    labels = component_labels(mesh) if labels is None else labels
    n = int(labels.max()) + 1
    counts = np.bincount(labels, minlength=n)
    areas = np.bincount(labels, weights=mesh.area_faces, minlength=n)
    body = int(np.argmax(areas))
    kept = np.zeros(n, bool)
    kept[body] = True
    if n > 1:
        lo, hi = _bounds(mesh, labels == body)
        tol = config.attach_distance * float(np.linalg.norm(hi - lo))
        kept = _attached(mesh, labels, n, [body], tol)
        if cut_off_fraction is not None:
            big = ~kept & (areas >= cut_off_fraction * areas.sum())
            if big.any():
                kept = _attached(mesh, labels, n, [body, *np.flatnonzero(big).tolist()], tol)
                if report is not None:
                    report.cut_off = int(big.sum())
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


def _attached(mesh: trimesh.Trimesh, labels: np.ndarray, n: int, seeds: list[int], tol: float) -> np.ndarray:
    """(n,) bool: components reachable from ``seeds`` through gaps of at most ``tol``."""
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
    kept[seeds] = True
    frontier = list(seeds)
    while frontier:
        a = frontier.pop()
        for b in np.flatnonzero(~kept):
            if touches(a, int(b)):
                kept[b] = True
                frontier.append(int(b))
    return kept


def winding_numbers(triangles: np.ndarray, labels: np.ndarray, points: np.ndarray, n: int) -> np.ndarray:
    """(P, n): generalised winding number at each point of the triangles of each label 0..n-1
    (1 inside a closed surface wound outwards, −1 wound inwards, 0 outside; fractional near holes).
    Solid angles by Van Oosterom and Strackee's formula, in a compiled loop (:mod:`recon.io.winding_kernel`)."""
    from recon.io.winding_kernel import winding_sums

    return winding_sums(np.ascontiguousarray(triangles, np.float64), np.ascontiguousarray(labels, np.int64),
                        np.ascontiguousarray(points, np.float64).reshape(-1, 3), int(n))


def inner_shells(mesh: trimesh.Trimesh, keep: np.ndarray, labels: np.ndarray | None = None,
                 max_pairs: float | None = None) -> np.ndarray:
    """(F,) bool: faces of the kept components (other than the largest by area) whose every vertex lies
    inside the other kept components: the sum over them of |winding number| exceeds 1/2 (module docstring).
    Nothing is marked when the test would cost more than ``max_pairs`` point-triangle pairs (raw surfaces
    of large runs; the export runs it again, without a limit, after decimation)."""
    labels = component_labels(mesh) if labels is None else labels
    out = np.zeros(len(mesh.faces), bool)
    comps = np.unique(labels[keep])
    if len(comps) < 2:
        return out
    areas = np.bincount(labels, weights=mesh.area_faces, minlength=int(labels.max()) + 1)
    body = int(comps[np.argmax(areas[comps])])
    if max_pairs is not None:
        points = len(np.unique(mesh.faces[keep & (labels != body)]))
        if points * int(keep.sum()) > max_pairs:
            return out
    for c in comps:
        if c == body:
            continue
        mine = labels == c
        others = keep & ~mine
        pts = mesh.vertices[np.unique(mesh.faces[mine])]
        lo, hi = _bounds(mesh, others)
        if np.any(pts.min(0) < lo) or np.any(pts.max(0) > hi):
            continue  # sticks out of the others' box
        _, sub = np.unique(labels[others], return_inverse=True)
        tri = mesh.triangles[others]
        n = int(sub.max()) + 1
        extremes = np.unique(np.concatenate([pts.argmin(0), pts.argmax(0)]))
        if all((np.abs(winding_numbers(tri, sub, pts[idx], n)).sum(1) > 0.5).all()
               for idx in (extremes, np.arange(len(pts)))):
            out |= mine
    return out


def unpinch(vertices: np.ndarray, faces: np.ndarray, offset: float) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Cut the surface apart where sheets meet at an edge or a vertex, keeping every face.

    Around an edge used by more than two faces the faces are sorted by angle and each face that runs the
    edge backwards is paired with the next face, counter-clockwise, that runs it forwards: the two faces
    that bound one solid wedge (for an outward-wound surface). Then every vertex gets one copy per fan of
    faces joined through (paired) edges at it, and each copy of a cut vertex moves ``offset`` inwards along
    its fan's normal, so the sheets stay apart by position too (a reader that merges equal positions, as
    GLB seams require, sees the same manifold surface). -> (vertices, faces, edges mended, vertices cut); an
    edge whose faces cannot be paired (an odd count, as a fin on a surface; unequal counts each way) loses
    its faces instead, as in :func:`split_nonmanifold_edges`, and the hole is left for :func:`fill_small_holes`."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    if len(f) == 0:
        return v, f, 0, 0
    # Edges whose faces cannot be paired (an odd count: a fin; or more faces one way than the other) lose
    # those faces first, as in split_nonmanifold_edges; their holes are filled afterwards.
    a, b = f.ravel(), f[:, [1, 2, 0]].ravel()
    _, inverse, counts = np.unique(np.sort(np.stack([a, b], 1), 1), axis=0, return_inverse=True,
                                   return_counts=True)
    inverse = inverse.ravel()
    forward = np.bincount(inverse, weights=(a < b).astype(float), minlength=len(counts))
    unpairable = (counts > 2) & (forward * 2 != counts)
    dropped = int(unpairable.sum())
    if dropped:
        f = f[~unpairable[inverse].reshape(-1, 3).any(1)]
        if len(f) == 0:
            return v, f, dropped, 0
    corner = np.arange(3 * len(f)).reshape(-1, 3)
    a, b = f.ravel(), f[:, [1, 2, 0]].ravel()  # half-edge a -> b, one per face corner
    ca, cb = corner.ravel(), corner[:, [1, 2, 0]].ravel()
    edges, inverse, counts = np.unique(np.sort(np.stack([a, b], 1), 1), axis=0, return_inverse=True,
                                       return_counts=True)
    inverse = inverse.ravel()
    order = np.argsort(inverse, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)])
    pairs = [order[np.repeat(counts == 2, counts)].reshape(-1, 2)]
    cut_edges = dropped
    for e in np.flatnonzero(counts > 2):
        hs = order[starts[e]:starts[e + 1]]
        u, w = edges[e]
        axis = v[w] - v[u]
        axis = axis / max(float(np.linalg.norm(axis)), 1e-30)
        third = f[hs // 3].sum(1) - u - w
        d = v[third] - v[u]
        d = d - (d @ axis)[:, None] * axis
        x = d[0] / max(float(np.linalg.norm(d[0])), 1e-30)
        ang = np.arctan2(d @ np.cross(axis, x), d @ x)
        seq = hs[np.argsort(ang, kind="stable")]
        forward = a[seq] == u
        if forward.sum() * 2 != len(seq):
            continue
        taken = np.zeros(len(seq), bool)
        for i in np.flatnonzero(~forward):
            j = next(j % len(seq) for j in range(i + 1, i + len(seq)) if forward[j % len(seq)] and not taken[j % len(seq)])
            taken[j] = True
            pairs.append(np.array([[seq[i], seq[j]]]))
        cut_edges += 1
    pair = np.concatenate(pairs)
    h1, h2 = pair[:, 0], pair[:, 1]
    same = a[h1] == a[h2]  # inconsistently wound neighbours still join at the same vertices
    rows = np.concatenate([ca[h1], cb[h1]])
    cols = np.concatenate([np.where(same, ca[h2], cb[h2]), np.where(same, cb[h2], ca[h2])])
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(3 * len(f),) * 2)
    _, fan = connected_components(graph, directed=False)
    copies, new_index = np.unique(np.stack([a, fan], 1), axis=0, return_inverse=True)
    new_index = new_index.ravel()
    fans_per_vertex = np.bincount(copies[:, 0], minlength=len(v))
    cut = fans_per_vertex[copies[:, 0]] > 1
    if not cut.any():
        return v, f, cut_edges, 0
    nv = v[copies[:, 0]].copy()
    tri = v[f]
    face_normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal = np.zeros((len(copies), 3))
    np.add.at(normal, new_index, np.repeat(face_normal, 3, axis=0))
    length = np.linalg.norm(normal, axis=1, keepdims=True)
    step = np.where(length > 0, normal / np.maximum(length, 1e-30), 0.0)
    nv[cut] -= offset * step[cut]
    return nv, new_index.reshape(-1, 3), cut_edges, int((fans_per_vertex > 1).sum())


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


def nonmanifold_vertices(faces: np.ndarray) -> np.ndarray:
    """Indices of the vertices whose faces form more than one fan (faces around a vertex joined through
    edges at that vertex): pinch points where two sheets meet at a single vertex."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    f = np.asarray(faces, np.int64)
    if len(f) == 0:
        return np.zeros(0, np.int64)
    corner = np.arange(3 * len(f)).reshape(-1, 3)
    a, b = f.ravel(), f[:, [1, 2, 0]].ravel()  # half-edge a -> b of each face
    ca, cb = corner.ravel(), corner[:, [1, 2, 0]].ravel()
    key = np.sort(np.stack([a, b], 1), 1)
    order = np.lexsort((key[:, 1], key[:, 0]))
    same = (key[order][1:] == key[order][:-1]).all(1)
    i, j = order[:-1][same], order[1:][same]  # two half-edges of one edge: join their corners per vertex
    flip = a[j] != a[i]
    cj_a, cj_b = np.where(flip, cb[j], ca[j]), np.where(flip, ca[j], cb[j])
    rows, cols = np.concatenate([ca[i], cb[i]]), np.concatenate([cj_a, cj_b])
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(3 * len(f),) * 2)
    _, fan = connected_components(graph, directed=False)
    pairs = np.unique(np.stack([a, fan], 1), axis=0)
    return np.flatnonzero(np.bincount(pairs[:, 0]) > 1)


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
    """Split non-manifold edges and fill holes of at most ``config.max_hole_edges`` edges
    (:func:`fill_small_holes`; module docstring); winding made consistent with trimesh. -> (vertices,
    faces); ``report`` gets the counts, the Euler characteristic and whether the result is closed (every
    edge shared by exactly two faces)."""
    config = config or CleanConfig()
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    n_bad = n_pinch = 0
    filled = 0
    if config.close and len(f):
        lo, hi = (v[np.unique(f)].min(0), v[np.unique(f)].max(0))
        offset = UNPINCH_OFFSET * float(np.linalg.norm(hi - lo))
        for _ in range(8):  # a second pass only for what a fill's rim pinched
            v, f, cut_edges, cut_vertices = unpinch(v, f, offset)
            f, bad = split_nonmanifold_edges(v, f)  # what unpinch could not pair: faces go, holes get filled
            pinch = nonmanifold_vertices(f)
            f = f[~np.isin(f, pinch).any(1)]
            n_bad += cut_edges + bad
            n_pinch += cut_vertices + len(pinch)
            mesh = trimesh.Trimesh(v, f, process=False)
            trimesh.repair.fix_winding(mesh)
            v, f, count = fill_small_holes(mesh.vertices, mesh.faces, config.max_hole_edges)
            filled += count
            if split_nonmanifold_edges(v, f)[1] == 0 and len(nonmanifold_vertices(f)) == 0:
                break
        mesh = trimesh.Trimesh(v, f, process=False)
        trimesh.repair.fix_winding(mesh)
        mesh.remove_unreferenced_vertices()
        v, f = np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64)
    if report is not None:
        report.nonmanifold_edges += n_bad
        report.nonmanifold_vertices += n_pinch
        report.holes_filled += filled
        closure_report(v, f, report)
    return v, f


def closure_report(vertices: np.ndarray, faces: np.ndarray, report: CleanReport) -> None:
    """Boundary loops, boundary edges, Euler characteristic and closedness of (vertices, faces) into ``report``."""
    f = np.asarray(faces, np.int64)
    loops = boundary_loops(f) if len(f) else []
    mesh = trimesh.Trimesh(np.asarray(vertices, np.float64), f, process=False)
    report.holes_left = len(loops)
    report.hole_sizes = loops
    report.boundary_edges = int(sum(loops))
    report.euler = int(mesh.euler_number) if len(f) else 0
    report.closed = bool(len(f)) and bool(mesh.is_watertight)


def fill_small_holes(vertices: np.ndarray, faces: np.ndarray,
                     max_edges: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Fill every boundary loop of at most ``max_edges`` edges. -> (vertices, faces, loops filled).

    The boundary half-edges (each edge used by one face, in that face's direction) are walked into loops,
    and a loop that passes a vertex twice is cut there, so every loop is simple. A loop of 3 edges gets
    one triangle; a longer one a fan around a new vertex at its centroid. Each new face runs its rim edge
    against the existing face, so the winding stays consistent, and a fill adds no edge that exists
    already: on an edge-manifold mesh (no edge in more than two faces) every filled rim edge ends up in
    exactly two faces. Loops that cannot be walked (inconsistent winding) or are larger stay open."""
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    if len(f) == 0:
        return v, f, 0
    half = f[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    _, inverse, counts = np.unique(np.sort(half, axis=1), axis=0, return_inverse=True, return_counts=True)
    rim = half[counts[inverse.ravel()] == 1]
    if len(rim) == 0:
        return v, f, 0
    outgoing: dict[int, list[int]] = {}
    for i, a in enumerate(rim[:, 0].tolist()):
        outgoing.setdefault(a, []).append(i)
    loops: list[list[int]] = []
    used = np.zeros(len(rim), bool)
    for e0 in range(len(rim)):
        if used[e0]:
            continue
        used[e0] = True
        path = [int(rim[e0, 0])]
        pos = {path[0]: 0}
        cur = int(rim[e0, 1])
        while True:
            if cur in pos:  # back at a vertex of the path: cut off the simple loop
                i = pos[cur]
                loops.append(path[i:])
                for x in path[i + 1:]:
                    del pos[x]
                path = path[:i + 1]
            else:
                pos[cur] = len(path)
                path.append(cur)
            nxt = next((e for e in outgoing.get(path[-1], ()) if not used[e]), None)
            if nxt is None:
                break  # closed (path is its start) or stuck on an inconsistently wound rim
            used[nxt] = True
            cur = int(rim[nxt, 1])
    new_v: list[np.ndarray] = []
    new_f: list[list[int]] = []
    filled = 0
    for loop in loops:
        if len(loop) < 3 or len(loop) > max_edges:
            continue
        filled += 1
        if len(loop) == 3:
            new_f.append(loop[::-1])
            continue
        centre = len(v) + len(new_v)
        new_v.append(v[loop].mean(0))
        new_f.extend([loop[(j + 1) % len(loop)], loop[j], centre] for j in range(len(loop)))
    if not new_f:
        return v, f, 0
    v = np.vstack([v, *new_v]) if new_v else v
    return v, np.vstack([f, np.asarray(new_f, np.int64)]), filled


def finish_mesh(vertices: np.ndarray, faces: np.ndarray, config: CleanConfig | None = None,
                report: CleanReport | None = None) -> tuple[np.ndarray, np.ndarray]:
    """What the export writes, after decimation: :func:`close_mesh`, then the floater, dust and inner-shell
    rules (:func:`select_components`) applied again to the closed mesh until nothing changes, so the
    written mesh has no component the rules would drop. ``report`` gets the closing figures of the result,
    and the components dropped here are added to its floater and inner-shell counts."""
    config = config or CleanConfig()
    v, f = close_mesh(vertices, faces, config, report)
    late = CleanReport()
    for _ in range(4):
        if len(f) == 0:
            break
        mesh = trimesh.Trimesh(v, f, process=False)
        step = CleanReport()
        keep = select_components(mesh, config, step, cut_off_fraction=config.cut_off_area_fraction)
        late.cut_off = max(late.cut_off, step.cut_off)
        late.floaters += step.floaters
        late.floater_faces += step.floater_faces
        late.dust += step.dust
        late.inner_shells += step.inner_shells
        late.inner_shell_faces += step.inner_shell_faces
        late.kept_components = step.kept_components
        if keep.all():
            break
        mesh.update_faces(keep)
        mesh.remove_unreferenced_vertices()
        v, f = np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64)
    if report is not None:
        report.late_floaters = late.floaters
        report.late_floater_faces = late.floater_faces
        report.cut_off = late.cut_off
        report.inner_shells += late.inner_shells
        report.inner_shell_faces += late.inner_shell_faces
        report.dust += late.dust
        report.kept_components = late.kept_components
        closure_report(v, f, report)
    return v, f


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
        with _SIMPLIFY_LOCK:
            v, f = simplify(np.asarray(vertices, np.float64), np.asarray(faces, np.int32),
                            target_count=goal, agg=aggression)
        if len(f) <= target_faces:
            return np.asarray(v, np.float64), np.asarray(f, np.int64)
        goal = max(4, goal - (len(f) - target_faces) - 1)
    raise RuntimeError(f"decimation could not reach {target_faces} faces (got {len(f)})")
