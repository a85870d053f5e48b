"""From a raw surface and its colour field to GLB, OBJ(+MTL+PNG) and PLY files.

Steps (:func:`build_textured_mesh`): clean-up (:mod:`recon.io.mesh_clean`), quadric decimation to at
most ``target_faces`` faces, clean-up again, closing, the component rules again, xatlas UV unwrap and albedo baking
(:mod:`recon.io.uv_bake`), vertex colours for the PLY, and normalisation into a unit box.

Steps in full: clean-up with floater and inner-shell removal, decimation, clean-up again, closing (holes
filled, non-manifold edges split), floater, inner-shell and dust rules again on the closed mesh
(:func:`recon.io.mesh_clean.finish_mesh`; rules in docs/meshes.md), unwrap, bake.

Axes and units: right-handed; the object is centred at the centre of the bounding box of what the
clean-up kept and scaled so that box's longest side is 1 (unitless; glTF readers take it as 1 metre).
GLB is always glTF's frame: +Y up, +Z towards the front camera. OBJ and PLY follow ``export.up``:
``y`` is the same frame; ``z`` is +Z up with the front towards −Y (Blender's frame: (x, y, z) ->
(x, −z, y), what Blender's glTF importer does); ``auto`` (the default) writes each format the way its
usual readers take it with their default settings — OBJ +Y up (Blender, Maya, Unity, three.js),
PLY +Z up (Blender's PLY importer, MeshLab's default view) — so every file stands upright when dragged
into Blender. Every file is written atomically (:mod:`recon.io.atomic`); an OBJ's PNG and MTL are
written before the OBJ, so an OBJ on disk always has its material and texture beside it.
"""

from __future__ import annotations

import io
import json
import struct
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image

from recon.io.atomic import atomic_write_bytes, atomic_write_text
from recon.io.mesh_clean import CleanConfig, CleanReport, clean_mesh, decimate, finish_mesh
from recon.io.uv_bake import ColorFn, UVLayout, bake_albedo, unwrap, vertex_colors
from recon.render.backend import RasterBackend
from recon.scene.mesh import Mesh

MeshFormat = Literal["glb", "obj", "ply"]
UpAxis = Literal["auto", "y", "z"]
# The up axis each format gets under ``up: auto`` (see the module docstring).
AUTO_UP = {"obj": "y", "ply": "z"}
# glTF bufferView targets (glTF 2.0 spec, 5.11: ARRAY_BUFFER / ELEMENT_ARRAY_BUFFER).
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963
# Texture sampler: bilinear with mipmaps, clamped at the atlas edge (the bake fills gutters, not wraps).
SAMPLER = {"magFilter": 9729, "minFilter": 9987, "wrapS": 33071, "wrapT": 33071}


@dataclass
class ExportConfig:
    """``target_faces``: upper bound on faces after decimation; ``texture_size``: square texture side;
    ``uv_padding``: texels between charts; ``gutter``: texel rings filled around charts;
    ``normalize``: centre and scale into a unit box (from what the clean-up kept); ``up``: the up axis
    of OBJ and PLY files (``auto``, ``y`` or ``z``; module docstring); ``metallic`` / ``roughness``:
    the material's glTF ``metallicFactor`` / ``roughnessFactor`` (also the OBJ's ``Pm`` / ``Pr``) —
    defaults 0 and 0.9: the baked colour is a dielectric albedo with the lighting of the views in it,
    so no metal and almost no highlight (docs/meshes.md); ``parallel_hypotheses``: threads exporting
    hypotheses side by side in a run or ``recon export`` (0 = one per CPU core on the CPU, 1 on a GPU)."""

    target_faces: int = 50_000
    texture_size: int = 1024
    uv_padding: int = 4
    gutter: int = 8
    formats: tuple[MeshFormat, ...] = ("glb", "obj", "ply")
    normalize: bool = True
    clean: CleanConfig = field(default_factory=CleanConfig)
    up: UpAxis = "auto"
    metallic: float = 0.0
    roughness: float = 0.9
    parallel_hypotheses: int = 0

    def __post_init__(self) -> None:
        from recon.config import ConfigError

        if self.up not in ("auto", "y", "z"):
            raise ConfigError(f"export.up: {self.up!r} is not one of 'auto', 'y', 'z'")
        for key in ("metallic", "roughness"):
            value = getattr(self, key)
            if not 0.0 <= float(value) <= 1.0:
                raise ConfigError(f"export.{key}: {value!r} is outside [0, 1] (a glTF material factor)")


