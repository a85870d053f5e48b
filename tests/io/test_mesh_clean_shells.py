"""Inner shells, separate objects and closing after decimation (recon.io.mesh_clean, recon.io.export), on meshes
built here with trimesh and PyMCubes. Expected values come from the shapes and from trimesh (pieces, face
counts, volumes, is_watertight, euler_number, an edge and fan count written here), never from the code under
test."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import trimesh

from recon.io.export import ExportConfig, build_textured_mesh, export_mesh
from recon.io.mesh_clean import CleanConfig, CleanReport, clean_mesh, close_mesh, decimate
from recon.render.cpu import CpuRasterizer
from recon.scene.mesh import Mesh
from tests.io.mesh_parts import join, pieces


def colour_fn(p: torch.Tensor) -> torch.Tensor:
    return (0.5 + 0.4 * torch.sin(3 * p)).float()


def box(extents, centre=(0.0, 0.0, 0.0), subdivisions: int = 2) -> trimesh.Trimesh:
    b = trimesh.creation.box(extents)
    for _ in range(subdivisions):
        b = b.subdivide()
    b.apply_translation(centre)
    return b


# The body: 1 × 0.8 × 0.6, diagonal 1.414, so the floater rule's default tolerance is 0.0141.
OUTER = (1.0, 0.8, 0.6)


@pytest.mark.parametrize("wound", ["outwards", "inner inwards (a cavity wall)", "both inwards"])
def test_box_inside_a_box_is_dropped_as_an_inner_shell(wound):
    outer = box(OUTER)
    inner = box((0.98, 0.78, 0.58))  # 0.01 inside every face: within the floater rule's tolerance
    if "inwards" in wound:
        inner.invert()
    if wound.startswith("both"):  # recon does not assume its input is wound outwards
        outer.invert()
    v, f = join(outer, inner)
    # The floater rule alone keeps it (it lies within 1 % of the body), so what drops it is the inner-shell rule.
    assert len(pieces(*clean_mesh(v, f, CleanConfig(drop_inner_shells=False)))) == 2
    report = CleanReport()
    cv, cf = clean_mesh(v, f, CleanConfig(), report)
    (kept,) = pieces(cv, cf)
    assert len(kept.faces) == len(outer.faces)
    assert kept.is_watertight and kept.euler_number == 2
    assert kept.volume == pytest.approx(outer.volume, rel=1e-9)
    assert (report.inner_shells, report.inner_shell_faces) == (1, len(inner.faces))
    # And through the export (no decimation at this size): one closed sphere-like surface is written.
    out, _ = build_textured_mesh(Mesh(torch.as_tensor(v, dtype=torch.float32), torch.as_tensor(f)), colour_fn,
                                 CpuRasterizer(), ExportConfig(target_faces=20_000, texture_size=64))
    written = trimesh.Trimesh(out.vertices.numpy(), out.faces.numpy(), process=True)
    assert len(written.faces) == len(outer.faces)
    assert written.is_watertight and written.euler_number == 2


@pytest.mark.parametrize("top", [0.45, 0.40])  # poking 0.05 out of the body; resting on its top face
@pytest.mark.parametrize("mast", [False, True])  # a tall part elsewhere, so the fin is inside the others' box
def test_thin_fin_attached_to_the_body_is_kept(top, mast):
    outer = box(OUTER)
    fin = box((0.4, 0.3, 0.004), centre=(0.1, top - 0.15, 0.0))  # 4 mm thick, mostly inside the body
    assert fin.bounds[1][1] == pytest.approx(top)
    parts = [outer, fin]
    if mast:
        parts.append(box((0.05, 0.5, 0.05), centre=(-0.3, 0.4 + 0.25, 0.0), subdivisions=1))  # on the top face
    kept = pieces(*clean_mesh(*join(*parts)))
    assert sorted(len(k.faces) for k in kept) == sorted(len(p.faces) for p in parts)
    np.testing.assert_allclose(trimesh.util.concatenate(kept).bounds, trimesh.util.concatenate(parts).bounds,
                               atol=1e-12)


def test_two_objects_side_by_side_are_both_kept_when_they_touch():
    a = box(OUTER)
    b = box((0.5, 0.5, 0.5), centre=(0.5 + 0.005 + 0.25, -0.15, 0.0))  # 0.005 beside a: attached
    kept = pieces(*clean_mesh(*join(a, b)))
    assert sorted(len(k.faces) for k in kept) == sorted([len(a.faces), len(b.faces)])
    assert sum(k.volume for k in kept) == pytest.approx(a.volume + b.volume, rel=1e-9)
    # With a real gap (0.2, beyond 1 % of the diagonal) the floater rule keeps only the larger object, as
    # documented; raising export.clean.attach_distance keeps both. Neither is ever an inner shell.
    far = box((0.5, 0.5, 0.5), centre=(0.5 + 0.2 + 0.25, -0.15, 0.0))
    (only,) = pieces(*clean_mesh(*join(a, far)))
    assert len(only.faces) == len(a.faces)
    assert len(pieces(*clean_mesh(*join(a, far), CleanConfig(attach_distance=0.2)))) == 2


@pytest.mark.parametrize("touch", ["an edge", "a corner"])
def test_boxes_touching_at_an_edge_or_corner_are_cut_apart_not_trimmed(touch):
    """Two boxes sharing an edge (each of its segments in four faces) or a corner (a vertex with two fans):
    closing cuts the vertices apart, so every face stays and each box is a closed sphere-like surface."""
    a = box((1.0, 1.0, 1.0), centre=(0.5, 0.5, 0.5))
    b = box((1.0, 1.0, 1.0), centre=(1.5, 1.5, 0.5 if touch == "an edge" else 1.5))
    v, f = clean_mesh(*join(a, b))
    merged = trimesh.Trimesh(v, f, process=False)
    assert len(merged.vertices) < len(a.vertices) + len(b.vertices)  # they do share vertices
    assert (edge_face_counts(merged) > 2).any() == (touch == "an edge")
    report = CleanReport()
    cv, cf = close_mesh(v, f, CleanConfig(), report)
    out = trimesh.Trimesh(cv, cf, process=False)
    out.merge_vertices()  # a reader merging equal positions sees the same
    assert len(out.faces) == len(a.faces) + len(b.faces)
    assert out.is_watertight and out.is_winding_consistent and pinched_vertices(out) == 0
    parts = out.split(only_watertight=False)
    assert sorted(len(p.faces) for p in parts) == [len(a.faces), len(b.faces)]
    assert all(p.euler_number == 2 for p in parts) and out.euler_number == 4
    assert out.volume == pytest.approx(a.volume + b.volume, rel=1e-4)


def dumbbell() -> trimesh.Trimesh:
    """Two balls joined by a thin neck (marching cubes): quadric decimation pinches or cuts the neck."""
    import mcubes

    x = np.linspace(-1.5, 1.5, 80)
    X, Y, Z = np.meshgrid(x, x, x, indexing="ij")
    balls = np.minimum(np.sqrt((X - 0.6) ** 2 + Y**2 + Z**2), np.sqrt((X + 0.6) ** 2 + Y**2 + Z**2)) - 0.55
    neck = np.maximum(np.sqrt(Y**2 + Z**2) - 0.03, np.abs(X) - 0.7)
    v, f = mcubes.marching_cubes(-np.minimum(balls, neck), 0)
    return trimesh.Trimesh(v * (3 / 79), f.astype(np.int64))


def edge_face_counts(m: trimesh.Trimesh) -> np.ndarray:
    return np.unique(m.edges_sorted, axis=0, return_counts=True)[1]


def pinched_vertices(m: trimesh.Trimesh) -> int:
    """Vertices whose faces form more than one fan (faces joined through edges at the vertex)."""
    import networkx as nx

    out = 0
    for vi, faces in enumerate(m.vertex_faces):
        faces = faces[faces >= 0]
        g = nx.Graph()
        g.add_nodes_from(faces.tolist())
        by_edge: dict[int, list[int]] = {}
        for fi in faces.tolist():
            for w in m.faces[fi]:
                if w != vi:
                    by_edge.setdefault(int(w), []).append(fi)
        for group in by_edge.values():
            g.add_edges_from(itertools.pairwise(group))
        out += nx.number_connected_components(g) > 1
    return out


def test_export_after_decimation_is_manifold_and_closed(tmp_path):
    raw = dumbbell()
    assert raw.is_watertight and raw.euler_number == 2
    # Decimation alone (what the export does first) makes the neck non-manifold.
    dv, df = decimate(raw.vertices, raw.faces, 600)
    assert (edge_face_counts(trimesh.Trimesh(dv, df)) > 2).any()
    mesh = Mesh(torch.as_tensor(raw.vertices, dtype=torch.float32), torch.as_tensor(raw.faces))
    res = export_mesh(mesh, colour_fn, tmp_path, "d", CpuRasterizer(),
                      ExportConfig(target_faces=600, texture_size=64, formats=("glb", "ply")))
    for path in res.paths.values():  # as a reader sees it: seam vertices merged by position
        m = trimesh.load(path, force="mesh", process=False)
        m = trimesh.Trimesh(m.vertices, m.faces, process=False)
        m.merge_vertices(merge_tex=True, merge_norm=True)
        assert 0 < len(m.faces) <= 600
        assert m.is_watertight and m.is_winding_consistent
        assert not (edge_face_counts(m) > 2).any()
        assert pinched_vertices(m) == 0
        parts = m.split(only_watertight=False)
        assert all(p.is_watertight and p.euler_number == 2 for p in parts)
        assert m.euler_number == 2 * len(parts)
        # Nothing lost: the volume (back in raw units) is the dumbbell's.
        assert m.volume * res.normalization.scale**3 == pytest.approx(raw.volume, rel=0.03)


def test_a_part_that_decimation_cuts_off_is_kept():
    raw = dumbbell()
    dv, df = decimate(raw.vertices, raw.faces, 300)
    parts = sorted(trimesh.Trimesh(dv, df).split(only_watertight=False), key=lambda p: p.area)
    left, right = sorted(parts[-2:], key=lambda p: p.bounds[0][0])  # the two balls; the neck is gone
    assert right.bounds[0][0] - left.bounds[1][0] > 0.01 * np.linalg.norm(raw.extents)  # beyond the tolerance
    mesh = Mesh(torch.as_tensor(raw.vertices, dtype=torch.float32), torch.as_tensor(raw.faces))
    report = CleanReport()
    out, norm = build_textured_mesh(mesh, colour_fn, CpuRasterizer(),
                                    ExportConfig(target_faces=300, texture_size=64), report=report)
    m = trimesh.Trimesh(out.vertices.numpy(), out.faces.numpy(), process=True)
    assert len(m.split(only_watertight=False)) == 2 and m.is_watertight
    assert m.volume * norm.scale**3 == pytest.approx(raw.volume, rel=0.05)
    assert report.cut_off == 1
