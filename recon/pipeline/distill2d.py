"""The 2D setting as a product: K images per method from one init, a PNG grid and per-image metrics.

``run_distill2d`` optimises one image per (method, seed) directly against a prior (Algorithm 2 and
its baselines), plus the DDIM sample from each seed's ε* as a reference row, then writes
``grid.png`` (one row per method, one column per seed) and ``metrics.json``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recon import seeding
from recon.diffusion.ddim import DDIMGrid, ddim_sample
from recon.distill.factory import build_distiller
from recon.distill.optimize import optimize_image
from recon.distill.recipes import recipe_2d
from recon.io.atomic import atomic_write_bytes, atomic_write_text
from recon.priors.base import Prior
from recon.priors.gaussian_mixture import GaussianMixturePrior


@dataclass
class Distill2DConfig:
    """Inputs of :func:`run_distill2d`.

    prior: ``gmm`` (the built-in picture mixture) or a diffusers pipeline folder.
    init: ``gmm-near`` (halfway to the first picture; only for gmm), ``grey`` (zeros in model
    space) or ``noise``.
    """

    methods: list[str] = field(default_factory=lambda: ["dsd", "sds", "asd", "sdi", "consistent3d"])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4, 5, 6, 7])
    steps: int = 200
    prior: str = "gmm"
    modes: int = 4
    size: int = 16
    std: float = 0.05
    prompt: str | None = None
    guidance_scale: float | None = None
    init: str = "gmm-near"
    reference: bool = True


@dataclass
class Distill2DResult:
    images: dict[str, torch.Tensor]  # row name -> (K, 3, H, W) RGB in [0, 1]
    metrics: dict[str, Any]
    grid_path: Path | None = None
    metrics_path: Path | None = None


def load_prior_2d(config: Distill2DConfig) -> Prior:
    if config.prior == "gmm":
        return GaussianMixturePrior.pictures(config.modes, config.size, config.std)
    path = Path(config.prior)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such prior folder; pass --prior gmm or a diffusers pipeline folder")
    check_safetensors_only(path)
    from recon.priors.diffusers_unet import DiffusersUNetPrior

    return DiffusersUNetPrior.from_pretrained(path)


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


def check_safetensors_only(root: Path) -> None:
    """Refuse a diffusers folder whose model weights are not all safetensors: a pickle (``.bin``,
    ``.ckpt``...) can run code when loaded, and recon loads safetensors only. The scheduler config is
    checked too (its size is bounded)."""
    for sub in ("unet", "vae", "text_encoder"):
        folder = root / sub
        if not folder.is_dir():
            continue
        pickles = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
        safe = [p for p in folder.iterdir() if p.suffix == ".safetensors"]
        if pickles:
            raise ValueError(f"{folder / pickles[0]}: pickle weights are never loaded (they can run code); "
                             "convert them to .safetensors (diffusers: save_pretrained(safe_serialization=True)) "
                             "and remove the pickle")
        if not safe:
            raise ValueError(f"{folder}: no .safetensors weights; give a diffusers folder saved as safetensors")


def _init(prior: Prior, how: str) -> torch.Tensor:
    shape = prior.sample_shape
    if how == "gmm-near":
        if not isinstance(prior, GaussianMixturePrior):
            raise ValueError("init 'gmm-near' needs the gmm prior; use grey or noise")
        return 0.5 * prior.means[0]
    if how == "grey":
        return torch.zeros(shape, dtype=prior.dtype)
    if how == "noise":
        return torch.randn(shape, generator=seeding.generator(0, 0, seeding.INIT), dtype=torch.float64).to(prior.dtype)
    raise ValueError(f"unknown init {how!r} (gmm-near, grey, noise)")


def _metrics(prior: Prior, x: torch.Tensor, reference: torch.Tensor | None) -> dict[str, Any]:
    flat = x.reshape(x.shape[0], -1).to(torch.float64)
    out: dict[str, Any] = {}
    if flat.shape[0] > 1:
        d = torch.cdist(flat, flat)
        k = flat.shape[0]
        out["mean_pairwise_distance"] = float(d.sum() / (k * (k - 1)))
    if reference is not None:
        out["distance_to_ddim"] = (flat - reference.reshape(flat.shape[0], -1).to(torch.float64)).norm(dim=1).tolist()
    if isinstance(prior, GaussianMixturePrior):
        idx, dist = prior.nearest_mode(x)
        radius = prior.mode_radius()
        out["nearest_mode"] = [prior.names[i] for i in idx.tolist()]
        out["distance_to_mode"] = dist.tolist()
        out["within_mode_radius"] = float((dist < radius).to(torch.float64).mean())
        out["modes_visited"] = sorted({prior.names[i] for i, di in zip(idx.tolist(), dist.tolist()) if di < radius})
        out["mode_radius"] = radius
    return out


def run_distill2d(
    config: Distill2DConfig,
    out_dir: str | Path | None = None,
    prior: Prior | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> Distill2DResult:
    """Optimise one image per (method, seed); write ``grid.png`` and ``metrics.json`` to ``out_dir``."""
    prior = prior or load_prior_2d(config)
    seeds = list(config.seeds)
    k = len(seeds)
    cond = prior.condition(prompt=config.prompt) if config.prompt else prior.condition()
    cond = cond.repeat(k)
    init = _init(prior, config.init)
    rows: dict[str, torch.Tensor] = {}
    metrics: dict[str, Any] = {"config": dataclasses.asdict(config), "methods": {}}
    reference = None
    if config.reference:
        grid = DDIMGrid.make(prior.schedule, 10)
        eps = torch.stack([seeding.eps_star(s, 0, prior.sample_shape, prior.dtype, prior.device) for s in seeds])
        reference, _ = ddim_sample(prior, eps, cond, grid, config.guidance_scale)
        rows["ddim"] = reference
        metrics["methods"]["ddim"] = _metrics(prior, reference, None)
    for method in config.methods:
        recipe = recipe_2d(method, config.steps)
        if config.guidance_scale is not None:
            recipe.distill.guidance_scale = config.guidance_scale
        distiller = build_distiller(prior, recipe.distill)
        start = time.perf_counter()

        def tick(step: int, x: torch.Tensor, result: Any, method: str = method) -> None:
            if progress is not None:
                progress(method, step + 1, config.steps)

        result = optimize_image(prior, distiller, init, config.steps, seeds, cond, recipe.lr, recipe.optimizer,
                                callback=tick)
        rows[method] = result.images
        m = _metrics(prior, result.images, reference)
        m.update(evals_per_step=result.evals / config.steps, calls_per_step=result.calls / config.steps,
                 seconds=time.perf_counter() - start)
        metrics["methods"][method] = m
    images = {name: prior.decode(x).detach().cpu() for name, x in rows.items()}
    res = Distill2DResult(images, metrics)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        res.grid_path = out / "grid.png"
        atomic_write_bytes(res.grid_path, _grid_png(images, seeds))
        res.metrics_path = out / "metrics.json"
        atomic_write_text(res.metrics_path, json.dumps(metrics, indent=2))
    return res


def _grid_png(images: dict[str, torch.Tensor], seeds: Sequence[int], cell: int = 64) -> bytes:
    """One row per method (labelled), one column per seed (labelled)."""
    import io

    from PIL import Image, ImageDraw

    label_w, label_h, pad = 96, 16, 2
    names = list(images)
    k = len(seeds)
    canvas = Image.new("RGB", (label_w + k * (cell + pad), label_h + len(names) * (cell + pad)), "white")
    draw = ImageDraw.Draw(canvas)
    for j, seed in enumerate(seeds):
        draw.text((label_w + j * (cell + pad) + 4, 2), f"seed {seed}", fill="black")
    for i, name in enumerate(names):
        y = label_h + i * (cell + pad)
        draw.text((4, y + cell // 2 - 6), name, fill="black")
        for j in range(k):
            arr = (images[name][j].permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)
            tile = Image.fromarray(arr).resize((cell, cell), Image.NEAREST)
            canvas.paste(tile, (label_w + j * (cell + pad), y))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return buf.getvalue()
