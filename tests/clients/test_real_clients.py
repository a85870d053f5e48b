"""recon's GLB, OBJ and PLY files in real clients: the Khronos glTF Validator and Blender 5.0.1 (bpy),
each at its default settings (tests/clients/clients.py says where they are found; absent, the tests
skip with the reason, and fail under RECON_REQUIRE_CLIENTS=1 as in CI).

The object: a sphere with a thin rod on top (+Y) and a nose at the front (+Z), plus a floater. What
"upright" and "the kept bounding box" mean is computed here from those shapes with trimesh."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch
import trimesh

from recon.io.export import ExportConfig, export_mesh
from recon.render.cpu import CpuRasterizer
from recon.scene.mesh import Mesh
from tests.clients.clients import blender_frame, blender_import, log_errors, validate

TEXTURE = 128
NAME = "recon_hypothesis_2"


def colour_fn(p: torch.Tensor) -> torch.Tensor:
    return (0.5 + 0.4 * torch.sin(4 * p + 1)).float()


def shapes() -> tuple[list[trimesh.Trimesh], trimesh.Trimesh]:
    """(the parts that are kept, the floater)."""
    ball = trimesh.creation.icosphere(subdivisions=4, radius=0.4)
    rod = trimesh.creation.cylinder(radius=0.015, height=0.35, sections=12)
    rod.apply_transform(trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0]))
    rod.apply_translation([0.0, 0.4 + 0.175 - 0.01, 0.0])  # its foot sits inside the ball
    nose = trimesh.creation.icosphere(subdivisions=2, radius=0.08)
    nose.apply_translation([0.0, 0.2, 0.35 + 0.06])  # high on the ball's front, overlapping it
    floater = trimesh.creation.icosphere(subdivisions=3, radius=0.15)
    floater.apply_translation([0.75, -0.2, 0.0])
    return [ball, rod, nose], floater


def normalised(points: np.ndarray) -> np.ndarray:
    """``points`` in the unit box of the kept parts (recon's +Y-up frame)."""
    kept, _ = shapes()
    lo, hi = trimesh.util.concatenate(kept).bounds
    return (points - (lo + hi) / 2) / (hi - lo).max()


def expected_bounds() -> np.ndarray:
    """(2, 3) bounds of the kept parts after normalisation, in recon's +Y-up frame."""
    kept, _ = shapes()
    return normalised(trimesh.util.concatenate(kept).bounds)


def landmarks() -> tuple[np.ndarray, np.ndarray]:
    """(the front-most point: the nose's tip, the top-most point: on the rod's top), normalised, +Y up."""
    kept, _ = shapes()
    v = trimesh.util.concatenate(kept).vertices
    return normalised(v[np.argmax(v[:, 2])]), normalised(v[np.argmax(v[:, 1])])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    out = tmp_path_factory.mktemp("clients")
    kept, floater = shapes()
    m = trimesh.util.concatenate([*kept, floater])
    mesh = Mesh(torch.as_tensor(m.vertices, dtype=torch.float32), torch.as_tensor(m.faces))
    result = export_mesh(mesh, colour_fn, out, "hypothesis_2", CpuRasterizer(),
                         ExportConfig(texture_size=TEXTURE))
    assert result.clean.floaters == 1
    return result.paths


# ------------------------------------------------------------------ files as read by trimesh / JSON
def glb_json(path) -> dict:
    data = path.read_bytes()
    n, kind = struct.unpack_from("<I4s", data, 12)
    assert data[:4] == b"glTF" and kind == b"JSON"
    return json.loads(data[20:20 + n])


def test_glb_names_material_and_buffer_view_targets(files):
    g = glb_json(files["glb"])
    assert [n["name"] for n in g["nodes"]] == [NAME]
    assert [m["name"] for m in g["meshes"]] == [NAME]
    assert [m["name"] for m in g["materials"]] == [NAME]
    pbr = g["materials"][0]["pbrMetallicRoughness"]
    assert pbr["metallicFactor"] == 0.0 and pbr["roughnessFactor"] == pytest.approx(0.9)
    assert pbr["baseColorFactor"] == [1, 1, 1, 1] and "baseColorTexture" in pbr
    prim = g["meshes"][0]["primitives"][0]
    views = g["bufferViews"]
    assert views[g["accessors"][prim["indices"]]["bufferView"]]["target"] == 34963
    for acc in prim["attributes"].values():
        assert views[g["accessors"][acc]["bufferView"]]["target"] == 34962
    image_view = g["images"][0]["bufferView"]
    assert "target" not in views[image_view]  # images must not have one
    # trimesh reads it back with the kept box: the floater is gone.
    m = trimesh.load(files["glb"], force="mesh")
    np.testing.assert_allclose(m.bounds, expected_bounds(), atol=1e-5)


def test_obj_has_one_normal_per_position_matching_the_surface(files):
    text = files["obj"].read_text().splitlines()
    nv = sum(1 for x in text if x.startswith("v "))
    nn = sum(1 for x in text if x.startswith("vn "))
    assert nv == nn > 0
    faces = [x for x in text if x.startswith("f ")]
    assert all(len(c.split("/")) == 3 for x in faces for c in x.split()[1:])
    m = trimesh.load(files["obj"], force="mesh", process=False)
    # The file's normals point out of the surface: compare with normals trimesh computes from the faces.
    ref = trimesh.Trimesh(m.vertices, m.faces, process=True)
    got = np.asarray(m.vertex_normals)
    near = ref.kdtree.query(m.vertices)[1]
    cos = (got * ref.vertex_normals[near]).sum(1)
    assert np.median(cos) > 0.99
    mtl = files["obj"].with_suffix(".mtl").read_text()
    assert f"newmtl {NAME}" in mtl and "Pr 0.9" in mtl and "Pm 0" in mtl


@pytest.mark.parametrize("up", ["y", "z"])
def test_export_up_axis_for_obj_and_ply(tmp_path, up):
    kept, _ = shapes()
    m = trimesh.util.concatenate(kept)
    mesh = Mesh(torch.as_tensor(m.vertices, dtype=torch.float32), torch.as_tensor(m.faces))
    paths = export_mesh(mesh, colour_fn, tmp_path, "h", CpuRasterizer(),
                        ExportConfig(texture_size=64, up=up, formats=("obj", "ply"))).paths
    want = expected_bounds() if up == "y" else np.sort(blender_frame(expected_bounds()), axis=0)
    for fmt in ("obj", "ply"):
        got = trimesh.load(paths[fmt], force="mesh").bounds
        np.testing.assert_allclose(got, want, atol=1e-5, err_msg=fmt)
        # The tall axis is the up axis: the rod stands on the ball; the nose is at the front (+Z or -Y).
        assert int(np.argmax(got[1])) == (1 if up == "y" else 2)
        v = trimesh.load(paths[fmt], force="mesh").vertices
        front = landmarks()[0] if up == "y" else blender_frame(landmarks()[0][None])[0]
        tip = v[np.argmax(v[:, 2])] if up == "y" else v[np.argmin(v[:, 1])]
        np.testing.assert_allclose(tip, front, atol=1e-5, err_msg=fmt)


# ------------------------------------------------------------------ real clients
def test_gltf_validator_reports_no_errors_warnings_or_hints(files):
    (report,) = validate([files["glb"]])
    issues = report["issues"]
    assert (issues["numErrors"], issues["numWarnings"]) == (0, 0), issues["messages"]
    assert issues["numHints"] == 0, issues["messages"]  # BUFFER_VIEW_TARGET_MISSING is gone
    assert report["info"]["hasTextures"] and report["info"]["materialCount"] == 1


def test_blender_imports_every_format_textured_upright_and_smooth(files):
    order = ["glb", "obj", "ply"]
    found, log = blender_import([files[f] for f in order])
    assert log_errors(log) == []
    want = np.sort(blender_frame(expected_bounds()), axis=0)  # Blender is +Z up, front towards -Y
    for fmt, info in zip(order, found):
        (obj,) = info["objects"]
        np.testing.assert_allclose(np.asarray(info["bounds"]), want, atol=1e-4, err_msg=fmt)
        # Bounds of a centred object are symmetric, so they cannot tell front from back: landmarks can.
        front, top = landmarks()
        np.testing.assert_allclose(info["front"], blender_frame(front[None])[0], atol=1e-4, err_msg=fmt)
        assert info["top"][2] == pytest.approx(blender_frame(top[None])[0][2], abs=1e-4), fmt
        assert obj["smooth_faces"] >= 0.95 * obj["faces"], (fmt, obj["smooth_faces"], obj["faces"])
        if fmt == "ply":
            assert obj["color_attributes"], "PLY imported without its vertex colours"
            continue
        assert obj["name"] == NAME and obj["materials"] == [NAME]
        (tex,) = obj["textures"]
        assert tex["images"] and tex["images"][0]["size"] == [TEXTURE, TEXTURE], (fmt, tex)
        assert tex["metallic"] == pytest.approx(0.0) and tex["roughness"] == pytest.approx(0.9, abs=1e-6)
        if fmt == "glb":
            assert obj["mesh"] == NAME


def test_a_mesh_mended_after_decimation_passes_both_clients(tmp_path):
    """The dumbbell of tests/io/test_mesh_clean_shells.py, whose neck decimation to 600 faces makes
    non-manifold: the mended files (vertices cut apart at the pinch) are valid glTF, import in Blender, and
    stay closed when a reader merges equal positions."""
    from tests.io.test_mesh_clean_shells import dumbbell, edge_face_counts

    raw = dumbbell()
    mesh = Mesh(torch.as_tensor(raw.vertices, dtype=torch.float32), torch.as_tensor(raw.faces))
    paths = export_mesh(mesh, colour_fn, tmp_path, "hypothesis_0", CpuRasterizer(),
                        ExportConfig(target_faces=600, texture_size=64)).paths
    (report,) = validate([paths["glb"]])
    assert (report["issues"]["numErrors"], report["issues"]["numWarnings"]) == (0, 0), report["issues"]["messages"]
    m = trimesh.load(paths["glb"], force="mesh", process=False)
    m = trimesh.Trimesh(m.vertices, m.faces, process=False)
    m.merge_vertices(merge_tex=True, merge_norm=True)
    assert m.is_watertight and not (edge_face_counts(m) > 2).any()
    order = ["glb", "obj", "ply"]
    found, log = blender_import([paths[f] for f in order])
    assert log_errors(log) == []
    for fmt, info in zip(order, found):
        (obj,) = info["objects"]
        assert obj["faces"] == len(m.faces), fmt
        assert obj["smooth_faces"] >= 0.95 * obj["faces"], fmt
        assert obj["color_attributes"] if fmt == "ply" else obj["textures"][0]["images"], fmt
