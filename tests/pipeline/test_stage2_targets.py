"""Stage 2's input-view target at ``stage2.target_resolution``: the prepared input averaged over pixel blocks."""

from __future__ import annotations

import types

import torch

from recon.pipeline.image_to_3d import ImageTo3D, ImageTo3DConfig


def targets_of(rgba: torch.Tensor, size: int):
    config = ImageTo3DConfig()
    config.stage2.target_resolution = size
    fake = types.SimpleNamespace(config=config, rgba=rgba)
    return ImageTo3D.view_targets(fake)


def test_the_target_is_the_input_block_averaged_to_the_target_resolution():
    rgba = torch.rand(4, 64, 64, generator=torch.Generator().manual_seed(0))
    t = targets_of(rgba, 16)
    # Oracle: the mean of each 4 x 4 block (what area resampling by an integer factor is).
    blocks = rgba.reshape(4, 16, 4, 16, 4).mean(dim=(2, 4))
    torch.testing.assert_close(t.rgb[0], blocks[:3])
    torch.testing.assert_close(t.mask[0], blocks[3:])
    assert t.resolution == (16, 16) and t.cameras.resolution == (16, 16)


def test_zero_keeps_the_prepared_input_size():
    rgba = torch.rand(4, 32, 32)
    t = targets_of(rgba, 0)
    assert torch.equal(t.rgb[0], rgba[:3]) and torch.equal(t.mask[0], rgba[3:]) and t.resolution == (32, 32)
