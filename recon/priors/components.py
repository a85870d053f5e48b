"""Load the parts of a diffusers weight folder (safetensors only, local files only) onto the
device and dtype of a :class:`~recon.priors.speed.SpeedConfig`.

Call :func:`recon.priors.verify_folder.verify_folder` first: it turns every missing, truncated, pickled or
misshapen file into one clear error; these loaders then only read files known to be good.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from recon.diffusion.schedule import NoiseSchedule
from recon.priors.folder_layout import projection_dims, projection_folder
from recon.priors.speed import SpeedConfig, prepare_module
from recon.priors.weight_files import read_json, weight_files


def _variant(folder: Path, stem: str) -> str | None:
    return weight_files(folder, stem)[1]


def load_diffusers_model(cls: type, folder: Path, speed: SpeedConfig, *, denoiser: bool = False) -> torch.nn.Module:
    """A diffusers ModelMixin (UNet2DConditionModel, AutoencoderKL) from ``folder``."""
    model = cls.from_pretrained(folder, variant=_variant(folder, "diffusion_pytorch_model"), use_safetensors=True,
                                torch_dtype=speed.torch_dtype(), local_files_only=True)
    return prepare_module(model, speed, denoiser=denoiser)


def load_transformers_model(cls: type, folder: Path, speed: SpeedConfig) -> torch.nn.Module:
    """A transformers model (CLIPTextModel, CLIPVisionModelWithProjection) from ``folder``."""
    model = cls.from_pretrained(folder, variant=_variant(folder, "model"), use_safetensors=True,
                                dtype=speed.torch_dtype(), local_files_only=True)
    return prepare_module(model, speed)


def load_tokenizer(folder: Path):
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(folder, local_files_only=True)


def load_schedule(root: Path, timestep_spacing: str | None = None) -> NoiseSchedule:
    return NoiseSchedule.from_config(read_json(root / "scheduler" / "scheduler_config.json"), timestep_spacing)


def load_projection(root: Path, speed: SpeedConfig) -> torch.nn.Linear:
    """Zero-1-to-3's pose projection (``clip_camera_projection/`` or ``cc_projection/``) as a Linear."""
    from safetensors.torch import load_file

    folder, prefix = projection_folder(root)
    d_in, d_out = projection_dims(root)
    files, _ = weight_files(folder, "diffusion_pytorch_model")
    state: dict[str, torch.Tensor] = {}
    for path in files:
        state.update(load_file(str(path)))
    layer = torch.nn.Linear(d_in, d_out)
    layer.load_state_dict({"weight": state[f"{prefix}.weight"], "bias": state[f"{prefix}.bias"]})
    return prepare_module(layer, speed)  # type: ignore[return-value]


@dataclass(frozen=True)
class ClipImagePreprocess:
    """CLIPImageProcessor's steps done in torch on (B, 3, H, W) tensors in [0, 1], differentiably:
    resize the shortest edge to ``size`` (bicubic, antialiased, clamped to [0, 1] as the uint8 path
    is), centre-crop ``crop``, normalise by CLIP's mean and std."""

    size: int = 224
    crop: int = 224
    mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)

    @classmethod
    def from_folder(cls, folder: Path) -> ClipImagePreprocess:
        raw = json.loads((folder / "preprocessor_config.json").read_text())

        def side(value: object, default: int) -> int:
            if isinstance(value, dict):
                return int(value.get("shortest_edge") or value.get("height") or default)
            return int(value) if value is not None else default

        size = side(raw.get("size"), 224)
        crop = side(raw.get("crop_size"), size) if raw.get("do_center_crop", True) else size
        return cls(size, crop, tuple(raw.get("image_mean", cls.mean)), tuple(raw.get("image_std", cls.std)))

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        h, w = images.shape[-2:]
        scale = self.size / min(h, w)
        new_h, new_w = max(self.size, round(h * scale)), max(self.size, round(w * scale))
        x = F.interpolate(images, (new_h, new_w), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
        top, left = (new_h - self.crop) // 2, (new_w - self.crop) // 2
        x = x[..., top: top + self.crop, left: left + self.crop]
        mean = torch.tensor(self.mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        return (x - mean) / std
