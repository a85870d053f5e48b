"""Export: clean, decimate, unwrap, bake, write GLB / OBJ+MTL+PNG / PLY; trimesh reloads them (the oracle).

The colour field is analytic, so the expected texel colour at any surface point is known exactly. Texture
lookups use the glTF / OpenGL rule (bilinear, texel centres at (i + 0.5) / W, clamp to edge), written
here from the spec, and also trimesh's own ``uv_to_interpolated_color``. Samples are drawn uniformly
over the whole surface, seams and chart borders included (the gutter fill is what makes them pass).
"""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch
import trimesh

from recon.io.export import ExportConfig, build_textured_mesh, export_mesh, write_glb
from recon.io.mesh_clean import CleanConfig, clean_mesh, decimate
from recon.io.uv_bake import fill_gutters, unwrap
from recon.render.cpu import CpuRasterizer
from recon.scene.mesh import Mesh

TOL = 2.0 / 255.0


def colour_np(p: np.ndarray) -> np.ndarray:
    """Smooth analytic colour field (N, 3) -> (N, 3) in [0.1, 0.9]."""
    return np.stack([0.5 + 0.4 * np.sin(3 * p[:, 0] + 1),
                     0.5 + 0.4 * np.cos(2 * p[:, 1] - 0.5),
                     0.5 + 0.4 * np.sin(2.5 * p[:, 2] + p[:, 0])], axis=1)


def colour_fn(p: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(colour_np(p.double().cpu().numpy()), dtype=torch.float32)


def sphere_mesh(subdivisions=5, centre=(0.3, -0.2, 0.1), radius=0.7) -> Mesh:
    s = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    return Mesh(torch.as_tensor(s.vertices + np.array(centre), dtype=torch.float32), torch.as_tensor(s.faces))


def gl_bilinear(image, uv: np.ndarray) -> np.ndarray:
    """glTF sampling of an RGB(A) PIL image at uv (N, 2) (v up) -> (N, 3) in [0, 1]."""
    img = np.asarray(image.convert("RGB"), np.float64) / 255
    h, w = img.shape[:2]
    x, y = uv[:, 0] * w - 0.5, (1 - uv[:, 1]) * h - 0.5
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]

    def at(r, c):
        return img[np.clip(r, 0, h - 1), np.clip(c, 0, w - 1)]

    return ((1 - fx) * (1 - fy) * at(y0, x0) + fx * (1 - fy) * at(y0, x0 + 1)
            + (1 - fx) * fy * at(y0 + 1, x0) + fx * fy * at(y0 + 1, x0 + 1))


def texture_of(m: trimesh.Trimesh):
    mat = m.visual.material
    return getattr(mat, "baseColorTexture", None) or getattr(mat, "image", None)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    mesh = sphere_mesh()
    cfg = ExportConfig(target_faces=3000, texture_size=1024)
    result = export_mesh(mesh, colour_fn, out, "h0", CpuRasterizer(), cfg)
    return out, result, mesh


def test_files_written_and_nothing_else(exported):
    out, result, _ = exported
    assert sorted(p.name for p in out.iterdir()) == ["h0.glb", "h0.mtl", "h0.obj", "h0.ply", "h0.png"]
    assert result.num_faces <= 3000 and result.watertight


@pytest.mark.parametrize("fmt", ["glb", "obj"])
def test_reloaded_texture_matches_the_colour_field(exported, fmt):
    out, result, _ = exported
    m = trimesh.load(out / f"h0.{fmt}", force="mesh")
    assert isinstance(m.visual, trimesh.visual.TextureVisuals)
    image = texture_of(m)
    assert image is not None and image.size == (1024, 1024)
    # Face count at or below the target; watertight after merging the per-chart copies of seam vertices
    # (the source icosphere is watertight).
    assert len(m.faces) <= 3000
    closed = trimesh.Trimesh(m.vertices, m.faces, process=True)
    assert trimesh.creation.icosphere(5).is_watertight and closed.is_watertight
    # Unit box, centred.
    lo, hi = m.bounds
    assert np.isclose((hi - lo).max(), 1.0, atol=1e-5) and np.allclose((hi + lo) / 2, 0, atol=1e-5)

    pts, face_idx = trimesh.sample.sample_surface(m, 40000, seed=3)
    bary = trimesh.triangles.points_to_barycentric(m.triangles[face_idx], pts)
    uv = (m.visual.uv[m.faces[face_idx]] * bary[:, :, None]).sum(1)
    want = colour_np(result.normalization.to_original(pts))
    err_gl = np.abs(gl_bilinear(image, uv) - want).max(1)
    err_tm = np.abs(trimesh.visual.color.uv_to_interpolated_color(uv, image)[:, :3] / 255 - want).max(1)
    print(f"{fmt}: max |texel - field| glTF lookup {err_gl.max() * 255:.3f}/255, "
          f"trimesh lookup {err_tm.max() * 255:.3f}/255 over {len(pts)} samples")
    assert err_gl.max() <= TOL and err_tm.max() <= TOL


def test_glb_material_is_white_pbr_with_texture(exported):
    out, _, _ = exported
    data = (out / "h0.glb").read_bytes()
    magic, _, _ = struct.unpack("<4sII", data[:12])
    length, kind = struct.unpack("<I4s", data[12:20])
    assert magic == b"glTF" and kind == b"JSON"
    gltf = json.loads(data[20:20 + length])
    pbr = gltf["materials"][0]["pbrMetallicRoughness"]
    assert pbr.get("baseColorFactor", [1, 1, 1, 1]) == [1, 1, 1, 1]  # glTF's default is white too
    assert "baseColorTexture" in pbr
    prim = gltf["meshes"][0]["primitives"][0]
    assert {"POSITION", "NORMAL", "TEXCOORD_0"} <= set(prim["attributes"])


