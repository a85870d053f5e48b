"""Random-weight diffusers folders in the published layouts, at any size — tiny for tests, full for the
real-size smoke and the GPU check.

Each ``write_*`` function saves a complete folder (``model_index.json``, ``scheduler/``, ``unet/``,
``vae/`` and the model's encoders) with the classes and file names the published checkpoints use, so
the folder loads through the same code path as real weights (``recon.priors.loading.load_prior``,
``recon run --prior FOLDER``, ``recon text --prior FOLDER``). The networks are built from a fixed seed
with the libraries' own initialisation, so random weights cost exactly what the real ones cost.

Layouts mirrored:

- Stable Diffusion (``stable-diffusion-v1-5/stable-diffusion-v1-5``, ``stabilityai/stable-diffusion-2-1-base``):
  text_encoder/ (CLIPTextModel, ``model.safetensors``), tokenizer/ (vocab.json, merges.txt,
  tokenizer_config.json, special_tokens_map.json), unet/, vae/, scheduler/.
- Zero-1-to-3 (``ashawkey/zero123-xl-diffusers``, ``ashawkey/stable-zero123-diffusers``): image_encoder/
  (CLIPVisionModelWithProjection), feature_extractor/ (preprocessor_config.json), clip_camera_projection/
  (``proj.weight``/``proj.bias``) — or the community layout's cc_projection/ (``projection.*``) — unet/
  (8 input channels), vae/, scheduler/.
- MVDream (``ashawkey/mvdream-sd2.1-diffusers``): unet/ with ``"_class_name": "MultiViewUNetModel"`` and
  latent-diffusion parameter names, text_encoder/, tokenizer/, vae/, scheduler/.

The tokenizer is a byte-level CLIP BPE vocabulary of a few hundred entries (the real 49 408-entry
vocabulary cannot be generated, and tokenising costs nothing next to the networks); its ids stay below
the text encoder's 49 408 embeddings, which keep their published size.

:func:`write_published` writes the full-size folders (configs in :mod:`recon.priors.architectures`);
:func:`published_parameters` gives the parameter count each component's published config implies, and
:func:`folder_parameters` the count a folder's safetensors headers hold.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

MAX_TOKENS = 77
DIFFUSERS_VERSION = "0.42.1"

SCHEDULER = {
    "_class_name": "DDIMScheduler", "_diffusers_version": DIFFUSERS_VERSION, "beta_start": 0.00085,
    "beta_end": 0.012, "beta_schedule": "scaled_linear", "clip_sample": False, "num_train_timesteps": 1000,
    "prediction_type": "epsilon", "set_alpha_to_one": False, "steps_offset": 1, "timestep_spacing": "leading",
    "trained_betas": None,
}

# Seeds of the components (the UNet takes the caller's ``seed``).
VAE_SEED, TEXT_SEED, IMAGE_SEED, PROJECTION_OFFSET = 1, 2, 3, 4


def _json(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))


def write_scheduler(root: Path, **overrides: object) -> None:
    _json(Path(root) / "scheduler" / "scheduler_config.json", {**SCHEDULER, **overrides})


_MERGES = ("v i", "vi e", "vie w</w>", "s i", "si d", "sid e</w>", "f r", "fr o", "fro n", "fron t</w>", "b a",
           "ba c", "bac k</w>")


def _tokenizer_vocab() -> dict[str, int]:
    from tokenizers.pre_tokenizers import ByteLevel

    chars = sorted(ByteLevel.alphabet())
    vocab: dict[str, int] = {}
    for c in chars:
        vocab[c] = len(vocab)
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    for merge in _MERGES:
        left, right = merge.split()
        vocab.setdefault(left + right, len(vocab))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return vocab


def tokenizer_vocab_size() -> int:
    """Entries of the vocabulary :func:`write_tokenizer` writes."""
    return len(_tokenizer_vocab())


def write_tokenizer(folder: Path, max_tokens: int = MAX_TOKENS) -> int:
    """A byte-level CLIP BPE vocabulary (256 bytes, their end-of-word forms, a few merges, 2 specials).

    Returns the vocabulary size."""
    vocab = _tokenizer_vocab()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _json(folder / "vocab.json", vocab)
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(_MERGES) + "\n")
    specials = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
                "pad_token": "<|endoftext|>"}
    _json(folder / "special_tokens_map.json", specials)
    _json(folder / "tokenizer_config.json", {**specials, "model_max_length": max_tokens, "do_lower_case": True,
                                             "tokenizer_class": "CLIPTokenizer"})
    return len(vocab)


def text_config(config: Mapping[str, Any], vocab_size: int) -> dict[str, Any]:
    """A CLIPTextConfig's values: ``config``, or without ``vocab_size`` in it, the tokenizer's size and ids."""
    values = dict(config)
    if "vocab_size" not in values:
        values.update(vocab_size=vocab_size, bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1,
                      pad_token_id=vocab_size - 1)
    elif values["vocab_size"] < vocab_size:
        raise ValueError(f"text encoder vocab_size {values['vocab_size']} is below the tokenizer's {vocab_size}")
    return values


# ------------------------------------------------------------------------------------------ networks
def build_unet(config: Mapping[str, Any], seed: int = 0):
    """A ``UNet2DConditionModel`` of ``config`` (its keyword arguments), random weights from ``seed``."""
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(**{k: v for k, v in config.items() if not k.startswith("_")})


def build_vae(config: Mapping[str, Any], seed: int = VAE_SEED):
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(**{k: v for k, v in config.items() if not k.startswith("_")})


def build_text_encoder(config: Mapping[str, Any], vocab_size: int, seed: int = TEXT_SEED):
    """CLIPTextModel of ``config``; without ``vocab_size`` in it, the tokenizer's size and its special ids."""
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    return CLIPTextModel(CLIPTextConfig(**text_config(config, vocab_size)))


