"""Volume rendering of K batched radiance fields: stratified samples, occupancy skipping, compositing.

Every ray takes ``samples_per_ray`` stratified samples over its chord through the scene cube (the
per-ray budget). Samples in unoccupied cells are dropped before the field runs: the survivors of
all K hypotheses are packed into one ``(K, P, 3)`` batch (P = the largest count over hypotheses,
shorter rows padded), evaluated in one field call, and scattered back. Compositing is the usual
piecewise-constant quadrature: α_i = 1 − exp(−σ_i δ), w_i = α_i ∏_{j<i}(1 − α_j),
rgb = Σ w_i c_i + (1 − Σ w_i) · background. Normals (−∇σ by finite differences, see
:class:`~recon.scene.field.RadianceField`) are evaluated only at samples whose weight exceeds
``normal_min_weight``, the few near the visible surface, or (the default, cheaper) once per ray at
its expected surface point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from recon import seeding
from recon.render.cameras import Cameras, rays
from recon.scene.field import RadianceField
from recon.scene.occupancy import OccupancyGrid


@dataclass
class VolumeConfig:
    """Attributes:
    samples_per_ray: stratified samples along each ray's chord through the scene cube.
    background: ``white`` or ``learned`` (a small per-hypothesis MLP of the ray direction).
    normals: how the normal map is made: ``surface`` = opacity · n(x̄) at each ray's expected
        surface point x̄ (one normal per ray, cheap), or ``composite`` = Σ w_i n_i over samples
        (threestudio's ``comp_normal``; one normal per visible sample, ~3× the cost of a render).
    normal_min_weight: rays (surface) or samples (composite) whose opacity / weight is below this
        get no normal.
    min_transmittance: samples whose transmittance (from a gradient-free density pass) is below
        this are dropped: early ray termination (0 = off, one pass). The extra pass costs more than
        it saves on the soft coarse fields of stage 1 (``benchmarks/nerf_step.py``), so it is off by
        default; it pays off once surfaces are opaque.
    """

    samples_per_ray: int = 64
    background: Literal["white", "learned"] = "white"
    normals: Literal["surface", "composite"] = "surface"
    normal_min_weight: float = 1e-3
    min_transmittance: float = 0.0


class LearnedBackground(nn.Module):
    """K per-hypothesis background colours as a function of ray direction: (K, R, 3) -> (K, R, 3)."""

    def __init__(self, hypotheses: Sequence[int], seed: int = 0, hidden: int = 16) -> None:
        super().__init__()
        gens = [seeding.generator(seed, h, "background_init") for h in hypotheses]

        def weight(n_in: int, n_out: int) -> nn.Parameter:
            bound = math.sqrt(6.0 / n_in)
            return nn.Parameter(torch.stack([(torch.rand(n_in, n_out, generator=g) * 2 - 1) * bound for g in gens]))

        self.w1 = weight(3, hidden)
        self.w2 = weight(hidden, 3)
        # Start white-ish (sigmoid(3) ≈ 0.95): the prior expects a light background.
        self.b2 = nn.Parameter(torch.full((len(gens), 1, 3), 3.0))

    def forward(self, directions: torch.Tensor) -> torch.Tensor:
        h = torch.relu(torch.bmm(directions, self.w1))
        return torch.sigmoid(torch.bmm(h, self.w2) + self.b2)


def ray_aabb(
    origins: torch.Tensor, directions: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Slab test of rays (..., 3) against boxes ``[lo, hi]`` (broadcastable to (..., 3)).

    Returns (near, far, hit), each (...); near is clamped at 0 (nothing behind the origin) and
    rays that miss get near = far = 0.
    """
    safe = torch.where(directions.abs() < 1e-12, torch.full_like(directions, 1e-12), directions)
    inv = 1.0 / safe
    t0 = (lo - origins) * inv
    t1 = (hi - origins) * inv
    near = torch.minimum(t0, t1).amax(-1).clamp(min=0.0)
    far = torch.maximum(t0, t1).amin(-1)
    hit = far > near
    zero = torch.zeros_like(near)
    return torch.where(hit, near, zero), torch.where(hit, far, zero), hit


def _pack(keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """keep (K, M) bool -> (hypothesis idx, flat idx, packed slot, P) of the kept entries.

    Entry (kk[j], ii[j]) goes to slot (kk[j], slot[j]) of a (K, P) batch, P = the largest count.
    """
    kk, ii = keep.nonzero(as_tuple=True)
    counts = keep.sum(1)
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(kk.numel(), device=keep.device) - starts[kk]
    return kk, ii, slot, int(counts.max()) if counts.numel() else 0


def _packed(values: torch.Tensor, kk: torch.Tensor, ii: torch.Tensor, slot: torch.Tensor, p: int) -> torch.Tensor:
    """values (K, M, ...) -> (K, P, ...) with the kept entries moved to their slots, zeros elsewhere."""
    out = values.new_zeros(values.shape[0], p, *values.shape[2:])
    out[kk, slot] = values[kk, ii]
    return out


def render_rays(
    field: RadianceField,
    origins: torch.Tensor,
    directions: torch.Tensor,
    config: VolumeConfig | None = None,
    *,
    occupancy: OccupancyGrid | None = None,
    generators: Sequence[torch.Generator] | None = None,
    background: torch.Tensor | nn.Module | None = None,
    normals: bool = False,
    normals_from: int = 0,
) -> dict[str, torch.Tensor]:
    """Render K hypotheses' rays.

    Rays are sampled only over their chord through the box around the occupied cells (the scene
    cube without an occupancy grid); rays that miss it take no samples at all.

    Args:
        field: K batched fields.
        origins, directions: (K, R, 3) rays of each hypothesis (directions unit length).
        occupancy: skip samples in unoccupied cells (None: evaluate every sample in the cube).
        generators: K generators for the stratified jitter (None: midpoints, deterministic).
        background: (K, R, 3) or (K, 1, 3) colours, a module mapping directions (K, R, 3) to
            colours, or None for white.
        normals: also render the normal map (see :attr:`VolumeConfig.normals`).
        normals_from: only rays with index >= this get normals (the others 0): a caller rendering rays that
            need no normal map alongside some that do pays for the latter only.

    Returns:
        dict with rgb (K, R, 3), opacity (K, R), depth (K, R) (expected hit distance, 0 where
        empty), background (K, R, 3), samples (0-d long: field evaluations) and, with ``normals``,
        normal (K, R, 3), opacity-weighted unit normals (length at most the opacity).
    """
    config = config or VolumeConfig()
    k, r, _ = origins.shape
    s = config.samples_per_ray
    radius = field.config.radius
    if occupancy is not None and occupancy.enabled:
        box = occupancy.bounds.to(origins)
        lo, hi = box[:, None, 0], box[:, None, 1]
    else:
        lo = origins.new_full((k, 1, 3), -radius)
        hi = -lo
    near, far, hit = ray_aabb(origins, directions, lo, hi)

    # Keep only the rays that cross the box: (K, Ra) packed, Ra = the most over hypotheses.
    kr, ir, rslot, ra = _pack(hit)
    o = _packed(origins, kr, ir, rslot, ra)
    d = _packed(directions, kr, ir, rslot, ra)
    near_a = _packed(near, kr, ir, rslot, ra)
    far_a = _packed(far, kr, ir, rslot, ra)

    if generators is None:
        u = origins.new_full((k, ra, s), 0.5)
    else:
        if len(generators) != k:
            raise ValueError(f"need {k} generators, got {len(generators)}")
        u = torch.stack([torch.rand((ra, s), generator=g, dtype=origins.dtype) for g in generators]).to(origins.device)
    step = (far_a - near_a) / s  # (K, Ra): constant spacing along each ray, 0 on padding rays
    t = near_a[..., None] + step[..., None] * (torch.arange(s, dtype=origins.dtype, device=origins.device) + u)
    points = o[:, :, None, :] + t[..., None] * d[:, :, None, :]  # (K, Ra, S, 3)

    keep = (step > 0)[..., None].expand(k, ra, s)
    if occupancy is not None and occupancy.enabled:
        keep = keep & occupancy.lookup(points)
    keep = keep.reshape(k, ra * s)
    kk, ii, slot, p = _pack(keep)
    flat_points = points.reshape(k, ra * s, 3)
    if config.min_transmittance > 0 and p > 0:
        # Early ray termination: a gradient-free density pass finds the samples hidden behind
        # opaque surfaces; they are dropped (their weights are < min_transmittance anyway), so
        # occluded space costs no colour evaluation and no backward pass.
        with torch.no_grad():
            sig0 = field.density(_packed(flat_points, kk, ii, slot, p))[kk, slot]
            tau0 = flat_points.new_zeros(k, ra * s).index_put((kk, ii), sig0).reshape(k, ra, s) * step[..., None]
            trans0 = torch.exp(-(torch.cumsum(tau0, dim=-1) - tau0)).reshape(k, ra * s)
        keep = keep & (trans0 > config.min_transmittance)
        kk, ii, slot, p = _pack(keep)

    sigma = origins.new_zeros(k, ra * s)
    col_kept = None
    if p > 0:
        sig_p, col_p = field(_packed(flat_points, kk, ii, slot, p))
        sigma = sigma.index_put((kk, ii), sig_p[kk, slot])
        col_kept = col_p[kk, slot]

    sigma = sigma.reshape(k, ra, s)
    tau = sigma * step[..., None]
    alpha = 1.0 - torch.exp(-tau)
    # Transmittance before each sample: exp(−Σ_{j<i} τ_j), the exclusive cumulative sum.
    trans = torch.exp(-(torch.cumsum(tau, dim=-1) - tau))
    weights = alpha * trans  # (K, Ra, S)
    opacity_a = weights.sum(-1)
    depth_a = (weights * t).sum(-1) / opacity_a.clamp(min=1e-6)
    depth_a = torch.where(opacity_a > 1e-6, depth_a, torch.zeros_like(depth_a))

    # Back to all R rays: ray (kr, ir) <- packed slot (kr, rslot).
    full_ray = kr * r + ir  # flat (K·R) index of each packed ray
    slot_ray = torch.full((k * max(ra, 1),), -1, dtype=torch.long, device=origins.device)
    slot_ray[kr * max(ra, 1) + rslot] = full_ray

    def unpack(values: torch.Tensor) -> torch.Tensor:
        out = values.new_zeros(k, r, *values.shape[2:])
        return out.index_put((kr, ir), values[kr, rslot])

    opacity = unpack(opacity_a)
    depth = unpack(depth_a)
    w_flat = weights.reshape(k, ra * s)
    rgb = origins.new_zeros(k * r, 3)
    if p > 0:
        w_kept = w_flat[kk, ii]
        ray_of = slot_ray[kk * max(ra, 1) + torch.div(ii, s, rounding_mode="floor")]
        rgb = rgb.index_add(0, ray_of, w_kept[:, None] * col_kept)
    rgb = rgb.reshape(k, r, 3)

    bg = _background_colours(background, directions).to(rgb)
    out = {
        "rgb": rgb + (1.0 - opacity[..., None]) * bg,
        "opacity": opacity,
        "depth": depth,
        "background": bg,
        "samples": torch.tensor(int(kk.numel())),
    }
    if normals:
        if config.normals == "surface":
            wanted = None
            if normals_from > 0:
                wanted = torch.zeros(k, max(ra, 1), dtype=torch.bool, device=origins.device)
                wanted[kr, rslot] = ir >= normals_from
                wanted = wanted[:, :ra]
            normal_a = _surface_normals(field, o, d, depth_a, opacity_a, config.normal_min_weight, wanted)
            out["normal"] = unpack(normal_a)
        else:
            normal = origins.new_zeros(k * r, 3)
            if p > 0:
                # Only samples that visibly contribute get normals (the selection is not differentiated).
                visible = w_kept.detach() > config.normal_min_weight
                if normals_from > 0:
                    visible = visible & (ray_of % r >= normals_from)
                sel = visible.nonzero(as_tuple=True)[0]
                if sel.numel() > 0:
                    keep_n = torch.zeros(k, ra * s, dtype=torch.bool, device=origins.device)
                    keep_n[kk[sel], ii[sel]] = True
                    nk, ni, nslot, np_ = _pack(keep_n)
                    n_p = field.normals(_packed(flat_points, nk, ni, nslot, np_))[nk, nslot]
                    n_ray = slot_ray[nk * max(ra, 1) + torch.div(ni, s, rounding_mode="floor")]
                    normal = normal.index_add(0, n_ray, w_flat[nk, ni][:, None] * n_p)
            out["normal"] = normal.reshape(k, r, 3)
    return out


def _background_colours(background: torch.Tensor | nn.Module | None, directions: torch.Tensor) -> torch.Tensor:
    """(K, R, 3) background colours of rays with ``directions`` (K, R, 3): white for None, a module's output, or
    (K, R, 3) / (K, 1, 3) colours expanded."""
    if background is None:
        return torch.ones_like(directions)
    if isinstance(background, nn.Module):
        return background(directions)
    return background.to(directions).expand(directions.shape)


def _surface_normals(field: RadianceField, o: torch.Tensor, d: torch.Tensor, depth: torch.Tensor,
                     opacity: torch.Tensor, min_opacity: float, wanted: torch.Tensor | None = None) -> torch.Tensor:
    """opacity · n(x̄) per ray, x̄ = o + depth · d the expected surface point (detached): (K, Ra, 3).

    One normal per ray instead of one per sample; rays with opacity <= ``min_opacity``, or not ``wanted``
    ((K, Ra) bool, None = all), get zero.
    """
    k, ra, _ = o.shape
    normal = o.new_zeros(k, ra, 3)
    sel = opacity.detach() > min_opacity
    if wanted is not None:
        sel = sel & wanted
    if not bool(sel.any()):
        return normal
    kk, ii, slot, p = _pack(sel)
    x = (o + depth.detach()[..., None] * d)
    n = field.normals(_packed(x, kk, ii, slot, p))[kk, slot]
    return normal.index_put((kk, ii), opacity[kk, ii][:, None] * n)


def _view_rays(field: RadianceField, cameras: Cameras, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(K, V·H·W, 3) origins and directions of K·V hypothesis-major cameras, and V."""
    k = field.num_hypotheses
    if len(cameras) % k:
        raise ValueError(f"{len(cameras)} cameras do not split into {k} hypotheses")
    v = len(cameras) // k
    o, d = rays(cameras, height, width)
    return o.reshape(k, v * height * width, 3), d.reshape(k, v * height * width, 3), v


def _view_background(bg, k: int, v: int, height: int, width: int):
    """A (K·V, 3) per-view colour spread over the views' rays (K, V·H·W, 3); anything else unchanged."""
    if isinstance(bg, torch.Tensor) and bg.dim() == 2:
        return bg.reshape(k, v, 1, 3).expand(k, v, height * width, 3).reshape(k, v * height * width, 3)
    return bg


def _as_images(out: dict[str, torch.Tensor], k: int, v: int, height: int, width: int) -> dict[str, torch.Tensor]:
    """render_rays' per-ray maps (K, V·H·W, C) as (K, V, C, H, W) images; ``samples`` kept."""
    images: dict[str, torch.Tensor] = {"samples": out["samples"]}
    for name, value in out.items():
        if name == "samples":
            continue
        c = 1 if value.dim() == 2 else value.shape[-1]
        images[name] = value.reshape(k, v, height, width, c).permute(0, 1, 4, 2, 3)
    return images


def render_views(
    field: RadianceField,
    cameras: Cameras,
    height: int,
    width: int,
    config: VolumeConfig | None = None,
    **kwargs,
) -> dict[str, torch.Tensor]:
    """Render V views per hypothesis as images.

    ``cameras`` holds K · V cameras, hypothesis-major (row k · V + v is view v of hypothesis k).
    Returns rgb (K, V, 3, H, W), opacity (K, V, 1, H, W), depth (K, V, 1, H, W), background
    (K, V, 3, H, W), normal (K, V, 3, H, W) when asked, and ``samples``; row 0 = top.
    A tensor ``background`` keyword may be (K·V, 3): one colour per view.
    """
    o, d, v = _view_rays(field, cameras, height, width)
    k = field.num_hypotheses
    bg = _view_background(kwargs.pop("background", None), k, v, height, width)
    return _as_images(render_rays(field, o, d, config, background=bg, **kwargs), k, v, height, width)


def render_rays_and_views(
    field: RadianceField,
    origins: torch.Tensor,
    directions: torch.Tensor,
    cameras: Cameras,
    height: int,
    width: int,
    config: VolumeConfig | None = None,
    *,
    ray_background: torch.Tensor | nn.Module | None = None,
    view_background: torch.Tensor | nn.Module | None = None,
    occupancy: OccupancyGrid | None = None,
    generators: Sequence[torch.Generator] | None = None,
    normals: bool = False,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Loose rays (K, R, 3) and V views per hypothesis rendered by one :func:`render_rays` call: (what
    ``render_rays`` returns for the rays, what :func:`render_views` returns for the views).

    Stage 1 renders its reference rays and its guidance views every step; one call for both runs each
    operation once on the joined rays instead of twice on halves (stage 1 1.07× faster on the quick start,
    docs/benchmarks.md). The jitter draws of one call differ from those of two, so the samples differ; their
    distribution does not. ``samples`` counts the field evaluations of both and is reported in the rays' dict
    (the views' is 0). With ``normals`` the views get a normal map (the rays none).
    """
    k, r, _ = origins.shape
    vo, vd, v = _view_rays(field, cameras, height, width)
    view_bg = _view_background(view_background, k, v, height, width)
    if ray_background is None and view_bg is None:
        bg = None
    elif isinstance(ray_background, nn.Module) and view_bg is ray_background:
        bg = ray_background
    else:  # different kinds: each as per-ray colours
        bg = torch.cat([_background_colours(ray_background, directions), _background_colours(view_bg, vd)], dim=1)
    out = render_rays(field, torch.cat([origins, vo], dim=1), torch.cat([directions, vd], dim=1), config,
                      occupancy=occupancy, generators=generators, background=bg, normals=normals, normals_from=r)
    ray_part = {n: (x if n == "samples" else x[:, :r]) for n, x in out.items() if n != "normal"}
    view_part = {n: (torch.zeros_like(x) if n == "samples" else x[:, r:]) for n, x in out.items()}
    return ray_part, _as_images(view_part, k, v, height, width)
