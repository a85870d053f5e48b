"""MVDream's multi-view UNet, assembled from diffusers building blocks.

MVDream (Shi et al. 2023) is Stable Diffusion 2.1's UNet with two changes: every self-attention
layer attends across the F views of one sample (the views' tokens are concatenated before
self-attention and split after it), and a 16-value camera (flattened 4×4 camera-to-world matrix)
goes through a two-layer MLP whose output is added to the timestep embedding.

The published diffusers conversion (``ashawkey/mvdream-sd2.1-diffusers``, ``unet/config.json`` with
``"_class_name": "MultiViewUNetModel"``) keeps the original latent-diffusion parameter names
(``input_blocks.1.0.in_layers.0.weight``, ``middle_block.1.proj_in.weight``, ``camera_embed.0.weight``
...). This module builds the same network from diffusers parts (``ResnetBlock2D``, ``Attention``,
``FeedForward``, ``Downsample2D``, ``Upsample2D``, ``Timesteps``) and translates names both ways with
:func:`ldm_key_map`, so the published weights load unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch
from diffusers.models.attention import FeedForward
from diffusers.models.attention_processor import Attention
from diffusers.models.downsampling import Downsample2D
from diffusers.models.embeddings import Timesteps
from diffusers.models.resnet import ResnetBlock2D
from diffusers.models.upsampling import Upsample2D
from torch import nn

# The latent-diffusion UNet hard-codes 32 groups in every GroupNorm, eps 1e-5 in res-blocks and
# 1e-6 in the spatial transformers' input norm.
NORM_GROUPS = 32
RES_EPS = 1e-5
TRANSFORMER_NORM_EPS = 1e-6

# ResnetBlock2D names -> latent-diffusion ResBlock names.
_RESNET_NAMES = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}


@dataclass(frozen=True)
class MultiViewUNetConfig:
    """The fields of ``unet/config.json`` in the MVDream diffusers layout (latent-diffusion names).

    ``num_frames`` is not in the file: it is the number of views that attend to each other (4).
    """

    image_size: int = 32
    in_channels: int = 4
    out_channels: int = 4
    model_channels: int = 320
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (4, 2, 1)
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_head_channels: int = 64
    num_heads: int = -1
    transformer_depth: int = 1
    context_dim: int = 1024
    camera_dim: int | None = 16
    num_frames: int = 4

    # Keys of the published config that do not change the network.
    IGNORED = frozenset({"_class_name", "_diffusers_version", "_name_or_path", "use_checkpoint", "legacy",
                         "use_fp16", "use_spatial_transformer", "use_linear_in_transformer", "dropout",
                         "dims", "conv_resample", "num_heads_upsample", "use_scale_shift_norm",
                         "resblock_updown", "use_new_attention_order", "ip_weight"})

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], where: str = "unet/config.json") -> MultiViewUNetConfig:
        """Parse a published config, refusing variants this network does not implement."""
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key in known:
                values[key] = tuple(value) if isinstance(value, list) else value
            elif key == "ip_dim":
                if value:
                    raise ValueError(f"{where}: ip_dim={value} is the ImageDream variant; recon supports MVDream "
                                     "(text-conditioned, ip_dim 0) only")
            elif key in cls.IGNORED:
                continue
            else:
                raise ValueError(f"{where}: unknown MVDream UNet setting {key!r}")
        for key, expected in (("use_scale_shift_norm", False), ("resblock_updown", False),
                              ("use_linear_in_transformer", True)):
            if key in raw and bool(raw[key]) != expected:
                raise ValueError(f"{where}: {key}={raw[key]!r} is not the MVDream architecture")
        cfg = cls(**values)
        if cfg.num_head_channels == -1 and cfg.num_heads == -1:
            raise ValueError(f"{where}: set num_head_channels or num_heads")
        return cfg

    def heads(self, channels: int) -> tuple[int, int]:
        """(number of heads, head dim) of an attention layer over ``channels``."""
        if self.num_head_channels != -1:
            return channels // self.num_head_channels, self.num_head_channels
        return self.num_heads, channels // self.num_heads


class MultiViewTransformerBlock(nn.Module):
    """Self-attention across the F views of each sample, then per-view cross-attention and GEGLU MLP."""

    def __init__(self, dim: int, heads: int, head_dim: int, context_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads=heads, dim_head=head_dim, bias=False)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, cross_attention_dim=context_dim, heads=heads, dim_head=head_dim, bias=False)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim, activation_fn="geglu")

    def forward(self, x: torch.Tensor, context: torch.Tensor, num_frames: int) -> torch.Tensor:
        """x (B·F, L, C), context (B·F, S, D) -> (B·F, L, C)."""
        n, length, dim = x.shape
        joint = x.reshape(n // num_frames, num_frames * length, dim)  # views of a sample side by side
        joint = self.attn1(self.norm1(joint)) + joint
        x = joint.reshape(n, length, dim)
        x = self.attn2(self.norm2(x), encoder_hidden_states=context) + x
        return self.ff(self.norm3(x)) + x


class MultiViewTransformer(nn.Module):
    """GroupNorm -> linear in -> multi-view transformer blocks -> linear out, plus the residual."""

    def __init__(self, channels: int, heads: int, head_dim: int, depth: int, context_dim: int) -> None:
        super().__init__()
        inner = heads * head_dim
        self.norm = nn.GroupNorm(NORM_GROUPS, channels, eps=TRANSFORMER_NORM_EPS)
        self.proj_in = nn.Linear(channels, inner)
        self.transformer_blocks = nn.ModuleList(
            MultiViewTransformerBlock(inner, heads, head_dim, context_dim) for _ in range(depth)
        )
        self.proj_out = nn.Linear(inner, channels)

    def forward(self, x: torch.Tensor, context: torch.Tensor, num_frames: int) -> torch.Tensor:
        n, c, h, w = x.shape
        tokens = self.proj_in(self.norm(x).permute(0, 2, 3, 1).reshape(n, h * w, c))
        for block in self.transformer_blocks:
            tokens = block(tokens, context, num_frames)
        tokens = self.proj_out(tokens)
        return tokens.reshape(n, h, w, c).permute(0, 3, 1, 2) + x


class _Stage(nn.ModuleList):
    """One entry of input_blocks / middle_block / output_blocks: layers applied in order."""

    def run(self, h: torch.Tensor, emb: torch.Tensor, context: torch.Tensor, num_frames: int) -> torch.Tensor:
        for layer in self:
            if isinstance(layer, ResnetBlock2D):
                h = layer(h, emb)
            elif isinstance(layer, MultiViewTransformer):
                h = layer(h, context, num_frames)
            else:
                h = layer(h)
        return h


def _resnet(cin: int, cout: int, temb: int) -> ResnetBlock2D:
    return ResnetBlock2D(in_channels=cin, out_channels=cout, temb_channels=temb, groups=NORM_GROUPS, eps=RES_EPS)


class MultiViewUNet(nn.Module):
    """ε̂(x, t, text, camera) for batches of F-view samples: x (B·F, C, H, W), views of a sample adjacent."""

    def __init__(self, config: MultiViewUNetConfig) -> None:
        super().__init__()
        self.config = config
        mc = config.model_channels
        temb = 4 * mc
        self.time_proj = Timesteps(mc, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embed = nn.Sequential(nn.Linear(mc, temb), nn.SiLU(), nn.Linear(temb, temb))
        self.camera_embed = (
            nn.Sequential(nn.Linear(config.camera_dim, temb), nn.SiLU(), nn.Linear(temb, temb))
            if config.camera_dim else None
        )

        def attention(ch: int) -> MultiViewTransformer:
            heads, head_dim = config.heads(ch)
            return MultiViewTransformer(ch, heads, head_dim, config.transformer_depth, config.context_dim)

        self.input_blocks = nn.ModuleList([_Stage([nn.Conv2d(config.in_channels, mc, 3, padding=1)])])
        skips = [mc]
        ch, ds = mc, 1
        for level, mult in enumerate(config.channel_mult):
            for _ in range(config.num_res_blocks):
                layers: list[nn.Module] = [_resnet(ch, mult * mc, temb)]
                ch = mult * mc
                if ds in config.attention_resolutions:
                    layers.append(attention(ch))
                self.input_blocks.append(_Stage(layers))
                skips.append(ch)
            if level != len(config.channel_mult) - 1:
                self.input_blocks.append(_Stage([Downsample2D(ch, use_conv=True, padding=1, name="op")]))
                skips.append(ch)
                ds *= 2
        self.middle_block = _Stage([_resnet(ch, ch, temb), attention(ch), _resnet(ch, ch, temb)])
        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(config.channel_mult))):
            for i in range(config.num_res_blocks + 1):
                layers = [_resnet(ch + skips.pop(), mc * mult, temb)]
                ch = mc * mult
                if ds in config.attention_resolutions:
                    layers.append(attention(ch))
                if level and i == config.num_res_blocks:
                    layers.append(Upsample2D(ch, use_conv=True))
                    ds //= 2
                self.output_blocks.append(_Stage(layers))
        self.out = nn.Sequential(nn.GroupNorm(NORM_GROUPS, ch), nn.SiLU(), nn.Conv2d(mc, config.out_channels, 3, padding=1))

    @property
    def dtype(self) -> torch.dtype:
        return self.out[2].weight.dtype

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor,
                camera: torch.Tensor | None = None, num_frames: int | None = None) -> torch.Tensor:
        """x (N, C, H, W), timesteps (N,), context (N, S, D), camera (N, camera_dim) -> ε (N, C_out, H, W).

        N must be a multiple of ``num_frames``; rows [k·F, (k+1)·F) are the F views of sample k.
        """
        frames = num_frames or self.config.num_frames
        if x.shape[0] % frames:
            raise ValueError(f"a multi-view batch needs a multiple of {frames} rows, got {x.shape[0]}")
        emb = self.time_embed(self.time_proj(timesteps).to(x.dtype))
        if self.camera_embed is not None:
            if camera is None:
                raise ValueError("this MVDream UNet is camera-conditioned: pass camera (N, 16)")
            emb = emb + self.camera_embed(camera.to(x.dtype))
        context = context.to(x.dtype)
        skips = []
        h = x
        for stage in self.input_blocks:
            h = stage.run(h, emb, context, frames)
            skips.append(h)
        h = self.middle_block.run(h, emb, context, frames)
        for stage in self.output_blocks:
            h = stage.run(torch.cat([h, skips.pop()], dim=1), emb, context, frames)
        return self.out(h)


def ldm_key_map(model: MultiViewUNet) -> dict[str, str]:
    """{this module's state-dict name: published latent-diffusion name} for every parameter."""
    renames: dict[str, str] = {}
    for name, module in model.named_modules():
        if isinstance(module, ResnetBlock2D):
            for ours, theirs in _RESNET_NAMES.items():
                renames[f"{name}.{ours}."] = f"{name}.{theirs}."
        elif isinstance(module, Downsample2D):
            renames[f"{name}.conv."] = f"{name}.op."
    out = {}
    for key in model.state_dict():
        prefix, leaf = key.rsplit(".", 1)
        out[key] = renames.get(prefix + ".", prefix + ".") + leaf
    return out


def expected_ldm_shapes(config: MultiViewUNetConfig) -> dict[str, tuple[int, ...]]:
    """Published parameter names and shapes for ``config`` (built on the meta device; no memory)."""
    with torch.device("meta"):
        model = MultiViewUNet(config)
    names = ldm_key_map(model)
    return {names[k]: tuple(v.shape) for k, v in model.state_dict().items()}


def load_ldm_state_dict(model: MultiViewUNet, state: Mapping[str, torch.Tensor], where: str) -> None:
    """Load published (latent-diffusion-named) weights; any missing, extra or misshapen tensor is an error."""
    names = ldm_key_map(model)
    own = model.state_dict()
    missing = [theirs for theirs in names.values() if theirs not in state]
    extra = sorted(set(state) - set(names.values()))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing tensors (first: {missing[0]})")
        if extra:
            parts.append(f"{len(extra)} unexpected tensors (first: {extra[0]})")
        raise ValueError(f"{where}: {'; '.join(parts)}; this is not an MVDream UNet with the config beside it")
    converted = {}
    for ours, theirs in names.items():
        value = state[theirs]
        if tuple(value.shape) != tuple(own[ours].shape):
            raise ValueError(f"{where}: tensor {theirs} has shape {tuple(value.shape)}, the config needs "
                             f"{tuple(own[ours].shape)}")
        converted[ours] = value
    model.load_state_dict(converted, strict=True, assign=True)


def ldm_state_dict(model: MultiViewUNet) -> dict[str, torch.Tensor]:
    """This model's weights under the published names (what ``save`` writes)."""
    names = ldm_key_map(model)
    return {names[k]: v.detach().contiguous() for k, v in model.state_dict().items()}
