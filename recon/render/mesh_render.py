"""Render a :class:`~recon.scene.mesh.Mesh` through any rasteriser backend: colour, alpha, depth, normals.

Colour comes from (first match): a colour function of world position evaluated at every covered pixel's
surface point, the mesh's texture (uv + uv_faces + texture), its vertex colours, or a flat grey.
Returned images are (B, C, H, W) with **row 0 = top** (the raw rasteriser rows are flipped); colour and alpha
are antialiased at silhouettes, so gradients reach vertex positions through silhouettes as well as through
the surface points.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as nnf

from recon.render.backend import RasterBackend
from recon.render.cameras import Cameras, to_clip
from recon.scene.mesh import Mesh

ColorFn = Callable[[torch.Tensor], torch.Tensor]  # points (N, 3) -> colours (N, 3) in [0, 1]

DEFAULT_GREY = 0.7


@dataclass
class MeshRender:
    """rgb (B, 3, H, W) composited over the background; alpha (B, 1, H, W) in [0, 1];
    depth (B, 1, H, W) view-space distance along the camera axis (0 where empty);
    normals (B, 3, H, W) world-space unit normals (0 where empty); position (B, 3, H, W) world-space surface
    points (0 where empty); mask (B, 1, H, W) bool, pixel centre covered; rast (B, H, W, 4) raw, row 0 = bottom.
    All image tensors have row 0 = top."""

    rgb: torch.Tensor
    alpha: torch.Tensor
    depth: torch.Tensor
    normals: torch.Tensor
    position: torch.Tensor
    mask: torch.Tensor
    rast: torch.Tensor


def _to_bchw_top(x: torch.Tensor) -> torch.Tensor:
    """(B, H, W, C) rows bottom-first -> (B, C, H, W) rows top-first."""
    return x.flip(1).permute(0, 3, 1, 2).contiguous()


def _surface_colors(mesh: Mesh, rast: torch.Tensor, position: torch.Tensor, covered: torch.Tensor,
                    backend: RasterBackend, color_fn: ColorFn | None) -> torch.Tensor:
    """(B, H, W, 3) colours before compositing (values where uncovered are irrelevant)."""
    bsz, h, w, _ = rast.shape
    faces = mesh.faces
    if color_fn is not None:
        flat = covered.reshape(-1).nonzero().squeeze(1)
        pts = position.reshape(-1, 3).index_select(0, flat)
        cols = color_fn(pts)
        out = torch.zeros(bsz * h * w, 3, dtype=cols.dtype, device=cols.device)
        return out.index_copy(0, flat, cols).view(bsz, h, w, 3)
    if mesh.texture is not None and mesh.uv is not None:
        uv_faces = mesh.uv_faces if mesh.uv_faces is not None else faces
        uv, _ = backend.interpolate(mesh.uv.to(rast.dtype), rast, uv_faces)  # (B, H, W, 2)
        # texture row 0 = top = v 1; grid_sample's y = -1 is row 0.
        grid = torch.stack([uv[..., 0] * 2 - 1, 1 - uv[..., 1] * 2], dim=-1)
        tex = mesh.texture.to(rast.dtype).permute(2, 0, 1)[None].expand(bsz, -1, -1, -1)
        cols = nnf.grid_sample(tex, grid, mode="bilinear", padding_mode="border", align_corners=False)
        return cols.permute(0, 2, 3, 1)
    if mesh.vertex_colors is not None:
        cols, _ = backend.interpolate(mesh.vertex_colors.to(rast.dtype), rast, faces)
        return cols
    return torch.full((bsz, h, w, 3), DEFAULT_GREY, dtype=rast.dtype, device=rast.device)


def render_mesh(
    mesh: Mesh,
    cameras: Cameras,
    backend: RasterBackend,
    resolution: tuple[int, int] | None = None,
    color_fn: ColorFn | None = None,
    background: float | tuple[float, float, float] | torch.Tensor = 1.0,
    antialias: bool = True,
    smooth_normals: bool = True,
) -> MeshRender:
    """Render ``mesh`` from every camera in ``cameras`` (resolution defaults to the cameras').

    background: a grey level, an RGB triple, or a (B, 3, H, W) image (row 0 = top) behind the object.
    """
    h, w = resolution if resolution is not None else cameras.resolution
    verts = mesh.vertices
    dtype, device = verts.dtype, verts.device
    faces = mesh.faces.to(device)
    mvp = cameras.mvp.to(device=device, dtype=dtype)
    view = cameras.view.to(device=device, dtype=dtype)
    bsz = mvp.shape[0]
    clip = to_clip(verts, mvp)  # (B, V, 4)
    rast, _ = backend.rasterize(clip, faces, (h, w))
    covered = rast[..., 3:4] > 0  # (B, H, W, 1)

    cam_z = -(torch.einsum("bij,vj->bvi", view[:, :3, :3], verts) + view[:, None, :3, 3])[..., 2:3]
    normals_v = mesh.vertex_normals() if smooth_normals else None
    attrs = [verts.expand(bsz, -1, -1), cam_z]
    if normals_v is not None:
        attrs.append(normals_v.expand(bsz, -1, -1))
    packed, _ = backend.interpolate(torch.cat(attrs, dim=-1).contiguous(), rast, faces)
    position, depth = packed[..., 0:3], packed[..., 3:4]
    if normals_v is not None:
        normals = packed[..., 4:7]
    else:
        fn = mesh.face_normals()
        tri = (rast[..., 3].detach().long() - 1).clamp(min=0)
        normals = fn[tri]
    normals = nnf.normalize(normals, dim=-1) * covered

    colors = _surface_colors(mesh, rast, position, covered[..., 0], backend, color_fn)
    bg = torch.as_tensor(background, dtype=dtype, device=device)
    if bg.dim() == 4:  # (B, 3, H, W) top-first -> (B, H, W, 3) bottom-first
        bg_img = bg.permute(0, 2, 3, 1).flip(1)
    else:
        bg_img = bg.reshape(1, 1, 1, -1).expand(bsz, h, w, 3)
    rgb = torch.where(covered, colors.to(dtype), bg_img)
    alpha = covered.to(dtype)
    if antialias:
        both = backend.antialias(torch.cat([rgb, alpha], dim=-1).contiguous(), rast, clip, faces)
        rgb, alpha = both[..., :3], both[..., 3:4]
    return MeshRender(
        rgb=_to_bchw_top(rgb), alpha=_to_bchw_top(alpha), depth=_to_bchw_top(depth * covered),
        normals=_to_bchw_top(normals), position=_to_bchw_top(position * covered),
        mask=_to_bchw_top(covered), rast=rast,
    )
