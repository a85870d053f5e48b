"""Volume rendering against closed forms: a constant-density ball, an opaque ball, image orientation,
occupancy skipping and early termination leaving the image unchanged."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from recon.render.cameras import camera_batch, rays
from recon.scene.field import FieldConfig, RadianceField
from recon.scene.occupancy import OccupancyConfig, OccupancyGrid
from recon.scene.volume import VolumeConfig, ray_aabb, render_rays, render_rays_and_views, render_views

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Ball:
    """Analytic field: density ``sigma`` inside a ball of radius ``r`` at ``centre``, zero outside; one colour.

    Duck-types the parts of RadianceField the renderer uses.
    """

    def __init__(self, sigma: float, r: float, color=(0.2, 0.6, 0.9), centre=(0.0, 0.0, 0.0), k: int = 1,
                 soft: float = 0.0):
        self.sigma, self.r, self.soft = sigma, r, soft
        self.rgb = torch.tensor(color)
        self.centre = torch.tensor(centre)
        self.config = SimpleNamespace(radius=1.0)
        self.num_hypotheses = k

    def density(self, p):
        d = (p - self.centre).norm(dim=-1)
        if self.soft:
            return self.sigma * torch.sigmoid((self.r - d) / self.soft)
        return torch.where(d < self.r, torch.full_like(d, self.sigma), torch.zeros_like(d))

    def __call__(self, p):
        return self.density(p), self.rgb.expand(*p.shape[:-1], 3)

    def normals(self, p):
        return F.normalize(p - self.centre, dim=-1)


def _chord(o, d, r):
    """Length of each ray's chord through the origin-centred ball of radius r (0 on a miss)."""
    b = (o * d).sum(-1)
    c = (o * o).sum(-1) - r * r
    disc = b * b - c
    return torch.where(disc > 0, 2 * disc.clamp(min=0).sqrt(), torch.zeros_like(disc))


def _front_rays(res=24):
    cams = camera_batch(10.0, 30.0, 3.8, 20.0, res)
    o, d = rays(cams, res, res)
    return o.reshape(1, -1, 3), d.reshape(1, -1, 3)


def test_ray_aabb_matches_brute_force_marching():
    g = torch.Generator().manual_seed(0)
    o = (torch.rand(500, 3, generator=g) * 2 - 1) * 3
    d = F.normalize(torch.randn(500, 3, generator=g), dim=-1)
    near, far, hit = ray_aabb(o, d, torch.tensor([-1.0, -0.5, -0.25]), torch.tensor([1.0, 0.5, 0.25]))
    t = torch.linspace(0, 10, 20001)
    pts = o[:, None] + t[None, :, None] * d[:, None]
    inside = (pts.abs() <= torch.tensor([1.0, 0.5, 0.25])).all(-1)
    any_in = inside.any(1)
    assert torch.equal(hit, any_in) or (hit ^ any_in).sum() <= 2  # grazing rays may differ by one step
    both = hit & any_in
    t_in = torch.where(inside, t, torch.full_like(t, float("inf"))).amin(1)
    t_out = torch.where(inside, t, torch.full_like(t, -1.0)).amax(1)
    assert torch.allclose(near[both], t_in[both], atol=1e-3)
    assert torch.allclose(far[both], t_out[both], atol=1e-3)


def test_constant_density_ball_matches_beer_lambert():
    # Oracle: opacity = 1 − exp(−σ · chord), colour = c · opacity + white · (1 − opacity).
    ball = Ball(sigma=2.0, r=0.5)
    o, d = _front_rays()
    out = render_rays(ball, o, d, VolumeConfig(samples_per_ray=512, min_transmittance=0.0))
    expected = 1 - torch.exp(-2.0 * _chord(o[0], d[0], 0.5))
    assert expected.max() > 0.8 and (expected == 0).any()
    assert (out["opacity"][0] - expected).abs().max() < 0.02
    rgb = ball.rgb * expected[:, None] + (1 - expected[:, None])
    assert (out["rgb"][0] - rgb).abs().max() < 0.02


def test_opaque_ball_depth_and_normals_are_the_first_hit():
    ball = Ball(sigma=400.0, r=0.5, soft=0.002)
    o, d = _front_rays(32)
    b = (o[0] * d[0]).sum(-1)
    c = (o[0] * o[0]).sum(-1) - 0.25
    disc = b * b - c
    hit = disc > 0.02  # away from the silhouette, where one sample spans the whole chord
    t_hit = -b - disc.clamp(min=0).sqrt()
    n_true = F.normalize(o[0] + t_hit[:, None] * d[0], dim=-1)
    for mode in ("surface", "composite"):
        cfg = VolumeConfig(samples_per_ray=256, normals=mode)
        out = render_rays(ball, o, d, cfg, normals=True)
        assert (out["opacity"][0][hit] > 0.999).all()
        assert (out["depth"][0][hit] - t_hit[hit]).abs().max() < 0.02
        n = F.normalize(out["normal"][0][hit], dim=-1)
        assert (n * n_true[hit]).sum(-1).min() > 0.995, mode
        assert out["normal"][0][disc < -0.02].abs().max() == 0  # clear misses get no normal