def build_image_encoder(config: Mapping[str, Any], seed: int = IMAGE_SEED):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    return CLIPVisionModelWithProjection(CLIPVisionConfig(**config))


def build_mvdream_unet(config: Mapping[str, Any], seed: int = 0):
    from recon.priors.mvdream_unet import MultiViewUNet, MultiViewUNetConfig

    torch.manual_seed(seed)
    return MultiViewUNet(MultiViewUNetConfig.from_dict(config))


def _save(model, folder: Path, dtype: torch.dtype) -> None:
    """``save_pretrained`` (safetensors) in ``dtype``, under the plain file names."""
    model.to(dtype).save_pretrained(folder, safe_serialization=True)


# ------------------------------------------------------------------------------------------ folders
def write_sd(root: Path, unet: Mapping[str, Any], vae: Mapping[str, Any], text: Mapping[str, Any], *,
             seed: int = 0, dtype: torch.dtype = torch.float32) -> Path:
    """A Stable Diffusion pipeline folder with networks of the given configs."""
    root = Path(root)
    _json(root / "model_index.json", {
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": DIFFUSERS_VERSION,
        "feature_extractor": [None, None], "safety_checker": [None, None], "requires_safety_checker": False,
        "scheduler": ["diffusers", "DDIMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"]})
    write_scheduler(root)
    vocab_size = write_tokenizer(root / "tokenizer")
    _save(build_text_encoder(text, vocab_size), root / "text_encoder", dtype)
    _save(build_unet(unet, seed), root / "unet", dtype)
    _save(build_vae(vae), root / "vae", dtype)
    return root


