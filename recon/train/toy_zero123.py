"""Train a tiny Zero-1-to-3 on the toy world and write it in the published diffusers layout.

The model is Zero-1-to-3's architecture built from the standard classes at toy sizes:

- ``AutoencoderKL`` (factor 2: 32² RGB <-> 4 × 16² latents), trained first on the renders
  (MSE + a small KL), then frozen; its ``scaling_factor`` is set to 1 / std of the latents, as Stable
  Diffusion's 0.18215 was;
- ``UNet2DConditionModel`` with 8 input channels (noisy target latent ⊕ the input view's latent,
  ``latent_dist.mode()`` NOT scaled — as Zero-1-to-3 was trained);
- ``CLIPVisionModelWithProjection`` (tiny ViT; frozen at its random initialisation by default — see
  ``docs/toy-zero123.md`` for the comparison with training it);
- the pose projection ``cc_projection`` = Linear(CLIP dim + 4 -> context dim), initialised as
  Zero-1-to-3 does (identity on the CLIP part, zero bias), fed [Δpolar, sin Δaz, cos Δaz, Δradius]
  (:func:`recon.priors.zero123.zero123_pose`).

Training pairs are (input view, relative pose) -> target view of one library member, the input being
the front view (where all members of a family look the same, so one input has several correct
targets) or, with probability ``other_input_prob``, another grid view. The loss is the standard
ε-prediction DDPM loss with the scaled-linear β schedule 0.00085 -> 0.012 over 1000 steps; with
probability ``uncond_prob`` a row is unconditional exactly as :class:`recon.priors.zero123.Zero123Prior`
evaluates the unconditional branch: the projected context and the concatenated latent are zeros.

Every random draw of step i comes from its own generator seeded by (seed, i) (``recon.seeding``), so a
run is deterministic for a seed and a resumed run is bit-identical to an uninterrupted one (on the
CPU, same thread count). The learning rate is constant after warm-up, so extending ``steps`` later
continues exactly the run a longer ``steps`` would have made. The weights written are the EMA weights.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from recon.diffusion.schedule import NoiseSchedule
from recon.priors.components import ClipImagePreprocess
from recon.priors.zero123 import zero123_pose
from recon.seeding import generator, stream_seed
from recon.train import state as ckpt
from recon.train.toy_data import ToyViews, ViewGrid, render_toy_views

Progress = Callable[[str, int, int], None]
Log = Callable[[str], None]

# Zero-1-to-3's (= Stable Diffusion's) scheduler, as the published folders write it.
SCHEDULER_CONFIG: dict[str, Any] = {
    "_class_name": "DDIMScheduler", "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "clip_sample": False, "num_train_timesteps": 1000, "prediction_type": "epsilon", "set_alpha_to_one": False,
    "steps_offset": 1, "timestep_spacing": "leading", "trained_betas": None,
}
# Fields that do not change the weights a run produces at a given step.
NON_IDENTITY_FIELDS = ("steps", "checkpoint_every", "log_every")


class TrainError(RuntimeError):
    """A training run that cannot start or resume; the message says why and what to do."""


@dataclass
class ToyZero123Config:
    """Everything that defines a toy Zero-1-to-3 training run (see the module docstring).

    steps: UNet optimisation steps; vae_steps: autoencoder steps (run first).
    families: library families to train on (None = all).
    unet_attention: per UNet level, whether it has (self + cross) attention blocks.
    """

    seed: int = 0
    steps: int = 4000
    batch_size: int = 32
    lr: float = 5e-4
    warmup: int = 200
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    uncond_prob: float = 0.1
    other_input_prob: float = 0.0
    train_clip: bool = False
    # data
    image_size: int = 32
    render_size: int = 128
    elevations: tuple[float, ...] = (-10.0, 0.0, 15.0, 30.0, 45.0)
    azimuth_step: float = 10.0
    families: tuple[str, ...] | None = None
    # autoencoder
    vae_steps: int = 800
    vae_batch_size: int = 16
    vae_lr: float = 2e-3
    vae_kl_weight: float = 1e-6
    vae_channels: tuple[int, ...] = (16, 32)
    vae_mid_attention: bool = False
    # denoiser and encoders
    unet_channels: tuple[int, ...] = (32, 64, 64)
    unet_attention: tuple[bool, ...] = (False, True, True)
    unet_heads: int = 8
    context_dim: int = 64
    clip_hidden: int = 64
    clip_layers: int = 2
    clip_heads: int = 4
    clip_patch: int = 8
    # bookkeeping
    checkpoint_every: int = 250
    eval_every: int = 250
    eval_samples: int = 256
    log_every: int = 50

    def identity(self) -> dict[str, Any]:
        """The fields that determine the weights (JSON-normalised), for checking a resume."""
        data = json.loads(json.dumps(asdict(self)))
        return {k: v for k, v in data.items() if k not in NON_IDENTITY_FIELDS}

    @property
    def latent_size(self) -> int:
        return self.image_size // 2 ** (len(self.vae_channels) - 1)

    def grid(self) -> ViewGrid:
        return ViewGrid(tuple(self.elevations), self.azimuth_step)


# ------------------------------------------------------------------------------------------ models
def _seeded(seed: int, purpose: str, build: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(stream_seed(seed, 0, purpose))
        return build()


def build_vae(c: ToyZero123Config):
    from diffusers import AutoencoderKL

    n = len(c.vae_channels)
    return _seeded(c.seed, "init-vae", lambda: AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=tuple(c.vae_channels),
        layers_per_block=1, down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
        norm_num_groups=8, sample_size=c.image_size, scaling_factor=1.0, mid_block_add_attention=c.vae_mid_attention))


def build_unet(c: ToyZero123Config):
    from diffusers import UNet2DConditionModel

    if len(c.unet_attention) != len(c.unet_channels):
        raise ValueError("unet_attention needs one flag per UNet level (unet_channels)")
    down = tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in c.unet_attention)
    up = tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(c.unet_attention))
    return _seeded(c.seed, "init-unet", lambda: UNet2DConditionModel(
        sample_size=c.latent_size, in_channels=8, out_channels=4, layers_per_block=1,
        block_out_channels=tuple(c.unet_channels), down_block_types=down, up_block_types=up,
        cross_attention_dim=c.context_dim, attention_head_dim=c.unet_heads, norm_num_groups=8))


def build_image_encoder(c: ToyZero123Config):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    config = CLIPVisionConfig(hidden_size=c.clip_hidden, intermediate_size=2 * c.clip_hidden,
                              num_hidden_layers=c.clip_layers, num_attention_heads=c.clip_heads,
                              image_size=c.image_size, patch_size=c.clip_patch, projection_dim=c.context_dim)
    return _seeded(c.seed, "init-clip", lambda: CLIPVisionModelWithProjection(config))


def build_projection(c: ToyZero123Config) -> torch.nn.Linear:
    """Zero-1-to-3's cc_projection and its initialisation: identity on the CLIP part, zero bias."""

    def make() -> torch.nn.Linear:
        layer = torch.nn.Linear(c.context_dim + 4, c.context_dim)
        with torch.no_grad():
            layer.weight[:, : c.context_dim].copy_(torch.eye(c.context_dim))
            layer.bias.zero_()
        return layer

    return _seeded(c.seed, "init-projection", make)  # type: ignore[return-value]


