"""The stage-1 radiance field: blob initialisation, batching over hypotheses, callables, normals."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from recon.scene.field import AlbedoModule, FieldConfig, RadianceField

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _points(n: int, seed: int = 0, scale: float = 0.9) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 3, generator=g) * 2 - 1) * scale


def _perturb(field: RadianceField, scale: float = 0.3, seed: int = 5) -> None:
    """Give the grids visible structure so that tests do not only see the blob."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for grid in field.grids:
            grid.copy_(torch.randn(grid.shape, generator=g) * scale)


def test_initial_density_is_threestudios_magic3d_blob():
    # Oracle: threestudio's blob_magic3d formula, softplus(scale · (1 − |x| / std)); the grid features start at
    # ±1e-4 and the MLPs have no bias, so the learned part is ~1e-4 at initialisation.
    cfg = FieldConfig(blob_density=10.0, blob_radius=0.5)
    field = RadianceField(cfg, hypotheses=[0, 1])
    p = _points(2000)
    expected = F.softplus(10.0 * (1 - p.norm(dim=-1) / 0.5))
    for k in range(2):
        got = field.density_fn(k)(p)
        assert torch.allclose(got, expected, atol=2e-3, rtol=1e-3)
    albedo = field.color_fn(0)(p)
    assert torch.allclose(albedo, torch.full_like(albedo, 0.5), atol=1e-3)  # grey before training


def test_exp_activation_follows_the_raw_density():
    field = RadianceField(FieldConfig(density_activation="exp"))
    p = _points(100)[None]
    assert torch.allclose(field.density(p), torch.exp(field.raw_density(p)))


def test_a_hypothesis_does_not_depend_on_its_batch_mates():
    alone = RadianceField(hypotheses=[2], seed=7)
    batch = RadianceField(hypotheses=[0, 1, 2], seed=7)
    for a, b in zip(alone.parameters(), batch.parameters()):
        assert torch.equal(a[0], b[2])
    other_seed = RadianceField(hypotheses=[2], seed=8)
    assert not torch.equal(other_seed.grids[0], alone.grids[0])


def test_batched_evaluation_matches_each_hypothesis_alone():
    field = RadianceField(hypotheses=[0, 1, 2])
    _perturb(field)
    p = torch.stack([_points(500, seed=s) for s in range(3)])  # different points per hypothesis
    sigma, albedo = field(p)
    assert sigma.shape == (3, 500) and albedo.shape == (3, 500, 3)
    for k in range(3):
        assert torch.allclose(field.density_fn(k)(p[k]), sigma[k], rtol=1e-5, atol=1e-5)
        assert torch.allclose(field.color_fn(k)(p[k]), albedo[k], rtol=1e-5, atol=1e-6)
    assert (albedo >= 0).all() and (albedo <= 1).all() and (sigma >= 0).all()


def test_callables_take_any_leading_shape_and_empty_input():
    field = RadianceField(hypotheses=[0, 1])
    p = _points(30).reshape(2, 5, 3, 3)
    assert field.density_fn(1)(p).shape == (2, 5, 3)
    assert field.color_fn(1)(p).shape == (2, 5, 3, 3)
    assert field.density_fn(0)(torch.zeros(0, 3)).shape == (0,)
    assert field.color_fn(0)(torch.zeros(0, 3)).shape == (0, 3)
    with pytest.raises(IndexError):
        field.density_fn(2)


def test_callables_carry_gradients_to_the_parameters():
    field = RadianceField(hypotheses=[0, 1])
    field.density_fn(1)(_points(50)).sum().backward()
    assert field.grids[0].grad[1].abs().sum() > 0
    assert field.grids[0].grad[0].abs().sum() == 0  # hypothesis 0 untouched


def test_normals_of_the_blob_point_outwards():
    # Oracle: the blob's density falls with |x|, so −∇σ is the radial direction x / |x|.
    field = RadianceField()
    p = _points(400, scale=0.6)
    p = p[p.norm(dim=-1) > 0.1][None]
    n = field.normals(p)[0]
    radial = F.normalize(p[0], dim=-1)
    assert torch.allclose(n.norm(dim=-1), torch.ones(n.shape[0]), atol=1e-4)
    assert (n * radial).sum(-1).min() > 0.999


def test_finite_difference_normals_match_autograd_gradient():
    # Reference: autograd's gradient of the raw density (exact for the piecewise-trilinear grid), away from
    # the grid's cell faces where the two one-sided derivatives differ.
    cfg = FieldConfig(resolutions=[8], normal_eps=1e-4)
    field = RadianceField(cfg)
    _perturb(field, scale=2.0)
    p = _points(300, seed=3, scale=0.8)[None].requires_grad_(True)
    raw = field.raw_density(p)
    (grad,) = torch.autograd.grad(raw.sum(), p)
    expected = -F.normalize(grad[0], dim=-1)
    got = field.normals(p.detach())[0]
    cos = (got * expected).sum(-1)
    assert cos.median() > 0.9999
    assert (cos > 0.99).float().mean() > 0.95


def test_single_copies_one_hypothesis_and_albedo_module_wraps_it():
    field = RadianceField(hypotheses=[4, 7])
    _perturb(field)
    one = field.single(1)
    assert one.hypotheses == (7,) and one.num_hypotheses == 1
    p = _points(64)
    assert torch.allclose(one.density_fn(0)(p), field.density_fn(1)(p))
    module = AlbedoModule(one)
    assert torch.allclose(module(p), field.color_fn(1)(p))
    module(p).sum().backward()
    assert one.grids[0].grad is not None and field.grids[0].grad is None  # the batched field is untouched
    with pytest.raises(ValueError):
        AlbedoModule(field)
