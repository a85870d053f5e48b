"""render_mesh: image row order, colour sources (colour function, vertex colours, texture), depth, normals."""

from __future__ import annotations

import pytest
import torch
import trimesh
from raycast_oracles import boundary_band, ray_box

from recon.render.cameras import camera_batch, rays
from recon.render.cpu import CpuRasterizer
from recon.render.mesh_render import render_mesh
from recon.scene.mesh import Mesh

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def box(extents=(0.6, 0.4, 0.5), offset=(0.0, 0.0, 0.0)) -> Mesh:
    b = trimesh.creation.box(extents=extents)
    b.apply_translation(offset)
    return Mesh(torch.tensor(b.vertices, dtype=torch.float32), torch.tensor(b.faces))


def test_images_have_row_zero_at_the_top():
    mesh = box((0.3, 0.3, 0.3), (0.0, 0.4, 0.0))  # above the origin: must appear in the top half
    out = render_mesh(mesh, camera_batch(0, 0, 3.0, 40, 32), CpuRasterizer())
    assert out.rgb.shape == (1, 3, 32, 32) and out.alpha.shape == (1, 1, 32, 32)
    rows = out.mask[0, 0].any(dim=1).nonzero().flatten()
    assert rows.max() < 16


def test_linear_colour_function_equals_interpolated_vertex_colours():
    # A colour linear in position is reproduced exactly by perspective-correct vertex interpolation.
    mesh = box()
    lin = torch.tensor([[0.5, -0.3, 0.2], [0.1, 0.6, -0.4], [-0.2, 0.1, 0.7]])

    def color_fn(p):
        return 0.5 + p @ lin

    mesh_vc = Mesh(mesh.vertices, mesh.faces, vertex_colors=color_fn(mesh.vertices))
    cams = camera_batch([20, -10], [30, 160], 3.0, 30, 48)
    a = render_mesh(mesh, cams, CpuRasterizer(), color_fn=color_fn, antialias=False)
    b = render_mesh(mesh_vc, cams, CpuRasterizer(), antialias=False)
    m = a.mask.expand_as(a.rgb)
    assert m.sum() > 1000
    assert (a.rgb - b.rgb)[m].abs().max() < 1e-5
    assert torch.equal(a.rgb[~m], torch.ones_like(a.rgb[~m]))  # white background where empty


def test_texture_is_not_flipped():
    # A front-facing quad whose uv has v = 1 at the top; the texture's top half is red, bottom half blue.
    verts = torch.tensor([[-0.5, -0.5, 0.0], [0.5, -0.5, 0.0], [0.5, 0.5, 0.0], [-0.5, 0.5, 0.0]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    uv = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    tex = torch.zeros(8, 8, 3)
    tex[:4, :, 0] = 1  # rows 0-3 (top of the image file) red
    tex[4:, :, 2] = 1
    mesh = Mesh(verts, faces, uv=uv, uv_faces=faces, texture=tex)
    out = render_mesh(mesh, camera_batch(0, 0, 3.0, 30, 64), CpuRasterizer(), antialias=False)
    rows = out.mask[0, 0].any(dim=1).nonzero().flatten()
    top, bottom = int(rows.min()) + 2, int(rows.max()) - 2
    assert out.rgb[0, 0, top, 32] > 0.9 and out.rgb[0, 2, top, 32] < 0.1
    assert out.rgb[0, 2, bottom, 32] > 0.9 and out.rgb[0, 0, bottom, 32] < 0.1


def test_depth_and_normals_match_the_analytic_box():
    half = torch.tensor([0.3, 0.2, 0.25])
    mesh = box(tuple((2 * half).tolist()))
    cams = camera_batch([25, -15], [40, 250], 3.0, 25, 64)
    out = render_mesh(mesh, cams, CpuRasterizer(), smooth_normals=False)
    o, d = rays(cams, 64, 64)  # top-first, like the render
    t = ray_box(o, d, half, torch.eye(3, dtype=torch.float64))
    hit = torch.isfinite(t)
    inner = hit & out.mask[:, 0] & ~boundary_band(hit)
    # Away from creases too (a pixel within 1/32 pixel of an edge may go to the neighbouring face).
    tri = out.rast.flip(1)[..., 3]
    interior = inner & ~boundary_band(tri == tri.roll(1, 2)) & ~boundary_band(tri == tri.roll(1, 1))
    assert interior.sum() > 200
    forward = -cams.c2w[:, :3, 2].double()
    depth_ref = t * (d.double() * forward[:, None, None]).sum(-1)
    assert (out.depth[:, 0].double() - depth_ref)[interior].abs().max() < 1e-5
    # Face normals: the axis of the box face the ray hits, pointing back towards the camera.
    p = (o.double() + t.clamp(max=1e3)[..., None] * d.double()) / half.double()
    axis = p.abs().argmax(-1)
    ref_n = torch.nn.functional.one_hot(axis, 3).double() * torch.sign(p)
    n = out.normals.permute(0, 2, 3, 1).double()
    assert ((n - ref_n).norm(dim=-1)[interior]).max() < 1e-4
    # Antialiased alpha is in [0, 1] and equals the hard mask away from silhouettes.
    assert out.alpha.min() >= 0 and out.alpha.max() <= 1
    assert torch.equal(out.alpha[:, 0][inner], torch.ones_like(out.alpha[:, 0][inner]))
