"""A prior around any diffusers ``UNet2DConditionModel`` + scheduler config, pixel or latent.

This is the generic text-conditioned (or embedding-conditioned) prior: Stable Diffusion builds on
it, and tests use it with tiny random-weight UNets. Conditioning is cross-attention context
(``encoder_hidden_states``); the unconditional branch uses the negative context (the empty
prompt's embedding when a text encoder is present, zeros otherwise).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from recon.diffusion.schedule import NoiseSchedule
from recon.priors.base import Condition, Prior


def _tensor_tag(t: torch.Tensor) -> str:
    return "emb:" + hashlib.sha1(t.detach().cpu().to(torch.float64).numpy().tobytes()).hexdigest()[:16]


class DiffusersUNetPrior(Prior):
    """ε̂ from a diffusers UNet. ``vae`` makes it a latent prior (encode/decode through the VAE).

    Args:
        unet: a ``UNet2DConditionModel`` (any size; predicts ε or v per the schedule).
        schedule: the noise schedule matching the UNet's scheduler config.
        vae: optional ``AutoencoderKL``; ``vae_scaling_factor`` defaults to its config's.
        text_encoder, tokenizer: optional CLIP text encoder and tokenizer for ``prompt=`` conditioning.
        default_guidance_scale: CFG used when a caller passes none (7.5, as for Stable Diffusion).
    """

    def __init__(
        self,
        unet: torch.nn.Module,
        schedule: NoiseSchedule,
        vae: torch.nn.Module | None = None,
        vae_scaling_factor: float | None = None,
        text_encoder: torch.nn.Module | None = None,
        tokenizer: Any | None = None,
        default_guidance_scale: float = 7.5,
    ) -> None:
        super().__init__()
        self.unet = unet.eval().requires_grad_(False)
        self.schedule = schedule
        self.vae = vae.eval().requires_grad_(False) if vae is not None else None
        self.latent = vae is not None
        if vae is not None:
            self.vae_scaling_factor = float(vae_scaling_factor or getattr(vae.config, "scaling_factor", 0.18215))
            self.vae_downsample = 2 ** (len(vae.config.block_out_channels) - 1)
        self.text_encoder = text_encoder.eval().requires_grad_(False) if text_encoder is not None else None
        self.tokenizer = tokenizer
        self.default_guidance_scale = default_guidance_scale

    # -- loading
    @classmethod
    def from_pretrained(
        cls,
        folder: str | Path,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
        timestep_spacing: str | None = None,
        default_guidance_scale: float = 7.5,
    ) -> DiffusersUNetPrior:
        """Load a diffusers pipeline folder: ``unet/`` and ``scheduler/`` required; ``vae/``,
        ``text_encoder/`` + ``tokenizer/`` used when present."""
        from diffusers import AutoencoderKL, UNet2DConditionModel

        root = Path(folder)
        for part in ("unet", "scheduler"):
            if not (root / part).is_dir():
                raise FileNotFoundError(f"{root}: no {part}/ folder; expected a diffusers pipeline folder")
        unet = UNet2DConditionModel.from_pretrained(root / "unet", torch_dtype=dtype).to(device)
        schedule = NoiseSchedule.from_config(
            json.loads((root / "scheduler" / "scheduler_config.json").read_text()), timestep_spacing
        )
        vae = None
        if (root / "vae").is_dir():
            vae = AutoencoderKL.from_pretrained(root / "vae", torch_dtype=dtype).to(device)
        text_encoder = tokenizer = None
        if (root / "text_encoder").is_dir() and (root / "tokenizer").is_dir():
            from transformers import CLIPTextModel, CLIPTokenizer

            text_encoder = CLIPTextModel.from_pretrained(root / "text_encoder", torch_dtype=dtype).to(device)
            tokenizer = CLIPTokenizer.from_pretrained(root / "tokenizer")
        return cls(unet, schedule, vae, None, text_encoder, tokenizer, default_guidance_scale)

    # -- shapes
    @property
    def sample_shape(self) -> tuple[int, ...]:
        size = self.unet.config.sample_size
        size = size if isinstance(size, int) else size[0]
        return (int(self.unet.config.in_channels), int(size), int(size))

    @property
    def image_size(self) -> int:
        side = self.sample_shape[-1]
        return side * self.vae_downsample if self.latent else side

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    # -- conditioning
    @torch.no_grad()
    def encode_prompt(self, prompts: list[str]) -> torch.Tensor:
        """(N, L, D) text embeddings (CLIP last hidden state)."""
        if self.text_encoder is None or self.tokenizer is None:
            raise ValueError("this prior has no text encoder; pass embeddings= instead of prompt=")
        tokens = self.tokenizer(prompts, padding="max_length", max_length=self.tokenizer.model_max_length,
                                truncation=True, return_tensors="pt")
        out = self.text_encoder(tokens.input_ids.to(self.device))
        return out[0].to(self.dtype)

    def _null_context(self) -> torch.Tensor:
        dim = int(self.unet.config.cross_attention_dim)
        return torch.zeros(1, 1, dim, device=self.device, dtype=self.dtype)

    def condition(
        self,
        prompt: str | None = None,
        negative_prompt: str = "",
        embeddings: torch.Tensor | None = None,
        negative_embeddings: torch.Tensor | None = None,
        batch: int = 1,
        **_: object,
    ) -> Condition:
        """Condition on a prompt (needs the text encoder) or on given (L, D) / (1, L, D) embeddings.

        Returns ``batch`` identical rows holding ``context`` and ``negative`` (B, L, D).
        """
        if embeddings is None:
            if prompt is not None:
                embeddings = self.encode_prompt([prompt])
                tag = "prompt:" + prompt
            else:
                embeddings = self._null_context()
                tag = "null"
        else:
            tag = _tensor_tag(embeddings)
        embeddings = embeddings.to(self.device, self.dtype)
        if embeddings.ndim == 2:
            embeddings = embeddings.unsqueeze(0)
        if negative_embeddings is None:
            if self.text_encoder is not None and self.tokenizer is not None:
                negative_embeddings = self.encode_prompt([negative_prompt])
            else:
                negative_embeddings = torch.zeros_like(embeddings)
            tag = (tag, "neg:" + negative_prompt)
        else:
            negative_embeddings = negative_embeddings.to(self.device, self.dtype)
            if negative_embeddings.ndim == 2:
                negative_embeddings = negative_embeddings.unsqueeze(0)
            tag = (tag, _tensor_tag(negative_embeddings))
        return Condition(
            tensors={"context": embeddings.expand(batch, -1, -1).clone(),
                     "negative": negative_embeddings.expand(batch, -1, -1).clone()},
            tags=(tag,) * batch,
        )

    def _model_eps(self, x_t: torch.Tensor, t: torch.Tensor, cond: Condition, uncond: torch.Tensor) -> torch.Tensor:
        mask = uncond.view(-1, 1, 1).to(self.device)
        context = torch.where(mask, cond.tensors["negative"], cond.tensors["context"])
        x = x_t.to(self.device, self.dtype)
        out = self.unet(x, t.to(self.device), encoder_hidden_states=context).sample
        return self.schedule.eps_from_model_output(out, x, t.cpu())

    # -- model space
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> model space, resized to the prior's image size, differentiable.

        Returned in the images' dtype (the network may run in half precision)."""
        size = self.image_size
        x = images.to(self.device, self.dtype)
        if x.shape[-1] != size or x.shape[-2] != size:
            x = F.interpolate(x, (size, size), mode="bilinear", align_corners=False, antialias=True)
        x = x * 2 - 1
        if self.vae is None:
            return x.to(images.dtype)
        return (self.vae.encode(x).latent_dist.mean * self.vae_scaling_factor).to(images.dtype)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        if self.vae is None:
            return ((x + 1) / 2).clamp(0, 1)
        images = self.vae.decode(x.to(self.device, self.dtype) / self.vae_scaling_factor).sample
        return ((images + 1) / 2).clamp(0, 1)
