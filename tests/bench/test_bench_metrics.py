"""Benchmark metrics against closed-form oracles (spheres, boxes, integrals by scipy's quadrature)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import trimesh
from scipy import integrate

from recon.bench import metrics as M
from recon.scene.mesh import Mesh

N = 40000


def sphere(radius: float, centre=(0.0, 0.0, 0.0)) -> Mesh:
    tm = trimesh.creation.icosphere(subdivisions=5, radius=radius)
    tm.apply_translation(centre)
    return Mesh.from_trimesh(tm)


def box(half: float | tuple[float, float, float], centre=(0.0, 0.0, 0.0)) -> Mesh:
    h = np.broadcast_to(np.asarray(half, float), (3,))
    tm = trimesh.creation.box(extents=2 * h)
    tm.apply_translation(centre)
    return Mesh.from_trimesh(tm)


def test_surface_samples_are_on_the_surface_and_deterministic():
    mesh = box(0.5)
    a = M.surface_points(mesh, 5000, seed=3)
    b = M.surface_points(mesh, 5000, seed=3)
    np.testing.assert_array_equal(a, b)
    # on the surface of the cube: the largest |coordinate| is 0.5
    np.testing.assert_allclose(np.abs(a).max(axis=1), 0.5, atol=1e-6)
    # uniform by area: each of the 6 faces gets 1/6 of the points
    face = np.argmax(np.abs(a), axis=1) * 2 + (a[np.arange(len(a)), np.argmax(np.abs(a), axis=1)] > 0)
    counts = np.bincount(face, minlength=6) / len(a)
    np.testing.assert_allclose(counts, 1 / 6, atol=0.02)


def test_chamfer_of_concentric_spheres_is_the_radius_gap():
    a = M.surface_points(sphere(0.5), N, seed=0)
    b = M.surface_points(sphere(0.6), N, seed=1)
    # Every point of one sphere is exactly 0.1 from the other; sampling adds a tangential offset of
    # about half a sample spacing (√(4π 0.6² / N) ≈ 0.01), i.e. < 1e-3 in distance.
    assert M.chamfer_l1(a, b) == pytest.approx(0.1, abs=1.5e-3)
    assert M.chamfer_l1(a, a) == 0.0


def test_chamfer_of_shifted_spheres_matches_the_integral():
    r, d = 0.5, 0.3
    # Archimedes: u = cos θ is uniform on [-1, 1] over a sphere, and the distance from a point of sphere A
    # to sphere B (centre shifted by d) is | √(r² + d² − 2 r d u) − r |. Both directions are equal.
    one_sided = integrate.quad(lambda u: abs(math.sqrt(r * r + d * d - 2 * r * d * u) - r) / 2, -1, 1,
                               points=[d / (2 * r)])[0]
    a = M.surface_points(sphere(r), N, seed=0)
    b = M.surface_points(sphere(r, (d, 0, 0)), N, seed=1)
    assert M.chamfer_l1(a, b) == pytest.approx(one_sided, abs=2.5e-3)
    assert one_sided == pytest.approx(d / 2, abs=1e-9)  # the integral's closed form for d < r


def test_chamfer_of_nested_cubes_matches_the_integral():
    a, b = 0.5, 0.4
    # Inner -> outer: every inner surface point is exactly a − b from the outer cube.
    inner_to_outer = a - b

    # Outer -> inner: on the face x = a, the distance to the inner cube is
    # √((a−b)² + max(|y|−b, 0)² + max(|z|−b, 0)²); all faces alike.
    def dist(y, z):
        return math.sqrt((a - b) ** 2 + max(abs(y) - b, 0) ** 2 + max(abs(z) - b, 0) ** 2)

    outer_to_inner = integrate.dblquad(dist, -a, a, -a, a)[0] / (2 * a) ** 2
    expected = 0.5 * (inner_to_outer + outer_to_inner)
    pa = M.surface_points(box(a), N, seed=0)
    pb = M.surface_points(box(b), N, seed=1)
    assert M.chamfer_l1(pa, pb) == pytest.approx(expected, abs=1.5e-3)


def test_fscore_at_known_offsets():
    a = M.surface_points(sphere(0.5), N, seed=0)
    b = M.surface_points(sphere(0.6), N, seed=1)
    assert M.fscore(a, b, 0.09) == 0.0  # every distance is at least the 0.1 gap
    assert M.fscore(a, b, 0.12) == 1.0  # and at most the gap plus sampling slack
    assert M.fscore(a, a, 1e-9) == 1.0


def test_fscore_of_a_half_displaced_set_is_one_half():
    grid = np.stack(np.meshgrid(*[np.arange(10.0)] * 3, indexing="ij"), -1).reshape(-1, 3)  # spacing 1
    pred = grid.copy()
    pred[500:] += 100.0  # half the points moved far away: precision 1/2, recall 1/2
    assert M.fscore(pred, grid, 0.5) == pytest.approx(0.5)
    assert M.fscore(grid[:250], grid, 0.5) == pytest.approx(2 * 1.0 * 0.25 / 1.25)  # P = 1, R = 1/4


def test_nearest_members_and_coverage_on_synthetic_assignments():
    dist = np.array([[0.10, 0.20, 0.30],
                     [0.30, 0.05, 0.40],
                     [0.01, 0.50, 0.60],
                     [0.20, 0.20, 0.90]])  # a tie goes to the first member
    nearest = M.nearest_members(dist)
    assert nearest.tolist() == [0, 1, 0, 0]
    assert M.coverage(nearest) == 2
    assert M.coverage([2, 2, 2, 2]) == 1
    assert M.coverage([0, 1, 2, 3]) == 4


def test_hypotheses_equal_to_members_are_assigned_to_them():
    members = [M.surface_points(m, 5000, seed=i) for i, m in enumerate([sphere(0.5), box(0.45), box(0.3)])]
    hyps = [members[2], members[0], members[2]]
    dist = M.chamfer_matrix(hyps, members)
    assert M.nearest_members(dist).tolist() == [2, 0, 2]
    assert M.coverage(M.nearest_members(dist)) == 2
    np.testing.assert_allclose(dist.min(axis=1), 0.0)


def test_mean_pairwise_is_the_mean_of_distinct_pairs():
    d = np.array([[0, 1, 2], [1, 0, 3], [2, 3, 0]], float)
    assert M.mean_pairwise(d) == pytest.approx(2.0)
    assert M.mean_pairwise(np.zeros((1, 1))) == 0.0


def test_psnr_and_iou_closed_form():
    a = np.full((3, 8, 8), 0.5)
    assert M.psnr(a, a + 0.1) == pytest.approx(20.0)  # MSE 0.01
    assert M.psnr(a, a) == float("inf")
    m1 = np.zeros((10, 10), bool)
    m2 = np.zeros((10, 10), bool)
    m1[:, :6] = True  # 60 pixels
    m2[:, 4:] = True  # 60 pixels, 20 shared
    assert M.mask_iou(m1, m2) == pytest.approx(20 / 100)
    with pytest.raises(ValueError):
        M.psnr(np.zeros((2, 2)), np.zeros((3, 3)))


def test_winding_number_inside_and_outside():
    s = sphere(0.5)
    v, f = s.vertices.double().numpy(), s.faces.numpy()
    pts = np.array([[0, 0, 0], [0.3, 0.1, -0.2], [0.6, 0, 0], [2, 2, 2]], float)
    np.testing.assert_allclose(M.winding_number(pts, v, f), [1, 1, 0, 0], atol=1e-6)


def test_outer_surface_of_two_overlapping_boxes():
    # Union of A = [-½, ½]³ and B = A + (½, ¼, ¼): no coplanar faces; the hidden surface is exactly the
    # boundary of A ∩ B = [0, ½] × [-¼, ½]², of area 2 (½·¾ + ½·¾ + ¾·¾) = 2.625 out of 12.
    a, b = box(0.5), box(0.5, (0.5, 0.25, 0.25))
    union = Mesh(torch.cat([a.vertices, b.vertices]), torch.cat([a.faces, b.faces + a.num_vertices]))
    pts = M.outer_surface_points(union, 20000, seed=0)
    assert len(pts) / 20000 == pytest.approx((12 - 2.625) / 12, abs=0.015)

    def strictly_inside(p, lo, hi, eps=1e-6):
        return np.all((p > np.asarray(lo) + eps) & (p < np.asarray(hi) - eps), axis=1)

    assert not strictly_inside(pts, [-0.5] * 3, [0.5] * 3).any()
    assert not strictly_inside(pts, [0, -0.25, -0.25], [1, 0.75, 0.75]).any()
    assert len(M.mesh_parts(union)) == 2
