"""Random guidance cameras in groups of views that a multi-view prior denoises jointly.

MVDream was trained on 4 views of one object at one elevation, 90° apart in azimuth, so its guidance
views must come in such groups. threestudio's ``RandomMultiviewCameraIterableDataset`` (the MVDream
recipe) draws, per group of ``G`` views, one elevation, one distance and one field of view, and the
azimuths ``lo + (u + j) · span / G`` for j = 0 … G−1 with u ~ U(0, 1) and ``span`` the azimuth range:
over the full circle the views are 360°/G apart (90° for MVDream) and every group covers the range.
recon follows that rule, with elevation uniform in degrees (threestudio mixes that with uniform on
the sphere half the time).

``group == 1`` is :func:`recon.render.cameras.random_cameras` itself, draw for draw.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from recon.render.cameras import DEFAULT_DISTANCE, DEFAULT_FOVY, Cameras, camera_batch, random_cameras


@dataclass
class CameraSampling:
    """Ranges of a stage's random guidance cameras (degrees; distance in world units), one spelling for
    both stages (``stage1.cameras.*``, ``stage2.cameras.*``).

    group: 1 = independent cameras; G > 1 = groups of G views sharing elevation, distance, fovy
        and background colour, azimuths spread evenly over the range (360°/G apart over the full
        circle) — MVDream needs G = 4 and views per step that are multiples of 4.
    """

    elevation_range: tuple[float, float] = (-10.0, 45.0)
    azimuth_range: tuple[float, float] = (-180.0, 180.0)
    distance_range: tuple[float, float] = (DEFAULT_DISTANCE, DEFAULT_DISTANCE)
    fovy_range: tuple[float, float] = (DEFAULT_FOVY, DEFAULT_FOVY)
    group: int = 1

    def draw(self, n: int, generator: torch.Generator, resolution: int | tuple[int, int]) -> Cameras:
        """``n`` cameras from these ranges (:func:`grouped_random_cameras`)."""
        return grouped_random_cameras(n, generator, self.group, self.elevation_range, self.azimuth_range,
                                      self.distance_range, self.fovy_range, resolution)


def grouped_random_cameras(
    n: int,
    generator: torch.Generator,
    group: int,
    elevation_range: tuple[float, float],
    azimuth_range: tuple[float, float],
    distance_range: tuple[float, float],
    fovy_range: tuple[float, float],
    resolution: int | tuple[int, int],
) -> Cameras:
    """``n`` cameras in ``n / group`` consecutive groups (``n`` must be a multiple of ``group``).

    Each group draws exactly 4 values from ``generator`` (float64 on the CPU: elevation, azimuth
    start, distance, fovy), so the draws do not depend on the device.
    """
    if group < 1:
        raise ValueError(f"camera group must be >= 1, got {group}")
    if group == 1:
        return random_cameras(n, generator, elevation_range, azimuth_range, distance_range, fovy_range, resolution)
    if n % group:
        raise ValueError(f"{n} views do not split into groups of {group} (MVDream needs multiples of 4)")
    groups = n // group
    u = torch.rand(4, groups, generator=generator, dtype=torch.float64)

    def span(row: int, lo_hi: tuple[float, float]) -> torch.Tensor:
        lo, hi = lo_hi
        return (lo + (hi - lo) * u[row]).repeat_interleave(group)

    lo, hi = azimuth_range
    step = (hi - lo) / group
    azimuth = lo + (u[1][:, None] + torch.arange(group, dtype=torch.float64)[None, :]).reshape(-1) * step
    return camera_batch(span(0, elevation_range), azimuth, span(2, distance_range), span(3, fovy_range), resolution)


def check_group(views: int, group: int, what: str) -> None:
    """Raise a clear ValueError when ``views`` is not a positive multiple of ``group``."""
    if group < 1:
        raise ValueError(f"{what}: camera group must be >= 1, got {group}")
    if views % group:
        raise ValueError(f"{what}: {views} views per hypothesis do not split into groups of {group} "
                         f"(a multi-view prior such as MVDream needs multiples of {group})")
