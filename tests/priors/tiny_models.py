"""Tiny random-weight models written at test time in the published folder layouts.

Each ``write_*`` function saves a complete diffusers folder (``model_index.json``, ``scheduler/``,
``unet/``, ``vae/`` and the model's encoders) with the classes and file names the published
checkpoints use, so tests load them through the same code path as real weights. Models are a few
hundred kilobytes to a few megabytes and built from a fixed seed.

Layouts mirrored:
- Stable Diffusion (``stable-diffusion-v1-5/stable-diffusion-v1-5``): text_encoder/ (CLIPTextModel,
  ``model.safetensors``), tokenizer/ (vocab.json, merges.txt, tokenizer_config.json,
  special_tokens_map.json), unet/, vae/, scheduler/.
- Zero-1-to-3 (``ashawkey/zero123-xl-diffusers``): image_encoder/ (CLIPVisionModelWithProjection),
  feature_extractor/ (preprocessor_config.json), clip_camera_projection/ (``proj.weight``/``proj.bias``)
  — or the community layout's cc_projection/ (``projection.*``) — unet/ (8 input channels), vae/, scheduler/.
- MVDream (``ashawkey/mvdream-sd2.1-diffusers``): unet/ with ``"_class_name": "MultiViewUNetModel"``
  and latent-diffusion parameter names, text_encoder/, tokenizer/, vae/, scheduler/.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

TEXT_DIM = 32
CLIP_IMAGE_DIM = 32
CLIP_IMAGE_SIZE = 32
LATENT = 8  # latent side; the tiny VAE downsamples by 2, so images are 16²
MAX_TOKENS = 77

SCHEDULER = {
    "_class_name": "DDIMScheduler", "_diffusers_version": "0.42.1", "beta_start": 0.00085, "beta_end": 0.012,
    "beta_schedule": "scaled_linear", "clip_sample": False, "num_train_timesteps": 1000,
    "prediction_type": "epsilon", "set_alpha_to_one": False, "steps_offset": 1, "timestep_spacing": "leading",
    "trained_betas": None,
}


def _json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))


def write_scheduler(root: Path, **overrides: object) -> None:
    _json(root / "scheduler" / "scheduler_config.json", {**SCHEDULER, **overrides})


def write_tokenizer(folder: Path) -> int:
    """A byte-level CLIP BPE vocabulary (256 bytes, their end-of-word forms, a few merges, 2 specials).

    Returns the vocabulary size."""
    from tokenizers.pre_tokenizers import ByteLevel

    chars = sorted(ByteLevel.alphabet())
    vocab: dict[str, int] = {}
    for c in chars:
        vocab[c] = len(vocab)
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    merges = ["v i", "vi e", "vie w</w>", "s i", "si d", "sid e</w>", "f r", "fr o", "fro n",
              "fron t</w>", "b a", "ba c", "bac k</w>"]
    for merge in merges:
        left, right = merge.split()
        vocab.setdefault(left + right, len(vocab))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    _json(folder / "vocab.json", vocab)
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    specials = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
                "pad_token": "<|endoftext|>"}
    _json(folder / "special_tokens_map.json", specials)
    _json(folder / "tokenizer_config.json", {**specials, "model_max_length": MAX_TOKENS, "do_lower_case": True,
                                             "tokenizer_class": "CLIPTokenizer"})
    return len(vocab)


def tiny_unet(in_channels: int = 4, cross_attention_dim: int = TEXT_DIM, seed: int = 0):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(
        sample_size=LATENT, in_channels=in_channels, out_channels=4, layers_per_block=1,
        block_out_channels=(16, 32), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=cross_attention_dim,
        attention_head_dim=4, norm_num_groups=8,
    )


def tiny_vae(seed: int = 1):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        norm_num_groups=8, sample_size=2 * LATENT, scaling_factor=0.18215,
    )


def tiny_text_encoder(vocab_size: int, seed: int = 2):
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    config = CLIPTextConfig(hidden_size=TEXT_DIM, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                            vocab_size=vocab_size, max_position_embeddings=MAX_TOKENS, projection_dim=TEXT_DIM,
                            bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1)
    return CLIPTextModel(config)


def tiny_image_encoder(seed: int = 3):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    config = CLIPVisionConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                              image_size=CLIP_IMAGE_SIZE, patch_size=8, projection_dim=CLIP_IMAGE_DIM)
    return CLIPVisionModelWithProjection(config)


def _text_parts(root: Path) -> None:
    vocab_size = write_tokenizer(root / "tokenizer")
    tiny_text_encoder(vocab_size).save_pretrained(root / "text_encoder")


def write_sd(root: Path) -> Path:
    """A tiny Stable Diffusion pipeline folder."""
    root = Path(root)
    _json(root / "model_index.json", {
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.42.1",
        "feature_extractor": [None, None], "safety_checker": [None, None], "requires_safety_checker": False,
        "scheduler": ["diffusers", "DDIMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"]})
    write_scheduler(root)
    _text_parts(root)
    tiny_unet().save_pretrained(root / "unet")
    tiny_vae().save_pretrained(root / "vae")
    return root


def write_zero123(root: Path, projection: str = "clip_camera_projection", seed: int = 0) -> Path:
    """A tiny Zero-1-to-3 folder; ``projection`` picks ``clip_camera_projection`` or ``cc_projection``."""
    from transformers import CLIPImageProcessor

    root = Path(root)
    _json(root / "model_index.json", {
        "_class_name": "Zero123Pipeline", "_diffusers_version": "0.18.2",
        projection: ["zero123", "CLIPCameraProjection" if projection == "clip_camera_projection" else "CCProjection"],
        "feature_extractor": ["transformers", "CLIPImageProcessor"],
        "image_encoder": ["transformers", "CLIPVisionModelWithProjection"], "requires_safety_checker": False,
        "safety_checker": [None, None], "scheduler": ["diffusers", "DDIMScheduler"],
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]})
    write_scheduler(root)
    tiny_unet(in_channels=8, cross_attention_dim=CLIP_IMAGE_DIM, seed=seed).save_pretrained(root / "unet")
    tiny_vae().save_pretrained(root / "vae")
    tiny_image_encoder().save_pretrained(root / "image_encoder")
    CLIPImageProcessor(size={"shortest_edge": CLIP_IMAGE_SIZE},
                       crop_size={"height": CLIP_IMAGE_SIZE, "width": CLIP_IMAGE_SIZE}).save_pretrained(
        root / "feature_extractor")
    torch.manual_seed(seed + 4)
    layer = torch.nn.Linear(CLIP_IMAGE_DIM + 4, CLIP_IMAGE_DIM)
    folder = root / projection
    if projection == "clip_camera_projection":
        _json(folder / "config.json", {"_class_name": "CLIPCameraProjection", "_diffusers_version": "0.18.2",
                                       "additional_embeddings": 4, "embedding_dim": CLIP_IMAGE_DIM})
        prefix = "proj"
    else:
        _json(folder / "config.json", {"_class_name": "CCProjection", "_diffusers_version": "0.18.2",
                                       "in_channel": CLIP_IMAGE_DIM + 4, "out_channel": CLIP_IMAGE_DIM})
        prefix = "projection"
    save_file({f"{prefix}.weight": layer.weight.detach().contiguous(), f"{prefix}.bias": layer.bias.detach()},
              str(folder / "diffusion_pytorch_model.safetensors"), metadata={"format": "pt"})
    return root


MVDREAM_UNET_CONFIG = {
    "_class_name": "MultiViewUNetModel", "_diffusers_version": "0.25.0", "attention_resolutions": [1],
    "camera_dim": 16, "channel_mult": [1, 2], "context_dim": TEXT_DIM, "image_size": LATENT, "in_channels": 4,
    "model_channels": 32, "num_head_channels": 16, "num_res_blocks": 1, "out_channels": 4, "transformer_depth": 1,
}


def write_mvdream(root: Path, seed: int = 0) -> Path:
    """A tiny MVDream folder (UNet weights under the published latent-diffusion names)."""
    from recon.priors.mvdream_unet import MultiViewUNet, MultiViewUNetConfig, ldm_state_dict

    root = Path(root)
    _json(root / "model_index.json", {
        "_class_name": "MVDreamPipeline", "_diffusers_version": "0.25.0", "feature_extractor": [None, None],
        "image_encoder": [None, None], "requires_safety_checker": False,
        "scheduler": ["diffusers", "DDIMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["mv_unet", "MultiViewUNetModel"],
        "vae": ["diffusers", "AutoencoderKL"]})
    write_scheduler(root)
    _text_parts(root)
    tiny_vae().save_pretrained(root / "vae")
    torch.manual_seed(seed)
    unet = MultiViewUNet(MultiViewUNetConfig.from_dict(MVDREAM_UNET_CONFIG))
    _json(root / "unet" / "config.json", MVDREAM_UNET_CONFIG)
    save_file(ldm_state_dict(unet), str(root / "unet" / "diffusion_pytorch_model.safetensors"),
              metadata={"format": "pt"})
    return root
