"""Photo -> the image prior's input: load, mask (alpha or rembg), recentre on white. One call per input."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from recon.io.images import DEFAULT_MAX_PIXELS, DEFAULT_MIN_SIDE, LoadedImage, load_image
from recon.io.recentre import RecentreConfig, Recentred, recentre
from recon.io.segment import RembgSegmenter, SegmentConfig, Segmented, segment


@dataclass
class InputConfig:
    """How photos are read, segmented and recentred (see the three modules for each field)."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    min_side: int = DEFAULT_MIN_SIDE
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    recentre: RecentreConfig = field(default_factory=RecentreConfig)


@dataclass
class PreparedInput:
    """``recentred.rgba`` (S, S, 4) / ``recentred.rgb_white`` (S, S, 3) are what the prior consumes."""

    image: LoadedImage
    segmented: Segmented
    recentred: Recentred


def prepare_input(path: str | Path, config: InputConfig | None = None,
                  segmenter: RembgSegmenter | None = None) -> PreparedInput:
    """Raises :class:`~recon.io.errors.InputError` (one line naming ``path``) for any unusable input.

    Pass ``segmenter`` to reuse one loaded rembg model across a batch; otherwise one is loaded only if
    this photo needs it.
    """
    config = config or InputConfig()
    image = load_image(path, max_pixels=config.max_pixels, min_side=config.min_side)
    seg = segment(image, config.segment, segmenter)
    return PreparedInput(image=image, segmented=seg, recentred=recentre(seg.rgb, seg.alpha, image.path,
                                                                        config.recentre))
