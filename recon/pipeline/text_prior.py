"""Which text prior a text-to-3D run distils from (Stable Diffusion or MVDream), and loading it.

``--prior`` takes a kind (``sd``, ``mvdream``: the zoo's default model of that kind, ``sd-2.1-base`` —
DSD's text setting — or ``mvdream``), a model-zoo name (``sd-1.5``) or a diffusers folder; the kind
of a name comes from the zoo, the kind of a folder from its layout. Nothing is loaded to decide it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from recon.priors.base import Prior
from recon.priors.speed import DTypeName, SpeedConfig

TextKind = Literal["sd", "mvdream"]
TEXT_KINDS: tuple[str, ...] = ("sd", "mvdream")
DEFAULT_MODEL = {"sd": "sd-2.1-base", "mvdream": "mvdream"}
_ZOO_KIND = {"stable-diffusion": "sd", "mvdream": "mvdream"}  # zoo / folder kind -> text kind


@dataclass
class TextPriorConfig:
    """The text prior of a run.

    kind: ``sd`` (Stable Diffusion 1.5 / 2.1-base, view-dependent prompts) or ``mvdream`` (4 views at
        once; needs ``stage1.cameras.group`` and ``stage2.cameras.group`` = 4, which its recipe sets).
    path: a diffusers folder or a model-zoo name; None = the zoo default for the kind.
    guidance_scale: CFG s of the main term, ε_u + s(ε_c − ε_u); None = the prior's default
        (SD 7.5, MVDream 7.0). The DSD ODE uses ``distill.ode_guidance_scale`` (None: the same default).
    negative_prompt: conditions the unconditional branch.
    perp_neg: SD only: Perp-Neg between the view prompts (threestudio's weights).
    view_prompts: SD only: append ", front / side / back / overhead view" by camera.
    camera_bin: trajectory-cache bin for camera-conditioned ODEs, degrees (0 = exact cameras). SD
        without Perp-Neg depends on the camera only through the view suffix, so its trajectories are
        keyed by the suffix and this does not apply.
    dtype: network precision (``auto`` = float16 on CUDA, float32 on the CPU).
    """

    kind: TextKind = "sd"
    path: str | None = None
    guidance_scale: float | None = None
    negative_prompt: str = ""
    perp_neg: bool = False
    view_prompts: bool = True
    camera_bin: float = 15.0
    dtype: DTypeName = "auto"


def text_prior_flag(value: str) -> dict[str, Any]:
    """``--prior`` -> ``{"kind": ..., "path": ...}``; ValueError (one line) when it names no text model."""
    if value in TEXT_KINDS:
        return {"kind": value}
    from recon.priors.folder_layout import detect_kind
    from recon.priors.zoo import ZooError, load_zoo

    zoo = load_zoo()
    if value in zoo.names():
        kind = zoo.get(value).kind
        where = f"model {value!r}"
    elif Path(value).expanduser().exists():
        kind = detect_kind(Path(value).expanduser())  # WeightsError (a ValueError) names the folder
        where = f"{value}"
    else:
        raise ZooError(f"--prior {value!r} is not sd, mvdream, a model-zoo name ({', '.join(zoo.names())}) "
                       "or an existing model folder")
    if kind not in _ZOO_KIND:
        raise ValueError(f"{where} is a {kind} model (an image prior); recon text needs Stable Diffusion or "
                         "MVDream: --prior sd, --prior mvdream or their folders")
    return {"kind": _ZOO_KIND[kind], "path": value}


def text_prior_model(config: TextPriorConfig) -> str:
    """The zoo name or folder whose weights the run loads: ``path``, else the zoo default of the kind."""
    return config.path or DEFAULT_MODEL[config.kind]


@contextlib.contextmanager
def _no_transformers_progress() -> Iterator[None]:
    """Hide transformers' per-model "Loading weights" bars (stderr stays for recon's one error line)."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def build_text_prior(config: TextPriorConfig, device: str = "cpu") -> Prior:
    """Resolve (folder / ``$RECON_MODELS`` / Hugging Face cache), verify and load the prior.

    Raises :class:`~recon.priors.zoo.ZooError` (a missing model: what to download and where) or
    :class:`~recon.priors.weight_files.WeightsError` (a broken folder: which file), each one line.
    """
    from recon.priors.folder_layout import detect_kind
    from recon.priors.weight_files import WeightsError
    from recon.priors.zoo import resolve

    resolved = resolve(text_prior_model(config))
    found = resolved.entry.kind if resolved.entry else detect_kind(resolved.path)
    if _ZOO_KIND.get(found) != config.kind:
        raise WeightsError(resolved.path, f"holds a {found} model, not {config.kind}",
                           f"set prior.kind to match the folder, or point prior.path at a {config.kind} model")
    speed = SpeedConfig(device=device, dtype=config.dtype)
    with _no_transformers_progress():
        return _load(config, resolved.path, speed)


def _load(config: TextPriorConfig, folder: Path, speed: SpeedConfig) -> Prior:
    if config.kind == "mvdream":
        from recon.priors.mvdream import MVDreamPrior

        kwargs = {} if config.guidance_scale is None else {"default_guidance_scale": config.guidance_scale}
        return MVDreamPrior.from_pretrained(folder, speed=speed, **kwargs)
    from recon.priors.stable_diffusion import StableDiffusionPrior
    from recon.priors.view_prompts import PerpNegConfig, ViewPromptConfig

    kwargs = {} if config.guidance_scale is None else {"default_guidance_scale": config.guidance_scale}
    return StableDiffusionPrior.from_pretrained(folder, speed=speed,
                                                view_prompts=ViewPromptConfig(enabled=config.view_prompts),
                                                perp_neg=PerpNegConfig(enabled=config.perp_neg), **kwargs)
