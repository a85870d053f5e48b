"""Small pieces a run is set up from: its identity hash, device, seeds and per-stage distillers, and the
trajectory hand-over from stage 1's guidance to stage 2's."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import torch

from recon.config import to_dict
from recon.diffusion.timesteps import TimestepConfig
from recon.distill.base import DistillConfig
from recon.distill.factory import build_distiller
from recon.pipeline.guidance import DistillGuidance
from recon.priors.base import Prior


def config_hash(config: Any, input_sha256: str) -> str:
    """16 hex digits identifying (config, input): the same command in the same folder resumes."""
    data = json.dumps({"config": to_dict(config), "input": input_sha256}, sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but torch sees no CUDA device; use --device cpu")
    return name


def stage1_stream_seed(seed: int, offset: int) -> int:
    """The seed of a run's stage-1 streams: the run seed in the high 32 bits, ``stage1.seed`` (an offset,
    0 by default) in the low ones, so seed 0 keeps its streams and no (seed, offset) pair with offsets
    below 2³² shares streams with another (``seed * 1000 + offset``, stage 2's rule, would make seed s
    with the noise floor's offset 1000 replay seed s + 1)."""
    if not 0 <= offset < 2**32:
        raise ValueError(f"stage1.seed {offset} is outside 0..2^32-1 (it offsets the run seed's streams)")
    return (int(seed) << 32) + int(offset)


def stage_distiller(prior: Prior, distill: DistillConfig, timesteps: TimestepConfig, steps: int,
                    camera_bin: float, guidance_scale: float | None):
    """The distiller of one stage: ``distill`` with the stage's timestep schedule over its steps."""
    config = dataclasses.replace(distill, timesteps=dataclasses.replace(timesteps, total_steps=steps),
                                 camera_bin=camera_bin)
    if guidance_scale is not None:
        config.guidance_scale = guidance_scale
    return build_distiller(prior, config)


def reuse_trajectories(source: DistillGuidance, target: DistillGuidance) -> None:
    """Let ``target`` (stage 2) reuse the ODE trajectories ``source`` (stage 1) computed: they depend on
    ε*, the condition and the grid only, and cache keys carry the hypothesis, so nothing is recomputed
    for a (hypothesis, camera bin) stage 1 already visited."""
    a, b = source.state.cache, target.state.cache
    if a is not None and b is not None and b.same_paths(a):
        target.state.cache = a
