"""Stage 1's reference targets: images and masks at known cameras (the input photo, or several views)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from recon.render.cameras import DEFAULT_DISTANCE, DEFAULT_FOVY, Cameras, camera_batch


@dataclass
class KnownViews:
    """Targets at known cameras: cameras (N), rgb (N, 3, H, W) and mask (N, 1, H, W) in [0, 1], row 0 = top."""

    cameras: Cameras
    rgb: torch.Tensor
    mask: torch.Tensor

    def __post_init__(self) -> None:
        n = len(self.cameras)
        if self.rgb.dim() != 4 or self.rgb.shape[:2] != (n, 3):
            raise ValueError(f"rgb must be ({n}, 3, H, W), got {tuple(self.rgb.shape)}")
        if tuple(self.mask.shape) != (n, 1, *self.rgb.shape[2:]):
            raise ValueError(f"mask must be ({n}, 1, H, W) like rgb, got {tuple(self.mask.shape)}")

    @classmethod
    def from_image(cls, rgba: torch.Tensor, elevation: float = 0.0, distance: float = DEFAULT_DISTANCE,
                   fovy: float = DEFAULT_FOVY) -> KnownViews:
        """One input photo (4, H, W) RGBA in [0, 1] seen from azimuth 0 at ``elevation``."""
        if rgba.dim() != 3 or rgba.shape[0] != 4:
            raise ValueError(f"expected an RGBA image (4, H, W), got {tuple(rgba.shape)}")
        h, w = rgba.shape[1:]
        cams = camera_batch(elevation, 0.0, distance, fovy, (h, w))
        return cls(cams, rgba[None, :3].float(), rgba[None, 3:].float())



def downsample_views(views: KnownViews, size: int) -> KnownViews:
    """Known views resized to ``size``² with area averaging (cameras rebuilt for the new size)."""
    rgb = F.interpolate(views.rgb, size=(size, size), mode="area")
    mask = F.interpolate(views.mask, size=(size, size), mode="area")
    c = views.cameras
    cams = camera_batch(c.elevation, c.azimuth, c.distance, c.fovy, size)
    return KnownViews(cams, rgb, mask)