def write_zero123(root: Path, unet: Mapping[str, Any], vae: Mapping[str, Any], image: Mapping[str, Any],
                  clip_image_size: int, *, projection: str = "clip_camera_projection", seed: int = 0,
                  dtype: torch.dtype = torch.float32) -> Path:
    """A Zero-1-to-3 folder; ``projection`` picks ``clip_camera_projection`` or ``cc_projection``."""
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
    _save(build_unet(unet, seed), root / "unet", dtype)
    _save(build_vae(vae), root / "vae", dtype)
    _save(build_image_encoder(image), root / "image_encoder", dtype)
    CLIPImageProcessor(size={"shortest_edge": clip_image_size},
                       crop_size={"height": clip_image_size, "width": clip_image_size}).save_pretrained(
        root / "feature_extractor")
    dim = int(image["projection_dim"])
    torch.manual_seed(seed + PROJECTION_OFFSET)
    layer = torch.nn.Linear(dim + 4, dim)
    folder = root / projection
    if projection == "clip_camera_projection":
        _json(folder / "config.json", {"_class_name": "CLIPCameraProjection", "_diffusers_version": "0.18.2",
                                       "additional_embeddings": 4, "embedding_dim": dim})
        prefix = "proj"
    else:
        _json(folder / "config.json", {"_class_name": "CCProjection", "_diffusers_version": "0.18.2",
                                       "in_channel": dim + 4, "out_channel": dim})
        prefix = "projection"
    save_file({f"{prefix}.weight": layer.weight.detach().to("cpu", dtype).contiguous(),
               f"{prefix}.bias": layer.bias.detach().to("cpu", dtype).contiguous()},
              str(folder / "diffusion_pytorch_model.safetensors"), metadata={"format": "pt"})
    return root


def write_mvdream(root: Path, unet: Mapping[str, Any], vae: Mapping[str, Any], text: Mapping[str, Any], *,
                  seed: int = 0, dtype: torch.dtype = torch.float32) -> Path:
    """An MVDream folder (UNet weights under the published latent-diffusion names)."""
    from recon.priors.mvdream_unet import ldm_state_dict

    root = Path(root)
    _json(root / "model_index.json", {
        "_class_name": "MVDreamPipeline", "_diffusers_version": "0.25.0", "feature_extractor": [None, None],
        "image_encoder": [None, None], "requires_safety_checker": False,
        "scheduler": ["diffusers", "DDIMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["mv_unet", "MultiViewUNetModel"],
        "vae": ["diffusers", "AutoencoderKL"]})
    write_scheduler(root)
    vocab_size = write_tokenizer(root / "tokenizer")
    _save(build_text_encoder(text, vocab_size), root / "text_encoder", dtype)
    _save(build_vae(vae), root / "vae", dtype)
    model = build_mvdream_unet(unet, seed)
    _json(root / "unet" / "config.json", {"_class_name": "MultiViewUNetModel", "_diffusers_version": "0.25.0",
                                          **{k: v for k, v in unet.items() if not k.startswith("_")}})
    state = {k: v.to("cpu", dtype).contiguous() for k, v in ldm_state_dict(model).items()}
    save_file(state, str(root / "unet" / "diffusion_pytorch_model.safetensors"), metadata={"format": "pt"})
    return root


# ------------------------------------------------------------------------------- published sizes
PUBLISHED = ("zero123-xl", "stable-zero123", "sd-1.5", "sd-2.1-base", "mvdream")
"""The full-size models :func:`write_published` writes, by their ``models/zoo.yaml`` names."""


def published_configs(name: str) -> dict[str, Any]:
    """The published component configs of ``name`` (:mod:`recon.priors.architectures`), by layout."""
    from recon.priors import architectures as arch

    if name in ("zero123-xl", "stable-zero123"):
        unet = arch.ZERO123_UNET if name == "zero123-xl" else arch.STABLE_ZERO123_UNET
        return {"layout": "zero123", "unet": unet, "vae": arch.ZERO123_VAE, "image": arch.CLIP_L14_VISION,
                "clip_image_size": arch.CLIP_IMAGE_SIZE}
    if name in ("sd-1.5", "sd-2.1-base"):
        sd15 = name == "sd-1.5"
        return {"layout": "sd", "unet": arch.SD15_UNET if sd15 else arch.SD21_BASE_UNET, "vae": arch.SD_VAE,
                "text": arch.CLIP_L14_TEXT if sd15 else arch.OPENCLIP_H14_TEXT}
    if name == "mvdream":
        return {"layout": "mvdream", "unet": arch.MVDREAM_UNET, "vae": arch.MVDREAM_VAE,
                "text": arch.OPENCLIP_H14_TEXT}
    raise ValueError(f"unknown published model {name!r} (one of {', '.join(PUBLISHED)})")


# Tiny stand-ins of the same layouts (tests, ``benchmarks/gpu_check.py --dry-run``): a few hundred
# kilobytes to a few megabytes each. Latents 8², the tiny VAE downsamples by 2 (images 16²).
TINY_LATENT = 8
TINY_TEXT_DIM = 32
TINY_CLIP_IMAGE_DIM = 32
TINY_CLIP_IMAGE_SIZE = 32


def tiny_unet_config(in_channels: int = 4, cross_attention_dim: int = TINY_TEXT_DIM) -> dict[str, Any]:
    return {"sample_size": TINY_LATENT, "in_channels": in_channels, "out_channels": 4, "layers_per_block": 1,
            "block_out_channels": (16, 32), "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
            "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"), "cross_attention_dim": cross_attention_dim,
            "attention_head_dim": 4, "norm_num_groups": 8}