def clip_preprocess(c: ToyZero123Config) -> ClipImagePreprocess:
    """CLIP preprocessing at the toy image size; the exported feature_extractor/ describes exactly this."""
    return ClipImagePreprocess(size=c.image_size, crop=c.image_size)


@dataclass
class Models:
    vae: Any
    unet: Any
    image_encoder: Any
    projection: torch.nn.Linear
    ema: dict[str, torch.nn.Module] = field(default_factory=dict)

    @classmethod
    def build(cls, c: ToyZero123Config) -> Models:
        import copy

        models = cls(build_vae(c), build_unet(c), build_image_encoder(c), build_projection(c))
        for name in models.trained_names(c):
            models.ema[name] = copy.deepcopy(getattr(models, name)).requires_grad_(False)
        return models

    @staticmethod
    def trained_names(c: ToyZero123Config) -> list[str]:
        return ["unet", "projection", *(["image_encoder"] if c.train_clip else [])]

    def trained_parameters(self, c: ToyZero123Config) -> list[torch.nn.Parameter]:
        return [p for name in self.trained_names(c) for p in getattr(self, name).parameters()]


def _named(models: Models) -> dict[str, torch.nn.Module]:
    named = {"vae": models.vae, "unet": models.unet, "clip": models.image_encoder, "proj": models.projection}
    short = {"unet": "unet", "projection": "proj", "image_encoder": "clip"}
    named.update({f"ema.{short[k]}": v for k, v in models.ema.items()})
    return named


