"""Which prior an image-to-3D run distils from, and building it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from recon.priors.base import Prior
from recon.priors.library import LibraryPrior, LibraryPriorConfig
from recon.render.backend import RasterBackend


@dataclass
class ImagePriorConfig:
    """kind: ``library`` (the embedded, exact LibraryPrior: runs on a CPU with no weights),
    ``zero123`` or ``stable-zero123`` (real weights: a folder or a model-zoo name in ``path``).

    path: library folder (None = the shipped ``data/library``) or weights folder / zoo name.
    guidance_scale: CFG of the main term (None = the prior's default).
    camera_bin: trajectory-cache bin for camera-conditioned ODEs, degrees (0 = exact cameras).
    """

    kind: Literal["library", "zero123", "stable-zero123"] = "library"
    path: str | None = None
    guidance_scale: float | None = None
    camera_bin: float = 15.0
    library: LibraryPriorConfig = field(default_factory=LibraryPriorConfig)


def image_prior_model(config: ImagePriorConfig) -> str | None:
    """The zoo name or folder whose weights the run loads (None for the embedded library prior): ``path``,
    else the zoo model of the kind (``zero123-xl`` or ``stable-zero123``)."""
    if config.kind == "library":
        return None
    return config.path or ("stable-zero123" if config.kind == "stable-zero123" else "zero123-xl")


def build_image_prior(config: ImagePriorConfig, backend: RasterBackend, device: str = "cpu",
                      reference: tuple[float, float, float] | None = None) -> Prior:
    """The prior of ``config``; ``reference`` is the input view (elevation°, azimuth°, distance)."""
    if config.kind == "library":
        kwargs = {"reference": reference} if reference is not None else {}
        return LibraryPrior.from_folder(config.path, backend, config.library, **kwargs)
    from recon.priors.zero123 import load_zero123_prior

    return load_zero123_prior(image_prior_model(config), variant=config.kind, device=device)