def test_images_have_row_zero_at_the_top():
    # A ball above the origin (+Y) seen from the front appears in the upper half of the image.
    ball = Ball(sigma=50.0, r=0.2, centre=(0.0, 0.35, 0.0))
    cams = camera_batch(0.0, 0.0, 3.8, 20.0, 32)
    out = render_views(ball, cams, 32, 32, VolumeConfig(samples_per_ray=64))
    assert out["opacity"].shape == (1, 1, 1, 32, 32) and out["rgb"].shape == (1, 1, 3, 32, 32)
    op = out["opacity"][0, 0, 0]
    assert op[:16].sum() > 20 * op[16:].sum()


def test_background_module_and_per_view_colours():
    ball = Ball(sigma=0.0, r=0.1, k=2)  # empty scene: the image is the background
    cams = camera_batch([0.0, 0.0, 0.0, 0.0], [0.0, 90.0, 180.0, 270.0], 3.8, 20.0, 8)
    cols = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.5, 0.5, 0.5]])
    out = render_views(ball, cams, 8, 8, VolumeConfig(samples_per_ray=8), background=cols)
    assert torch.allclose(out["rgb"], cols.reshape(2, 2, 3, 1, 1).expand(2, 2, 3, 8, 8))

    def by_direction(d):
        return (d + 1) / 2

    o, d = _front_rays(8)
    out = render_rays(Ball(0.0, 0.1), o, d, VolumeConfig(samples_per_ray=8), background=torch.nn.Identity())
    assert torch.allclose(out["rgb"], d)
    out = render_rays(Ball(0.0, 0.1), o, d, VolumeConfig(samples_per_ray=8),
                      background=_Module(by_direction))
    assert torch.allclose(out["rgb"], (d + 1) / 2)


class _Module(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def _trained_like_field(k: int = 2) -> RadianceField:
    field = RadianceField(FieldConfig(blob_density=20.0), hypotheses=list(range(k)))  # opaque core
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for grid in field.grids:
            grid.copy_(torch.randn(grid.shape, generator=g) * 0.5)
    return field


def test_occupancy_skipping_and_early_termination_leave_the_image_unchanged():
    field = _trained_like_field(2)
    cams = camera_batch([0.0, 20.0], [0.0, 120.0], 3.8, 20.0, 24)
    o, d = rays(cams, 24, 24)
    o, d = o.reshape(2, -1, 3), d.reshape(2, -1, 3)
    with torch.no_grad():
        full = render_rays(field, o, d, VolumeConfig(samples_per_ray=64, min_transmittance=0.0))
        occ = OccupancyGrid(OccupancyConfig(resolution=32, min_density=0.01, dilation=1), 2, 1.0)
        occ.update(field.density)
        assert 0.02 < float(occ.occupied_fraction().min()) < 0.5
        skipped = render_rays(field, o, d, VolumeConfig(samples_per_ray=64, min_transmittance=0.0), occupancy=occ)
        early = render_rays(field, o, d, VolumeConfig(samples_per_ray=64, min_transmittance=1e-3), occupancy=occ)
    # Occupancy changes where samples fall (the same budget spread over the box around the occupied cells
    # instead of the cube), so compare with a tolerance; fewer samples reach the field.
    assert int(skipped["samples"]) < 0.8 * int(full["samples"])
    assert int(early["samples"]) < int(skipped["samples"])
    assert (skipped["opacity"] - full["opacity"]).abs().mean() < 0.02
    assert (skipped["rgb"] - full["rgb"]).abs().mean() < 0.02
    assert (early["opacity"] - skipped["opacity"]).abs().max() < 2e-3
    assert (early["rgb"] - skipped["rgb"]).abs().max() < 2e-3


def test_gradients_reach_only_the_rendered_hypothesis_parameters():
    field = RadianceField(hypotheses=[0, 1])
    o, d = _front_rays(12)
    o = torch.cat([o, o + 100.0])  # hypothesis 1's rays miss the scene entirely
    d = torch.cat([d, d])
    out = render_rays(field, o, d, VolumeConfig(samples_per_ray=16), normals=True)
    assert out["opacity"][1].abs().max() == 0
    (out["rgb"].sum() + out["normal"].sum()).backward()
    for grid in field.grids:
        assert grid.grad[0].abs().sum() > 0
        assert grid.grad[1].abs().sum() == 0


def test_stratified_jitter_is_reproducible_per_generator():
    field = _trained_like_field(1)
    o, d = _front_rays(12)

    def run(seed):
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            return render_rays(field, o, d, VolumeConfig(samples_per_ray=16), generators=[g])["rgb"]

    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))


def test_sample_budget_bounds_the_field_evaluations():
    field = RadianceField()
    o, d = _front_rays(16)
    for s in (8, 32):
        out = render_rays(field, o, d, VolumeConfig(samples_per_ray=s, min_transmittance=0.0))
        assert 0 < int(out["samples"]) <= o.shape[1] * s


