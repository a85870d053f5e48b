"""Orbit cameras: the documented convention (right-handed, +Y up, azimuth 0 on +Z), OpenGL projection,
rays through pixel centres consistent with the projection in both row orders."""

from __future__ import annotations

import math

import pytest
import torch

from recon.render.cameras import (
    Cameras,
    camera_batch,
    flip_rows,
    input_view,
    pixel_ndc,
    random_cameras,
    rays,
    to_clip,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def ndc(points: torch.Tensor, cams: Cameras) -> torch.Tensor:
    clip = to_clip(points.to(cams.mvp.dtype), cams.mvp)
    return clip[..., :3] / clip[..., 3:]


def test_eye_positions_follow_the_documented_angles():
    cams = camera_batch([0, 0, 90, 30, -90], [0, 90, 0, 45, 10], 2.0, 30, 64, dtype=torch.float64)
    e, a = math.radians(30), math.radians(45)
    expected = torch.tensor([[0, 0, 2], [2, 0, 0], [0, 2, 0],
                             [2 * math.cos(e) * math.sin(a), 2 * math.sin(e), 2 * math.cos(e) * math.cos(a)],
                             [0, -2, 0]], dtype=torch.float64)
    torch.testing.assert_close(cams.eye, expected, atol=1e-12, rtol=0)


def test_front_view_is_the_gltf_default_camera_moved_back_along_z():
    # glTF's default camera looks down -Z with +Y up and +X right: rotation = identity.
    cam = input_view(resolution=32)
    torch.testing.assert_close(cam.c2w[0, :3, :3], torch.eye(3), atol=1e-7, rtol=0)
    torch.testing.assert_close(cam.eye[0], torch.tensor([0, 0, 3.8]), atol=1e-6, rtol=0)


def test_frames_are_right_handed_rotations_looking_at_the_origin_at_every_elevation():
    g = torch.Generator().manual_seed(0)
    cams = Cameras.cat([
        random_cameras(64, g, (-90, 90), (-180, 180), (1.5, 4), (15, 60), 32, dtype=torch.float64),
        camera_batch([90, -90], [37, -120], 3.0, 20, 32, dtype=torch.float64),
    ])
    r = cams.c2w[:, :3, :3]
    torch.testing.assert_close(r.transpose(1, 2) @ r, torch.eye(3, dtype=torch.float64).expand_as(r), atol=1e-12, rtol=0)
    torch.testing.assert_close(torch.det(r), torch.ones(len(cams), dtype=torch.float64), atol=1e-12, rtol=0)
    forward = -r[:, :, 2]
    torch.testing.assert_close(forward, -cams.eye / cams.eye.norm(dim=-1, keepdim=True), atol=1e-12, rtol=0)
    torch.testing.assert_close(cams.view @ cams.c2w, torch.eye(4, dtype=torch.float64).expand(len(cams), 4, 4),
                               atol=1e-12, rtol=0)
    centre = ndc(torch.zeros(1, 3, dtype=torch.float64), cams)[:, 0, :2]
    torch.testing.assert_close(centre, torch.zeros_like(centre), atol=1e-12, rtol=0)


def test_up_is_plus_y_and_right_is_plus_x_in_the_front_view():
    cam = camera_batch(0, 0, 3.0, 40, 64)
    p = ndc(torch.tensor([[0.0, 0.3, 0.0], [0.3, 0.0, 0.0]]), cam)[0]
    assert p[0, 1] > 0.05 and abs(p[0, 0]) < 1e-6   # +Y appears up
    assert p[1, 0] > 0.05 and abs(p[1, 1]) < 1e-6   # +X appears right
    side = camera_batch(0, 90, 3.0, 40, 64)          # azimuth 90 looks from +X: world -Z appears right
    q = ndc(torch.tensor([[0.0, 0.0, -0.3]]), side)[0, 0]
    assert q[0] > 0.05


def test_projection_maps_near_far_and_the_field_of_view_edges():
    fovy, near, far = 35.0, 0.2, 50.0
    h, w = 48, 96
    cam = camera_batch(0, 0, 5.0, fovy, (h, w), near=near, far=far, dtype=torch.float64)
    t = math.tan(math.radians(fovy) / 2)
    depth = 3.0  # view-space distance in front of the camera (camera at z = 5 looks towards -z)
    pts = torch.tensor([[0, t * depth, 5 - depth], [t * depth * w / h, 0, 5 - depth],
                        [0, 0, 5 - near], [0, 0, 5 - far]], dtype=torch.float64)
    p = ndc(pts, cam)[0]
    torch.testing.assert_close(p[0, 1], torch.tensor(1.0, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(p[1, 0], torch.tensor(1.0, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(p[2:, 2], torch.tensor([-1.0, 1.0], dtype=torch.float64), atol=1e-9, rtol=0)


@pytest.mark.parametrize("top_first", [True, False])
def test_rays_pass_through_pixel_centres_in_the_stated_row_order(top_first):
    h, w = 12, 20
    cams = camera_batch([10, -30], [25, 200], [3.0, 2.5], [30, 50], (h, w), dtype=torch.float64)
    o, d = rays(cams, h, w, top_first=top_first)
    assert o.shape == d.shape == (2, h, w, 3)
    torch.testing.assert_close(d.norm(dim=-1), torch.ones(2, h, w, dtype=torch.float64), atol=1e-12, rtol=0)
    p = ndc((o + 1.7 * d).reshape(2, -1, 3), cams)[..., :2].reshape(2, h, w, 2)
    xs = (2 * torch.arange(w, dtype=torch.float64) + 1) / w - 1
    ys = (2 * torch.arange(h, dtype=torch.float64) + 1) / h - 1
    if top_first:
        ys = ys.flip(0)
    torch.testing.assert_close(p[..., 0], xs.expand(2, h, w), atol=1e-10, rtol=0)
    torch.testing.assert_close(p[..., 1], ys[:, None].expand(2, h, w), atol=1e-10, rtol=0)
    x, y = pixel_ndc(h, w, top_first=top_first, dtype=torch.float64)
    torch.testing.assert_close(x, xs)
    torch.testing.assert_close(y, ys)


def test_random_cameras_are_in_range_and_reproducible():
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    a = random_cameras(100, g1, (-10, 45), (-180, 180), (3, 4), (20, 40), 64)
    b = random_cameras(100, g2, (-10, 45), (-180, 180), (3, 4), (20, 40), 64)
    assert torch.equal(a.c2w, b.c2w) and torch.equal(a.mvp, b.mvp)
    assert a.elevation.min() >= -10 and a.elevation.max() <= 45
    assert a.distance.min() >= 3 and a.distance.max() <= 4 and a.fovy.min() >= 20 and a.fovy.max() <= 40
    # Exactly 4 * n uniform draws: the generator is left where one torch.rand(4, n) would leave it.
    g3 = torch.Generator().manual_seed(7)
    torch.rand(4, 100, generator=g3, dtype=torch.float64)
    assert torch.equal(g1.get_state(), g3.get_state())


def test_indexing_concatenation_and_row_flip():
    cams = camera_batch([0, 10, 20], [0, 30, 60], 3.0, 20, 16)
    assert len(cams[1]) == 1 and torch.equal(cams[1].c2w, cams.c2w[1:2])
    assert torch.equal(Cameras.cat([cams[0], cams[1:]]).mvp, cams.mvp)
    img = torch.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    assert torch.equal(flip_rows(img, "bchw")[:, :, 0], img[:, :, -1])
    assert torch.equal(flip_rows(img, "bhwc")[:, 0], img[:, -1])
    with pytest.raises(ValueError):
        camera_batch([0, 1], [0, 1, 2], 3.0, 20, 16)
