"""One entry point from a zoo name or a folder to a ready prior.

``load_prior("zero123-xl")`` resolves the folder (explicit path -> ``$RECON_MODELS`` -> Hugging Face
cache), picks the prior class from the zoo entry (or from the folder's layout), verifies the files
and loads them with the given speed settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from recon.priors.base import Prior
from recon.priors.folder_layout import detect_kind
from recon.priors.speed import SpeedConfig
from recon.priors.zoo import Resolved, Zoo, resolve


def load_prior(
    name_or_path: str | Path,
    path: str | Path | None = None,
    speed: SpeedConfig | None = None,
    variant: Literal["zero123", "stable-zero123"] | None = None,
    zoo: Zoo | None = None,
) -> Prior:
    """The prior named ``name_or_path`` (a zoo name or a diffusers folder).

    Args:
        name_or_path: zoo name (``zero123-xl``, ``stable-zero123``, ``sd-2.1-base``, ``mvdream`` ...)
            or a folder.
        path: explicit folder overriding the lookup (the zoo entry still picks the variant).
        speed: device / dtype / attention / compile settings.
        variant: Zero-1-to-3 pose convention for a folder with no zoo entry (default ``zero123``).
    """
    resolved: Resolved = resolve(name_or_path, zoo=zoo, path=path)
    kind = resolved.entry.kind if resolved.entry else detect_kind(resolved.path)
    if kind == "zero123":
        from recon.priors.zero123 import Zero123Prior

        chosen = variant or (resolved.entry.variant if resolved.entry and resolved.entry.variant else "zero123")
        return Zero123Prior.from_pretrained(resolved.path, variant=chosen, speed=speed)  # type: ignore[arg-type]
    if kind == "mvdream":
        from recon.priors.mvdream import MVDreamPrior

        return MVDreamPrior.from_pretrained(resolved.path, speed=speed)
    from recon.priors.stable_diffusion import StableDiffusionPrior

    return StableDiffusionPrior.from_pretrained(resolved.path, speed=speed)