TINY_VAE: dict[str, Any] = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "block_out_channels": (8, 16), "layers_per_block": 1,
    "down_block_types": ("DownEncoderBlock2D",) * 2, "up_block_types": ("UpDecoderBlock2D",) * 2,
    "norm_num_groups": 8, "sample_size": 2 * TINY_LATENT, "scaling_factor": 0.18215,
}
TINY_TEXT: dict[str, Any] = {  # vocab_size and special ids: the tokenizer's
    "hidden_size": TINY_TEXT_DIM, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4,
    "max_position_embeddings": MAX_TOKENS, "projection_dim": TINY_TEXT_DIM}
TINY_IMAGE: dict[str, Any] = {
    "hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4,
    "image_size": TINY_CLIP_IMAGE_SIZE, "patch_size": 8, "projection_dim": TINY_CLIP_IMAGE_DIM}
TINY_MVDREAM_UNET: dict[str, Any] = {
    "_class_name": "MultiViewUNetModel", "_diffusers_version": "0.25.0", "attention_resolutions": [1],
    "camera_dim": 16, "channel_mult": [1, 2], "context_dim": TINY_TEXT_DIM, "image_size": TINY_LATENT,
    "in_channels": 4, "model_channels": 32, "num_head_channels": 16, "num_res_blocks": 1, "out_channels": 4,
    "transformer_depth": 1,
}


def tiny_configs(name: str) -> dict[str, Any]:
    """The tiny stand-in of ``name`` (same layout and layer types as :func:`published_configs`)."""
    layout = published_configs(name)["layout"]
    if layout == "zero123":
        return {"layout": layout, "unet": tiny_unet_config(8, TINY_CLIP_IMAGE_DIM), "vae": TINY_VAE,
                "image": TINY_IMAGE, "clip_image_size": TINY_CLIP_IMAGE_SIZE}
    if layout == "sd":
        return {"layout": layout, "unet": tiny_unet_config(), "vae": TINY_VAE, "text": TINY_TEXT}
    return {"layout": layout, "unet": TINY_MVDREAM_UNET, "vae": TINY_VAE, "text": TINY_TEXT}


def model_configs(name: str, size: str = "full") -> dict[str, Any]:
    """``full`` (published) or ``tiny`` configs of ``name``."""
    if size not in ("full", "tiny"):
        raise ValueError(f"size {size!r}: use full or tiny")
    return published_configs(name) if size == "full" else tiny_configs(name)