@dataclass
class Normalization:
    """exported = (original - centre) / scale; centre (3,), scale > 0."""

    centre: np.ndarray
    scale: float

    def to_original(self, points: np.ndarray) -> np.ndarray:
        return np.asarray(points) * self.scale + self.centre

    def mesh_to_original(self, mesh: Mesh) -> Mesh:
        """``mesh`` (export coordinates) with its vertices moved back to the original frame; faces, uv,
        texture and vertex colours unchanged. Export coordinates keep recon's axes (+Y up; the ``z`` up
        frame is applied only inside the OBJ / PLY writers), so only centre and scale are undone."""
        points = self.to_original(mesh.vertices.detach().cpu().double().numpy())
        return replace(mesh, vertices=torch.as_tensor(points, dtype=mesh.vertices.dtype))


@dataclass
class ExportResult:
    """What :func:`export_mesh` wrote. ``mesh``: the written surface (cleaned, decimated, closed, textured)
    in the input mesh's own coordinates (a run's world frame: ``normalization`` undone), so it renders
    with the same cameras and colour function as the raw surface it was made from."""

    paths: dict[str, Path]
    num_vertices: int
    num_faces: int
    normalization: Normalization
    watertight: bool
    clean: CleanReport = field(default_factory=CleanReport)
    mesh: Mesh | None = None


def build_textured_mesh(mesh: Mesh, color_fn: ColorFn, backend: RasterBackend,
                        config: ExportConfig | None = None,
                        device: str | torch.device = "cpu",
                        report: CleanReport | None = None) -> tuple[Mesh, Normalization]:
    """Clean, decimate, close, unwrap, bake. -> (textured mesh in export coordinates, the normalisation).

    ``report`` (optional) receives what the clean-up dropped and whether the result is closed.

    ``color_fn`` is evaluated in ``mesh``'s own coordinates (before normalisation) on ``device``.
    The result has vertices (V, 3), faces (F, 3), uv (Vt, 2), uv_faces (F, 3), texture (S, S, 3) and
    vertex_colors (V, 3), all float32/int64 CPU tensors.
    """
    config = config or ExportConfig()
    v = mesh.vertices.detach().cpu().double().numpy()
    f = mesh.faces.detach().cpu().long().numpy()
    report = report if report is not None else CleanReport()
    v, f = clean_mesh(v, f, config.clean, report)
    if len(f) == 0:
        raise ValueError("the surface is empty after clean-up; nothing to export")
    v, f = _decimate_and_finish(v, f, config, report)
    layout = unwrap(v, f, config.texture_size, config.uv_padding)
    texture = bake_albedo(backend, v, layout, color_fn, config.texture_size, config.gutter, device=device)
    colors = vertex_colors(v, color_fn, device=device)
    norm = _normalization(v) if config.normalize else Normalization(np.zeros(3), 1.0)
    v_out = (v - norm.centre) / norm.scale
    out = Mesh(
        vertices=torch.as_tensor(v_out, dtype=torch.float32),
        faces=torch.as_tensor(f, dtype=torch.long),
        vertex_colors=torch.as_tensor(colors, dtype=torch.float32),
        uv=torch.as_tensor(layout.uv, dtype=torch.float32),
        uv_faces=torch.as_tensor(layout.uv_faces, dtype=torch.long),
        texture=torch.as_tensor(texture, dtype=torch.float32),
    )
    return out, norm


def _decimate_and_finish(v: np.ndarray, f: np.ndarray, config: ExportConfig,
                         report: CleanReport) -> tuple[np.ndarray, np.ndarray]:
    """Decimate, clean, close and apply the component rules again (:func:`~recon.io.mesh_clean.finish_mesh`).
    Filling holes adds faces, so the decimation target is lowered until the finished mesh fits
    ``target_faces``."""
    target = config.target_faces
    for _ in range(6):
        step = CleanReport()
        dv, df = decimate(v, f, max(4, target))
        dv, df = clean_mesh(dv, df, config.clean, select=False)
        dv, df = finish_mesh(dv, df, config.clean, step)
        if len(df) <= config.target_faces or target <= 4:
            break
        target -= len(df) - config.target_faces
    for key in ("nonmanifold_edges", "nonmanifold_vertices", "holes_filled", "holes_left", "hole_sizes",
                "boundary_edges", "euler", "closed", "kept_components", "late_floaters", "late_floater_faces",
                "cut_off"):
        setattr(report, key, getattr(step, key))
    for key in ("inner_shells", "inner_shell_faces", "dust"):
        setattr(report, key, getattr(report, key) + getattr(step, key))
    if len(df) > config.target_faces:
        raise RuntimeError(f"the closed mesh has {len(df)} faces, more than export.target_faces = "
                           f"{config.target_faces}")
    return dv, df


