"""The camera rows camera-conditioned priors accept: (B, 3) (elevation°, azimuth°, distance), absolute.

Convention (``recon/render/cameras.py``): world +Y up, elevation up from the horizontal plane
(polar = 90° − elevation), azimuth 0 = the front/input view with the camera on +Z, positive azimuth
towards +X.
"""

from __future__ import annotations

from typing import Any

import torch


def as_cameras(camera: Any) -> torch.Tensor:
    """(B, 3) float64 CPU tensor from a (3,) or (B, 3) tensor / sequence; anything else is refused."""
    cams = torch.as_tensor(camera, dtype=torch.float64, device="cpu")
    if cams.ndim == 1:
        cams = cams.unsqueeze(0)
    if cams.ndim != 2 or cams.shape[1] != 3:
        raise ValueError(f"camera must be (B, 3) rows of (elevation°, azimuth°, distance), got {tuple(cams.shape)}")
    if not torch.isfinite(cams).all():
        raise ValueError("camera values must be finite")
    return cams
