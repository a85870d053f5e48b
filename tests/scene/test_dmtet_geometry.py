"""DMTet: initialisation from a density field, redistancing, bounded deformation; edge adjacency and the
mesh regularisers on closed-form cases."""

from __future__ import annotations

import math

import pytest
import torch
import trimesh

from recon.scene.dmtet import DMTet
from recon.scene.mesh_regularizers import laplacian_smoothness, normal_consistency
from recon.scene.mesh_topology import edge_adjacency

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def gaussian_density(p: torch.Tensor) -> torch.Tensor:
    return 40.0 * torch.exp(-(p ** 2).sum(-1) / (2 * 0.3 ** 2))


def test_init_from_density_places_the_surface_at_the_threshold_and_redistances():
    # Level set of a Gaussian blob: 40 exp(-r^2 / (2 s^2)) = 10  <=>  r = s sqrt(2 ln 4).
    radius = 0.3 * math.sqrt(2 * math.log(4))
    geo = DMTet(resolution=32, radius=1.0)
    geo.init_from_density(gaussian_density, threshold=10.0)
    mesh = geo.extract()
    r = mesh.vertices.detach().norm(dim=-1)
    assert (r - radius).abs().max() < 0.01  # well below the 0.0625 cell size
    # Redistanced: the grid SDF is the signed distance to that sphere near the surface.
    p = geo.grid_vertices
    near = (p.norm(dim=-1) - radius).abs() < 3 * geo.cell_size
    err = (geo.sdf.detach() - (p.norm(dim=-1) - radius))[near].abs().max()
    assert err < 0.01
    # Farther out (distances to a sample subset, dmtet._distance_to_samples) still within a third of a cell.
    err_all = (geo.sdf.detach() - (p.norm(dim=-1) - radius)).abs().max()
    assert err_all < 0.02
    tm = trimesh.Trimesh(mesh.vertices.detach().numpy(), mesh.faces.numpy(), process=False)
    assert tm.is_watertight and tm.volume > 0


def test_init_without_redistancing_keeps_the_log_density_form():
    geo = DMTet(resolution=8)
    geo.init_from_density(gaussian_density, threshold=10.0, redistance=False)
    expected = math.log(10.0) - torch.log(gaussian_density(geo.grid_vertices) + 1e-5)
    assert torch.allclose(geo.sdf.detach(), expected, atol=1e-4)


@pytest.mark.parametrize("threshold", [100.0, 1e-9])
def test_a_threshold_with_no_surface_is_refused_with_the_density_range(threshold):
    geo = DMTet(resolution=8)
    with pytest.raises(ValueError, match="no surface at density threshold"):
        geo.init_from_density(gaussian_density, threshold=threshold)


def test_deformation_is_bounded_by_the_fraction_of_a_cell():
    geo = DMTet(resolution=8, radius=1.0, deform_fraction=0.4)
    with torch.no_grad():
        geo.deform.fill_(50.0)
    shift = geo.vertex_positions() - geo.grid_vertices
    assert shift.max() <= 0.4 * geo.cell_size + 1e-6
    assert shift.max() > 0.39 * geo.cell_size


def test_edge_adjacency_of_closed_and_open_meshes():
    ico = trimesh.creation.icosphere(subdivisions=2)
    faces = torch.tensor(ico.faces)
    adj = edge_adjacency(faces)
    assert adj.boundary_edges.shape[0] == 0 and adj.nonmanifold_edges == 0
    assert adj.interior.shape[0] == len(ico.edges_unique)
    # The opposite vertex across edge i of face f is the third vertex of the neighbouring face.
    f, i = 17, 1
    nb = int(adj.neighbor[f, i])
    edge = {int(faces[f, (i + 1) % 3]), int(faces[f, (i + 2) % 3])}
    assert edge <= set(faces[nb].tolist())
    assert int(adj.opposite[f, i]) in set(faces[nb].tolist()) - edge
    single = edge_adjacency(torch.tensor([[0, 1, 2]]))
    assert (single.opposite == -1).all() and single.boundary_edges.shape[0] == 3


def test_regularisers_on_closed_form_cases():
    # Two triangles folded by 90 degrees along their shared edge: normal consistency = 1 - cos 90 = 1.
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    f = torch.tensor([[0, 1, 2], [0, 3, 1]])
    assert torch.allclose(normal_consistency(v, f), torch.tensor(1.0))
    flat = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]])
    assert torch.allclose(normal_consistency(flat, torch.tensor([[0, 1, 2], [1, 3, 2]])), torch.tensor(0.0),
                          atol=1e-7)
    # Laplacian: a vertex at the centre of a regular fan has zero offset; lifting it by h costs h^2 / 5.
    ring = torch.tensor([[math.cos(a), math.sin(a), 0.0] for a in torch.arange(4) * math.pi / 2])
    verts = torch.cat([torch.zeros(1, 3), ring])
    fan = torch.tensor([[0, 1, 2], [0, 2, 3], [0, 3, 4], [0, 4, 1]])
    base = laplacian_smoothness(verts, fan)
    lifted = verts.clone()
    lifted[0, 2] = 0.5
    # Centre: offset 0.5 -> 0.25. Each rim vertex: neighbours (centre, two rim) -> offset of z = -0.5/3.
    expected = (0.25 + 4 * (0.5 / 3) ** 2) / 5
    assert torch.allclose(laplacian_smoothness(lifted, fan) - base, torch.tensor(expected), atol=1e-6)


def test_state_leaves_out_the_grid_and_loads_states_that_hold_it():
    """Checkpoints carry sdf and deform only (the grid follows from resolution and radius); a state written
    when the grid was in it still loads, into the same surface."""
    geo = DMTet(6, 1.0)
    with torch.no_grad():
        geo.sdf.copy_(geo.grid_vertices.norm(dim=-1) - 0.5)
        geo.deform.uniform_(-0.3, 0.3)
    assert set(geo.state_dict()) == {"sdf", "deform"}
    legacy = dict(geo.state_dict(), grid_vertices=geo.grid_vertices.clone(), tets=geo.tets.clone())
    other = DMTet(6, 1.0)
    other.load_state_dict(legacy)
    a, b = geo.extract(), other.extract()
    assert torch.equal(a.faces, b.faces) and torch.equal(a.vertices, b.vertices) and a.faces.shape[0] > 0
