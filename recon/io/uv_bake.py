"""UV unwrap (xatlas) and albedo baking from a colour field by rasterising the mesh in UV space.

Baking: every uv vertex is placed at clip position (2u - 1, 2v - 1, 0, 1) and the layout is rasterised
with any :class:`~recon.render.backend.RasterBackend` (nvdiffrast on CUDA, the CPU rasteriser
elsewhere). For each covered texel the backend gives the triangle and barycentrics; interpolating the
3D positions gives the surface point whose colour the texel stores. Texel (i, j) centre is at
uv = ((j + 0.5) / W, (i + 0.5) / H) as in OpenGL/glTF sampling. Texels that no triangle covers are
filled by dilation (averaging covered neighbours, ``gutter`` rings deep) so bilinear lookups at chart
edges and seams read extrapolated colours, not background; the rest of the atlas takes the mean colour.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from recon.render.backend import RasterBackend

ColorFn = Callable[[torch.Tensor], torch.Tensor]
"""points (N, 3) float32 -> colours (N, 3) in [0, 1], in the mesh's own (un-normalised) coordinates."""


@dataclass
class UVLayout:
    """uv (Vt, 2) float32 in [0, 1] (v up, OpenGL); uv_faces (F, 3) int64 indexing uv, one per mesh face;
    vmap (Vt,) int64: the mesh vertex each uv vertex sits on (seam vertices have several uv vertices)."""

    uv: np.ndarray
    uv_faces: np.ndarray
    vmap: np.ndarray


def unwrap(vertices: np.ndarray, faces: np.ndarray, resolution: int = 1024, padding: int = 4) -> UVLayout:
    """xatlas charts packed for a ``resolution``² texture with ``padding`` texels between charts.

    vertices (V, 3), faces (F, 3) -> :class:`UVLayout`; face f of the layout is face f of the mesh.
    """
    import xatlas

    atlas = xatlas.Atlas()
    atlas.add_mesh(np.ascontiguousarray(vertices, np.float32), np.ascontiguousarray(faces, np.uint32))
    pack = xatlas.PackOptions()
    pack.resolution = int(resolution)
    pack.padding = int(padding)
    pack.bilinear = True
    atlas.generate(xatlas.ChartOptions(), pack)
    vmap, indices, uv = atlas.get_mesh(0)
    vmap = vmap.astype(np.int64)
    indices = indices.astype(np.int64).reshape(-1, 3)
    # xatlas keeps the face order; check, because the bake relies on it.
    if indices.shape[0] != faces.shape[0] or not np.array_equal(vmap[indices], np.asarray(faces)):
        raise RuntimeError("xatlas changed the face order or topology; cannot map uv faces to mesh faces")
    return UVLayout(uv=uv.astype(np.float32), uv_faces=indices, vmap=vmap)


@torch.no_grad()
def rasterize_uv(backend: RasterBackend, layout: UVLayout, attr: torch.Tensor, resolution: int,
                 device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Interpolate a per-uv-vertex attribute (Vt, C) over the UV layout.

    -> values (H, W, C), covered (H, W) bool; row 0 = v near 0 (the backend's bottom row).
    """
    uv = torch.as_tensor(layout.uv, dtype=torch.float32, device=device)
    clip = torch.cat([uv * 2 - 1, torch.zeros_like(uv[:, :1]), torch.ones_like(uv[:, :1])], dim=-1)[None]
    tri = torch.as_tensor(layout.uv_faces, dtype=torch.int32, device=device)
    rast, _ = backend.rasterize(clip, tri, (resolution, resolution))
    values, _ = backend.interpolate(attr.to(device=device, dtype=torch.float32)[None], rast, tri)
    return values[0], rast[0, ..., 3] > 0


@torch.no_grad()
def bake_albedo(backend: RasterBackend, vertices: np.ndarray, layout: UVLayout, color_fn: ColorFn,
                resolution: int = 1024, gutter: int = 8, chunk: int = 1 << 16,
                device: str | torch.device = "cpu") -> np.ndarray:
    """Texture (H, W, 3) float32 in [0, 1], row 0 = top (v = 1), as image files store it.

    ``vertices`` (V, 3) are the mesh positions ``color_fn`` is defined on; ``chunk`` bounds the number of
    points per ``color_fn`` call.
    """
    pos = torch.as_tensor(np.asarray(vertices)[layout.vmap], dtype=torch.float32)
    points, covered = rasterize_uv(backend, layout, pos, resolution, device)
    flat_pts = points[covered]
    colours = torch.empty_like(flat_pts)
    for start in range(0, flat_pts.shape[0], chunk):
        colours[start:start + chunk] = color_fn(flat_pts[start:start + chunk]).to(colours)
    image = torch.zeros(resolution, resolution, 3, dtype=torch.float32, device=points.device)
    image[covered] = colours.clamp(0, 1)
    texture = fill_gutters(image.cpu().numpy(), covered.cpu().numpy(), gutter)
    return np.ascontiguousarray(texture[::-1])


def fill_gutters(image: np.ndarray, covered: np.ndarray, rings: int) -> np.ndarray:
    """image (H, W, C), covered (H, W) bool -> image with empty texels filled.

    Each of ``rings`` passes gives every empty texel that touches a filled one the mean of its filled
    8-neighbours; texels still empty afterwards take the mean covered colour (no texel stays black).
    """
    out = np.where(covered[..., None], image, 0).astype(np.float32)
    filled = covered.astype(np.float32)
    kernel = np.ones((3, 3), np.float32)
    for _ in range(rings):
        if filled.all():
            break
        total = cv2.filter2D(out * filled[..., None], -1, kernel, borderType=cv2.BORDER_CONSTANT)
        count = cv2.filter2D(filled, -1, kernel, borderType=cv2.BORDER_CONSTANT)
        grow = (filled == 0) & (count > 0)
        out[grow] = total.reshape(out.shape)[grow] / count[grow][:, None]
        filled[grow] = 1.0
    if covered.any() and not filled.all():
        out[filled == 0] = image[covered].mean(axis=0)
    return out


def vertex_colors(vertices: np.ndarray, color_fn: ColorFn, chunk: int = 1 << 16,
                  device: str | torch.device = "cpu") -> np.ndarray:
    """(V, 3) float32 colours of ``color_fn`` at the vertices, for the PLY."""
    pts = torch.as_tensor(np.asarray(vertices), dtype=torch.float32, device=device)
    with torch.no_grad():
        out = [color_fn(pts[s:s + chunk]).float().cpu() for s in range(0, len(pts), chunk)]
    return torch.cat(out).clamp(0, 1).numpy() if out else np.zeros((0, 3), np.float32)
