"""Recentre and scale the object to the image prior's input convention.

Convention (stable-dreamfusion / threestudio ``preprocess_image.py``, used for Zero-1-to-3 and
Stable Zero123): a square ``size`` x ``size`` RGBA image, the object's mask bounding box centred,
its longer side scaled to ``size * (1 - border_ratio)`` with ``border_ratio = 0.2`` (so the object
spans 80 % of the frame), then composited on white (``rgb * a + (1 - a)``) where the prior wants RGB.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from recon.io.errors import InputError


@dataclass
class RecentreConfig:
    """``size``: output side in pixels; ``border_ratio``: 1 - (object's longer side / size);
    ``mask_threshold``: alpha above which a pixel belongs to the object; ``min_object_fraction``:
    smallest object (in mask pixels / image pixels) accepted as a real one;
    ``max_cover_fraction``: a mask touching all four borders and covering more than this is refused."""

    size: int = 256
    border_ratio: float = 0.2
    mask_threshold: float = 0.5
    min_object_fraction: float = 5e-4
    max_cover_fraction: float = 0.9


@dataclass
class Recentred:
    """rgba (S, S, 4) float32 straight (not premultiplied) alpha; rgb_white (S, S, 3) composited on white;
    mask (S, S) float32 = rgba[..., 3]; bbox (y0, x0, y1, x1) of the object in the source image
    (exclusive ends); scale = output pixels per source pixel."""

    rgba: np.ndarray
    rgb_white: np.ndarray
    mask: np.ndarray
    bbox: tuple[int, int, int, int]
    scale: float


_REMEDY_MASK = ("pass a photo where the object stands out from its background, or an RGBA image whose "
                "alpha channel marks the object")


def recentre(rgb: np.ndarray, alpha: np.ndarray, path: str | Path,
             config: RecentreConfig | None = None) -> Recentred:
    """rgb (H, W, 3), alpha (H, W) in [0, 1] -> the object recentred (see module doc).

    Raises :class:`InputError` naming ``path`` for an empty mask (fully transparent image,
    segmentation found nothing), a degenerate one (a few pixels) or one covering the whole frame.
    """
    config = config or RecentreConfig()
    if not 0.0 <= config.border_ratio < 1.0:
        raise ValueError(f"border_ratio must be in [0, 1), got {config.border_ratio}")
    h, w = alpha.shape
    inside = alpha > config.mask_threshold
    count = int(inside.sum())
    if count == 0:
        raise InputError(path, "the object mask is empty (the image is fully transparent or no object "
                         "was found)", _REMEDY_MASK)
    if count < max(16, config.min_object_fraction * h * w):
        raise InputError(path, f"the object mask has only {count} pixels, too few for an object",
                         _REMEDY_MASK)
    rows = np.flatnonzero(inside.any(axis=1))
    cols = np.flatnonzero(inside.any(axis=0))
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    touches_all = y0 == 0 and x0 == 0 and y1 == h and x1 == w
    if touches_all and count > config.max_cover_fraction * h * w:
        raise InputError(path, f"the object mask covers {100 * count / (h * w):.0f}% of the image, "
                         "leaving no background", _REMEDY_MASK)

    size = config.size
    target = size * (1.0 - config.border_ratio)
    bh, bw = y1 - y0, x1 - x0
    scale = target / max(bh, bw)
    nh, nw = max(1, round(bh * scale)), max(1, round(bw * scale))
    a = np.clip(alpha[y0:y1, x0:x1], 0, 1).astype(np.float32)
    # Resize premultiplied colour so background colour under transparent pixels does not bleed in.
    prem = np.clip(rgb[y0:y1, x0:x1], 0, 1).astype(np.float32) * a[..., None]
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    prem_r = cv2.resize(prem, (nw, nh), interpolation=interp).reshape(nh, nw, 3)
    a_r = np.clip(cv2.resize(a, (nw, nh), interpolation=interp).reshape(nh, nw), 0, 1)
    prem_r = np.clip(prem_r, 0, a_r[..., None])

    oy, ox = (size - nh) // 2, (size - nw) // 2
    prem_out = np.zeros((size, size, 3), np.float32)
    a_out = np.zeros((size, size), np.float32)
    prem_out[oy:oy + nh, ox:ox + nw] = prem_r
    a_out[oy:oy + nh, ox:ox + nw] = a_r
    straight = np.where(a_out[..., None] > 1e-6, prem_out / np.maximum(a_out[..., None], 1e-6), 1.0)
    rgba = np.concatenate([np.clip(straight, 0, 1), a_out[..., None]], axis=-1).astype(np.float32)
    rgb_white = np.clip(prem_out + (1.0 - a_out[..., None]), 0, 1).astype(np.float32)
    return Recentred(rgba=rgba, rgb_white=rgb_white, mask=a_out, bbox=(y0, x0, y1, x1), scale=scale)