def test_chord_helper_sanity():
    o = torch.tensor([[0.0, 0.0, 3.0]])
    d = torch.tensor([[0.0, 0.0, -1.0]])
    assert math.isclose(float(_chord(o, d, 0.5)[0]), 1.0, rel_tol=1e-6)


@pytest.mark.parametrize("backgrounds,normals", [("white", None), ("learned", None), ("mixed", None),
                                                ("white rays, coloured views", None), ("white", "surface"),
                                                ("white", "composite")])
def test_rays_and_views_in_one_call_equal_two_calls(backgrounds, normals):
    # Stage 1 renders its reference rays and guidance views in one call; with midpoint samples (no jitter) every
    # ray's result, and the gradient of any loss on them, must be what the two separate calls give.
    field = _trained_like_field(2)
    occ = OccupancyGrid(OccupancyConfig(resolution=32, min_density=0.01, dilation=1), 2, 1.0)
    occ.update(field.density)
    ref_cams = camera_batch([0.0, 0.0], [0.0, 0.0], 3.8, 20.0, 16)
    o, d = rays(ref_cams, 16, 16)
    o, d = o.reshape(2, -1, 3)[:, ::3], d.reshape(2, -1, 3)[:, ::3]  # loose rays, not an image
    cams = camera_batch([10.0, 30.0, -5.0, 20.0], [140.0, 200.0, 90.0, 300.0], 3.8, 20.0, 12)  # V = 2
    learned = _Module(lambda x: (x + 1) / 2)
    ray_bg, view_bg = {"white": (None, None), "learned": (learned, learned),
                       "mixed": (learned, torch.rand(4, 3, generator=torch.Generator().manual_seed(0))),
                       "white rays, coloured views": (None, torch.rand(4, 3, generator=torch.Generator().manual_seed(0))),
                       }[backgrounds]
    cfg = VolumeConfig(samples_per_ray=24, normals=normals or "surface")
    ref, views = render_rays_and_views(field, o, d, cams, 12, 12, cfg, ray_background=ray_bg,
                                       view_background=view_bg, occupancy=occ, normals=normals is not None)
    ref2 = render_rays(field, o, d, cfg, occupancy=occ, background=ray_bg)
    views2 = render_views(field, cams, 12, 12, cfg, occupancy=occ, background=view_bg, normals=normals is not None)
    assert set(views) == set(views2) and set(ref) == set(ref2)  # the views' normal map, none for the rays
    for name in ("rgb", "opacity", "depth", "background", *(("normal",) if normals else ())):
        if name not in ref2:
            assert torch.allclose(views[name], views2[name], atol=1e-6), name
            assert float(views[name].detach().abs().amax()) > 0.1
            continue
        assert ref[name].shape == ref2[name].shape and views[name].shape == views2[name].shape
        assert torch.allclose(ref[name], ref2[name], atol=1e-6), name
        assert torch.allclose(views[name], views2[name], atol=1e-6), name
    assert int(ref["samples"]) + int(views["samples"]) == int(ref2["samples"]) + int(views2["samples"])
    assert float(views["opacity"].detach().amax()) > 0.5 and float(ref["opacity"].detach().amax()) > 0.5  # both parts see the object

    def grads(loss):
        field.zero_grad(set_to_none=True)
        loss.backward()
        return [g.grad.clone() for g in field.grids]

    target = torch.rand_like(views["rgb"], generator=torch.Generator().manual_seed(1))
    def loss(ref, views):
        extra = views["normal"][:, :, :, 1:].sub(views["normal"][:, :, :, :-1]).square().mean() if normals else 0.0
        return ref["rgb"].square().mean() + (views["rgb"] - target).square().mean() + extra

    one = grads(loss(ref, views))
    ref2 = render_rays(field, o, d, cfg, occupancy=occ, background=ray_bg)
    views2 = render_views(field, cams, 12, 12, cfg, occupancy=occ, background=view_bg, normals=normals is not None)
    two = grads(loss(ref2, views2))
    for a, b in zip(one, two):
        assert torch.allclose(a, b, atol=1e-6 * float(b.abs().max()) + 1e-9)


@pytest.mark.parametrize("mode", ["surface", "composite"])
def test_normals_from_skips_the_first_rays_and_leaves_the_rest_unchanged(mode):
    # Stage 1's reference rays need no normals: with normals_from = r they get none (zero, and no field
    # evaluation), while every later ray's normal is what a full normal pass gives.
    field = _trained_like_field(2)
    cams = camera_batch([0.0, 20.0], [0.0, 120.0], 3.8, 20.0, 16)
    o, d = rays(cams, 16, 16)
    o, d = o.reshape(2, -1, 3), d.reshape(2, -1, 3)
    cfg = VolumeConfig(samples_per_ray=24, normals=mode)
    with torch.no_grad():
        full = render_rays(field, o, d, cfg, normals=True)["normal"]
        part = render_rays(field, o, d, cfg, normals=True, normals_from=100)["normal"]
    assert float(full[:, :100].abs().amax()) > 0.1  # the skipped rays do have normals in a full pass
    assert torch.count_nonzero(part[:, :100]) == 0
    assert torch.allclose(part[:, 100:], full[:, 100:], atol=1e-6)
