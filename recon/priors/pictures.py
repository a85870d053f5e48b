"""Small recognisable pictures drawn in code: the means of the built-in mixture prior.

Each picture is a coloured shape on a white background, (3, S, S) in [-1, 1] (model space of a pixel
prior). They are drawn from analytic masks, so any size works and no asset file is needed.
"""

from __future__ import annotations

import torch

# (name, RGB in [0, 1]); order fixes which modes a k-mode mixture uses.
PICTURES: tuple[tuple[str, tuple[float, float, float]], ...] = (
    ("disc", (0.85, 0.15, 0.15)),
    ("square", (0.15, 0.3, 0.85)),
    ("triangle", (0.1, 0.65, 0.2)),
    ("cross", (0.95, 0.7, 0.05)),
    ("ring", (0.55, 0.2, 0.7)),
    ("diamond", (0.05, 0.6, 0.65)),
    ("bars", (0.4, 0.25, 0.1)),
    ("checker", (0.2, 0.2, 0.2)),
)


def _mask(name: str, size: int) -> torch.Tensor:
    c = (torch.arange(size, dtype=torch.float64) + 0.5) / size * 2 - 1
    y, x = torch.meshgrid(c, c, indexing="ij")
    r = (x**2 + y**2).sqrt()
    if name == "disc":
        return r < 0.7
    if name == "square":
        return (x.abs() < 0.6) & (y.abs() < 0.6)
    if name == "triangle":
        return (y < 0.65) & (y > 2 * x.abs() - 0.75)
    if name == "cross":
        return ((x.abs() < 0.22) & (y.abs() < 0.8)) | ((y.abs() < 0.22) & (x.abs() < 0.8))
    if name == "ring":
        return (r < 0.8) & (r > 0.45)
    if name == "diamond":
        return (x.abs() + y.abs()) < 0.8
    if name == "bars":
        return (torch.floor((x + 1) * 3).remainder(2) == 0) & (y.abs() < 0.8)
    if name == "checker":
        return (torch.floor((x + 1) * 2) + torch.floor((y + 1) * 2)).remainder(2) == 0
    raise KeyError(name)


def picture(name: str, size: int = 16) -> torch.Tensor:
    """(3, size, size) float64 picture in [-1, 1]: white background, coloured shape."""
    colour = dict(PICTURES)[name]
    mask = _mask(name, size).to(torch.float64)
    rgb = torch.tensor(colour, dtype=torch.float64).view(3, 1, 1)
    img = mask * rgb + (1 - mask) * torch.ones(3, 1, 1, dtype=torch.float64)
    return img * 2 - 1


def pictures(n: int, size: int = 16) -> tuple[list[str], torch.Tensor]:
    """The first ``n`` pictures' names and a (n, 3, size, size) float64 stack."""
    if not 1 <= n <= len(PICTURES):
        raise ValueError(f"between 1 and {len(PICTURES)} pictures are built in, not {n}")
    names = [name for name, _ in PICTURES[:n]]
    return names, torch.stack([picture(name, size) for name in names])


def photo_like(size: int = 256) -> torch.Tensor:
    """(3, size, size) float64 RGB in [0, 1]: a photo-like object on white, as a segmented input photo
    looks after recentring — a shaded, textured vase-and-ball silhouette with a hard edge against the
    white background, fine stripes (detail near the pixel scale), a specular highlight and a little
    sensor noise (fixed seed). Used to measure preprocessing conventions where they differ most: at
    silhouette edges and in fine texture."""
    c = (torch.arange(size, dtype=torch.float64) + 0.5) / size * 2 - 1
    y, x = torch.meshgrid(c, c, indexing="ij")  # y down
    # Vase: radius varies with height; ball: a disc overlapping its right side.
    radius = 0.32 + 0.12 * torch.sin(3.0 * (y + 0.2)) + 0.08 * (y > 0.35).to(torch.float64)
    vase = (x.abs() < radius) & (y > -0.7) & (y < 0.75)
    bx, by, br = x - 0.42, y - 0.38, 0.3
    ball = (bx**2 + by**2) < br**2
    # Lambertian shading from the upper left on a cylinder (vase) and a sphere (ball).
    nx_v = (x / radius.clamp_min(1e-6)).clamp(-1, 1)
    shade_v = (0.35 + 0.65 * (1 - nx_v**2).sqrt() * 0.8 - 0.25 * nx_v).clamp(0, 1)
    nz_b = (1 - (bx**2 + by**2) / br**2).clamp_min(0).sqrt()
    shade_b = (0.3 + 0.7 * (0.6 * nz_b - 0.5 * bx / br - 0.4 * by / br)).clamp(0, 1)
    stripes = 0.5 + 0.5 * torch.sin(2 * torch.pi * (y * size / 6.0 + 2.0 * x))  # ~6-pixel period
    vase_rgb = torch.stack([0.75 - 0.25 * stripes, 0.35 + 0.2 * stripes, 0.2 + 0.1 * stripes]) * shade_v
    highlight = torch.exp(-(((bx + 0.1) ** 2 + (by + 0.12) ** 2) / 0.003))
    ball_rgb = (torch.stack([0.15 + 0 * x, 0.35 + 0 * x, 0.8 + 0 * x]) * shade_b + highlight).clamp(0, 1)
    img = torch.ones(3, size, size, dtype=torch.float64)
    img = torch.where(vase, vase_rgb, img)
    img = torch.where(ball, ball_rgb, img)
    noise = torch.randn(3, size, size, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    obj = (vase | ball).to(torch.float64)
    return (img + 0.02 * noise * obj).clamp(0, 1)
