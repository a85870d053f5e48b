"""Zero-1-to-3 (Liu et al. 2023) and Stable Zero123 as camera-conditioned latent priors.

The network is Stable Diffusion's UNet with 8 input channels: the noisy latent of the target view
concatenated with the VAE latent of the input view (``latent_dist.mode()``, NOT multiplied by the
VAE scaling factor — the original model was trained that way). Cross-attention sees one token:
``cc_projection(cat(CLIP image embedding (768), T))``, a Linear(772 -> 768), where T is the relative
pose of the target camera from the input view:

    T = [Δpolar (rad), sin Δazimuth, cos Δazimuth, Δradius]
    Δpolar = radians((90° − elev) − (90° − elev_ref)) = radians(elev_ref − elev)
    Δazimuth = radians(azim − azim_ref),  Δradius = dist − dist_ref

(threestudio's ``zero123_guidance``; polar = 90° − elevation). Stable Zero123 replaces Δradius by
the input view's absolute polar angle, radians(90° − elev_ref). The unconditional branch zeros both
the projected context and the concatenated latent. Default CFG 3 (threestudio's zero123 configs).

The CLIP image embedding is computed from the input view as the model was trained
(:class:`Zero123ClipPreprocess`): the whole 256² image resized to 224² by bicubic interpolation with
``align_corners=True`` and no antialiasing, then CLIP's mean/std — ``FrozenCLIPImageEmbedder.preprocess`` of
the original code (cvlab-columbia/zero123, ``zero123/ldm/modules/encoders/modules.py``: kornia 0.6's
``resize``, which is ``F.interpolate``), used unchanged by threestudio and kxhit's diffusers pipeline.
Hugging Face's ``CLIPImageProcessor`` (antialiased resize of the shortest edge, centre crop) is what
DreamGaussian feeds; it stays available as ``clip_input="hf"``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F

from recon.diffusion.schedule import NoiseSchedule
from recon.priors.base import Condition
from recon.priors.camera_input import as_cameras
from recon.priors.components import (
    ClipImagePreprocess,
    load_diffusers_model,
    load_projection,
    load_schedule,
    load_transformers_model,
)
from recon.priors.diffusers_unet import DiffusersUNetPrior
from recon.priors.speed import SpeedConfig, as_network_input, speed_of
from recon.priors.verify_folder import verify_folder

Zero123Variant = Literal["zero123", "stable-zero123"]
ClipInput = Literal["zero123", "hf"]
DEFAULT_REFERENCE_DISTANCE = 3.8  # threestudio's zero123 configs: input view at distance 3.8


@dataclass(frozen=True)
class Zero123ClipPreprocess:
    """Zero-1-to-3's CLIP input as the model was trained, on (B, 3, H, W) images in [0, 1]:

        x = interpolate(2·img − 1, (size, size), bicubic, align_corners=True)   # no antialias, no crop
        pixels = ((x + 1) / 2 − mean) / std

    (``FrozenCLIPImageEmbedder.preprocess`` in cvlab-columbia/zero123 and threestudio's
    ``extern/ldm_zero123``, kxhit's ``CLIP_preprocess``: kornia's ``resize`` with ``antialias=False``
    is ``F.interpolate``; an image already at ``size`` is returned unchanged, as kornia does.) No clamp:
    bicubic overshoot at silhouette edges is kept, as in training. Differentiable.
    """

    size: int = 224
    mean: tuple[float, float, float] = ClipImagePreprocess.mean
    std: tuple[float, float, float] = ClipImagePreprocess.std

    @classmethod
    def from_folder(cls, folder: Path) -> Zero123ClipPreprocess:
        """Size (the crop side), mean and std from a ``feature_extractor/preprocessor_config.json``."""
        hf = ClipImagePreprocess.from_folder(folder)
        return cls(hf.crop, hf.mean, hf.std)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = images * 2 - 1
        if tuple(x.shape[-2:]) != (self.size, self.size):
            x = F.interpolate(x, (self.size, self.size), mode="bicubic", align_corners=True)
        x = (x + 1) / 2
        mean = torch.tensor(self.mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        return (x - mean) / std


def clip_preprocess_from_folder(folder: Path, clip_input: ClipInput = "zero123") -> Callable[[torch.Tensor],
                                                                                               torch.Tensor]:
    """``zero123``: :class:`Zero123ClipPreprocess` (as trained; the default); ``hf``: Hugging Face's
    ``CLIPImageProcessor`` steps in torch (:class:`~recon.priors.components.ClipImagePreprocess`)."""
    if clip_input == "zero123":
        return Zero123ClipPreprocess.from_folder(folder)
    if clip_input == "hf":
        return ClipImagePreprocess.from_folder(folder)
    raise ValueError(f"unknown CLIP input preprocessing {clip_input!r} (zero123, hf)")


def zero123_pose(camera: torch.Tensor, reference: torch.Tensor, variant: Zero123Variant = "zero123") -> torch.Tensor:
    """The 4-vector T for each target camera relative to the input view.

    Args:
        camera: (B, 3) target (elevation°, azimuth°, distance), absolute.
        reference: (3,) or (B, 3) input view (elevation°, azimuth°, distance).
        variant: ``zero123`` (4th = Δradius) or ``stable-zero123`` (4th = input polar angle, rad).
    Returns:
        (B, 4) float64 [Δpolar, sin Δazimuth, cos Δazimuth, Δradius | polar_ref].
    """
    cam = torch.as_tensor(camera, dtype=torch.float64)
    ref = torch.as_tensor(reference, dtype=torch.float64).reshape(-1, 3).expand(cam.shape[0], 3)
    d_polar = torch.deg2rad((90 - cam[:, 0]) - (90 - ref[:, 0]))
    d_az = torch.deg2rad(cam[:, 1] - ref[:, 1])
    if variant == "zero123":
        fourth = cam[:, 2] - ref[:, 2]
    elif variant == "stable-zero123":
        fourth = torch.deg2rad(90 - ref[:, 0])
    else:
        raise ValueError(f"unknown Zero-1-to-3 variant {variant!r} (zero123, stable-zero123)")
    return torch.stack([d_polar, torch.sin(d_az), torch.cos(d_az), fourth], dim=-1)


def image_tag(image: torch.Tensor) -> str:
    data = image.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
    return "img:" + hashlib.sha1(data).hexdigest()[:16]


class Zero123Prior(DiffusersUNetPrior):
    """Zero-1-to-3 / Stable Zero123: ε̂(x_t, t | input image, target camera).

    Args:
        unet: 8-input-channel ``UNet2DConditionModel``.
        schedule: its noise schedule.
        vae: ``AutoencoderKL`` (encodes renders and the input view).
        image_encoder: ``CLIPVisionModelWithProjection`` (image_embeds = the 768-d CLIP embedding).
        projection: Linear(CLIP dim + 4 -> cross-attention dim), the published ``cc_projection``.
        clip_preprocess: the CLIP input's resize and normalisation, in torch (default
            :class:`Zero123ClipPreprocess`, as the model was trained).
        variant: pose-vector convention (``zero123`` or ``stable-zero123``).
        speed: how the parts were prepared.
        reference_distance: input-view distance when ``condition`` gets no ``reference``.
    """

    def __init__(
        self,
        unet: torch.nn.Module,
        schedule: NoiseSchedule,
        vae: torch.nn.Module,
        image_encoder: torch.nn.Module,
        projection: torch.nn.Module,
        clip_preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
        variant: Zero123Variant = "zero123",
        speed: SpeedConfig | None = None,
        reference_distance: float = DEFAULT_REFERENCE_DISTANCE,
        default_guidance_scale: float = 3.0,
    ) -> None:
        super().__init__(unet, schedule, vae, None, None, None, default_guidance_scale)
        if variant not in ("zero123", "stable-zero123"):
            raise ValueError(f"unknown Zero-1-to-3 variant {variant!r} (zero123, stable-zero123)")
        self.image_encoder = image_encoder.eval().requires_grad_(False)
        self.projection = projection.eval().requires_grad_(False)
        self.clip_preprocess = clip_preprocess or Zero123ClipPreprocess()
        self.variant: Zero123Variant = variant
        self.speed = speed or speed_of(self.unet)
        self.reference_distance = reference_distance

    @classmethod
    def from_pretrained(  # type: ignore[override]
        cls,
        folder: str | Path,
        variant: Zero123Variant = "zero123",
        speed: SpeedConfig | None = None,
        timestep_spacing: str | None = None,
        reference_distance: float = DEFAULT_REFERENCE_DISTANCE,
        default_guidance_scale: float = 3.0,
        clip_input: ClipInput = "zero123",
    ) -> Zero123Prior:
        """Load a Zero-1-to-3 diffusers folder (``unet/ vae/ image_encoder/ feature_extractor/
        clip_camera_projection/ (or cc_projection/) scheduler/``), verified first. ``clip_input``: the
        CLIP input preprocessing (:func:`clip_preprocess_from_folder`; ``zero123`` = as trained)."""
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import CLIPVisionModelWithProjection

        root = Path(folder)
        verify_folder(root, "zero123")
        speed = speed or SpeedConfig()
        return cls(
            load_diffusers_model(UNet2DConditionModel, root / "unet", speed, denoiser=True),
            load_schedule(root, timestep_spacing),
            load_diffusers_model(AutoencoderKL, root / "vae", speed),
            load_transformers_model(CLIPVisionModelWithProjection, root / "image_encoder", speed),
            load_projection(root, speed),
            clip_preprocess_from_folder(root / "feature_extractor", clip_input),
            variant, speed, reference_distance, default_guidance_scale,
        )

    @property
    def sample_shape(self) -> tuple[int, ...]:
        size = self.unet.config.sample_size
        size = size if isinstance(size, int) else size[0]
        return (int(self.unet.config.out_channels), int(size), int(size))

    # -- conditioning
    def prepare_image(self, image: torch.Tensor) -> torch.Tensor:
        """(1, 3|4, H, W) or (3|4, H, W) in [0, 1] -> (1, 3, S, S) RGB on white at the model's size."""
        img = torch.as_tensor(image)
        if img.ndim == 3:
            img = img.unsqueeze(0)
        if img.ndim != 4 or img.shape[0] != 1 or img.shape[1] not in (3, 4):
            raise ValueError(f"image must be (1, 3, H, W) RGB in [0, 1], got {tuple(img.shape)}")
        img = img.to(self.device, torch.float32)
        if img.shape[1] == 4:  # composite RGBA on white, the input convention of Zero-1-to-3
            img = img[:, :3] * img[:, 3:] + (1 - img[:, 3:])
        if float(img.min()) < -1e-3 or float(img.max()) > 1 + 1e-3:
            raise ValueError("image values must be in [0, 1]")
        size = self.image_size
        if img.shape[-2:] != (size, size):
            img = F.interpolate(img, (size, size), mode="bilinear", align_corners=False, antialias=True)
        return img.clamp(0, 1)

    @torch.no_grad()
    def encode_reference(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The input view's (1, D) CLIP image embedding and (1, 4, h, w) concat latent (mode, unscaled)."""
        img = self.prepare_image(image)
        clip_in = self.clip_preprocess(img).to(self.dtype)
        embedding = self.image_encoder(pixel_values=clip_in).image_embeds
        latent = self.vae.encode((img * 2 - 1).to(self.dtype)).latent_dist.mode()
        return embedding, latent

    def condition(  # type: ignore[override]
        self,
        image: torch.Tensor | None = None,
        camera: Any = None,
        reference: Any = None,
        **_: object,
    ) -> Condition:
        """Condition every target camera on one input image, encoding the image once.

        Args:
            image: (1, 3, H, W) RGB in [0, 1] on a white background (RGBA is composited on white).
            camera: (B, 3) or (3,) absolute target views (elevation°, azimuth°, distance).
            reference: the input view (elevation°, azimuth°, distance); default (0, 0,
                ``reference_distance``), the default of threestudio's guidance classes. Runs pass the
                run's input view (``elevation``, 0, ``distance``); the image recipe puts it at
                threestudio's recipe value, elevation 5°.
        Returns:
            tensors ``context`` (B, 1, D), ``image_latent`` (B, 4, h, w) (expanded views of one
            encoding) and ``pose`` (B, 4) T; ``cameras`` the targets; ``shared`` the un-repeated
            encodings and the reference view.
        """
        if image is None or camera is None:
            raise ValueError("Zero-1-to-3 needs image= (the input view) and camera= (target views)")
        cams = as_cameras(camera)
        ref = torch.as_tensor((0.0, 0.0, self.reference_distance) if reference is None else reference,
                              dtype=torch.float64).reshape(3)
        embedding, latent = self.encode_reference(image)
        tag = ("zero123", self.variant, image_tag(image), tuple(round(float(v), 6) for v in ref))
        return self._rows(embedding, latent, ref, tag, cams)

    def _rows(self, embedding: torch.Tensor, latent: torch.Tensor, ref: torch.Tensor, tag: tuple,
              cams: torch.Tensor) -> Condition:
        """Rows for cameras ``cams`` from an already encoded input view (no encoder runs here)."""
        pose = zero123_pose(cams, ref, self.variant)
        rows = cams.shape[0]
        with torch.no_grad():
            tokens = torch.cat([embedding.expand(rows, -1), pose.to(self.device, self.dtype)], dim=-1)
            context = self.projection(tokens).unsqueeze(1)
        return Condition(
            tensors={"context": context, "image_latent": latent.expand(rows, -1, -1, -1), "pose": pose},
            tags=(tag,) * rows,
            cameras=cams,
            shared={"clip_embedding": embedding, "image_latent": latent, "reference": ref},
            # Trajectory caches re-condition a camera bin on its centre; the image stays encoded.
            rebuild=lambda new: self._rows(embedding, latent, ref, tag, as_cameras(new)),
        )

    def _model_eps(self, x_t: torch.Tensor, t: torch.Tensor, cond: Condition, uncond: torch.Tensor) -> torch.Tensor:
        drop = uncond.to(self.device)
        context = cond.tensors["context"]
        latent = cond.tensors["image_latent"]
        # Unconditional rows: zeros for both the projected context and the concatenated latent.
        context = torch.where(drop.view(-1, 1, 1), torch.zeros_like(context), context)
        latent = torch.where(drop.view(-1, 1, 1, 1), torch.zeros_like(latent), latent)
        x = x_t.to(self.device, self.dtype)
        inp = as_network_input(torch.cat([x, latent.to(self.dtype)], dim=1), self.speed)
        out = self.unet(inp, t.to(self.device), encoder_hidden_states=context).sample
        return self.schedule.eps_from_model_output(out, x, t.cpu())


def load_zero123_prior(
    path: str | Path | None = None,
    variant: Zero123Variant = "zero123",
    device: str = "auto",
    speed: SpeedConfig | None = None,
) -> Zero123Prior:
    """A Zero-1-to-3 prior from a folder or a zoo name; None picks the zoo model of ``variant``
    (``zero123-xl`` or ``stable-zero123``), found in $RECON_MODELS or the Hugging Face cache."""
    from recon.priors.zoo import resolve

    name = path if path is not None else ("stable-zero123" if variant == "stable-zero123" else "zero123-xl")
    resolved = resolve(name)
    return Zero123Prior.from_pretrained(resolved.path, variant=variant, speed=speed or SpeedConfig(device=device))
