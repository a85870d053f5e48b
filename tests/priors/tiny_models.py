"""Tiny random-weight models written at test time in the published folder layouts.

The folders come from :mod:`recon.priors.random_models` — the writers the real-size smoke and the GPU
check use at the published sizes — with its tiny configs: models of a few hundred kilobytes to a few
megabytes, built from fixed seeds, loaded through the same code path as real weights. Layouts: Stable
Diffusion, Zero-1-to-3 (``clip_camera_projection/`` or ``cc_projection/``) and MVDream (see that module).
"""

from __future__ import annotations

from pathlib import Path

from recon.priors import random_models as rm
from recon.priors.random_models import MAX_TOKENS, SCHEDULER, write_scheduler, write_tokenizer

__all__ = ["MAX_TOKENS", "SCHEDULER", "write_mvdream", "write_scheduler", "write_sd", "write_tokenizer",
           "write_zero123"]

TEXT_DIM = rm.TINY_TEXT_DIM
CLIP_IMAGE_DIM = rm.TINY_CLIP_IMAGE_DIM
CLIP_IMAGE_SIZE = rm.TINY_CLIP_IMAGE_SIZE
LATENT = rm.TINY_LATENT  # latent side; the tiny VAE downsamples by 2, so images are 16²
MVDREAM_UNET_CONFIG = rm.TINY_MVDREAM_UNET


def tiny_unet(in_channels: int = 4, cross_attention_dim: int = TEXT_DIM, seed: int = 0):
    return rm.build_unet(rm.tiny_unet_config(in_channels, cross_attention_dim), seed)


def tiny_vae(seed: int = rm.VAE_SEED):
    return rm.build_vae(rm.TINY_VAE, seed)


def write_sd(root: Path) -> Path:
    """A tiny Stable Diffusion pipeline folder."""
    return rm.write_model("sd-2.1-base", root, "tiny")


def write_zero123(root: Path, projection: str = "clip_camera_projection", seed: int = 0) -> Path:
    """A tiny Zero-1-to-3 folder; ``projection`` picks ``clip_camera_projection`` or ``cc_projection``."""
    c = rm.tiny_configs("zero123-xl")
    return rm.write_zero123(root, c["unet"], c["vae"], c["image"], c["clip_image_size"], projection=projection,
                            seed=seed)


def write_mvdream(root: Path, seed: int = 0) -> Path:
    """A tiny MVDream folder (UNet weights under the published latent-diffusion names)."""
    return rm.write_model("mvdream", root, "tiny", seed=seed)
