"""Stage-1 loss terms against torch's own functions or closed forms."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from recon.pipeline import losses


def test_rgb_loss_composites_the_target_on_the_render_background():
    g = torch.Generator().manual_seed(0)
    rgb = torch.rand(2, 50, 3, generator=g)
    target = torch.rand(2, 50, 3, generator=g)
    mask = (torch.rand(2, 50, 1, generator=g) > 0.5).float()
    bg = torch.rand(2, 50, 3, generator=g)
    expected = torch.where(mask > 0, target, bg)
    assert torch.allclose(losses.rgb_loss(rgb, target, mask, bg), ((rgb - expected) ** 2).mean())
    assert losses.rgb_loss(bg, target, torch.zeros_like(mask), bg) == 0  # background matches background


def test_mask_loss_is_mse():
    o = torch.tensor([0.0, 0.5, 1.0])
    m = torch.tensor([0.0, 1.0, 1.0])
    assert torch.isclose(losses.mask_loss(o, m), torch.tensor(0.25 / 3))


def test_opacity_entropy_is_binary_cross_entropy_with_itself():
    o = torch.linspace(0, 1, 101)
    oc = o.clamp(1e-3, 1 - 1e-3)
    assert torch.allclose(losses.opacity_entropy(o), F.binary_cross_entropy(oc, oc))
    assert losses.opacity_entropy(torch.tensor([0.0, 1.0])) < 0.01
    assert torch.isclose(losses.opacity_entropy(torch.tensor([0.5])), torch.log(torch.tensor(2.0)))


def test_sparsity_is_smooth_l1_of_opacity():
    assert torch.isclose(losses.sparsity(torch.zeros(4)), torch.tensor(0.1))
    assert torch.isclose(losses.sparsity(torch.tensor([1.0])), torch.tensor(1.01).sqrt())


def test_normal_smoothness_of_constant_and_ramp_images():
    const = torch.ones(2, 3, 8, 8)
    assert losses.normal_smoothness(const) == 0
    ramp = torch.arange(8.0).reshape(1, 1, 1, 8).expand(1, 3, 8, 8) * 0.1  # steps of 0.1 along x only
    assert torch.isclose(losses.normal_smoothness(ramp), torch.tensor(0.01))
