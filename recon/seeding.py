"""Deterministic, independent random streams.

Each stream is a ``torch.Generator`` seeded from ``(seed, hypothesis, purpose)`` through NumPy's
``SeedSequence`` so that, for example, the ε* of hypothesis 3 never shares bits with the camera
sampler of hypothesis 3, and adding a hypothesis never changes the draws of the others.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

# Named purposes keep streams apart; a new purpose is a new, independent stream.
EPS_STAR = "eps_star"
NOISE = "noise"
TIMESTEPS = "timesteps"
CAMERAS = "cameras"
INIT = "init"


def stream_seed(seed: int, hypothesis: int, purpose: str) -> int:
    """A 63-bit seed for the stream ``(seed, hypothesis, purpose)``."""
    tag = int.from_bytes(hashlib.sha256(purpose.encode()).digest()[:4], "little")
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(seed) >> 32, int(hypothesis), tag])
    return int(state.generate_state(1, dtype=np.uint64)[0] >> 1)


def generator(seed: int, hypothesis: int, purpose: str, device: str | torch.device = "cpu") -> torch.Generator:
    """A fresh ``torch.Generator`` for one stream."""
    g = torch.Generator(device=device)
    g.manual_seed(stream_seed(seed, hypothesis, purpose))
    return g


def eps_star(
    seed: int,
    hypothesis: int,
    shape: tuple[int, ...],
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """ε*_k ~ N(0, I) of one hypothesis, shape = one view's latent (e.g. (4, 32, 32)).

    Drawn on the CPU in float64 and then cast, so the same seed gives the same ε* on every device.
    """
    g = generator(seed, hypothesis, EPS_STAR)
    return torch.randn(shape, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)
