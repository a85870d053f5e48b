"""The stage-1 radiance field: K independent fields batched along a leading hypothesis dimension.

Each hypothesis owns a multiresolution dense feature grid (one ``(F, R, R, R)`` volume per level,
sampled trilinearly with ``grid_sample``) and two small bias-free MLPs, one for density and one for
albedo (threestudio's ``implicit-volume`` shape, with dense levels in place of the CUDA hash grid:
on a CPU ``grid_sample`` beat a gather-based trilinear lookup when this was written, a hash table
would add hashing on top, and the coarse stage needs no resolution above ~64³). All K fields run as one set of kernels: grids are stacked
``(K, F, R, R, R)`` and MLP weights ``(K, in, out)`` go through ``bmm``.

Density follows threestudio's Magic3D blob initialisation: the pre-activation density is
``mlp(features) + blob_density · (1 − |x| / blob_radius)`` and σ = softplus (or exp) of it. Grid
features start at ±1e-4 and the MLPs have no biases, so at initialisation every hypothesis is the
same soft ball of radius ``blob_radius`` with grey albedo.

Coordinates: world space, +Y up, right-handed; the field lives in the cube ``[-radius, radius]³``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from recon import seeding

# Tetrahedral finite-difference stencil (four evaluations instead of six): Σ k_i f(p + h k_i) = 4h ∇f.
_TETRA = torch.tensor([[1.0, -1.0, -1.0], [-1.0, -1.0, 1.0], [-1.0, 1.0, -1.0], [1.0, 1.0, 1.0]])

_CHUNK = 1 << 18  # points per call in the single-hypothesis callables (bounds peak memory)


@dataclass
class FieldConfig:
    """Shape of the radiance field.

    Attributes:
        radius: half side of the scene cube ``[-radius, radius]³``.
        resolutions: grid resolution of each level (coarse to fine).
        features: feature channels per level.
        density_hidden, color_hidden: hidden width of the density and albedo MLPs (one hidden layer
            each, ReLU); 0 makes that decoder linear.
        density_activation: ``softplus`` (threestudio zero123) or ``exp``.
        blob_density, blob_radius: Magic3D blob, pre-activation bias
            ``blob_density · (1 − |x| / blob_radius)`` (threestudio ``density_blob_scale`` 10,
            ``density_blob_std`` 0.5).
        normal_eps: finite-difference step for normals, world units.
        init_scale: grid features start uniform in ``±init_scale`` (tcnn's hash-grid init).
    """

    radius: float = 1.0
    resolutions: list[int] = field(default_factory=lambda: [16, 32, 64])
    features: int = 2
    density_hidden: int = 16
    color_hidden: int = 16
    density_activation: Literal["softplus", "exp"] = "softplus"
    blob_density: float = 10.0
    blob_radius: float = 0.5
    normal_eps: float = 0.01
    init_scale: float = 1e-4


def _mlp(x: torch.Tensor, weights: Sequence[torch.Tensor]) -> torch.Tensor:
    """Bias-free batched MLP: (K, N, in) through (K, in, h), ReLU, ..., (K, h, out)."""
    for i, w in enumerate(weights):
        if i:
            x = torch.relu(x)
        x = torch.bmm(x, w)
    return x


def _uniform(shape: Sequence[int], bound: float, g: torch.Generator) -> torch.Tensor:
    return (torch.rand(tuple(shape), generator=g, dtype=torch.float32) * 2 - 1) * bound


class RadianceField(nn.Module):
    """K radiance fields, one per hypothesis, evaluated together.

    Hypothesis ``hypotheses[k]`` is initialised from its own stream ``(seed, hypotheses[k],
    purpose)``, so a field never depends on how many other hypotheses share the batch.
    """

    def __init__(self, config: FieldConfig | None = None, hypotheses: Sequence[int] = (0,), seed: int = 0,
                 purpose: str = "field_init") -> None:
        super().__init__()
        self.config = config = config or FieldConfig()
        if not config.resolutions or min(config.resolutions) < 2:
            raise ValueError(f"field resolutions must be >= 2, got {config.resolutions}")
        self.hypotheses = tuple(int(h) for h in hypotheses)
        gens = [seeding.generator(seed, h, purpose) for h in self.hypotheses]
        f = config.features
        dim = f * len(config.resolutions)
        self.grids = nn.ParameterList(
            nn.Parameter(torch.stack([_uniform((f, r, r, r), config.init_scale, g) for g in gens]))
            for r in config.resolutions
        )

        def linear(n_in: int, n_out: int) -> nn.Parameter:
            # Kaiming-uniform for ReLU inputs; per-hypothesis draws keep hypotheses independent.
            bound = math.sqrt(6.0 / n_in)
            return nn.Parameter(torch.stack([_uniform((n_in, n_out), bound, g) for g in gens]))

        self.density_net = nn.ParameterList(
            [linear(dim, 1)] if config.density_hidden == 0
            else [linear(dim, config.density_hidden), linear(config.density_hidden, 1)])
        self.color_net = nn.ParameterList(
            [linear(dim, 3)] if config.color_hidden == 0
            else [linear(dim, config.color_hidden), linear(config.color_hidden, 3)])

    @property
    def num_hypotheses(self) -> int:
        return len(self.hypotheses)

    @property
    def feature_dim(self) -> int:
        return self.config.features * len(self.config.resolutions)

    # ----------------------------------------------------------------------------- evaluation
    def features(self, points: torch.Tensor) -> torch.Tensor:
        """points (K, N, 3) world -> (K, N, features · levels) trilinear grid features."""
        k, n, _ = points.shape
        grid = (points / self.config.radius).reshape(k, 1, 1, n, 3)
        feats = [
            F.grid_sample(vol, grid, mode="bilinear", padding_mode="border", align_corners=True).reshape(k, -1, n)
            for vol in self.grids
        ]
        return torch.cat(feats, dim=1).transpose(1, 2)

    def blob(self, points: torch.Tensor) -> torch.Tensor:
        """(K, N, 3) -> (K, N) Magic3D pre-activation density bias."""
        c = self.config
        return c.blob_density * (1.0 - points.norm(dim=-1) / c.blob_radius)

    def _raw_density(self, feats: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        return _mlp(feats, self.density_net).squeeze(-1) + self.blob(points)

    def activate(self, raw: torch.Tensor) -> torch.Tensor:
        return F.softplus(raw) if self.config.density_activation == "softplus" else torch.exp(raw)

    def raw_density(self, points: torch.Tensor) -> torch.Tensor:
        """(K, N, 3) -> (K, N) pre-activation density (blob included)."""
        return self._raw_density(self.features(points), points)

    def density(self, points: torch.Tensor) -> torch.Tensor:
        """(K, N, 3) -> (K, N) volume density σ >= 0."""
        return self.activate(self.raw_density(points))

    def forward(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """points (K, N, 3) -> (σ (K, N), albedo (K, N, 3) in [0, 1])."""
        feats = self.features(points)
        sigma = self.activate(self._raw_density(feats, points))
        return sigma, torch.sigmoid(_mlp(feats, self.color_net))

    def color(self, points: torch.Tensor) -> torch.Tensor:
        """(K, N, 3) -> (K, N, 3) albedo in [0, 1]."""
        return torch.sigmoid(_mlp(self.features(points), self.color_net))

    def normals(self, points: torch.Tensor) -> torch.Tensor:
        """(K, N, 3) -> (K, N, 3) unit outward normals −∇(raw density) by tetrahedral finite differences.

        Differentiable w.r.t. the field's parameters (four density evaluations per point).
        """
        k, n, _ = points.shape
        h = self.config.normal_eps
        stencil = _TETRA.to(points)
        probe = (points[:, :, None, :] + h * stencil).reshape(k, n * 4, 3)
        raw = self.raw_density(probe).reshape(k, n, 4)
        grad = (raw[..., None] * stencil).sum(2) / (4 * h)
        return -F.normalize(grad, dim=-1, eps=1e-12)

    # ----------------------------------------------------------------------- per-hypothesis API
    def _single(self, k: int, method: str) -> Callable[[torch.Tensor], torch.Tensor]:
        if not 0 <= k < self.num_hypotheses:
            raise IndexError(f"hypothesis slot {k} out of range for {self.num_hypotheses} hypotheses")

        def call(points: torch.Tensor) -> torch.Tensor:
            pts = points.reshape(-1, 3).to(self.grids[0])
            # Evaluate only hypothesis k: its parameters sliced into a batch of one.
            fn = getattr(self.select([k]), method)
            if pts.shape[0] == 0:  # evaluate one dummy point to learn the output's trailing shape
                out = fn(pts.new_zeros(1, 1, 3))[0][:0]
            else:
                out = torch.cat([fn(pts[s:s + _CHUNK][None])[0] for s in range(0, pts.shape[0], _CHUNK)])
            return out.reshape(*points.shape[:-1], *out.shape[1:])

        return call

    def density_fn(self, k: int = 0) -> Callable[[torch.Tensor], torch.Tensor]:
        """Plain callable for hypothesis slot ``k``: points (..., 3) -> σ (...)."""
        return self._single(k, "density")

    def color_fn(self, k: int = 0) -> Callable[[torch.Tensor], torch.Tensor]:
        """Plain callable for hypothesis slot ``k``: points (..., 3) -> albedo (..., 3) in [0, 1]."""
        return self._single(k, "color")

    def single(self, k: int) -> RadianceField:
        """A stand-alone copy of hypothesis slot ``k`` as a one-hypothesis field (own parameters)."""
        if not 0 <= k < self.num_hypotheses:
            raise IndexError(f"hypothesis slot {k} out of range for {self.num_hypotheses} hypotheses")
        out = RadianceField(self.config, [self.hypotheses[k]])
        with torch.no_grad():
            for dst, src in zip(out.parameters(), self.parameters()):
                dst.copy_(src[k:k + 1])
        return out

    def select(self, slots: Sequence[int]) -> _FieldView:
        """A view of hypothesis slots ``slots`` sharing (not copying) this field's parameters."""
        return _FieldView(self, list(slots))


class AlbedoModule(nn.Module):
    """The albedo of a one-hypothesis field as a module: points (..., 3) -> (..., 3) in [0, 1].

    For consumers that fine-tune colour (e.g. stage 2's ``finetune_color``): its parameters are the
    field's, so build it from :meth:`RadianceField.single` to leave the batched field untouched.
    """

    def __init__(self, field: RadianceField) -> None:
        super().__init__()
        if field.num_hypotheses != 1:
            raise ValueError(f"AlbedoModule wraps a one-hypothesis field, got {field.num_hypotheses}")
        self.field = field

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self.field.color_fn(0)(points)


class _FieldView:
    """Slots of a :class:`RadianceField`, evaluated with sliced parameters (gradients flow back)."""

    def __init__(self, parent: RadianceField, slots: list[int]) -> None:
        self.parent = parent
        self.config = parent.config
        start = slots[0] if slots else 0
        if slots == list(range(start, start + len(slots))):
            # Consecutive slots: a view, no copy (stage 2 evaluates one slot's colour every step; indexing
            # copied all of its grids each time).
            def pick(w: torch.Tensor) -> torch.Tensor:
                return w[start:start + len(slots)]
        else:
            idx = torch.as_tensor(slots, dtype=torch.long)

            def pick(w: torch.Tensor) -> torch.Tensor:
                return w[idx]
        self.grids = [pick(g) for g in parent.grids]
        self.density_net = [pick(w) for w in parent.density_net]
        self.color_net = [pick(w) for w in parent.color_net]

    features = RadianceField.features
    blob = RadianceField.blob
    _raw_density = RadianceField._raw_density
    activate = RadianceField.activate
    raw_density = RadianceField.raw_density
    density = RadianceField.density
    color = RadianceField.color
    normals = RadianceField.normals

    def __call__(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return RadianceField.forward(self, points)  # type: ignore[arg-type]