def write_model(name: str, root: Path, size: str = "full", dtype: torch.dtype | None = None, seed: int = 0,
                device: str | torch.device = "cpu") -> Path:
    """The random-weight folder of ``name`` (one of :data:`PUBLISHED`) at ``root``, ``full`` or ``tiny``.

    Full-size folders default to fp16 — how the zoo's Zero-1-to-3 / Stable Zero123 / MVDream folders store
    their weights (the loaders cast to the run's dtype); tiny ones to fp32. ``device`` is where the networks
    are initialised (a GPU does it in a fraction of the CPU's time). A folder named ``stable-…`` runs with
    Stable Zero123's pose convention under ``recon run --prior FOLDER``."""
    from diffusers.utils import logging as diffusers_logging

    c = model_configs(name, size)
    dtype = dtype or (torch.float16 if size == "full" else torch.float32)
    level = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()  # "modules ... should be kept in float32": none are, for these
    try:
        with torch.device(device):
            if c["layout"] == "zero123":
                return write_zero123(root, c["unet"], c["vae"], c["image"], c["clip_image_size"], seed=seed,
                                     dtype=dtype)
            if c["layout"] == "sd":
                return write_sd(root, c["unet"], c["vae"], c["text"], seed=seed, dtype=dtype)
            return write_mvdream(root, c["unet"], c["vae"], c["text"], seed=seed, dtype=dtype)
    finally:
        diffusers_logging.set_verbosity(level)


def write_published(name: str, root: Path, dtype: torch.dtype = torch.float16, seed: int = 0,
                    device: str | torch.device = "cpu") -> Path:
    """The full-size random-weight folder of ``name`` (:func:`write_model` with ``size="full"``)."""
    return write_model(name, root, "full", dtype, seed, device)


def _count(build) -> int:
    with torch.device("meta"):
        model = build()
    return sum(p.numel() for p in model.parameters())


def published_parameters(name: str, size: str = "full") -> dict[str, int]:
    """Parameters per component that ``name``'s published configs imply, counted on the meta device
    with diffusers' and transformers' own classes (MVDream's UNet: recon's MultiViewUNet)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPVisionConfig, CLIPVisionModelWithProjection

    c = model_configs(name, size)
    counts = {"vae": _count(lambda: AutoencoderKL(**c["vae"]))}
    if c["layout"] == "mvdream":
        from recon.priors.mvdream_unet import MultiViewUNet, MultiViewUNetConfig

        counts["unet"] = _count(lambda: MultiViewUNet(MultiViewUNetConfig.from_dict(c["unet"])))
    else:
        counts["unet"] = _count(lambda: UNet2DConditionModel(**c["unet"]))
    if "text" in c:
        text = text_config(c["text"], tokenizer_vocab_size())
        counts["text_encoder"] = _count(lambda: CLIPTextModel(CLIPTextConfig(**text)))
    if "image" in c:
        counts["image_encoder"] = _count(lambda: CLIPVisionModelWithProjection(CLIPVisionConfig(**c["image"])))
        dim = int(c["image"]["projection_dim"])
        counts["clip_camera_projection"] = (dim + 4) * dim + dim
    return counts


def folder_parameters(root: Path) -> dict[str, int]:
    """Parameters per component held by a folder's safetensors files (headers only; buffers such as
    ``position_ids`` left out), for the components :func:`published_parameters` names."""
    import math

    from recon.priors.folder_layout import PROJECTION_FOLDERS
    from recon.priors.weight_files import read_safetensors_header, weight_files
    from recon.priors.weight_shapes import _normalise_key

    root = Path(root)
    counts: dict[str, int] = {}
    for sub in ("unet", "vae", "text_encoder", "image_encoder", *PROJECTION_FOLDERS):
        folder = root / sub
        if not folder.is_dir():
            continue
        stem = "model" if sub.endswith("_encoder") else "diffusion_pytorch_model"
        files, _ = weight_files(folder, stem)
        total = 0
        for path in files:
            total += sum(math.prod(info.shape) for key, info in read_safetensors_header(path).items()
                         if _normalise_key(key) is not None)
        counts["clip_camera_projection" if sub in PROJECTION_FOLDERS else sub] = total
    return counts
