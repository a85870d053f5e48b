"""The published network configurations of the supported priors, for building full-size models
with random weights (benchmarks, memory planning, the real-size smoke) without downloading anything.

Every value below is copied from a released file, never guessed (checked 2026-11-30 against the sources
named here; parameter counts are what diffusers' / transformers' own classes build from them, on the
meta device):

- **Stable Diffusion 1.5** UNet (``stable-diffusion-v1-5/stable-diffusion-v1-5``, ``unet/config.json``):
  859 520 964 parameters; text encoder = OpenAI CLIP ViT-L/14 text tower (``text_encoder/config.json``:
  768 wide, 12 layers, 12 heads, quick_gelu), 123 060 480.
- **Stable Diffusion 2.1-base** (``stabilityai/stable-diffusion-2-1-base``): ``unet/config.json``
  (attention_head_dim [5, 10, 20, 20], cross_attention_dim 1024, use_linear_projection, sample_size 64),
  865 910 724; ``text_encoder/config.json`` (OpenCLIP ViT-H/14 text tower with its last layer dropped:
  hidden 1024, 23 layers, 16 heads, intermediate 4096, gelu, projection_dim 512, bos 0 / eos 2 / pad 1),
  340 387 840.
- **Zero-1-to-3 / Zero-1-to-3 XL** (``ashawkey/zero123-xl-diffusers``, ``bennyguo/zero123-xl-diffusers``)
  were converted by threestudio's ``scripts/convert_zero123_to_diffusers.py`` from the authors' LDM
  config ``cvlab-columbia/zero123`` ``zero123/configs/sd-objaverse-finetune-c_concat-256.yaml``:
  ``in_channels: 8, out_channels: 4, model_channels: 320, attention_resolutions: [4, 2, 1],
  num_res_blocks: 2, channel_mult: [1, 2, 4, 4], num_heads: 8, context_dim: 768``, images 256² ->
  diffusers ``sample_size`` 256 / 8 = 32, ``attention_head_dim`` 8 (from ``num_heads``), no linear
  projection. That is SD 1.x's UNet with 8 input channels: 859 532 484 parameters (= SD 1.5's + 4·320·9
  for the extra input channels), 3.44 GB in fp32 — the size of ``unet/diffusion_pytorch_model.safetensors``
  in ``bennyguo/zero123-xl-diffusers``. Image encoder: ``lambdalabs/sd-image-variations-diffusers``
  ``image_encoder/config.json`` (CLIPVisionModelWithProjection: hidden 1024, 24 layers, 16 heads,
  intermediate 4096, patch 14, image 224, projection_dim 768, quick_gelu), 303 966 208 (1.22 GB fp32,
  as published); its ``feature_extractor`` (resize and centre-crop 224, CLIP mean / std). Pose
  projection: ``CLIPCameraProjection(embedding_dim=768, additional_embeddings=4)``, Linear(772 -> 768)
  named ``proj`` (threestudio ``extern/zero123.py``).
- **Stable Zero123** (``ashawkey/stable-zero123-diffusers``): the same architecture — threestudio's
  ``configs/stable-zero123.yaml`` loads ``stable-zero123.ckpt`` with ``pretrained_config:
  sd-objaverse-finetune-c_concat-256.yaml``; the published diffusers folder stores fp16 files under the
  plain names (UNet 1.72 GB, VAE 167 MB, 2.5 GB in all).
- **MVDream** (``ashawkey/mvdream-sd2.1-diffusers``): ``unet/config.json`` is the LDM ``unet_config`` of
  ``bytedance/MVDream`` ``mvdream/configs/sd-v2-base.yaml`` (``ashawkey/mvdream_diffusers``
  ``convert_mvdream_to_diffusers.py`` drops only ``legacy``, ``use_linear_in_transformer`` and
  ``use_spatial_transformer``): ``image_size 32, in/out_channels 4, model_channels 320,
  attention_resolutions [4, 2, 1], num_res_blocks 2, channel_mult [1, 2, 4, 4], num_head_channels 64,
  transformer_depth 1, context_dim 1024, use_checkpoint False, camera_dim 16``: SD 2.1's UNet plus the
  camera MLP Linear(16 -> 1280), SiLU, Linear(1280 -> 1280): 865 910 724 + 1 661 440 = 867 572 164.
  Text encoder and tokenizer are ``stabilityai/stable-diffusion-2-1``'s (the conversion script loads
  them from there): the OpenCLIP text tower above. VAE: the SD VAE at ``sample_size`` 256.
- **SD VAE** (all of them; LDM ``first_stage_config`` ch 128, ch_mult [1, 2, 4, 4], 2 res-blocks,
  z_channels 4, ``scale_factor`` 0.18215): 83 653 863 parameters (335 MB fp32, as published).
- **Scheduler**: LDM ``linear_start`` 0.00085, ``linear_end`` 0.012, 1000 steps, scaled-linear, epsilon.
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
STABLE_ZERO123_UNET: dict[str, Any] = dict(ZERO123_UNET)  # same LDM config (module docstring)

# MVDream's unet/config.json (latent-diffusion names; recon.priors.mvdream_unet builds it).
MVDREAM_UNET: dict[str, Any] = {
    "_class_name": "MultiViewUNetModel", "image_size": 32, "in_channels": 4, "out_channels": 4,
    "model_channels": 320, "attention_resolutions": [4, 2, 1], "num_res_blocks": 2, "channel_mult": [1, 2, 4, 4],
    "num_head_channels": 64, "transformer_depth": 1, "context_dim": 1024, "use_checkpoint": False,
    "camera_dim": 16,
}

SD_VAE: dict[str, Any] = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32,
    "block_out_channels": [128, 256, 512, 512], "act_fn": "silu", "sample_size": 512, "scaling_factor": 0.18215,
    "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
}
ZERO123_VAE: dict[str, Any] = {**SD_VAE, "sample_size": 256}  # the conversions' image_size
MVDREAM_VAE: dict[str, Any] = {**SD_VAE, "sample_size": 256}

CLIP_L14_TEXT: dict[str, Any] = {  # SD 1.x text encoder (OpenAI CLIP ViT-L/14)
    "hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12, "num_hidden_layers": 12,
    "projection_dim": 768, "hidden_act": "quick_gelu", "max_position_embeddings": 77, "vocab_size": 49408,
    "layer_norm_eps": 1e-5, "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1,
}
OPENCLIP_H14_TEXT: dict[str, Any] = {  # SD 2.x / MVDream text encoder (penultimate layer kept: 23 of 24)
    "hidden_size": 1024, "intermediate_size": 4096, "num_attention_heads": 16, "num_hidden_layers": 23,
    "projection_dim": 512, "hidden_act": "gelu", "max_position_embeddings": 77, "vocab_size": 49408,
    "layer_norm_eps": 1e-5, "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1,
}
CLIP_L14_VISION: dict[str, Any] = {  # Zero-1-to-3's image encoder
    "hidden_size": 1024, "intermediate_size": 4096, "num_attention_heads": 16, "num_hidden_layers": 24,
    "image_size": 224, "patch_size": 14, "projection_dim": 768, "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5, "num_channels": 3,
}
CLIP_IMAGE_SIZE = 224  # feature_extractor: resize the shortest edge to 224, centre-crop 224²
ZERO123_PROJECTION: dict[str, Any] = {"embedding_dim": 768, "additional_embeddings": 4}  # Linear(772 -> 768)

SD_SCHEDULER: dict[str, Any] = {
    "_class_name": "DDIMScheduler", "num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
    "beta_schedule": "scaled_linear", "clip_sample": False, "set_alpha_to_one": False, "steps_offset": 1,
    "prediction_type": "epsilon", "timestep_spacing": "leading",
}

# Parameter counts of the published networks, as diffusers / transformers build them from the configs
# above (tests/priors/test_random_models.py checks each against the class on the meta device).
PUBLISHED_PARAMETERS: dict[str, int] = {
    "sd15_unet": 859_520_964, "sd21_unet": 865_910_724, "zero123_unet": 859_532_484,
    "mvdream_unet": 867_572_164, "sd_vae": 83_653_863, "clip_l14_text": 123_060_480,
    "openclip_h14_text": 340_387_840, "clip_l14_vision": 303_966_208, "zero123_projection": 772 * 768 + 768,
}