# -------------------------------------------------------------------------------------------- data
@dataclass
class Encoded:
    """The renders through the frozen encoders: latent means (M, V, 4, h, w) (unscaled; the input
    view's concat latent, and × scaling_factor the diffusion target), CLIP embeddings (M, V, D) when
    the image encoder is frozen."""

    latents: torch.Tensor
    scaling_factor: float
    clip: torch.Tensor | None


@torch.no_grad()
def encode_views(models: Models, views: ToyViews, c: ToyZero123Config, scaling_factor: float,
                 chunk: int = 64) -> Encoded:
    m, v = views.images.shape[:2]
    flat = views.images.flatten(0, 1)
    latents, embeds = [], []
    pre = clip_preprocess(c)
    for i in range(0, flat.shape[0], chunk):
        x = flat[i: i + chunk]
        latents.append(models.vae.encode(x * 2 - 1).latent_dist.mode())
        if not c.train_clip:
            embeds.append(models.image_encoder(pixel_values=pre(x)).image_embeds)
    lat = torch.cat(latents).reshape(m, v, *latents[0].shape[1:])
    emb = torch.cat(embeds).reshape(m, v, -1) if embeds else None
    return Encoded(lat, scaling_factor, emb)


# ---------------------------------------------------------------------------------------- VAE stage
def vae_step(models: Models, views: ToyViews, c: ToyZero123Config, step: int) -> torch.Tensor:
    g = generator(c.seed, step, "toy-zero123-vae")
    flat = views.images.flatten(0, 1)
    idx = torch.randint(flat.shape[0], (c.vae_batch_size,), generator=g)
    x = flat[idx] * 2 - 1
    posterior = models.vae.encode(x).latent_dist
    z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=g)
    recon = models.vae.decode(z).sample
    return F.mse_loss(recon, x) + c.vae_kl_weight * posterior.kl().mean()


@torch.no_grad()
def vae_report(models: Models, views: ToyViews, chunk: int = 64) -> dict[str, float]:
    """Reconstruction of every render through the posterior mean: PSNR (mean over images, worst
    image), RMSE in [0, 1] units, and the latents' std (-> scaling factor 1/std)."""
    flat = views.images.flatten(0, 1)
    mse, lat = [], []
    for i in range(0, flat.shape[0], chunk):
        x = flat[i: i + chunk] * 2 - 1
        mean = models.vae.encode(x).latent_dist.mode()
        rec = models.vae.decode(mean).sample.clamp(-1, 1)
        mse.append((((rec - x) / 2) ** 2).flatten(1).mean(1))
        lat.append(mean)
    per = torch.cat(mse)
    std = float(torch.cat(lat).std())
    return {"psnr_mean_db": float((-10 * torch.log10(per)).mean()), "psnr_worst_db": float(-10 * torch.log10(per.max())),
            "rmse": float(per.mean().sqrt()), "latent_std": std, "scaling_factor": 1.0 / std}


# --------------------------------------------------------------------------------------- UNet stage
@dataclass
class Batch:
    x_t: torch.Tensor
    t: torch.Tensor
    noise: torch.Tensor
    concat: torch.Tensor
    pose: torch.Tensor
    clip_in: torch.Tensor  # (B, D) embeddings, or (B, 3, S, S) pixel values when CLIP is trained
    drop: torch.Tensor


