"""Tiny random-weight diffusers UNets for tests (built in memory, a few thousand parameters)."""

from __future__ import annotations

import torch
from diffusers import UNet2DConditionModel


def tiny_unet(in_channels: int = 4, sample_size: int = 8, cross_attention_dim: int = 16, seed: int = 0,
              dtype: torch.dtype = torch.float32) -> UNet2DConditionModel:
    """A 2-level UNet with cross-attention; random weights from ``seed``."""
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=sample_size, in_channels=in_channels, out_channels=in_channels, layers_per_block=1,
        block_out_channels=(8, 16), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=cross_attention_dim,
        attention_head_dim=4, norm_num_groups=4,
    )
    return unet.to(dtype).eval()
