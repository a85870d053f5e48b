"""The toy world rendered for training a view-conditioned prior: every library member from a grid of cameras.

Renders go through :class:`recon.priors.library.LibraryPrior` (its shape normalisation matches how an
input photo is recentred, and its renderer is the one the benchmark scores against) at ``render_size``
and are then resized to ``image_size`` the way :meth:`recon.priors.zero123.Zero123Prior.prepare_image`
and ``encode`` resize an input photo or a NeRF render (bilinear, antialiased), so training images and
the images the trained prior sees at run time are made alike.

The front view (elevation 0, azimuth 0 — the library's reference view) is in every grid: from there
all members of a family render identically, which is the ambiguity the prior has to learn.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from recon.render.cameras import DEFAULT_DISTANCE, DEFAULT_FOVY


@dataclass(frozen=True)
class ViewGrid:
    """Target cameras: every (elevation, azimuth) pair at one distance. The defaults cover the camera
    range ``recon run`` samples (elevation −10°..45°, all azimuths) every 10° of azimuth."""

    elevations: tuple[float, ...] = (-10.0, 0.0, 15.0, 30.0, 45.0)
    azimuth_step: float = 10.0
    distance: float = DEFAULT_DISTANCE

    def cameras(self) -> torch.Tensor:
        """(V, 3) float64 (elevation°, azimuth°, distance), elevation-major, azimuths from 0."""
        azims = torch.arange(0.0, 360.0, self.azimuth_step, dtype=torch.float64)
        rows = [(e, float(a), self.distance) for e in self.elevations for a in azims]
        return torch.tensor(rows, dtype=torch.float64)

    def front_index(self) -> int:
        cams = self.cameras()
        hit = ((cams[:, 0] == 0) & (cams[:, 1] == 0)).nonzero().flatten()
        if hit.numel() != 1:
            raise ValueError("the view grid must contain the front view (elevation 0, azimuth 0)")
        return int(hit[0])


@dataclass
class ToyViews:
    """images: (M, V, 3, S, S) float32 in [0, 1] on white; cameras: (V, 3) float64; names: M member names
    (``family/member``); families: M family names; front: index of the front view in ``cameras``."""

    images: torch.Tensor
    cameras: torch.Tensor
    names: list[str]
    families: list[str]
    front: int

    def sha256(self) -> str:
        """Digest of the rendered tensors (float32 bytes), the cameras (float64 bytes) and the member names."""
        h = hashlib.sha256()
        h.update(self.images.detach().to(torch.float32).contiguous().numpy().tobytes())
        h.update(self.cameras.detach().to(torch.float64).contiguous().numpy().tobytes())
        h.update("\n".join(self.names).encode())
        return h.hexdigest()


def resize_like_prior(images: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> (B, 3, size, size), as the Zero-1-to-3 prior resizes its inputs."""
    if images.shape[-2:] == (size, size):
        return images
    return F.interpolate(images, (size, size), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


def library_prior(render_size: int, library: str | None = None):
    """The library (``data/library``, or built in code) normalised as the LibraryPrior does, rendering
    at ``render_size`` with exact (unbinned) cameras on the CPU rasteriser."""
    from recon.priors.library import LibraryPrior, LibraryPriorConfig
    from recon.render.cpu import CpuRasterizer

    # max_cached_views=0: every camera is rendered once here, so keep no render cache.
    config = LibraryPriorConfig(image_size=render_size, render_bin_deg=0.0, fovy=DEFAULT_FOVY, max_cached_views=0)
    return LibraryPrior.from_folder(library, CpuRasterizer(), config)


@torch.no_grad()
def render_member_views(prior, cameras: torch.Tensor, image_size: int, chunk: int = 24) -> torch.Tensor:
    """(M, V, 3, S, S) renders in [0, 1] of every member of ``prior`` at ``cameras`` (V, 3)."""
    out = []
    for i in range(0, cameras.shape[0], chunk):
        views = prior.views(cameras[i: i + chunk].to(torch.float32))  # (n, M, 3, R, R) in [-1, 1]
        n, m = views.shape[:2]
        rgb = ((views + 1) / 2).clamp(0, 1).flatten(0, 1)
        out.append(resize_like_prior(rgb, image_size).reshape(n, m, 3, image_size, image_size))
    return torch.cat(out).transpose(0, 1).contiguous()


def render_toy_views(grid: ViewGrid | None = None, image_size: int = 32, render_size: int = 128,
                     library: str | None = None, families: Sequence[str] | None = None) -> ToyViews:
    """Render every member (of ``families``, default all) of the library at every camera of ``grid``."""
    grid = grid or ViewGrid()
    prior = library_prior(render_size, library)
    if families is not None:
        keep = [s for s in prior.shapes if s.family in set(families)]
        if not keep:
            raise ValueError(f"no family of {list(families)} in the library")
        prior.shapes = keep
    cameras = grid.cameras()
    images = render_member_views(prior, cameras, image_size)
    return ToyViews(images, cameras, [s.name for s in prior.shapes], [s.family for s in prior.shapes],
                    grid.front_index())