def make_batch(views: ToyViews, enc: Encoded, schedule: NoiseSchedule, c: ToyZero123Config, g: torch.Generator,
               n: int, uncond_prob: float | None = None) -> Batch:
    """One batch from generator ``g``: member, target view, input view, t, noise, dropout (always drawn in
    this order, whatever the probabilities)."""
    m_count, v_count = enc.latents.shape[:2]
    member = torch.randint(m_count, (n,), generator=g)
    target = torch.randint(v_count, (n,), generator=g)
    other = torch.rand(n, generator=g, dtype=torch.float64) < c.other_input_prob
    source = torch.where(other, torch.randint(v_count, (n,), generator=g), torch.full((n,), views.front))
    t = torch.randint(0, schedule.num_train_timesteps, (n,), generator=g)
    noise = torch.randn((n, *enc.latents.shape[2:]), generator=g)
    drop = torch.rand(n, generator=g, dtype=torch.float64) < (c.uncond_prob if uncond_prob is None else uncond_prob)
    x0 = enc.latents[member, target] * enc.scaling_factor
    pose = zero123_pose(views.cameras[target], views.cameras[source]).to(torch.float32)
    if c.train_clip:
        clip_in = clip_preprocess(c)(views.images[member, source])
    else:
        assert enc.clip is not None
        clip_in = enc.clip[member, source]
    return Batch(schedule.add_noise(x0, noise, t), t, noise, enc.latents[member, source], pose, clip_in, drop)


def predict(unet, projection, image_encoder, batch: Batch, train_clip: bool) -> torch.Tensor:
    """The network's ε for a batch, conditioned exactly as ``Zero123Prior._model_eps`` conditions it."""
    embedding = image_encoder(pixel_values=batch.clip_in).image_embeds if train_clip else batch.clip_in
    context = projection(torch.cat([embedding, batch.pose], dim=-1)).unsqueeze(1)
    context = torch.where(batch.drop.view(-1, 1, 1), torch.zeros_like(context), context)
    latent = torch.where(batch.drop.view(-1, 1, 1, 1), torch.zeros_like(batch.concat), batch.concat)
    return unet(torch.cat([batch.x_t, latent], dim=1), batch.t, encoder_hidden_states=context).sample


def unet_step(models: Models, views: ToyViews, enc: Encoded, schedule: NoiseSchedule, c: ToyZero123Config,
              step: int) -> torch.Tensor:
    batch = make_batch(views, enc, schedule, c, generator(c.seed, step, "toy-zero123-unet"), c.batch_size)
    pred = predict(models.unet, models.projection, models.image_encoder, batch, c.train_clip)
    return F.mse_loss(pred, batch.noise)


@torch.no_grad()
def eval_loss(models: Models, views: ToyViews, enc: Encoded, schedule: NoiseSchedule, c: ToyZero123Config,
              chunk: int = 64) -> float:
    """The EMA model's conditional ε-MSE on a fixed batch (same rows at every evaluation)."""
    g = generator(c.seed, 0, "toy-zero123-eval")
    batch = make_batch(views, enc, schedule, c, g, c.eval_samples, uncond_prob=0.0)
    total = 0.0
    ema = models.ema
    for i in range(0, c.eval_samples, chunk):
        part = Batch(*(getattr(batch, f)[i: i + chunk] for f in Batch.__dataclass_fields__))
        pred = predict(ema["unet"], ema["projection"], ema.get("image_encoder", models.image_encoder), part,
                       c.train_clip)
        total += float(F.mse_loss(pred, part.noise, reduction="sum"))
    return total / batch.noise.numel()


@torch.no_grad()
def ema_update(models: Models, c: ToyZero123Config, step: int) -> None:
    decay = min(c.ema_decay, (1 + step) / (10 + step))
    for name, ema in models.ema.items():
        for e, p in zip(ema.parameters(), getattr(models, name).parameters()):
            e.lerp_(p.detach(), 1 - decay)


def _set_lr(opt: torch.optim.Optimizer, base: float, warmup: int, step: int) -> None:
    lr = base * min(1.0, (step + 1) / max(1, warmup))
    for group in opt.param_groups:
        group["lr"] = lr


# ------------------------------------------------------------------------------------------- runner
@dataclass
class TrainResult:
    out: Path
    steps: int
    final_loss: float
    eval_loss: float | None
    seconds: float
    data_sha256: str
    resumed: bool
    record: dict[str, Any]


