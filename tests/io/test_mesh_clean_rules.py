"""The floater rule and closing (recon.io.mesh_clean), on meshes built here with trimesh that have both
floaters and real thin parts attached to the body. Expected values come from the shapes themselves
(trimesh's areas, bounds, watertightness of the pieces), never from the code under test."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from recon.io.export import ExportConfig, build_textured_mesh
from recon.io.mesh_clean import CleanConfig, CleanReport, clean_mesh, close_mesh
from recon.render.cpu import CpuRasterizer
from recon.scene.mesh import Mesh
from tests.io.mesh_parts import join, pieces


def colour_fn(p: torch.Tensor) -> torch.Tensor:
    return (0.5 + 0.4 * torch.sin(3 * p)).float()


def body() -> trimesh.Trimesh:
    """A 1 × 0.8 × 0.6 box (subdivided like a marching-tets surface), centred at the origin."""
    b = trimesh.creation.box((1.0, 0.8, 0.6))
    for _ in range(3):
        b = b.subdivide()
    return b


def rod(top: float, radius: float = 0.01, length: float = 0.5, x: float = 0.3) -> trimesh.Trimesh:
    """A thin vertical rod standing on the plane y = top (its bottom cap lies on the plane)."""
    r = trimesh.creation.cylinder(radius=radius, height=length, sections=12)
    r.apply_transform(trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0]))  # axis Z -> Y
    r.apply_translation([x, top + length / 2, 0.0])
    return r


def floater(gap: float, radius: float = 0.18) -> trimesh.Trimesh:
    """A blob of 1280 faces hovering ``gap`` beyond the body's +X face (bigger than the rod in every way)."""
    s = trimesh.creation.icosphere(subdivisions=3, radius=radius)
    s.apply_translation([0.5 + gap + radius, 0.0, 0.0])
    return s


def test_thin_attached_rod_is_kept_and_a_larger_floater_dropped():
    b, r, r2, fl = body(), rod(0.4), rod(0.9, radius=0.006, length=0.2), floater(0.08)
    # The rods are 0.75 % and 0.18 % of the area, the floater 9.6 %: an area or face-count threshold would
    # keep the floater and drop the thin rod (the old 0.5 % rule does).
    total = b.area + r.area + r2.area + fl.area
    assert r.area / total < 0.01 < fl.area / total and len(fl.faces) > 10 * len(r.faces)
    report = CleanReport()
    v, f = clean_mesh(*join(b, r, r2, fl), CleanConfig(), report)
    kept = pieces(v, f)
    assert len(kept) == 3  # body, rod, and the second rod standing on the first (attachment is transitive)
    assert sorted(len(k.faces) for k in kept) == sorted([len(b.faces), len(r.faces), len(r2.faces)])
    want = trimesh.util.concatenate([b, r, r2]).bounds
    np.testing.assert_allclose(trimesh.Trimesh(v, f).bounds, want, atol=1e-9)
    assert (report.components, report.floaters, report.floater_faces) == (4, 1, len(fl.faces))
    assert report.floater_area_fraction == pytest.approx(fl.area / total, rel=1e-6)


def test_floater_gap_threshold_is_a_fraction_of_the_body_diagonal():
    b = body()
    tol = 0.01 * np.linalg.norm(b.bounds[1] - b.bounds[0])  # the documented default: 1 % of the diagonal
    near = pieces(*clean_mesh(*join(b, floater(0.25 * tol))))
    far = pieces(*clean_mesh(*join(b, floater(2.0 * tol))))
    assert len(near) == 2 and len(far) == 1
    # A larger tolerance keeps the far one too.
    assert len(pieces(*clean_mesh(*join(b, floater(2.0 * tol)), CleanConfig(attach_distance=0.05)))) == 2


