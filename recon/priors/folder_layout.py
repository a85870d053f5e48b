"""The layout of a diffusers model folder: which prior it holds, and where Zero-1-to-3's pose projection is.

A weight folder is a diffusers pipeline folder (``unet/``, ``vae/``, ``scheduler/`` ... each with its
``config.json``). Only folder names and small JSON configs are read here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from recon.priors.weight_files import PICKLE_SUFFIXES, WeightsError, read_json, refuse_pickle

ModelKind = Literal["stable-diffusion", "zero123", "mvdream"]

# Zero-1-to-3 conversions name the pose projection folder one of these (file keys differ).
PROJECTION_FOLDERS = {"clip_camera_projection": "proj", "cc_projection": "projection"}


def projection_folder(root: Path) -> tuple[Path, str]:
    """Zero-1-to-3's pose projection: (folder, parameter prefix), whichever layout the conversion used."""
    for name, prefix in PROJECTION_FOLDERS.items():
        if (root / name).is_dir():
            return root / name, prefix
    raise WeightsError(root / "clip_camera_projection", "folder missing (also looked for cc_projection/)",
                       "this is not a Zero-1-to-3 diffusers folder, or it is incomplete")


def projection_dims(root: Path) -> tuple[int, int]:
    """(input dim, output dim) of the pose projection, from its config (CCProjection's defaults: 772 -> 768)."""
    folder, _ = projection_folder(root)
    config = read_json(folder / "config.json")
    if "embedding_dim" in config:
        dim = int(config["embedding_dim"])
        return dim + int(config.get("additional_embeddings", 4)), dim
    return int(config.get("in_channel", 772)), int(config.get("out_channel", 768))


def detect_kind(root: str | Path) -> ModelKind:
    """Which prior a diffusers folder holds, from its layout."""
    root = Path(root)
    if root.is_file():
        if root.suffix in PICKLE_SUFFIXES:
            raise refuse_pickle(root)
        raise WeightsError(root, "is a single file; recon loads diffusers folders (unet/, vae/, scheduler/ ...)",
                           "download the model's diffusers layout (see `recon models list`)")
    if not root.is_dir():
        raise WeightsError(root, "no such folder")
    unet_cfg = root / "unet" / "config.json"
    if unet_cfg.is_file() and read_json(unet_cfg).get("_class_name") == "MultiViewUNetModel":
        return "mvdream"
    if any((root / name).is_dir() for name in PROJECTION_FOLDERS) or (root / "image_encoder").is_dir():
        return "zero123"
    if (root / "text_encoder").is_dir() or (root / "unet").is_dir():
        return "stable-diffusion"
    raise WeightsError(root, "not a diffusers model folder (no unet/ inside)",
                       "point at the folder that holds unet/, vae/ and scheduler/")
