"""The generated tetrahedral grid: size, bounds, orientation, exact volume, and conformity."""

from __future__ import annotations

import pytest
import torch

from recon.scene.tets import tet_grid


def tet_volumes(v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    p = v.double()[t]
    return torch.det(torch.stack([p[:, 1] - p[:, 0], p[:, 2] - p[:, 0], p[:, 3] - p[:, 0]], 1)) / 6


@pytest.mark.parametrize("res", [1, 4, 9])
def test_grid_is_a_positively_oriented_conforming_partition_of_the_cube(res):
    radius = 0.8
    g = tet_grid(res, radius)
    assert g.vertices.shape == ((res + 1) ** 3, 3) and g.tets.shape == (6 * res ** 3, 4)
    assert torch.allclose(g.vertices.min(0).values, torch.full((3,), -radius))
    assert torch.allclose(g.vertices.max(0).values, torch.full((3,), radius))
    vol = tet_volumes(g.vertices, g.tets)
    assert (vol > 0).all()
    assert torch.allclose(vol.sum(), torch.tensor((2 * radius) ** 3, dtype=torch.float64))
    # Conforming: every interior triangle is shared by exactly two tets, boundary triangles lie on the cube
    # (2 per cell face, 6 faces).
    tri = g.tets[:, [[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]]].reshape(-1, 3).sort(dim=1).values
    uniq, counts = torch.unique(tri, dim=0, return_counts=True)
    assert counts.max() == 2
    boundary = uniq[counts == 1]
    assert boundary.shape[0] == 2 * 6 * res ** 2
    on_face = (g.vertices[boundary].abs() == radius).all(dim=1).any(dim=-1)
    assert on_face.all()
    assert abs(g.cell_size - 2 * radius / res) < 1e-12


def test_edges_are_unique_and_complete():
    g = tet_grid(3)
    e = g.edges()
    assert (e[:, 0] < e[:, 1]).all()
    assert torch.unique(e, dim=0).shape == e.shape
    # Kuhn grid: 3 axis edges + 3 face diagonals + 1 body diagonal per cell, shared between cells.
    n = 4
    axis_edges = 3 * n * n * 3
    face_diagonals = 3 * 3 * 3 * n
    body = 27
    assert e.shape[0] == axis_edges + face_diagonals + body


def test_bad_resolution_is_refused():
    with pytest.raises(ValueError):
        tet_grid(0)