class _Run:
    """One training run's state: models, optimisers, counters, history; checkpointed as a whole."""

    def __init__(self, c: ToyZero123Config, views: ToyViews) -> None:
        self.c = c
        self.views = views
        self.models = Models.build(c)
        self.vae_opt = torch.optim.AdamW(self.models.vae.parameters(), lr=c.vae_lr, weight_decay=0.0)
        self.opt = torch.optim.AdamW(self.models.trained_parameters(c), lr=c.lr, weight_decay=0.0)
        self.vae_step = 0
        self.step = 0
        self.scaling_factor: float | None = None
        self.vae: dict[str, float] = {}
        self.history: list[dict[str, Any]] = []
        self.vae_history: list[dict[str, Any]] = []
        self.seconds = 0.0
        self.window: list[float] = []

    # -- checkpoint
    def save(self, folder: Path) -> None:
        tensors: dict[str, torch.Tensor] = {}
        for prefix, module in _named(self.models).items():
            tensors.update(ckpt.module_tensors(prefix, module))
        groups = {}
        for prefix, opt in (("opt.vae", self.vae_opt), ("opt.main", self.opt)):
            t, groups[prefix] = ckpt.optimizer_tensors(prefix, opt)
            tensors.update(t)
        meta = {"config": self.c.identity(), "vae_step": self.vae_step, "step": self.step,
                "scaling_factor": self.scaling_factor, "vae": self.vae, "history": self.history,
                "vae_history": self.vae_history, "seconds": self.seconds, "window": self.window,
                "data_sha256": self.views.sha256(), "param_groups": groups}
        ckpt.save_checkpoint(folder, tensors, meta, f"{self.vae_step}-{self.step}")

    def load(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        for prefix, module in _named(self.models).items():
            ckpt.load_module(prefix, module, tensors)
        for prefix, opt in (("opt.vae", self.vae_opt), ("opt.main", self.opt)):
            ckpt.load_optimizer(prefix, opt, tensors, meta["param_groups"][prefix])
        self.vae_step, self.step = int(meta["vae_step"]), int(meta["step"])
        self.scaling_factor = meta["scaling_factor"]
        self.vae, self.history, self.vae_history = meta["vae"], meta["history"], meta["vae_history"]
        self.seconds, self.window = float(meta["seconds"]), list(meta["window"])
        if self.scaling_factor is not None:
            self.models.vae.register_to_config(scaling_factor=self.scaling_factor)


def _check_resume(meta: dict[str, Any], c: ToyZero123Config, views: ToyViews, folder: Path) -> None:
    stored = meta.get("config", {})
    if stored != c.identity():
        diff = sorted(k for k in set(stored) | set(c.identity()) if stored.get(k) != c.identity().get(k))
        raise TrainError(f"{folder}: the checkpoint was made with other settings ({', '.join(diff)}); "
                         "resume with the same options, or train into a new --out / --checkpoints folder")
    if meta.get("data_sha256") != views.sha256():
        raise TrainError(f"{folder}: the rendered training data differ from the checkpoint's (sha256 "
                         f"{meta.get('data_sha256', '?')[:12]} vs {views.sha256()[:12]}); the shape library or the "
                         "renderer changed — train into a new folder")


def train_toy_zero123(
    out: str | Path,
    config: ToyZero123Config | None = None,
    checkpoints: str | Path | None = None,
    resume: bool = False,
    progress: Progress | None = None,
    log: Log | None = None,
    command: str = "",
    stop: Any = None,
) -> TrainResult:
    """Train (or resume) and write the model folder ``out``.

    Args:
        out: the model folder to write (diffusers layout + ``training.json`` + ``README.md``).
        config: the run's settings (default :class:`ToyZero123Config`).
        checkpoints: checkpoint folder (default ``out/checkpoints``).
        resume: continue from the checkpoint there (an absent checkpoint starts a new run).
        progress: ``progress(label, done, total)``; log: one line at a time (loss, timing).
        command: the command line, recorded in ``training.json``.
        stop: an object whose ``requested`` attribute asks to stop at the next step boundary
            (``recon.pipeline.interrupt.graceful_interrupt``); the run checkpoints and raises KeyboardInterrupt.
    """
    c = config or ToyZero123Config()
    out = Path(out)
    folder = Path(checkpoints) if checkpoints is not None else out / "checkpoints"
    say = log or (lambda line: None)
    bar = progress or (lambda label, done, total: None)
    if c.steps < 0 or c.vae_steps < 1:
        raise TrainError("--steps must be >= 0 and vae_steps >= 1")
    existing = (folder / "state.json").is_file()
    if existing and not resume:
        raise TrainError(f"{folder} already holds a training checkpoint; pass --resume to continue it, "
                         "or choose another --out / --checkpoints folder")

    t0 = time.perf_counter()
    say(f"rendering the toy world: {len(c.elevations)} elevations x {round(360 / c.azimuth_step)} azimuths "
        f"at {c.render_size}² -> {c.image_size}²")
    views = render_toy_views(c.grid(), c.image_size, c.render_size, families=c.families)
    sha = views.sha256()
    say(f"{views.images.shape[0]} members x {views.images.shape[1]} views; data sha256 {sha}")
    run = _Run(c, views)
    resumed = False
    if existing:
        loaded = ckpt.load_checkpoint(folder)
        assert loaded is not None
        tensors, meta = loaded
        _check_resume(meta, c, views, folder)
        run.load(tensors, meta)
        resumed = True
        say(f"resumed from {folder}: autoencoder step {run.vae_step}/{c.vae_steps}, step {run.step}")
    if run.vae_step < c.vae_steps or run.step < c.steps:  # setup counts towards training time, not a re-export's
        run.seconds += time.perf_counter() - t0

    def checkpoint() -> None:
        run.save(folder)

    def should_stop() -> bool:
        return bool(stop is not None and getattr(stop, "requested", False))

    # -- stage 1: the autoencoder
    models = run.models
    if run.vae_step < c.vae_steps:
        models.vae.train()
        mark = time.perf_counter()
        losses: list[float] = []
        while run.vae_step < c.vae_steps:
            _set_lr(run.vae_opt, c.vae_lr, 50, run.vae_step)
            loss = vae_step(models, views, c, run.vae_step)
            run.vae_opt.zero_grad(set_to_none=True)
            loss.backward()
            run.vae_opt.step()
            run.vae_step += 1
            losses.append(float(loss.detach()))
            bar("autoencoder", run.vae_step, c.vae_steps)
            if run.vae_step % c.log_every == 0 or run.vae_step == c.vae_steps:
                run.vae_history.append({"step": run.vae_step, "loss": sum(losses) / len(losses)})
                say(f"autoencoder {run.vae_step}/{c.vae_steps} loss {sum(losses) / len(losses):.5f}")
                losses = []
            if run.vae_step % c.checkpoint_every == 0 or should_stop():
                run.seconds += time.perf_counter() - mark
                mark = time.perf_counter()
                checkpoint()
                if should_stop():
                    raise KeyboardInterrupt
        models.vae.eval()
        run.vae = vae_report(models, views)
        run.scaling_factor = run.vae["scaling_factor"]
        models.vae.register_to_config(scaling_factor=run.scaling_factor)
        run.seconds += time.perf_counter() - mark
        say(f"autoencoder: PSNR {run.vae['psnr_mean_db']:.2f} dB (worst image {run.vae['psnr_worst_db']:.2f}), "
            f"RMSE {run.vae['rmse']:.4f}, scaling factor {run.scaling_factor:.4f}")
        checkpoint()
    models.vae.eval().requires_grad_(False)
    if not c.train_clip:
        models.image_encoder.eval().requires_grad_(False)
    assert run.scaling_factor is not None

    # -- stage 2: the denoiser (+ pose projection, + CLIP when trained)
    schedule = NoiseSchedule.from_config(SCHEDULER_CONFIG)
    enc = encode_views(models, views, c, run.scaling_factor)
    models.unet.train()
    mark = time.perf_counter()
    while run.step < c.steps:
        _set_lr(run.opt, c.lr, c.warmup, run.step)
        loss = unet_step(models, views, enc, schedule, c, run.step)
        run.opt.zero_grad(set_to_none=True)
        loss.backward()
        if c.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(models.trained_parameters(c), c.grad_clip)
        run.opt.step()
        ema_update(models, c, run.step)
        run.step += 1
        run.window.append(float(loss.detach()))
        bar("denoiser", run.step, c.steps)
        done = run.step == c.steps
        if run.step % c.log_every == 0 or done:
            elapsed = run.seconds + time.perf_counter() - mark
            say(f"step {run.step}/{c.steps} loss {sum(run.window[-c.log_every:]) / len(run.window[-c.log_every:]):.5f} "
                f"({elapsed:.0f} s)")
        if run.step % c.eval_every == 0 or done:
            entry = {"step": run.step, "train_loss": sum(run.window) / len(run.window),
                     "eval_loss": eval_loss(models, views, enc, schedule, c),
                     "seconds": round(run.seconds + time.perf_counter() - mark, 1)}
            run.history.append(entry)
            run.window = []
            say(f"step {run.step}: mean train loss {entry['train_loss']:.5f}, EMA eval loss {entry['eval_loss']:.5f}")
        if run.step % c.checkpoint_every == 0 or done or should_stop():
            run.seconds += time.perf_counter() - mark
            mark = time.perf_counter()
            checkpoint()
            if should_stop() and not done:
                raise KeyboardInterrupt
    run.seconds += time.perf_counter() - mark
    if not run.history or run.history[-1]["step"] != run.step:  # no steps, or stopped between evaluations
        run.history.append({"step": run.step, "train_loss": sum(run.window) / len(run.window) if run.window else None,
                            "eval_loss": eval_loss(models, views, enc, schedule, c), "seconds": round(run.seconds, 1)})
        run.window = []
        checkpoint()

    record = training_record(run, command, sha)
    export_folder(out, run, record)
    last = run.history[-1]
    return TrainResult(out, run.step, last["train_loss"] if last["train_loss"] is not None else math.nan,
                       last["eval_loss"], run.seconds, sha, resumed, record)


# ------------------------------------------------------------------------------------------ export
def training_record(run: _Run, command: str, sha: str) -> dict[str, Any]:
    import diffusers
    import transformers

    last = run.history[-1] if run.history else {}
    return {
        "command": command,
        "seed": run.c.seed,
        "steps": run.step,
        "vae_steps": run.vae_step,
        "final_train_loss": last.get("train_loss"),
        "final_eval_loss": last.get("eval_loss"),
        "data_sha256": sha,
        "data": {"members": run.views.names, "views": int(run.views.cameras.shape[0]),
                 "image_size": run.c.image_size, "render_size": run.c.render_size,
                 "elevations": list(run.c.elevations), "azimuth_step": run.c.azimuth_step},
        "vae": run.vae,
        "history": run.history,
        "vae_history": run.vae_history,
        "seconds": round(run.seconds, 1),
        "threads": torch.get_num_threads(),
        "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                     "transformers": transformers.__version__},
        "config": run.c.identity() | {"steps": run.step},
        "weights": f"EMA (decay {run.c.ema_decay:g}) of the denoiser and pose projection"
                   + (" and image encoder" if run.c.train_clip else "; image encoder frozen at its seeded init"),
    }


def _model_index() -> dict[str, Any]:
    return {
        "_class_name": "Zero123Pipeline", "_diffusers_version": "0.18.2",
        "clip_camera_projection": ["zero123", "CLIPCameraProjection"],
        "feature_extractor": ["transformers", "CLIPImageProcessor"],
        "image_encoder": ["transformers", "CLIPVisionModelWithProjection"], "requires_safety_checker": False,
        "safety_checker": [None, None], "scheduler": ["diffusers", "DDIMScheduler"],
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
    }


def write_model_folder(root: Path, run: _Run) -> None:
    """The diffusers folder in zero123-xl's layout (``clip_camera_projection/`` with ``proj.*``)."""
    from diffusers import __version__ as diffusers_version
    from safetensors.torch import save_file
    c, models = run.c, run.models
    root.mkdir(parents=True, exist_ok=True)
    (root / "model_index.json").write_text(json.dumps(_model_index(), indent=2) + "\n")
    (root / "scheduler").mkdir(exist_ok=True)
    (root / "scheduler" / "scheduler_config.json").write_text(
        json.dumps({**SCHEDULER_CONFIG, "_diffusers_version": diffusers_version}, indent=2) + "\n")
    models.ema["unet"].save_pretrained(root / "unet", safe_serialization=True)
    models.vae.save_pretrained(root / "vae", safe_serialization=True)
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no "Writing model shards" bar for a 0.3 MB file
    try:
        models.ema.get("image_encoder", models.image_encoder).save_pretrained(root / "image_encoder")
    finally:
        if shown:
            hf_logging.enable_progress_bar()
    pre = clip_preprocess(c)  # what training fed the image encoder, as CLIPImageProcessor's config
    (root / "feature_extractor").mkdir(exist_ok=True)
    (root / "feature_extractor" / "preprocessor_config.json").write_text(json.dumps({
        "crop_size": {"height": pre.crop, "width": pre.crop}, "do_center_crop": True, "do_convert_rgb": True,
        "do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": list(pre.mean),
        "image_processor_type": "CLIPImageProcessor", "image_std": list(pre.std), "resample": 3,
        "rescale_factor": 1 / 255, "size": {"shortest_edge": pre.size}}, indent=2) + "\n")
    proj = models.ema["projection"]
    folder = root / "clip_camera_projection"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps({
        "_class_name": "CLIPCameraProjection", "_diffusers_version": "0.18.2", "additional_embeddings": 4,
        "embedding_dim": c.context_dim}, indent=2) + "\n")
    save_file({"proj.weight": proj.weight.detach().contiguous(), "proj.bias": proj.bias.detach().contiguous()},
              str(folder / "diffusion_pytorch_model.safetensors"), metadata={"format": "pt"})


