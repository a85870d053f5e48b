"""Object mask of a photo: its own alpha channel when that carries one, otherwise rembg.

rembg is an optional extra (``pip install "recon[segment]"``) and is imported only when a photo
needs it: its first import compiles numba kernels (~35 s on 2 cores, cached after that). The model
file is looked up where rembg keeps it (``$REMBG_HOME``, see :func:`rembg_model_candidates`) or given
explicitly (``--segmenter-model PATH``); on first use a missing one is fetched by rembg's own code
(the session class's ``download_models``: pooch, with a progress bar, checksum-checked, into
``<rembg home>/models/<model>/``) and cached there. With ``RECON_OFFLINE=1`` or ``HF_HUB_OFFLINE=1``
nothing is downloaded; that, like a failed download, is one :class:`InputError` line saying which
file to fetch from where (:data:`REMBG_MODEL_FILES`) and where to put it.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from recon.io.errors import InputError
from recon.io.images import LoadedImage

# rembg's single-file local models (name = rembg session name = file stem).
SegmenterModel = Literal[
    "u2net", "u2netp", "silueta", "isnet-general-use", "isnet-anime",
    "birefnet-general", "birefnet-general-lite", "bria-rmbg",
]
REMBG_RELEASES = "https://github.com/danielgatis/rembg/releases/tag/v0.0.0"
REMBG_DOWNLOADS = "https://github.com/danielgatis/rembg/releases/download/v0.0.0"
# The release file each model's rembg session downloads (rembg 2.0.86, ``rembg/sessions/*.py``); rembg
# saves it as ``<model>.onnx``. tests/io/test_rembg_first_use.py checks these against rembg's own calls.
REMBG_MODEL_FILES: dict[str, str] = {
    "u2net": "u2net.onnx", "u2netp": "u2netp.onnx", "silueta": "silueta.onnx",
    "isnet-general-use": "isnet-general-use.onnx", "isnet-anime": "isnet-anime.onnx",
    "birefnet-general": "BiRefNet-general-epoch_244.onnx",
    "birefnet-general-lite": "BiRefNet-general-bb_swin_v1_tiny-epoch_232.onnx",
    "bria-rmbg": "bria-rmbg-2.0.onnx",
}
_TRUE = {"1", "ON", "YES", "TRUE"}  # how huggingface_hub reads boolean variables


@dataclass
class SegmentConfig:
    """``model``: rembg model name (u2net is what the Zero-1-to-3 / threestudio preprocessing uses);
    ``model_path``: an explicit ``.onnx`` file of that model's architecture (overrides the lookup);
    ``use_alpha``: take an informative alpha channel as the mask instead of segmenting."""

    model: SegmenterModel = "u2net"
    model_path: Path | None = None
    use_alpha: bool = True


@dataclass
class Segmented:
    """rgb (H, W, 3) float32 in [0, 1]; alpha (H, W) float32 in [0, 1]; source: "alpha" or "rembg:<model>"."""

    rgb: np.ndarray
    alpha: np.ndarray
    source: str


def alpha_is_informative(alpha: np.ndarray | None) -> bool:
    """An alpha channel is the mask when some pixel is mostly transparent (a fully opaque one says nothing).

    A fully transparent one counts as informative: it says there is no object, and recentring refuses it.
    """
    return alpha is not None and bool((alpha < 0.5).any())


def is_flat(rgb: np.ndarray, tol: float = 12.0 / 255.0, fraction: float = 5e-4) -> bool:
    """True when (nearly) every pixel has the same colour: a blank photo with no object to find.

    Per channel, the spread between the ``fraction`` and ``1 - fraction`` quantiles must stay within
    ``tol``, so sensor noise and JPEG ringing do not count as an object, while any object covering more
    than ``fraction`` of the image (recentring's smallest accepted object) does.
    """
    flat = rgb.reshape(-1, rgb.shape[-1])
    if flat.shape[0] > 1_000_000:  # a regular subsample keeps this cheap on large photos
        flat = flat[:: flat.shape[0] // 1_000_000]
    lo, hi = np.quantile(flat, [fraction, 1.0 - fraction], axis=0)
    return bool((hi - lo).max() <= tol)


def rembg_model_candidates(model: str, env: dict[str, str] | None = None) -> list[Path]:
    """Where rembg looks for ``<model>.onnx``, in its order (mirrors ``rembg.sessions.base``).

    ``$U2NET_HOME`` (legacy) wins when set; otherwise ``$REMBG_HOME``, else ``$XDG_DATA_HOME/rembg``,
    else ``~/.rembg``; the file sits in ``<home>/models/<model>/<model>.onnx``. The old flat layout
    ``<$U2NET_HOME or $XDG_DATA_HOME or ~>/.u2net/<model>.onnx`` is also read.
    """
    env = dict(os.environ) if env is None else env
    xdg = env.get("XDG_DATA_HOME")
    legacy = Path(env["U2NET_HOME"]) if env.get("U2NET_HOME") else Path(xdg or "~") / ".u2net"
    if env.get("U2NET_HOME"):
        home = legacy
    else:
        home = Path(env["REMBG_HOME"]) if env.get("REMBG_HOME") else (
            Path(xdg) / "rembg" if xdg else Path("~") / ".rembg")
    fname = f"{model}.onnx"
    return [(home / "models" / model / fname).expanduser(), (legacy / fname).expanduser()]


def rembg_model_url(model: str) -> str:
    """Where rembg downloads ``model`` from."""
    return f"{REMBG_DOWNLOADS}/{REMBG_MODEL_FILES.get(model, model + '.onnx')}"


def offline_reason(env: dict[str, str] | None = None) -> str:
    """'' when downloads are allowed, else the switch that forbids them (``RECON_OFFLINE=1``, then
    ``HF_HUB_OFFLINE=1``; recon.priors.zoo.offline_reason reads the same two for the priors' weights)."""
    env = dict(os.environ) if env is None else env
    for var in ("RECON_OFFLINE", "HF_HUB_OFFLINE"):
        if env.get(var, "").upper() in _TRUE:
            return f"{var}=1"
    return ""


def rembg_installed() -> bool:
    return importlib.util.find_spec("rembg") is not None and importlib.util.find_spec("onnxruntime") is not None


def _fetch_it_yourself(model: str, target: Path) -> str:
    return (f"on a machine with network download {rembg_model_url(model)} and save it as {target} (or set "
            "REMBG_HOME), pass --segmenter-model PATH, or pass an RGBA image whose alpha channel is the mask")


def resolve_rembg_model(image_path: Path, model: str, model_path: Path | None = None,
                        env: dict[str, str] | None = None) -> Path:
    """The ``.onnx`` file to use: ``model_path``, else the one rembg already has; never downloads.

    :class:`InputError` when ``model_path`` is missing, or when rembg has no copy yet and downloads are off
    (:func:`offline_reason`); with downloads on, a missing model raises :class:`FileNotFoundError` for
    :func:`fetch_rembg_model` to fetch.
    """
    if model_path is not None:
        model_path = Path(model_path).expanduser()
        if not model_path.is_file():
            raise InputError(model_path, "segmentation model file not found",
                             f"pass the path of a rembg {model} .onnx file, or pass an RGBA image "
                             "whose alpha channel is the object mask")
        return model_path
    candidates = rembg_model_candidates(model, env)
    for path in candidates:
        if path.is_file():
            return path
    off = offline_reason(env)
    if off:
        raise InputError(
            image_path,
            f"has no alpha channel to use as the object mask and the background-removal model {model}.onnx "
            f"is not on this machine (looked for {candidates[0]}); {off} forbids downloading it",
            _fetch_it_yourself(model, candidates[0]))
    raise FileNotFoundError(candidates[0])


def fetch_rembg_model(image_path: Path, model: str, env: dict[str, str] | None = None) -> Path:
    """rembg's ``<model>.onnx``: the copy it already has, else downloaded now by rembg's own code (its
    session class's ``download_models``: pooch with a progress bar and rembg's checksum) into
    ``<rembg home>/models/<model>/``, where later runs find it. One :class:`InputError` line when
    downloads are off or the download fails: which file, from where, where to put it. (``env`` is for the
    lookup and the messages; rembg's download reads ``os.environ``.)"""
    try:
        return resolve_rembg_model(image_path, model, None, env)
    except FileNotFoundError:
        pass
    target = rembg_model_candidates(model, env)[0]
    try:
        from rembg.sessions import sessions
    except ImportError as exc:
        raise InputError(image_path, f"rembg is not installed ({exc.name} missing)",
                         'pip install "recon[segment]", or pass an RGBA image whose alpha channel is the mask') from exc
    if model not in sessions:
        raise InputError(image_path, f"rembg has no model named {model!r}", f"choose one of {', '.join(sorted(sessions))}")
    import requests

    print(f"rembg's background-removal model {model}.onnx is not on this machine: downloading "
          f"{rembg_model_url(model)} into {target.parent} (first use; later runs reuse it)", file=sys.stderr)
    try:
        path = Path(sessions[model].download_models())
    except (requests.RequestException, OSError, ValueError) as exc:  # network, disk, checksum mismatch
        raise InputError(image_path, f"has no alpha channel to use as the object mask and the background-removal "
                         f"model {model}.onnx could not be downloaded ({_short(exc)})",
                         _fetch_it_yourself(model, target)) from exc
    if not path.is_file():
        raise InputError(image_path, f"rembg reported {path} for model {model} but wrote no file there",
                         _fetch_it_yourself(model, target))
    return path


def photo_needs_segmenter(image_path: str | Path, config: SegmentConfig, max_pixels: int, min_side: int) -> bool:
    """Whether :func:`segment` will run rembg on this photo (it reads the image: :class:`InputError` when
    the photo cannot be used). Lets the CLI fetch rembg's model before its progress bars start."""
    from recon.io.images import load_image

    image = load_image(image_path, max_pixels=max_pixels, min_side=min_side)
    return not (config.use_alpha and alpha_is_informative(image.alpha)) and not is_flat(image.rgb)


class RembgSegmenter:
    """A loaded rembg model; call it on (H, W, 3) float RGB to get an (H, W) float mask in [0, 1].

    Build it once per run: loading the model is the slow part. The session reads exactly ``model_file``
    (from ``--segmenter-model``, or where :func:`fetch_rembg_model` found or put it).
    """

    def __init__(self, model: str, model_file: Path):
        try:
            import onnxruntime as ort
            from rembg.sessions import sessions
        except ImportError as exc:
            raise InputError(model_file, f"rembg is not installed ({exc.name} missing)",
                             'pip install "recon[segment]", or pass an RGBA image whose alpha channel '
                             "is the mask") from exc
        if model not in sessions:
            raise InputError(model_file, f"rembg has no model named {model!r}",
                             f"choose one of {', '.join(sorted(sessions))}")
        base = sessions[model]
        fixed = str(model_file)
        local = type(f"Local{base.__name__}", (base,),
                     {"download_models": classmethod(lambda cls, *a, **k: fixed)})
        try:
            self.session = local(model, ort.SessionOptions())
        except Exception as exc:  # onnxruntime raises its own types for unreadable or wrong models
            raise InputError(model_file, f"cannot load this segmentation model ({_short(exc)})",
                             f"replace it with the {model}.onnx file from {REMBG_RELEASES}") from exc
        self.model = model

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        from PIL import Image

        pil = Image.fromarray((np.clip(rgb, 0, 1) * 255).round().astype(np.uint8), "RGB")
        mask = self.session.predict(pil)[0]
        out = np.asarray(mask.convert("L"), dtype=np.float32) / 255.0
        return np.nan_to_num(out, nan=0.0)


def segment(image: LoadedImage, config: SegmentConfig | None = None,
            segmenter: RembgSegmenter | None = None) -> Segmented:
    """The image with an object mask.

    Uses the image's alpha when informative (see :func:`alpha_is_informative`); else runs ``segmenter``
    (built from ``config`` when not given). A single-colour image is refused before any model loads.
    """
    config = config or SegmentConfig()
    if config.use_alpha and alpha_is_informative(image.alpha):
        return Segmented(rgb=image.rgb, alpha=image.alpha, source="alpha")
    if is_flat(image.rgb):
        raise InputError(image.path, "the image is a single flat colour, with no object to segment",
                         "photograph the object against a contrasting background, or pass an RGBA "
                         "image whose alpha channel is the mask")
    if segmenter is None:
        segmenter = make_segmenter(image.path, config)
    return Segmented(rgb=image.rgb, alpha=segmenter(image.rgb), source=f"rembg:{segmenter.model}")


def make_segmenter(image_path: Path, config: SegmentConfig,
                   env: dict[str, str] | None = None) -> RembgSegmenter:
    """The model file (``model_path``; else rembg's copy, fetched by rembg on first use) loaded."""
    if not rembg_installed():
        raise InputError(image_path, "has no alpha channel to use as the object mask and background removal "
                         "(rembg) is not installed",
                         'pip install "recon[segment]" (its model is fetched on first use), or pass '
                         "an RGBA image whose alpha channel is the mask")
    if config.model_path is not None:
        model_file = resolve_rembg_model(image_path, config.model, config.model_path, env)
    else:
        model_file = fetch_rembg_model(image_path, config.model, env)
    return RembgSegmenter(config.model, model_file)


def _short(exc: BaseException) -> str:
    return (" ".join(str(exc).split()) or type(exc).__name__)[:160]
