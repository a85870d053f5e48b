"""Load any image Pillow reads into float RGB (+ optional alpha) arrays, refusing bad files early.

What loads: PNG, JPEG, WebP, TIFF, BMP, GIF (first frame)... in the modes Pillow gives them:
grayscale (``L``, ``1``), 16-bit grayscale (``I;16*``, ``I``), float (``F``), palette (``P``, with or
without a transparent index), ``LA``/``PA``, ``RGB``/``RGBA``, ``CMYK`` (Pillow's conversion, no
colour management) and others Pillow converts to RGB. EXIF orientation is applied.

What is refused, each with one :class:`~recon.io.errors.InputError` line: a missing path or a
folder, an empty file, a file that is not an image, a truncated or corrupt image, an image smaller
than ``min_side`` on a side, and an image with more than ``max_pixels`` pixels. The size checks read
only the header, so a decompression bomb is refused before any pixel is decoded.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from recon.io.errors import InputError

DEFAULT_MAX_PIXELS = 64_000_000  # 8000 x 8000; below Pillow's own bomb warning (~89.5 Mpx)
DEFAULT_MIN_SIDE = 32

_REMEDY_REEXPORT = "re-export or re-download the image (PNG or JPEG) and try again"


@dataclass
class LoadedImage:
    """rgb (H, W, 3) float32 in [0, 1]; alpha (H, W) float32 in [0, 1] or None when the file has none.

    ``mode`` is Pillow's mode of the file as stored; ``sha256`` the hash of the file's bytes.
    """

    path: Path
    rgb: np.ndarray
    alpha: np.ndarray | None
    mode: str
    sha256: str

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def load_image(
    path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS, min_side: int = DEFAULT_MIN_SIDE
) -> LoadedImage:
    """Read ``path``; raise :class:`InputError` (one line, naming the file and a remedy) if unusable."""
    path = Path(path)
    _check_file(path)
    try:
        with warnings.catch_warnings():
            # Sizes between Pillow's warning and error thresholds are judged by our own limit below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except Image.DecompressionBombError as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(found.group(1)) / 1e6:.0f} Mpx" if found else "too many pixels"
        raise InputError(path, f"image has {size}, above the {max_pixels / 1e6:.0f} Mpx limit",
                         _remedy_too_large(max_pixels)) from exc
    except UnidentifiedImageError as exc:
        raise InputError(path, "not an image file that Pillow can read",
                         "pass a PNG, JPEG, WebP or TIFF image") from exc
    except OSError as exc:
        raise InputError(path, f"cannot read the file ({exc.strerror or exc})",
                         "check the path and its permissions") from exc
    with im:
        width, height = im.size  # from the header only; no pixels decoded yet
        if width * height > max_pixels:
            raise InputError(
                path, f"image is {width}x{height} ({width * height / 1e6:.0f} Mpx), above the "
                f"{max_pixels / 1e6:.0f} Mpx limit", _remedy_too_large(max_pixels))
        if min(width, height) < min_side:
            raise InputError(path, f"image is only {width}x{height} pixels",
                             f"use a photo at least {min_side} pixels on each side")
        try:
            im.load()
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise InputError(path, f"the image data is truncated or corrupt ({_short(exc)})",
                             _REMEDY_REEXPORT) from exc
        mode = im.mode
        try:
            oriented = ImageOps.exif_transpose(im)
        except Exception:  # a malformed EXIF block must not make a readable image unusable
            oriented = im
        rgb, alpha = _to_float(oriented)
    return LoadedImage(path=path, rgb=rgb, alpha=alpha, mode=mode, sha256=file_sha256(path))


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputError(path, "no such file", "check the path (and quote it if it has spaces)")
    if path.is_dir():
        raise InputError(path, "is a folder, not an image file",
                         "pass an image file (use `recon batch` for a folder)")
    if path.stat().st_size == 0:
        raise InputError(path, "the file is empty", _REMEDY_REEXPORT)


def _remedy_too_large(max_pixels: int) -> str:
    side = int(max_pixels ** 0.5)
    return f"downscale it to at most {side}x{side} pixels (a few thousand pixels a side is plenty)"


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:120]


def _to_float(im: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """-> rgb (H, W, 3) float32, alpha (H, W) float32 or None; both in [0, 1]."""
    mode = im.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        gray = _high_depth_gray(np.asarray(im))
        return np.repeat(gray[..., None], 3, axis=-1), None
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode in ("PA", "RGBa", "RGBX") or (mode not in ("RGB", "RGBA", "L", "LA", "La", "1")
                                             and "A" in im.getbands()):
        im = im.convert("RGBA")
    elif mode == "La":
        im = im.convert("LA")
    elif mode == "1":
        im = im.convert("L")
    elif mode not in ("RGB", "RGBA", "L", "LA"):
        im = im.convert("RGB")  # CMYK, YCbCr, LAB, HSV...
    arr = np.asarray(im, dtype=np.float32) / 255.0
    if im.mode == "L":
        return np.repeat(arr[..., None], 3, axis=-1), None
    if im.mode == "LA":
        return np.repeat(arr[..., :1], 3, axis=-1), np.ascontiguousarray(arr[..., 1])
    if im.mode == "RGBA":
        return np.ascontiguousarray(arr[..., :3]), np.ascontiguousarray(arr[..., 3])
    return arr, None


def _high_depth_gray(arr: np.ndarray) -> np.ndarray:
    """16-bit / 32-bit integer or float grayscale -> float32 in [0, 1].

    Integers are read as 16-bit (what PNG and most TIFFs hold); values beyond 65535 or floats beyond 1
    are scaled by the image's maximum rather than clipped.
    """
    a = arr.astype(np.float64)
    if np.issubdtype(arr.dtype, np.floating):
        top = max(1.0, float(np.nanmax(a)) if a.size else 1.0)
    else:
        top = max(65535.0, float(a.max()) if a.size else 1.0)
    return np.clip(np.nan_to_num(a / top), 0.0, 1.0).astype(np.float32)
