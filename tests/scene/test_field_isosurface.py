"""Marching cubes on density fields: orientation, position, cavity filling, colours."""

from __future__ import annotations

import math

import torch

from recon.scene.field import RadianceField
from recon.scene.isosurface import extract_mesh, solid_density_fn


def ball(r: float, peak: float = 20.0):
    return lambda p: peak * torch.sigmoid((r - p.norm(dim=-1)) / 0.02)


def test_ball_surface_is_closed_outward_and_at_the_right_radius():
    mesh = extract_mesh(ball(0.5), threshold=10.0, resolution=64)
    tm = mesh.to_trimesh()
    assert tm.is_watertight
    assert math.isclose(tm.volume, 4 / 3 * math.pi * 0.5**3, rel_tol=0.03)  # positive: faces wind outward
    r = mesh.vertices.norm(dim=-1)
    assert (r - 0.5).abs().max() < 2 / 63  # within one voxel
    n = mesh.face_normals()
    c = mesh.vertices[mesh.faces].mean(1)
    assert ((n * c).sum(-1) > 0).float().mean() > 0.99


def test_enclosed_cavity_is_filled_so_only_the_outer_surface_remains():
    shell = lambda p: ball(0.5)(p) - ball(0.3)(p)  # noqa: E731  (dense between r = 0.3 and 0.5)
    raw = extract_mesh(shell, threshold=10.0, resolution=64, fill=False).to_trimesh()
    assert len(raw.split(only_watertight=False)) == 2  # outer sphere + inner wall
    filled = extract_mesh(shell, threshold=10.0, resolution=64).to_trimesh()
    assert len(filled.split(only_watertight=False)) == 1
    assert math.isclose(filled.volume, 4 / 3 * math.pi * 0.5**3, rel_tol=0.03)


def test_closing_bridges_a_pinhole_in_the_shell():
    def pierced(p):
        d = ball(0.5)(p) - ball(0.3)(p)
        hole = (p[..., 0].abs() < 0.03) & (p[..., 1].abs() < 0.03) & (p[..., 2] > 0)  # a channel to the outside
        return torch.where(hole, torch.zeros_like(d), d)

    open_ = extract_mesh(pierced, threshold=10.0, resolution=64, close=0).to_trimesh()
    assert open_.volume < 0.8 * 4 / 3 * math.pi * 0.5**3  # the pocket stays connected to the outside
    closed = extract_mesh(pierced, threshold=10.0, resolution=64, close=2).to_trimesh()
    assert math.isclose(closed.volume, 4 / 3 * math.pi * 0.5**3, rel_tol=0.05)


def test_vertex_colours_come_from_the_colour_callable_and_empty_fields_give_empty_meshes():
    field = RadianceField()
    mesh = extract_mesh(field.density_fn(0), threshold=5.0, resolution=32, color_fn=field.color_fn(0))
    assert mesh.num_faces > 0 and mesh.vertex_colors.shape == (mesh.num_vertices, 3)
    assert torch.allclose(mesh.vertex_colors, torch.full_like(mesh.vertex_colors, 0.5), atol=1e-3)
    empty = extract_mesh(lambda p: torch.zeros(p.shape[:-1]), threshold=1.0, resolution=16)
    assert empty.num_vertices == 0 and empty.num_faces == 0


def test_solid_density_fills_pockets_and_keeps_the_field_elsewhere():
    shell = lambda p: ball(0.5)(p) - ball(0.3)(p)  # noqa: E731
    solid = solid_density_fn(shell, threshold=10.0, resolution=65)
    centre = torch.zeros(1, 3)
    assert shell(centre) < 1 and solid(centre) >= 10  # the pocket is now inside
    nodes = torch.stack(torch.meshgrid(*[torch.linspace(-1, 1, 65)] * 3, indexing="ij"), -1)[::4, ::4, ::4]
    outside_pocket = nodes.norm(dim=-1) > 0.32
    assert torch.allclose(solid(nodes)[outside_pocket], shell(nodes)[outside_pocket], atol=1e-4)
    assert solid(torch.tensor([[1.5, 0.0, 0.0]])) == 0
