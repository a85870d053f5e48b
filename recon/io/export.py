"""From a raw surface and its colour field to GLB, OBJ(+MTL+PNG) and PLY files.

Steps (:func:`build_textured_mesh`): clean-up (:mod:`recon.io.mesh_clean`), quadric decimation to at
most ``target_faces`` faces, clean-up again, xatlas UV unwrap and albedo baking
(:mod:`recon.io.uv_bake`), vertex colours for the PLY, and normalisation into a unit box.

Axes and units, every format: right-handed, +Y up, +Z towards the front camera (glTF's frame, which
Blender's glTF and OBJ importers map to its Z-up frame by default); the object is centred at the
origin and scaled so the longest side of its bounding box is 1 (unitless; glTF readers take it as
1 metre). Every file is written atomically (:mod:`recon.io.atomic`); an OBJ's PNG and MTL are written
before the OBJ, so an OBJ on disk always has its material and texture beside it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image

from recon.io.atomic import atomic_write_bytes, atomic_write_text
from recon.io.mesh_clean import CleanConfig, clean_mesh, decimate
from recon.io.uv_bake import ColorFn, UVLayout, bake_albedo, unwrap, vertex_colors
from recon.render.backend import RasterBackend
from recon.scene.mesh import Mesh

MeshFormat = Literal["glb", "obj", "ply"]


@dataclass
class ExportConfig:
    """``target_faces``: upper bound on faces after decimation; ``texture_size``: square texture side;
    ``uv_padding``: texels between charts; ``gutter``: texel rings filled around charts;
    ``normalize``: centre and scale into a unit box."""

    target_faces: int = 50_000
    texture_size: int = 1024
    uv_padding: int = 4
    gutter: int = 8
    formats: tuple[MeshFormat, ...] = ("glb", "obj", "ply")
    normalize: bool = True
    clean: CleanConfig = field(default_factory=CleanConfig)


@dataclass
class Normalization:
    """exported = (original - centre) / scale; centre (3,), scale > 0."""

    centre: np.ndarray
    scale: float

    def to_original(self, points: np.ndarray) -> np.ndarray:
        return np.asarray(points) * self.scale + self.centre


@dataclass
class ExportResult:
    paths: dict[str, Path]
    num_vertices: int
    num_faces: int
    normalization: Normalization
    watertight: bool


def build_textured_mesh(mesh: Mesh, color_fn: ColorFn, backend: RasterBackend,
                        config: ExportConfig | None = None,
                        device: str | torch.device = "cpu") -> tuple[Mesh, Normalization]:
    """Clean, decimate, unwrap, bake. -> (textured mesh in export coordinates, the normalisation used).

    ``color_fn`` is evaluated in ``mesh``'s own coordinates (before normalisation) on ``device``.
    The result has vertices (V, 3), faces (F, 3), uv (Vt, 2), uv_faces (F, 3), texture (S, S, 3) and
    vertex_colors (V, 3), all float32/int64 CPU tensors.
    """
    config = config or ExportConfig()
    v = mesh.vertices.detach().cpu().double().numpy()
    f = mesh.faces.detach().cpu().long().numpy()
    v, f = clean_mesh(v, f, config.clean)
    if len(f) == 0:
        raise ValueError("the surface is empty after clean-up; nothing to export")
    v, f = decimate(v, f, config.target_faces)
    v, f = clean_mesh(v, f, config.clean)
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


def _normalization(vertices: np.ndarray) -> Normalization:
    lo, hi = vertices.min(0), vertices.max(0)
    return Normalization(centre=(lo + hi) / 2, scale=float(max((hi - lo).max(), 1e-12)))


def export_mesh(mesh: Mesh, color_fn: ColorFn, out_dir: str | Path, stem: str, backend: RasterBackend,
                config: ExportConfig | None = None, device: str | torch.device = "cpu") -> ExportResult:
    """Build the textured mesh and write ``<out_dir>/<stem>.{glb,obj,ply}`` (as configured)."""
    config = config or ExportConfig()
    textured, norm = build_textured_mesh(mesh, color_fn, backend, config, device)
    out_dir = Path(out_dir)
    writers = {"glb": write_glb, "obj": write_obj, "ply": write_ply}
    paths = {fmt: writers[fmt](textured, out_dir / f"{stem}.{fmt}") for fmt in config.formats}
    closed = trimesh_of(textured).is_watertight
    return ExportResult(paths=paths, num_vertices=textured.num_vertices, num_faces=textured.num_faces,
                        normalization=norm, watertight=bool(closed))


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


def write_glb(mesh: Mesh, path: str | Path) -> Path:
    """Binary glTF: positions, smooth normals, TEXCOORD_0, PBR material with the texture as
    ``baseColorTexture`` and ``baseColorFactor`` white (so viewers show the texture's own colours),
    metallic 0, roughness 1. Seam vertices are stored once per chart, as glTF requires."""
    import trimesh

    v, f, uv, uvf, tex = _require_texture(mesh)
    pos_of_uv = np.zeros(len(uv), np.int64)
    pos_of_uv[uvf.ravel()] = f.ravel()
    normals = trimesh.Trimesh(v, f, process=False).vertex_normals  # shared, so seams shade smoothly
    material = trimesh.visual.material.PBRMaterial(
        baseColorTexture=Image.fromarray(tex), baseColorFactor=[255, 255, 255, 255],
        metallicFactor=0.0, roughnessFactor=1.0, doubleSided=False)
    split = trimesh.Trimesh(vertices=v[pos_of_uv], faces=uvf, vertex_normals=normals[pos_of_uv],
                            visual=trimesh.visual.TextureVisuals(uv=uv, material=material), process=False)
    data = trimesh.exchange.gltf.export_glb(split, include_normals=True)
    return atomic_write_bytes(path, data)


def write_obj(mesh: Mesh, path: str | Path) -> Path:
    """Wavefront OBJ with ``<stem>.mtl`` and ``<stem>.png`` beside it.

    Positions are shared (``f v/vt``), so a closed surface stays closed in the file; the material is
    white (``Kd 1 1 1``) with the texture as ``map_Kd``.
    """
    path = Path(path)
    v, f, uv, uvf, tex = _require_texture(mesh)
    png_name, mtl_name = f"{path.stem}.png", f"{path.stem}.mtl"
    atomic_write_bytes(path.with_name(png_name), png_bytes(tex))
    atomic_write_text(path.with_name(mtl_name),
                      "# recon\nnewmtl material0\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\nd 1\nillum 1\n"
                      f"map_Kd {png_name}\n")
    lines = [f"# recon: +Y up, right-handed, unit box\nmtllib {mtl_name}\no {path.stem}\n"]
    lines.append("".join(f"v {x:.7g} {y:.7g} {z:.7g}\n" for x, y, z in v))
    lines.append("".join(f"vt {a:.7g} {b:.7g}\n" for a, b in uv))
    lines.append("usemtl material0\n")
    fv, ft = f + 1, uvf + 1
    lines.append("".join(f"f {a}/{ta} {b}/{tb} {c}/{tc}\n"
                         for (a, b, c), (ta, tb, tc) in zip(fv.tolist(), ft.tolist())))
    return atomic_write_text(path, "".join(lines))


def write_ply(mesh: Mesh, path: str | Path) -> Path:
    """Binary PLY with shared vertices and per-vertex RGBA colours (uint8)."""
    import trimesh

    if mesh.vertex_colors is None:
        raise ValueError("mesh has no vertex_colors; run build_textured_mesh first")
    colors = texture_uint8(mesh.vertex_colors)
    rgba = np.concatenate([colors, np.full((len(colors), 1), 255, np.uint8)], axis=1)
    tm = trimesh.Trimesh(mesh.vertices.detach().cpu().numpy().astype(np.float64),
                         mesh.faces.detach().cpu().numpy(), vertex_colors=rgba, process=False)
    return atomic_write_bytes(path, trimesh.exchange.ply.export_ply(tm, encoding="binary"))


def layout_of(mesh: Mesh) -> UVLayout:
    """The :class:`UVLayout` of a textured mesh (uv vertex -> mesh vertex map rebuilt from the faces)."""
    f = mesh.faces.cpu().numpy()
    uvf = mesh.uv_faces.cpu().numpy()
    vmap = np.zeros(mesh.uv.shape[0], np.int64)
    vmap[uvf.ravel()] = f.ravel()
    return UVLayout(uv=mesh.uv.cpu().numpy(), uv_faces=uvf, vmap=vmap)
