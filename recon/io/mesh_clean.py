"""Mesh clean-up and decimation before export (numpy in, numpy out).

Decimation uses ``fast-simplification`` (MIT; the Fast-Quadric-Mesh-Simplification library, which
trimesh's ``simplify_quadric_decimation`` wraps): a small wheel, quadric error metric, keeps closed
meshes closed in our tests. pymeshlab (GPL, ~100 MB) would add nothing needed here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh


@dataclass
class CleanConfig:
    """``merge_digits``: vertices equal to this many decimals are merged (marching tetrahedra emits one
    vertex per cut edge per tet, so coincident copies are common); a connected component is dropped
    when it has fewer than ``min_component_faces`` faces or less than ``min_component_area_fraction``
    of the total area (the largest component is always kept)."""

    merge_digits: int = 8
    min_component_faces: int = 8
    min_component_area_fraction: float = 0.005


def clean_mesh(vertices: np.ndarray, faces: np.ndarray,
               config: CleanConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """vertices (V, 3), faces (F, 3) -> cleaned (V', 3) float64, (F', 3) int64.

    Merges coincident vertices, drops degenerate (zero-area or repeated-index) and duplicate faces,
    small connected components (floaters) and unreferenced vertices. Face winding is kept.
    """
    config = config or CleanConfig()
    mesh = trimesh.Trimesh(np.asarray(vertices, np.float64), np.asarray(faces, np.int64), process=False)
    mesh.merge_vertices(digits_vertex=config.merge_digits)
    mesh.update_faces(mesh.nondegenerate_faces(height=1e-12))
    mesh.update_faces(mesh.unique_faces())
    mesh.remove_unreferenced_vertices()
    if len(mesh.faces) == 0:
        return np.zeros((0, 3)), np.zeros((0, 3), np.int64)
    keep = _large_components(mesh, config)
    if not keep.all():
        mesh.update_faces(keep)
        mesh.remove_unreferenced_vertices()
    return np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64)


def _large_components(mesh: trimesh.Trimesh, config: CleanConfig) -> np.ndarray:
    """(F,) bool: faces in components that are big enough (face-adjacency = shared edge)."""
    labels = trimesh.graph.connected_component_labels(mesh.face_adjacency, node_count=len(mesh.faces))
    n = int(labels.max()) + 1
    counts = np.bincount(labels, minlength=n)
    areas = np.bincount(labels, weights=mesh.area_faces, minlength=n)
    good = (counts >= config.min_component_faces) & (
        areas >= config.min_component_area_fraction * areas.sum())
    good[int(np.argmax(areas))] = True
    return good[labels]


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
