"""The published network configurations of the supported priors, for building full-size models
with random weights (benchmarks, memory planning) without downloading anything.

Values are those of the released ``config.json`` files: Stable Diffusion 1.5
(``stable-diffusion-v1-5/stable-diffusion-v1-5``), 2.1-base (``stabilityai/stable-diffusion-2-1-base``),
Zero-1-to-3 / Stable Zero123 (the SD 1.x UNet with 8 input channels at 32² latents, CLIP ViT-L/14
image encoder from ``lambdalabs/sd-image-variations-diffusers``) and MVDream
(``ashawkey/mvdream-sd2.1-diffusers``).
"""

from __future__ import annotations

from typing import Any

SD_BLOCKS = {
    "block_out_channels": [320, 640, 1280, 1280],
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "act_fn": "silu",
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "downsample_padding": 1,
    "mid_block_scale_factor": 1,
}

SD15_UNET: dict[str, Any] = {**SD_BLOCKS, "in_channels": 4, "out_channels": 4, "sample_size": 64,
                             "cross_attention_dim": 768, "attention_head_dim": 8}
SD21_BASE_UNET: dict[str, Any] = {**SD_BLOCKS, "in_channels": 4, "out_channels": 4, "sample_size": 64,
                                  "cross_attention_dim": 1024, "attention_head_dim": [5, 10, 20, 20],
                                  "use_linear_projection": True}
ZERO123_UNET: dict[str, Any] = {**SD_BLOCKS, "in_channels": 8, "out_channels": 4, "sample_size": 32,
                                "cross_attention_dim": 768, "attention_head_dim": 8}

SD_VAE: dict[str, Any] = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32,
    "block_out_channels": [128, 256, 512, 512], "act_fn": "silu", "sample_size": 512, "scaling_factor": 0.18215,
    "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
}

CLIP_L14_TEXT: dict[str, Any] = {  # SD 1.x text encoder (OpenAI CLIP ViT-L/14)
    "hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12, "num_hidden_layers": 12,
    "projection_dim": 768, "hidden_act": "quick_gelu", "max_position_embeddings": 77, "vocab_size": 49408,
}
OPENCLIP_H14_TEXT: dict[str, Any] = {  # SD 2.x / MVDream text encoder (penultimate layer kept: 23 of 24)
    "hidden_size": 1024, "intermediate_size": 4096, "num_attention_heads": 16, "num_hidden_layers": 23,
    "projection_dim": 512, "hidden_act": "gelu", "max_position_embeddings": 77, "vocab_size": 49408,
}
CLIP_L14_VISION: dict[str, Any] = {  # Zero-1-to-3's image encoder
    "hidden_size": 1024, "intermediate_size": 4096, "num_attention_heads": 16, "num_hidden_layers": 24,
    "image_size": 224, "patch_size": 14, "projection_dim": 768, "hidden_act": "quick_gelu",
}

SD_SCHEDULER: dict[str, Any] = {
    "_class_name": "DDIMScheduler", "num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
    "beta_schedule": "scaled_linear", "clip_sample": False, "set_alpha_to_one": False, "steps_offset": 1,
    "prediction_type": "epsilon", "timestep_spacing": "leading",
}
