"""MVDream (Shi et al. 2023) as a multi-view text prior: 4 views of one sample denoised jointly.

Rows come in groups of 4 consecutive views of one sample (B a multiple of 4); ``_model_eps`` runs
all groups through :class:`~recon.priors.mvdream_unet.MultiViewUNet` in one call, each group's
self-attention spanning its 4 views. Each row's camera is MVDream's flattened 4×4 camera-to-world
matrix, built exactly as MVDream's ``get_camera`` builds it:

1. OpenGL camera at unit distance in a +Y-up world: eye = (cos e sin a, sin e, cos e cos a), looking
   at the origin, columns (right, up, back, eye). This is recon's camera convention
   (:mod:`recon.render.cameras`), so recon's (elevation, azimuth) are MVDream's.
2. Converted to Blender's +Z-up world: rows (x, y, z) -> (x, −z, y).
3. Translation normalised to unit length (``normalize_camera``); flattened row-major.

threestudio's MVDream guidance feeds its own +Z-up c2w directly, which equals MVDream's camera at
azimuth + 90°; recon follows MVDream's own sampler. Distance does not enter (normalised away).
CFG: ε_u + s(ε_c − ε_u), the unconditional branch being the negative prompt with the same cameras.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from recon.diffusion.schedule import NoiseSchedule
from recon.priors.base import Condition
from recon.priors.camera_input import as_cameras
from recon.priors.components import (
    load_diffusers_model,
    load_schedule,
    load_tokenizer,
    load_transformers_model,
)
from recon.priors.diffusers_unet import DiffusersUNetPrior
from recon.priors.mvdream_unet import MultiViewUNet, MultiViewUNetConfig, load_ldm_state_dict
from recon.priors.speed import SpeedConfig, as_network_input, prepare_module, speed_of
from recon.priors.verify_folder import verify_folder
from recon.priors.weight_files import read_json, weight_files

NUM_VIEWS = 4
DEFAULT_ELEVATION = 15.0  # MVDream's sampler default


def _blender_from_opengl() -> torch.Tensor:
    return torch.tensor([[1, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=torch.float64)


def mvdream_camera(camera: torch.Tensor) -> torch.Tensor:
    """(B, 3) (elevation°, azimuth°, distance) -> (B, 16) MVDream camera conditioning (float64)."""
    cams = torch.as_tensor(camera, dtype=torch.float64).reshape(-1, 3)
    e, a = torch.deg2rad(cams[:, 0]), torch.deg2rad(cams[:, 1])
    back = torch.stack([torch.cos(e) * torch.sin(a), torch.sin(e), torch.cos(e) * torch.cos(a)], dim=-1)
    right = torch.stack([torch.cos(a), torch.zeros_like(a), -torch.sin(a)], dim=-1)
    up = torch.linalg.cross(back, right)
    c2w = torch.zeros(cams.shape[0], 4, 4, dtype=torch.float64)
    c2w[:, :3, 0], c2w[:, :3, 1], c2w[:, :3, 2], c2w[:, :3, 3] = right, up, back, back
    c2w[:, 3, 3] = 1
    c2w = _blender_from_opengl() @ c2w
    c2w[:, :3, 3] = c2w[:, :3, 3] / (c2w[:, :3, 3].norm(dim=-1, keepdim=True) + 1e-8)
    return c2w.reshape(-1, 16)


def orbit_views(samples: int, elevation: float = DEFAULT_ELEVATION, azimuth_start: float = 0.0) -> torch.Tensor:
    """(4·samples, 3) cameras: 4 views 90° apart per sample, as MVDream's sampler lays them out."""
    view = torch.tensor([[elevation, azimuth_start + k * 360.0 / NUM_VIEWS, 1.0] for k in range(NUM_VIEWS)],
                        dtype=torch.float64)
    return view.repeat(samples, 1)