def run_window(record: dict[str, Any]) -> int:
    """How many steps the last history entry's mean train loss covers."""
    steps = [h["step"] for h in record["history"]]
    return steps[-1] - (steps[-2] if len(steps) > 1 else 0)


def _readme(record: dict[str, Any]) -> str:
    vae = record["vae"]
    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    rows = "\n".join(f"| {h['step']} | {fmt(h['train_loss'])} | {fmt(h['eval_loss'])} | {h['seconds']:.0f} |"
                     for h in record["history"])
    return f"""# toy-zero123

A tiny Zero-1-to-3 (diffusers layout of `ashawkey/zero123-xl-diffusers`) trained on recon's toy world
(`data/library`) by `recon train toy-zero123`; see `docs/toy-zero123.md`. Load it with
`--prior toy-zero123` or `recon.priors.zero123.load_zero123_prior("toy-zero123")`.

- command: `{record['command']}`
- seed {record['seed']}, {record['steps']} denoiser steps, {record['vae_steps']} autoencoder steps,
  {record['seconds']:.0f} s of training on {record['threads']} CPU thread{'s' if record['threads'] > 1 else ''}
- final loss (ε-MSE): train {fmt(record['final_train_loss'])} (mean of the last {run_window(record)} steps),
  EMA weights on the fixed evaluation batch {fmt(record['final_eval_loss'])}
- training data sha256 (rendered tensors, cameras, member names): `{record['data_sha256']}`
- autoencoder reconstruction: PSNR {vae.get('psnr_mean_db', float('nan')):.2f} dB mean,
  {vae.get('psnr_worst_db', float('nan')):.2f} dB worst image; RMSE {vae.get('rmse', float('nan')):.4f}
- weights: {record['weights']}

| step | mean train loss | EMA eval loss | seconds |
|---|---|---|---|
{rows}

Everything else (settings, versions, the autoencoder's curve) is in `training.json`.
"""


def export_folder(out: Path, run: _Run, record: dict[str, Any]) -> None:
    """Write the model folder into a temporary sibling, check it, then move each part into ``out``."""
    from recon.priors.verify_folder import verify_folder

    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".export-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        write_model_folder(tmp, run)
        (tmp / "training.json").write_text(json.dumps(record, indent=1) + "\n")
        (tmp / "README.md").write_text(_readme(record))
        verify_folder(tmp, "zero123")
        for item in sorted(tmp.iterdir()):
            target = out / item.name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            os.replace(item, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