def unit_vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) unit area-weighted vertex normals. Where the incident faces cancel (a vertex between opposite
    faces, e.g. on a thin fin) the sum is zero, which glTF forbids (ACCESSOR_VECTOR3_NON_UNIT); such a vertex
    takes the normal of its largest incident face, or +Y if all its faces are degenerate."""
    import trimesh

    mesh = trimesh.Trimesh(np.asarray(vertices, np.float64), np.asarray(faces, np.int64), process=False)
    normals = np.array(mesh.vertex_normals, dtype=np.float64)
    bad = ~(np.linalg.norm(normals, axis=1) > 0.5)
    if bad.any():
        area = np.asarray(mesh.area_faces)
        face_normals = np.asarray(mesh.face_normals)
        best = np.full(len(normals), -1.0)
        for corner in range(3):  # the largest incident face per vertex
            idx = mesh.faces[:, corner]
            for i in np.nonzero(bad[idx])[0]:  # faces at the few bad vertices
                if area[i] > best[idx[i]]:
                    best[idx[i]] = area[i]
                    normals[idx[i]] = face_normals[i]
        still = ~(np.linalg.norm(normals, axis=1) > 0.5)
        normals[still] = (0.0, 1.0, 0.0)
    return normals


def _normalization(vertices: np.ndarray) -> Normalization:
    lo, hi = vertices.min(0), vertices.max(0)
    return Normalization(centre=(lo + hi) / 2, scale=float(max((hi - lo).max(), 1e-12)))


def export_mesh(mesh: Mesh, color_fn: ColorFn, out_dir: str | Path, stem: str, backend: RasterBackend,
                config: ExportConfig | None = None, device: str | torch.device = "cpu") -> ExportResult:
    """Build the textured mesh and write ``<out_dir>/<stem>.{glb,obj,ply}`` (as configured); the result
    carries that mesh back in ``mesh``'s own coordinates (``ExportResult.mesh``).

    GLB node, mesh and material are all named ``recon_<stem>`` (``recon_hypothesis_k`` in a run)."""
    config = config or ExportConfig()
    report = CleanReport()
    textured, norm = build_textured_mesh(mesh, color_fn, backend, config, device, report)
    out_dir = Path(out_dir)
    name = f"recon_{stem}"
    paths = {}
    for fmt in config.formats:
        path = out_dir / f"{stem}.{fmt}"
        if fmt == "glb":
            paths[fmt] = write_glb(textured, path, name=name, metallic=config.metallic,
                                   roughness=config.roughness)
        elif fmt == "obj":
            paths[fmt] = write_obj(textured, path, up=axis_for("obj", config.up), name=name,
                                   metallic=config.metallic, roughness=config.roughness)
        else:
            paths[fmt] = write_ply(textured, path, up=axis_for("ply", config.up))
    closed = trimesh_of(textured).is_watertight
    return ExportResult(paths=paths, num_vertices=textured.num_vertices, num_faces=textured.num_faces,
                        normalization=norm, watertight=bool(closed), clean=report,
                        mesh=norm.mesh_to_original(textured))


def axis_for(fmt: str, up: str) -> str:
    """The up axis (``y`` or ``z``) that format ``fmt`` is written with under ``export.up = up``."""
    if up not in ("auto", "y", "z"):
        raise ValueError(f"export.up must be auto, y or z, got {up!r}")
    return AUTO_UP.get(fmt, "y") if up == "auto" else up


def to_up(points: np.ndarray, up: str) -> np.ndarray:
    """Points or normals (N, 3) from recon's +Y-up frame to the ``up`` frame: ``y`` unchanged,
    ``z``: (x, y, z) -> (x, −z, y) (a rotation by +90° about X; the front, +Z, goes to −Y)."""
    p = np.asarray(points)
    if up == "y":
        return p
    if up == "z":
        return np.stack([p[:, 0], -p[:, 2], p[:, 1]], axis=1)
    raise ValueError(f"up axis must be y or z, got {up!r}")


def trimesh_of(mesh: Mesh):
    """The shared-vertex surface as a ``trimesh.Trimesh`` (no UVs), for checks such as watertightness."""
    import trimesh

    return trimesh.Trimesh(mesh.vertices.detach().cpu().numpy().astype(np.float64),
                           mesh.faces.detach().cpu().numpy(), process=False)


def _require_texture(mesh: Mesh) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    if mesh.uv is None or mesh.uv_faces is None or mesh.texture is None:
        raise ValueError("mesh has no uv / uv_faces / texture; run build_textured_mesh first")
    v = mesh.vertices.detach().cpu().numpy().astype(np.float64)
    f = mesh.faces.detach().cpu().numpy().astype(np.int64)
    uv = mesh.uv.detach().cpu().numpy().astype(np.float64)
    uvf = mesh.uv_faces.detach().cpu().numpy().astype(np.int64)
    tex = texture_uint8(mesh.texture)
    return v, f, uv, uvf, tex


def texture_uint8(texture: torch.Tensor | np.ndarray) -> np.ndarray:
    t = texture.detach().cpu().numpy() if isinstance(texture, torch.Tensor) else np.asarray(texture)
    return (np.clip(t, 0, 1) * 255).round().astype(np.uint8)


def png_bytes(image_uint8: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image_uint8).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def write_glb(mesh: Mesh, path: str | Path, name: str = "recon_mesh", metallic: float = 0.0,
              roughness: float = 0.9) -> Path:
    """Binary glTF: one scene with one node, one mesh and one material, all named ``name``; positions,
    smooth normals, TEXCOORD_0; a metallic-roughness material with the texture as
    ``baseColorTexture``, ``baseColorFactor`` white (so viewers show the texture's own colours),
    ``metallicFactor`` / ``roughnessFactor`` as given, opaque, single-sided; a bilinear, mipmapped,
    clamp-to-edge sampler. Vertex and index bufferViews carry their targets. Seam vertices are stored
    once per chart, as glTF requires."""
    import trimesh

    v, f, uv, uvf, tex = _require_texture(mesh)
    pos_of_uv = np.zeros(len(uv), np.int64)
    pos_of_uv[uvf.ravel()] = f.ravel()
    normals = unit_vertex_normals(v, f)  # shared, so seams shade smoothly
    material = trimesh.visual.material.PBRMaterial(
        name=name, baseColorTexture=Image.fromarray(tex), baseColorFactor=[255, 255, 255, 255],
        metallicFactor=float(metallic), roughnessFactor=float(roughness), doubleSided=False,
        alphaMode="OPAQUE")
    split = trimesh.Trimesh(vertices=v[pos_of_uv], faces=uvf, vertex_normals=normals[pos_of_uv],
                            visual=trimesh.visual.TextureVisuals(uv=uv, material=material), process=False)
    scene = trimesh.Scene()
    scene.add_geometry(split, node_name=name, geom_name=name)
    data = trimesh.exchange.gltf.export_glb(scene, include_normals=True)
    return atomic_write_bytes(path, _finish_glb(data, name, float(metallic), float(roughness)))


def _finish_glb(data: bytes, name: str, metallic: float, roughness: float) -> bytes:
    """trimesh's GLB with what its writer cannot set: bufferView targets, the sampler, explicit factors
    and names, recon as generator. The binary chunk is unchanged."""
    from recon import __version__

    magic, version, _ = struct.unpack_from("<4sII", data, 0)
    json_len, json_kind = struct.unpack_from("<I4s", data, 12)
    if magic != b"glTF" or version != 2 or json_kind != b"JSON":
        raise ValueError("trimesh wrote something that is not a glTF 2.0 binary")
    gltf = json.loads(data[20:20 + json_len])
    rest = data[20 + json_len:]
    views = gltf.get("bufferViews", [])
    accessors = gltf.get("accessors", [])
    for m in gltf.get("meshes", []):
        m["name"] = name
        m.pop("extras", None)
        for prim in m.get("primitives", []):
            if "indices" in prim:
                views[accessors[prim["indices"]]["bufferView"]]["target"] = ELEMENT_ARRAY_BUFFER
            for acc in prim.get("attributes", {}).values():
                views[accessors[acc]["bufferView"]]["target"] = ARRAY_BUFFER
    for node in gltf.get("nodes", []):
        node["name"] = name
    for mat in gltf.get("materials", []):
        mat["name"] = name
        mat["alphaMode"] = "OPAQUE"
        pbr = mat.setdefault("pbrMetallicRoughness", {})
        pbr["baseColorFactor"] = [1.0, 1.0, 1.0, 1.0]
        pbr["metallicFactor"] = metallic
        pbr["roughnessFactor"] = roughness
    if gltf.get("textures"):
        gltf["samplers"] = [dict(SAMPLER)]
        for tex in gltf["textures"]:
            tex["sampler"] = 0
    gltf["asset"] = {"version": "2.0", "generator": f"recon {__version__} (trimesh)"}
    text = json.dumps(gltf, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 4)
    body = struct.pack("<I4s", len(text), b"JSON") + text + rest
    return struct.pack("<4sII", b"glTF", 2, 12 + len(body)) + body


def write_obj(mesh: Mesh, path: str | Path, up: str = "y", name: str | None = None,
              metallic: float = 0.0, roughness: float = 0.9) -> Path:
    """Wavefront OBJ with ``<stem>.mtl`` and ``<stem>.png`` beside it, +Y or +Z up (:func:`to_up`).

    Positions are shared (``f v/vt/vn``), so a closed surface stays closed in the file; every position
    carries its area-weighted vertex normal (one ``vn`` per ``v``), so readers shade it smooth. Object
    and material are named ``name`` (default ``recon_<stem>``); the material is white (``Kd 1 1 1``)
    with the texture as ``map_Kd``, no specular colour, and the PBR extension's ``Pr`` / ``Pm``
    (roughness / metallic, read by Blender's importer).
    """

    path = Path(path)
    name = name or f"recon_{path.stem}"
    v, f, uv, uvf, tex = _require_texture(mesh)
    normals = unit_vertex_normals(v, f)
    v, normals = to_up(v, up), to_up(normals, up)
    png_name, mtl_name = f"{path.stem}.png", f"{path.stem}.mtl"
    atomic_write_bytes(path.with_name(png_name), png_bytes(tex))
    atomic_write_text(path.with_name(mtl_name),
                      f"# recon\nnewmtl {name}\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\nd 1\nillum 1\n"
                      f"Pr {roughness:.6g}\nPm {metallic:.6g}\nmap_Kd {png_name}\n")
    frame = "+Y up, +Z front" if up == "y" else "+Z up, -Y front"
    lines = [f"# recon: {frame}, right-handed, unit box\nmtllib {mtl_name}\no {name}\n"]
    lines.append("".join(f"v {x:.7g} {y:.7g} {z:.7g}\n" for x, y, z in v))
    lines.append("".join(f"vt {a:.7g} {b:.7g}\n" for a, b in uv))
    lines.append("".join(f"vn {x:.6g} {y:.6g} {z:.6g}\n" for x, y, z in normals))
    lines.append(f"usemtl {name}\ns 1\n")
    fv, ft = f + 1, uvf + 1
    lines.append("".join(f"f {a}/{ta}/{a} {b}/{tb}/{b} {c}/{tc}/{c}\n"
                         for (a, b, c), (ta, tb, tc) in zip(fv.tolist(), ft.tolist())))
    return atomic_write_text(path, "".join(lines))


def write_ply(mesh: Mesh, path: str | Path, up: str = "z") -> Path:
    """Binary PLY with shared vertices, per-vertex normals and RGBA colours (uint8), +Z (default, what
    Blender's PLY importer assumes) or +Y up (:func:`to_up`)."""
    import trimesh

    if mesh.vertex_colors is None:
        raise ValueError("mesh has no vertex_colors; run build_textured_mesh first")
    colors = texture_uint8(mesh.vertex_colors)
    rgba = np.concatenate([colors, np.full((len(colors), 1), 255, np.uint8)], axis=1)
    v = mesh.vertices.detach().cpu().numpy().astype(np.float64)
    f = mesh.faces.detach().cpu().numpy()
    normals = unit_vertex_normals(v, f)
    tm = trimesh.Trimesh(to_up(v, up), f, vertex_normals=to_up(normals, up), vertex_colors=rgba,
                         process=False)
    data = trimesh.exchange.ply.export_ply(tm, encoding="binary", vertex_normal=True)
    return atomic_write_bytes(path, data)


def layout_of(mesh: Mesh) -> UVLayout:
    """The :class:`UVLayout` of a textured mesh (uv vertex -> mesh vertex map rebuilt from the faces)."""
    f = mesh.faces.cpu().numpy()
    uvf = mesh.uv_faces.cpu().numpy()
    vmap = np.zeros(mesh.uv.shape[0], np.int64)
    vmap[uvf.ravel()] = f.ravel()
    return UVLayout(uv=mesh.uv.cpu().numpy(), uv_faces=uvf, vmap=vmap)