def test_export_box_and_centre_come_from_what_is_kept():
    b, r, fl = body(), rod(0.4), floater(0.08, radius=0.3)
    v, f = join(b, r, fl)
    mesh = Mesh(torch.as_tensor(v, dtype=torch.float32), torch.as_tensor(f))
    out, norm = build_textured_mesh(mesh, colour_fn, CpuRasterizer(),
                                    ExportConfig(target_faces=20_000, texture_size=64))
    lo, hi = trimesh.util.concatenate([b, r]).bounds  # what the rule keeps, from the shapes themselves
    np.testing.assert_allclose(norm.centre, (lo + hi) / 2, atol=1e-6)
    assert norm.scale == pytest.approx((hi - lo).max(), abs=1e-6)
    got = trimesh.Trimesh(out.vertices.numpy(), out.faces.numpy(), process=False).bounds
    # Unit box around what is kept: longest side 1, centred at the origin (the floater would shift it).
    np.testing.assert_allclose(got, (np.stack([lo, hi]) - (lo + hi) / 2) / (hi - lo).max(), atol=1e-5)


def sphere_with_defects() -> tuple[np.ndarray, np.ndarray, list[int]]:
    """An icosphere with two holes (one face; a ring of faces around a vertex) and a fin: a third face
    on one edge (a non-manifold edge). -> vertices, faces, hole sizes in edges."""
    s = trimesh.creation.icosphere(subdivisions=3)
    v, f = s.vertices.copy(), s.faces.copy()
    ring = np.flatnonzero((f == 100).any(1))  # the 5 or 6 faces around vertex 100: a hole of that many edges
    far = int(np.argmax(s.triangles_center[:, 1]))  # one face at the top, away from vertex 100
    drop = np.zeros(len(f), bool)
    drop[ring] = True
    drop[far] = True
    f = f[~drop]
    a, b = f[len(f) // 2][:2]  # an edge well inside the kept surface
    tip = len(v)
    v = np.vstack([v, (v[a] + v[b]) / 2 * 1.3])
    f = np.vstack([f, [[a, b, tip]]])
    return v, f, sorted([3, len(ring)])


def test_close_mesh_fills_holes_and_splits_nonmanifold_edges():
    v, f, holes = sphere_with_defects()
    m = trimesh.Trimesh(v, f, process=False)
    assert not m.is_watertight  # the oracle agrees the input is open
    report = CleanReport()
    cv, cf = close_mesh(v, f, CleanConfig(), report)
    out = trimesh.Trimesh(cv, cf, process=False)
    assert out.is_watertight and out.is_winding_consistent
    assert out.euler_number == 2  # a sphere again
    assert out.volume == pytest.approx(trimesh.creation.icosphere(subdivisions=3).volume, rel=0.02)
    assert report.closed and report.boundary_edges == 0 and report.nonmanifold_edges == 1
    assert report.holes_filled >= len(holes)


def test_close_mesh_leaves_large_openings_open():
    v, f, _ = sphere_with_defects()
    cv, cf = close_mesh(v, f, CleanConfig(max_hole_edges=3))
    out = trimesh.Trimesh(cv, cf, process=False)
    assert not out.is_watertight  # the 5- or 6-edge hole stays (and the hole the fin left)
    # close=False changes nothing.
    cv, cf = close_mesh(v, f, CleanConfig(close=False))
    assert np.array_equal(cf, f)


def test_clean_config_refuses_out_of_range_values():
    from recon.config import ConfigError

    with pytest.raises(ConfigError, match="attach_distance"):
        CleanConfig(attach_distance=-0.1)
    with pytest.raises(ConfigError, match=r"export\.up"):
        ExportConfig(up="x")
    with pytest.raises(ConfigError, match="roughness"):
        ExportConfig(roughness=1.5)


def test_vertex_normals_are_unit_where_the_faces_cancel():
    """A double-sided sheet (each triangle twice, opposite windings): the area-weighted vertex normals sum to
    zero, which glTF's validator rejects (ACCESSOR_VECTOR3_NON_UNIT, seen on a quick-start GLB). The export's
    normals must be unit length and perpendicular to the sheet, as trimesh computes the face normals."""
    from recon.io.export import unit_vertex_normals

    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]], np.float64)
    f = np.array([[0, 1, 2], [1, 3, 2], [0, 2, 1], [1, 2, 3]], np.int64)
    assert np.allclose(trimesh.Trimesh(v, f, process=False).vertex_normals, 0)  # the case itself
    n = unit_vertex_normals(v, f)
    assert np.allclose(np.linalg.norm(n, axis=1), 1)
    assert np.allclose(np.abs(n[:, 2]), 1)
