"""Marching tetrahedra on analytic SDFs (must-show 2): watertight, outward, within the grid spacing of the
analytic surface; gradients reach the SDF values and the deformation."""

from __future__ import annotations

import math

import pytest
import torch
import trimesh
from scipy.spatial import cKDTree

from recon.scene.dmtet import DMTet, sample_surface
from recon.scene.marching_tets import NUM_TRIS, TET_EDGES, TRI_TABLE, marching_tets
from recon.scene.tets import tet_grid

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def sphere_sdf(p, r=0.6):
    return p.norm(dim=-1) - r


def torus_sdf(p, big=0.55, small=0.2):
    q = torch.stack([p[:, [0, 2]].norm(dim=-1) - big, p[:, 1]], -1)
    return q.norm(dim=-1) - small


def sphere_points(n, g, r=0.6):
    x = torch.randn(n, 3, generator=g, dtype=torch.float64)
    return r * x / x.norm(dim=-1, keepdim=True)


def torus_points(n, g, big=0.55, small=0.2):
    # Area-uniform samples by rejection on the area element (big + small cos(v)).
    u = 2 * math.pi * torch.rand(4 * n, generator=g, dtype=torch.float64)
    v = 2 * math.pi * torch.rand(4 * n, generator=g, dtype=torch.float64)
    keep = torch.rand(4 * n, generator=g, dtype=torch.float64) < (big + small * torch.cos(v)) / (big + small)
    u, v = u[keep][:n], v[keep][:n]
    ring = big + small * torch.cos(v)
    return torch.stack([ring * torch.cos(u), small * torch.sin(v), ring * torch.sin(u)], -1)


def edge_use(faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    directed = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    und = directed.sort(dim=1).values
    _uniq, counts = torch.unique(und, dim=0, return_counts=True)
    return directed, counts


@pytest.mark.parametrize("shape", ["sphere", "torus"])
@pytest.mark.parametrize("res", [24, 40])
def test_analytic_sdfs_give_watertight_outward_meshes_close_to_the_surface(shape, res):
    sdf_fn, sample_fn, volume, euler = {
        "sphere": (sphere_sdf, sphere_points, 4 / 3 * math.pi * 0.6 ** 3, 2),
        "torus": (torus_sdf, torus_points, 2 * math.pi ** 2 * 0.55 * 0.2 ** 2, 0),
    }[shape]
    g = tet_grid(res, 1.0, dtype=torch.float64)
    out = marching_tets(g.vertices, g.tets, sdf_fn(g.vertices))
    v, f = out.vertices, out.faces
    # Watertight and consistently oriented: every edge used exactly twice, once in each direction.
    directed, counts = edge_use(f)
    assert (counts == 2).all()
    assert torch.unique(directed, dim=0).shape[0] == directed.shape[0]
    tm = trimesh.Trimesh(v.numpy(), f.numpy(), process=False)
    assert tm.is_watertight and tm.is_winding_consistent
    assert tm.euler_number == euler
    assert tm.volume > 0  # outward normals
    assert abs(tm.volume - volume) / volume < 0.05
    # Chamfer distance (mean of both directions) to the analytic surface, below the grid spacing.
    gen = torch.Generator().manual_seed(0)
    mesh_pts = sample_surface(v, f, 40_000, gen)
    true_pts = sample_fn(40_000, gen)
    to_true = sdf_fn(mesh_pts).abs().mean()
    to_mesh = torch.as_tensor(cKDTree(mesh_pts.numpy()).query(true_pts.numpy())[0]).mean()
    chamfer = float(to_true + to_mesh) / 2
    spacing = g.cell_size
    print(f"{shape} res {res}: chamfer {chamfer:.5f} vs spacing {spacing:.5f}; max |sdf(vertex)| "
          f"{float(sdf_fn(v).abs().max()):.5f}")
    assert chamfer < spacing / 4
    assert sdf_fn(v).abs().max() < spacing / 2


def test_table_orients_every_case_outward_on_deformed_tetrahedra():
    g = torch.Generator().manual_seed(1)
    for code in range(1, 15):
        for _ in range(20):
            verts = torch.randn(4, 3, generator=g, dtype=torch.float64)
            if torch.det(verts[1:] - verts[0]) < 0:
                verts = verts[[0, 2, 1, 3]]
            mag = torch.rand(4, generator=g, dtype=torch.float64) + 0.05
            inside = torch.tensor([bool(code >> i & 1) for i in range(4)])
            sdf = torch.where(inside, -mag, mag)
            out = marching_tets(verts, torch.tensor([[0, 1, 2, 3]]), sdf)
            assert out.faces.shape[0] == int(NUM_TRIS[code])
            tri = out.vertices[out.faces]
            n = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
            toward_out = verts[~inside].mean(0) - verts[inside].mean(0)
            assert ((n * toward_out).sum(-1) > 0).all(), f"case {code} faces inward"
    assert TRI_TABLE.shape == (16, 2, 3) and len(TET_EDGES) == 6


def test_gradients_reach_sdf_and_deformation_and_match_finite_differences():
    geo = DMTet(resolution=4, radius=1.0).double()
    with torch.no_grad():
        geo.init_from_sdf(lambda p: sphere_sdf(p, 0.55))
        geo.deform.normal_(0, 0.3, generator=torch.Generator().manual_seed(0))
    mesh = geo.extract()
    w = torch.randn(mesh.vertices.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    (mesh.vertices * w).sum().backward()
    near = geo.sdf.grad != 0
    assert near.any() and (geo.deform.grad.abs().sum(-1) > 0).any()
    # Only vertices on crossed edges get SDF gradients.
    out = geo.march()
    assert torch.equal(near.nonzero().flatten(), torch.unique(out.edges))

    tets = geo.tets
    base = geo.grid_vertices

    def f(sdf, deform):
        verts = base + torch.tanh(deform) * (geo.deform_fraction * geo.cell_size)
        return marching_tets(verts, tets, sdf).vertices

    sdf = geo.sdf.detach().clone().requires_grad_(True)
    deform = geo.deform.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(f, (sdf, deform), eps=1e-6, atol=1e-6)


def test_empty_and_full_fields_give_empty_meshes():
    g = tet_grid(4)
    for sdf in (torch.ones(g.vertices.shape[0]), -torch.ones(g.vertices.shape[0])):
        out = marching_tets(g.vertices, g.tets, sdf)
        assert out.vertices.shape == (0, 3) and out.faces.shape == (0, 3)


def test_compiled_pass_keeps_exactly_the_tets_with_corners_on_both_sides():
    """The compiled first pass against its definition: a tetrahedron is kept iff its four corners are not all
    on one side, with code Σ_j inside[corner j] · 2^j, in ascending order (every 0..15 pattern occurs)."""
    from recon.scene.marching_tets_kernel import crossed_tets

    g = torch.Generator().manual_seed(3)
    tets = torch.randint(0, 50, (4000, 4), generator=g)
    inside = torch.rand(50, generator=g) < 0.5
    index, code = crossed_tets(tets, inside)
    bits = [[bool(inside[int(v)]) for v in tet] for tet in tets.tolist()]
    want = [i for i, b in enumerate(bits) if any(b) and not all(b)]
    assert index.tolist() == want
    assert code.tolist() == [sum(1 << j for j in range(4) if bits[i][j]) for i in want]
    assert set(code.tolist()) == set(range(1, 15))