class MVDreamPrior(DiffusersUNetPrior):
    """MVDream text-to-multi-view prior; rows [4k, 4k+4) are the 4 views of sample k.

    ``views_per_sample`` tells batching code (trajectory caches) to keep those 4 rows together.

    Args:
        unet: :class:`MultiViewUNet`.
        schedule, vae, text_encoder, tokenizer: the rest of the pipeline.
        speed: how the parts were prepared.
        default_guidance_scale: CFG s when none is given (7.0, MVDream's sampler default).
    """

    views_per_sample = NUM_VIEWS

    def __init__(
        self,
        unet: MultiViewUNet,
        schedule: NoiseSchedule,
        vae: torch.nn.Module,
        text_encoder: torch.nn.Module | None,
        tokenizer: Any | None,
        speed: SpeedConfig | None = None,
        default_guidance_scale: float = 7.0,
    ) -> None:
        super().__init__(unet, schedule, vae, None, text_encoder, tokenizer, default_guidance_scale)
        self.speed = speed or speed_of(self.unet)

    @classmethod
    def from_pretrained(  # type: ignore[override]
        cls,
        folder: str | Path,
        speed: SpeedConfig | None = None,
        timestep_spacing: str | None = None,
        default_guidance_scale: float = 7.0,
    ) -> MVDreamPrior:
        """Load the ``mvdream-sd2.1-diffusers`` layout (``unet/`` in latent-diffusion names), verified first."""
        from diffusers import AutoencoderKL
        from safetensors.torch import load_file
        from transformers import CLIPTextModel

        root = Path(folder)
        verify_folder(root, "mvdream")
        speed = speed or SpeedConfig()
        config = MultiViewUNetConfig.from_dict(read_json(root / "unet" / "config.json"))
        files, _ = weight_files(root / "unet", "diffusion_pytorch_model")
        state: dict[str, torch.Tensor] = {}
        for path in files:
            state.update(load_file(str(path)))
        with torch.device("meta"):
            unet = MultiViewUNet(config)
        load_ldm_state_dict(unet, state, str(files[0]))
        unet = prepare_module(unet, speed, denoiser=True)
        vae = load_diffusers_model(AutoencoderKL, root / "vae", speed)
        text_encoder = load_transformers_model(CLIPTextModel, root / "text_encoder", speed)
        return cls(unet, load_schedule(root, timestep_spacing), vae, text_encoder,  # type: ignore[arg-type]
                   load_tokenizer(root / "tokenizer"), speed, default_guidance_scale)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        cfg: MultiViewUNetConfig = self.unet.config
        return (cfg.out_channels, cfg.image_size, cfg.image_size)

    @property
    def device(self) -> torch.device:
        return self.unet.out[2].weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.out[2].weight.dtype

    def _null_context(self) -> torch.Tensor:
        return torch.zeros(1, 1, self.unet.config.context_dim, device=self.device, dtype=self.dtype)

    # -- conditioning
    def condition(  # type: ignore[override]
        self,
        prompt: str | None = None,
        negative_prompt: str = "",
        camera: Any = None,
        batch: int | None = None,
        embeddings: torch.Tensor | None = None,
        negative_embeddings: torch.Tensor | None = None,
        **_: object,
    ) -> Condition:
        """Rows for ``camera`` (B, 3), B a multiple of 4, views of a sample adjacent; without a
        camera, ``batch`` samples (default 1) of MVDream's default orbit (elevation 15°, 0/90/180/270°).

        Returns tensors ``context``, ``negative`` (B, L, D) and ``camera`` (B, 16).
        """
        cams = orbit_views(batch or 1) if camera is None else as_cameras(camera)
        rows = cams.shape[0]
        if rows % NUM_VIEWS:
            raise ValueError(f"MVDream conditions groups of {NUM_VIEWS} views; got {rows} cameras")
        cond = super().condition(prompt=prompt, negative_prompt=negative_prompt, embeddings=embeddings,
                                 negative_embeddings=negative_embeddings, batch=rows)
        cond.tensors["camera"] = mvdream_camera(cams).to(self.device, self.dtype)
        cond.cameras = cams
        return cond

    # -- noise prediction
    def predict_noise(self, x_t: torch.Tensor, t: int | torch.Tensor, cond: Condition,
                      guidance_scale: float | torch.Tensor | None = None) -> torch.Tensor:
        """As :meth:`Prior.predict_noise`; the guidance scale must be the same for the 4 views of a
        sample so that both CFG branches keep whole samples together."""
        if x_t.shape[0] % NUM_VIEWS:
            raise ValueError(f"MVDream predicts whole samples of {NUM_VIEWS} views; got {x_t.shape[0]} rows")
        if guidance_scale is not None:
            s = torch.as_tensor(guidance_scale, dtype=torch.float64)
            if s.ndim and not bool((s.reshape(-1, NUM_VIEWS) == s.reshape(-1, NUM_VIEWS)[:, :1]).all()):
                raise ValueError("MVDream needs one guidance scale per sample (equal for its 4 views)")
        return super().predict_noise(x_t, t, cond, guidance_scale)

    def _model_eps(self, x_t: torch.Tensor, t: torch.Tensor, cond: Condition, uncond: torch.Tensor) -> torch.Tensor:
        if x_t.shape[0] % NUM_VIEWS:
            raise ValueError(f"MVDream predicts whole samples of {NUM_VIEWS} views; got {x_t.shape[0]} rows")
        mask = uncond.view(-1, 1, 1).to(self.device)
        context = torch.where(mask, cond.tensors["negative"], cond.tensors["context"])
        x = x_t.to(self.device, self.dtype)
        out = self.unet(as_network_input(x, self.speed), t.to(self.device), context,
                        camera=cond.tensors["camera"], num_frames=NUM_VIEWS)
        return self.schedule.eps_from_model_output(out, x, t.cpu())

