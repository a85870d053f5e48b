"""Generalised winding numbers against closed forms: closed surfaces, their orientation, and an open one."""

import math

import numpy as np
import trimesh

from recon.io.mesh_clean import winding_numbers


def test_winding_numbers_of_closed_and_open_surfaces():
    sphere = trimesh.creation.icosphere(3, 1.0)
    box = trimesh.creation.box((0.4, 0.4, 0.4)).apply_translation((3.0, 0, 0))
    tri = np.concatenate([sphere.triangles, box.triangles[:, ::-1]])  # the box wound inwards
    labels = np.concatenate([np.zeros(len(sphere.faces), int), np.ones(len(box.faces), int)])
    pts = np.array([[0.0, 0, 0], [0.3, -0.2, 0.5], [3.0, 0.05, 0], [5.0, 0, 0], [0, 2.0, 0]])
    w = winding_numbers(tri, labels, pts, 2)
    want = np.array([[1, 0], [1, 0], [0, -1], [0, 0], [0, 0]], float)
    assert np.allclose(w, want, atol=1e-9)
    # An open cap of the sphere seen from its centre: the fraction of the sphere it covers.
    cap = sphere.triangles[sphere.triangles_center[:, 1] > 0.5]
    w = winding_numbers(cap, np.zeros(len(cap), int), np.zeros((1, 3)), 1)[0, 0]
    area = trimesh.triangles.area(cap).sum()  # projected onto the unit sphere the cap's solid angle ≈ its area
    assert abs(w - area / (4 * math.pi)) < 0.01