def test_obj_shares_positions_and_uses_a_white_material(exported):
    out, result, _ = exported
    lines = (out / "h0.obj").read_text().splitlines()
    n_v = sum(1 for x in lines if x.startswith("v "))
    assert n_v == result.num_vertices  # positions stored once: the file itself is a closed surface
    assert "Kd 1 1 1" in (out / "h0.mtl").read_text() and "map_Kd h0.png" in (out / "h0.mtl").read_text()


def test_ply_vertex_colours_match_the_field(exported):
    out, result, _ = exported
    p = trimesh.load(out / "h0.ply", process=False)
    assert p.is_watertight and len(p.faces) <= 3000
    got = p.visual.vertex_colors[:, :3] / 255
    # The PLY is +Z up (export.up auto): back to the +Y-up frame, (x, y, z) -> (x, z, -y).
    yup = np.stack([p.vertices[:, 0], p.vertices[:, 2], -p.vertices[:, 1]], axis=1)
    want = colour_np(result.normalization.to_original(yup))
    assert np.abs(got - want).max() <= 0.5 / 255 + 1e-5  # uint8 rounding (of float32 colours) only


def test_clean_mesh_removes_floaters_degenerate_and_duplicate_faces():
    big = trimesh.creation.icosphere(3)
    tiny = trimesh.creation.icosphere(1, radius=0.01)
    tiny.vertices += 3
    v = np.concatenate([big.vertices, tiny.vertices])
    f = np.concatenate([big.faces, tiny.faces + len(big.vertices)])
    copies = big.vertices[big.faces[0]]  # coincident copies of face 0's corners...
    extra_v = np.concatenate([v, copies])
    copy_face = np.array([[len(v), len(v) + 1, len(v) + 2]])  # ...and face 0 again on them
    dup = big.faces[:5]
    degenerate = np.array([[0, 0, 1], [2, 3, 2]])
    faces = np.concatenate([f, dup, degenerate, copy_face])
    cv, cf = clean_mesh(extra_v, faces, CleanConfig(min_component_area_fraction=0.01))
    assert len(cf) == len(big.faces) and len(cv) == len(big.vertices)
    assert trimesh.Trimesh(cv, cf).is_watertight
    # Vertices equal to 8 decimals are merged, so marching-tets style duplicates do not split the surface.
    split_v = big.vertices[big.faces].reshape(-1, 3)
    sv, sf = clean_mesh(split_v, np.arange(len(split_v)).reshape(-1, 3))
    assert len(sv) == len(big.vertices) and trimesh.Trimesh(sv, sf).is_watertight


@pytest.mark.parametrize("target", [5000, 1234, 100])
def test_decimate_reaches_target_and_stays_closed(target):
    s = trimesh.creation.icosphere(5)
    v, f = decimate(s.vertices, s.faces, target)
    m = trimesh.Trimesh(v, f)
    assert len(f) <= target and len(f) >= 0.9 * target
    assert m.is_watertight and m.is_winding_consistent and m.volume > 0.9 * s.volume
    _, f2 = decimate(v, f, target + 10)  # already below: unchanged
    assert np.array_equal(f2, f)


def test_unwrap_keeps_face_order_and_uvs_in_range():
    s = trimesh.creation.icosphere(3)
    layout = unwrap(s.vertices, s.faces, resolution=256, padding=2)
    assert np.array_equal(layout.vmap[layout.uv_faces], s.faces)
    assert layout.uv.min() >= 0 and layout.uv.max() <= 1


def test_fill_gutters_grows_rings_then_mean():
    img = np.zeros((7, 7, 3), np.float32)
    cov = np.zeros((7, 7), bool)
    img[3, 3], cov[3, 3] = (0.2, 0.4, 0.6), True
    img[3, 4], cov[3, 4] = (0.4, 0.4, 0.6), True
    out = fill_gutters(img, cov, rings=1)
    np.testing.assert_allclose(out[2, 2], (0.2, 0.4, 0.6))  # only (3, 3) touches it
    np.testing.assert_allclose(out[2, 3], (0.3, 0.4, 0.6))  # mean of both
    np.testing.assert_allclose(out[0, 0], (0.3, 0.4, 0.6))  # beyond the ring: mean colour
    np.testing.assert_array_equal(out[cov], img[cov])  # covered texels untouched


def test_glb_write_is_atomic_and_needs_a_texture(tmp_path):
    mesh = sphere_mesh(subdivisions=2)
    with pytest.raises(ValueError, match="no uv"):
        write_glb(mesh, tmp_path / "x.glb")
    assert list(tmp_path.iterdir()) == []  # nothing half-written, no temp file left
    textured, _ = build_textured_mesh(mesh, colour_fn, CpuRasterizer(),
                                      ExportConfig(target_faces=200, texture_size=128))
    write_glb(textured, tmp_path / "x.glb")
    assert [p.name for p in tmp_path.iterdir()] == ["x.glb"]


def test_written_files_get_the_umask_mode_not_mkstemps_0600(exported):
    import os
    import stat

    out, _, _ = exported
    mask = os.umask(0o022)
    os.umask(mask)
    for p in out.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~mask, p
