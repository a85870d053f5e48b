"""Calibrated guidance weights: equal gradient magnitude instead of equal loss weight.

DSD's and ASD's gradients are differences of two noise predictions at nearby noise levels; on the
LibraryPrior that is about [1/σ(t) − 1/σ(t₊)] (x − μ), an order of magnitude smaller than SDS's
(1/σ(t)) (x − μ) at the same loss weight. "Same settings" can therefore mean the same loss weight
(``equal``) or the same push on the renders (``calibrated``). The calibration measures, for each
method, the mean per-row gradient norm ‖∂L/∂x‖ over a stage's timestep schedule at a **probe**: the
prior's posterior-mean image at random orbit cameras (the blurred average of the family's members
that mode-averaging drifts to, and that a diverse method has to leave). The method's guidance weight
is the recipe's times  mean‖g_SDS‖ / mean‖g_method‖  (so SDS's factor is exactly 1).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from recon import seeding
from recon.diffusion.timesteps import TimestepConfig
from recon.distill.base import Hypothesis
from recon.pipeline.run_setup import stage_distiller
from recon.render.cameras import random_cameras


@dataclass
class Calibration:
    """Mean probe gradient norm per method and stage, and the resulting weight factors."""

    norms: dict[str, dict[str, float]]  # method -> stage -> mean ‖grad‖
    factors: dict[str, dict[str, float]]  # method -> stage -> weight factor (SDS = 1)


@torch.no_grad()
def probe_norm(prior, image: torch.Tensor, reference, config, method: str, timesteps: TimestepConfig,
               steps: int, views: int = 8, points: int = 10, seed: int = 0) -> float:
    """Mean over ``points`` steps spread over the schedule and ``views`` rows of ‖grad‖ (model space).

    ``image``: (1, 3, H, W) the recentred input on white; ``reference``: its (elevation°, azimuth°, distance).
    Row v is hypothesis (seed, v), so every row has its own ε* and noise streams.
    """
    cams = random_cameras(views, seeding.generator(seed, 0, "bench_calibration"), resolution=prior.sample_shape[-1])
    table = torch.stack([cams.elevation, cams.azimuth, cams.distance], 1).to(torch.float32)
    cond = prior.condition(image=image, camera=table, reference=reference)
    members = prior.views(table)  # (V, M, 3, S, S)
    w = prior.log_weights(image).exp().to(members)
    probe = (members * w[None, :, None, None, None]).sum(1)  # posterior mean per camera
    distiller = stage_distiller(prior, dataclasses.replace(config.distill, method=method), timesteps, steps,
                                config.prior.camera_bin, config.prior.guidance_scale)
    state = distiller.init_state([Hypothesis(seed, v) for v in range(views)])
    norms = []
    for step in np.linspace(0, steps - 1, points).round().astype(int):
        g = distiller.grad(probe, int(step), cond, state).grad
        norms.append(float(g.flatten(1).norm(dim=1).mean()))
    return float(np.mean(norms))


def calibrate(prior, image: torch.Tensor, reference, config, methods: list[str], **kwargs) -> Calibration:
    """Norms and weight factors of ``methods`` for stage 1 and stage 2 of ``config`` (an ImageTo3DConfig)."""
    stages = {"stage1": (config.stage1_timesteps, config.stage1.steps),
              "stage2": (config.stage2_timesteps, max(config.stage2.steps, 1))}
    norms: dict[str, dict[str, float]] = {}
    for m in sorted(set(methods) | {"sds"}):
        norms[m] = {name: probe_norm(prior, image, reference, config, m, ts, n, **kwargs)
                    for name, (ts, n) in stages.items()}
    factors = {m: {s: float(f"{norms['sds'][s] / max(norms[m][s], 1e-12):.3g}") for s in stages} for m in methods}
    return Calibration(norms, factors)


def scaled_weight_overrides(config, stage1_factor: float, stage2_factor: float) -> list[str]:
    """``key=value`` overrides multiplying the stage-1 guidance weight (a constant or a ramp) and stage 2's."""
    w1 = config.stage1.weights.guidance
    if isinstance(w1, (int, float)):
        v1: object = float(w1) * stage1_factor
    else:
        s0, a, b, s1 = w1
        v1 = [s0, float(a) * stage1_factor, float(b) * stage1_factor, s1]
    return [f"stage1.weights.guidance={v1}", f"stage2.weights.guidance={float(config.stage2.weights.guidance) * stage2_factor}"]
