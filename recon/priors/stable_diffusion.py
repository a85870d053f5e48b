"""Stable Diffusion (1.5, 2.1-base, any diffusers SD folder) as a text-conditioned latent prior.

Builds on :class:`~recon.priors.diffusers_unet.DiffusersUNetPrior` (UNet call, VAE encode/decode,
prompt encoding) and adds what text-to-3D needs:

- a negative prompt for the unconditional branch (CFG ε = ε_u + s(ε_c − ε_u); threestudio's SD
  guidance uses ε_c + s(ε_c − ε_u), i.e. recon's s equals threestudio's s + 1);
- view-dependent prompts: with ``camera=`` each row gets "<prompt>, front/side/back/overhead view"
  chosen from its camera (:mod:`recon.priors.view_prompts`);
- optional Perp-Neg: the positive embedding is interpolated between neighbouring views and the
  other views' directions are removed from the guidance, one batched network call for all rows;
- renders resized to the model's resolution (512² for SD 1.5 / 2.1-base) and VAE-encoded with
  gradients.
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
from recon.priors.speed import SpeedConfig, as_network_input, speed_of
from recon.priors.verify_folder import verify_folder
from recon.priors.view_prompts import (
    DIRECTIONS,
    PerpNegConfig,
    ViewPromptConfig,
    perp_neg_plan,
    perpendicular_component,
    view_direction,
)


class StableDiffusionPrior(DiffusersUNetPrior):
    """Stable Diffusion with view-dependent prompts and optional Perp-Neg.

    Args:
        unet, schedule, vae, text_encoder, tokenizer: the pipeline parts (already on device/dtype).
        speed: the speed settings the parts were prepared with (input memory format).
        view_prompts: view-suffix rules (threestudio's thresholds by default).
        perp_neg: Perp-Neg settings; off by default.
        default_guidance_scale: CFG s when a caller passes none (7.5).
    """

    def __init__(
        self,
        unet: torch.nn.Module,
        schedule: NoiseSchedule,
        vae: torch.nn.Module,
        text_encoder: torch.nn.Module | None,
        tokenizer: Any | None,
        speed: SpeedConfig | None = None,
        view_prompts: ViewPromptConfig | None = None,
        perp_neg: PerpNegConfig | None = None,
        default_guidance_scale: float = 7.5,
    ) -> None:
        super().__init__(unet, schedule, vae, None, text_encoder, tokenizer, default_guidance_scale)
        self.speed = speed or speed_of(self.unet)
        self.view_prompts = view_prompts or ViewPromptConfig()
        self.perp_neg = perp_neg or PerpNegConfig()

    @classmethod
    def from_pretrained(  # type: ignore[override]
        cls,
        folder: str | Path,
        speed: SpeedConfig | None = None,
        view_prompts: ViewPromptConfig | None = None,
        perp_neg: PerpNegConfig | None = None,
        timestep_spacing: str | None = None,
        default_guidance_scale: float = 7.5,
    ) -> StableDiffusionPrior:
        """Load a diffusers Stable Diffusion folder (``unet/ vae/ text_encoder/ tokenizer/ scheduler/``),
        verified first (safetensors only, shapes checked)."""
        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import CLIPTextModel

        root = Path(folder)
        verify_folder(root, "stable-diffusion")
        speed = speed or SpeedConfig()
        unet = load_diffusers_model(UNet2DConditionModel, root / "unet", speed, denoiser=True)
        vae = load_diffusers_model(AutoencoderKL, root / "vae", speed)
        text_encoder = load_transformers_model(CLIPTextModel, root / "text_encoder", speed)
        tokenizer = load_tokenizer(root / "tokenizer")
        return cls(unet, load_schedule(root, timestep_spacing), vae, text_encoder, tokenizer, speed,
                   view_prompts, perp_neg, default_guidance_scale)

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
        """Rows of text conditioning.

        Args:
            prompt, negative_prompt: text; the negative prompt conditions the unconditional branch.
            camera: None, or (B, 3) (elevation°, azimuth°, distance) per row: each row then gets its
                view suffix (and Perp-Neg blending when enabled). Cameras go to ``Condition.cameras``.
            batch: number of identical rows when ``camera`` is None (default 1).
            embeddings, negative_embeddings: precomputed (L, D) / (1, L, D) text embeddings instead of
                prompts (no view suffixes then).
        Returns:
            tensors ``context``, ``negative`` (B, L, D); with Perp-Neg also ``perp_neg`` (B, 2, L, D)
            and ``perp_neg_weights`` (B, 2).
        """
        if camera is None or embeddings is not None or prompt is None or not self.view_prompts.enabled:
            rows = batch or (1 if camera is None else as_cameras(camera).shape[0])
            cond = super().condition(prompt=prompt, negative_prompt=negative_prompt, embeddings=embeddings,
                                     negative_embeddings=negative_embeddings, batch=rows)
            if camera is not None:
                cond.cameras = as_cameras(camera)
            return cond
        with torch.no_grad():
            # One text-encoder pass for the 4 view prompts and the negative prompt.
            emb = self.encode_prompt([*self.view_prompts.prompts(prompt), negative_prompt])
        return self._view_rows(emb[:4], emb[4:5], as_cameras(camera), prompt, negative_prompt)

    def _view_rows(self, views: torch.Tensor, negative: torch.Tensor, cams: torch.Tensor, prompt: str,
                   negative_prompt: str) -> Condition:
        """Rows for cameras ``cams`` from the encoded view prompts (4, L, D) and negative (1, L, D)."""
        elevation, azimuth = cams[:, 0], cams[:, 1]
        rows = cams.shape[0]
        neg_rows = negative.expand(rows, -1, -1).clone()

        def rebuild(new: torch.Tensor) -> Condition:  # trajectory caches: a camera bin's centre
            return self._view_rows(views, negative, as_cameras(new), prompt, negative_prompt)

        if not self.perp_neg.enabled:
            direction = view_direction(elevation, azimuth, self.view_prompts)
            tags = tuple(("sd", prompt, DIRECTIONS[d], negative_prompt) for d in direction.tolist())
            return Condition(tensors={"context": views[direction.to(views.device)], "negative": neg_rows},
                             tags=tags, cameras=cams, rebuild=rebuild)
        plan = perp_neg_plan(elevation, azimuth, self.view_prompts, self.perp_neg)
        context = torch.einsum("bv,vld->bld", plan.mix.to(views.device, views.dtype), views)
        table = torch.cat([views, negative])  # index -1 -> the negative prompt (weight 0 there)
        perp = table[plan.negatives.to(views.device)]
        tags = tuple(("sd-perp-neg", prompt, negative_prompt) for _ in range(rows))
        return Condition(
            tensors={"context": context, "negative": neg_rows, "perp_neg": perp,
                     "perp_neg_weights": plan.weights.to(views.device)},
            tags=tags, cameras=cams, rebuild=rebuild,
        )

    # -- noise prediction
    def _unet_eps(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, self.dtype)
        out = self.unet(as_network_input(x, self.speed), t.to(self.device), encoder_hidden_states=context).sample
        return self.schedule.eps_from_model_output(out, x, t.cpu())

    def _model_eps(self, x_t: torch.Tensor, t: torch.Tensor, cond: Condition, uncond: torch.Tensor) -> torch.Tensor:
        mask = uncond.view(-1, 1, 1).to(self.device)
        context = torch.where(mask, cond.tensors["negative"], cond.tensors["context"])
        return self._unet_eps(x_t, t, context)

    def predict_noise(self, x_t: torch.Tensor, t: int | torch.Tensor, cond: Condition,
                      guidance_scale: float | torch.Tensor | None = None) -> torch.Tensor:
        """CFG ε_u + s(ε_c − ε_u); with Perp-Neg rows, ε_u + s(e_pos + Σ_i w_i ⊥(e_i, e_pos)),
        e_pos = ε_pos − ε_u, e_i = ε_neg_i − ε_u (threestudio's formula). One network call either way.

        The Perp-Neg formula holds at every s, s = 1 included: there ε = ε_pos + Σ_i w_i ⊥(e_i, e_pos),
        the correction is kept (as the DSD authors' guidance computes its t₊ term, ``predict_noise(...,
        guidance_scale=1.0)`` with ``use_perp_neg``). Only rows whose negatives all weigh 0 (overhead views)
        reduce to the blended conditional branch at s = 1, one network row."""
        if "perp_neg" not in cond.tensors:
            return super().predict_noise(x_t, t, cond, guidance_scale)
        batch = x_t.shape[0]
        if len(cond) != batch:
            raise ValueError(f"condition has {len(cond)} rows for a batch of {batch}")
        t_vec = torch.as_tensor(t, dtype=torch.long, device=x_t.device)
        t_vec = t_vec.expand(batch) if t_vec.ndim == 0 else t_vec
        s = self.default_guidance_scale if guidance_scale is None else guidance_scale
        s_vec = torch.as_tensor(s, dtype=torch.float64).to(x_t.device)
        s_vec = s_vec.expand(batch) if s_vec.ndim == 0 else s_vec
        weights = cond.tensors["perp_neg_weights"].cpu()
        # Rows that need ε_u: CFG (s != 1) or a Perp-Neg correction (a negative with weight != 0), whatever s is.
        guided = ((s_vec.cpu() != 1) | (weights != 0).any(dim=1)).nonzero().flatten()
        # Negative rows whose weight is 0 (overhead views) need no network evaluation.
        neg_rows = [(int(i), j) for i in guided for j in range(weights.shape[1]) if weights[i, j] != 0]
        ctx = cond.tensors["context"]
        x_parts, t_parts, c_parts = [x_t], [t_vec], [ctx]
        if guided.numel():
            x_parts.append(x_t[guided.to(x_t.device)])
            t_parts.append(t_vec[guided.to(x_t.device)])
            c_parts.append(cond.tensors["negative"][guided.to(ctx.device)])
        if neg_rows:
            idx = torch.tensor([i for i, _ in neg_rows])
            x_parts.append(x_t[idx.to(x_t.device)])
            t_parts.append(t_vec[idx.to(x_t.device)])
            c_parts.append(torch.stack([cond.tensors["perp_neg"][i, j] for i, j in neg_rows]))
        x_all, t_all = torch.cat(x_parts), torch.cat(t_parts)
        self.counter.add(x_all.shape[0])
        eps_all = self._unet_eps(x_all, t_all, torch.cat(c_parts)).to(x_t.dtype)
        eps = eps_all[:batch].clone()
        if not guided.numel():
            return eps
        g = guided.numel()
        eps_u = eps_all[batch: batch + g]
        e_pos = eps[guided] - eps_u
        accum = torch.zeros_like(e_pos)
        slot = {int(i): k for k, i in enumerate(guided.tolist())}
        for n, (i, j) in enumerate(neg_rows):
            k = slot[i]
            e_neg = eps_all[batch + g + n: batch + g + n + 1] - eps_u[k: k + 1]
            accum[k: k + 1] += float(weights[i, j]) * perpendicular_component(e_neg, e_pos[k: k + 1])
        scale = s_vec[guided.to(s_vec.device)].to(x_t.dtype).view(-1, *([1] * (x_t.ndim - 1)))
        eps[guided] = eps_u + scale * (e_pos + accum)
        return eps

