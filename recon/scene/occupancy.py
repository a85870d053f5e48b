"""Occupancy grid: which cells of the scene cube may hold density, so the renderer skips the rest.

One ``(G, G, G)`` grid per hypothesis, refreshed every ``update_every`` steps from the field's
density at one jittered point per cell (instant-ngp / nerfacc style): the stored value is
``max(decay · old, new)``, a cell is occupied when that exceeds ``min_density``, and the occupied set
is dilated by ``dilation`` cells so that a surface can still grow outwards (samples in skipped
cells get no gradient). Grids are indexed ``[k, ix, iy, iz]`` with cell ``i`` covering
``[-r + i·2r/G, -r + (i+1)·2r/G)`` on each axis.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class OccupancyConfig:
    """Attributes:
    resolution: cells per axis G.
    update_every: refresh period in optimisation steps (0 = never skip: every cell occupied).
    min_density: σ above which a cell is occupied (σ · step ≈ 0.003 at 64 samples over 2 units).
    decay: multiplier applied to the stored density before each refresh.
    dilation: occupied cells are grown by this many cells (0 = none).
    """

    resolution: int = 32
    update_every: int = 16
    min_density: float = 0.1
    decay: float = 0.9
    dilation: int = 1


class OccupancyGrid:
    """K occupancy grids over the cube ``[-radius, radius]³``.

    Attributes:
        density: (K, G, G, G) decayed running maximum of σ per cell.
        mask: (K, G, G, G) bool, occupied cells after dilation.
        bounds: (K, 2, 3) box around each hypothesis's occupied cells; rays are sampled only inside it.
    """

    def __init__(self, config: OccupancyConfig, hypotheses: int, radius: float) -> None:
        self.config = config
        self.radius = float(radius)
        g = config.resolution
        self.density = torch.full((hypotheses, g, g, g), float("inf"))
        self.mask = torch.ones((hypotheses, g, g, g), dtype=torch.bool)
        self.bounds = self._bounds(self.mask)

    @property
    def enabled(self) -> bool:
        return self.config.update_every > 0

    def cell_centres(self) -> torch.Tensor:
        """(G³, 3) world coordinates of the cell centres, x slowest, z fastest."""
        g = self.config.resolution
        c = (torch.arange(g, dtype=torch.float32) + 0.5) / g * 2 * self.radius - self.radius
        return torch.stack(torch.meshgrid(c, c, c, indexing="ij"), dim=-1).reshape(-1, 3)

    @torch.no_grad()
    def update(
        self,
        density: Callable[[torch.Tensor], torch.Tensor],
        generators: Sequence[torch.Generator] | None = None,
        chunk: int = 1 << 17,
    ) -> None:
        """Refresh from ``density``: (K, N, 3) points -> (K, N) σ.

        Each cell is probed at one point: its centre, or a uniform point inside it drawn from
        ``generators[k]`` (one per hypothesis).
        """
        k, g = self.density.shape[0], self.config.resolution
        centres = self.cell_centres()
        cell = 2 * self.radius / g
        if generators is None:
            pts = centres.expand(k, -1, -1)
        else:
            if len(generators) != k:
                raise ValueError(f"need {k} generators, got {len(generators)}")
            jitter = torch.stack([torch.rand(centres.shape, generator=gen) - 0.5 for gen in generators])
            pts = centres + jitter * cell
        pts = pts.to(self.density.device)
        new = torch.cat([density(pts[:, s:s + chunk]) for s in range(0, pts.shape[1], chunk)], dim=1)
        new = new.reshape(k, g, g, g).to(self.density)
        old = torch.where(torch.isinf(self.density), torch.zeros_like(self.density), self.density)
        self.density = torch.maximum(old * self.config.decay, new)
        occ = self.density > self.config.min_density
        d = self.config.dilation
        if d > 0:
            occ = F.max_pool3d(occ[:, None].float(), kernel_size=2 * d + 1, stride=1, padding=d)[:, 0] > 0
        self.mask = occ
        self.bounds = self._bounds(occ)

    def _bounds(self, mask: torch.Tensor) -> torch.Tensor:
        """(K, 2, 3) world-space box [lo, hi] around each grid's occupied cells (lo > hi when none)."""
        k, g = mask.shape[0], self.config.resolution
        cell = 2 * self.radius / g
        out = torch.empty(k, 2, 3)
        idx = torch.arange(g)
        for axis in range(3):
            other = tuple(a + 1 for a in range(3) if a != axis)
            any_ = mask.any(dim=other)  # (K, G)
            first = torch.where(any_, idx, g).amin(1)
            last = torch.where(any_, idx, -1).amax(1)
            out[:, 0, axis] = -self.radius + first * cell
            out[:, 1, axis] = -self.radius + (last + 1) * cell
        return out

    def lookup(self, points: torch.Tensor) -> torch.Tensor:
        """points (K, ..., 3) -> (K, ...) bool, True where the containing cell is occupied.

        Points outside the cube are reported unoccupied.
        """
        k = points.shape[0]
        g = self.config.resolution
        idx = torch.floor((points + self.radius) / (2 * self.radius) * g).long()
        inside = ((idx >= 0) & (idx < g)).all(-1)
        idx = idx.clamp(0, g - 1)
        flat = (idx[..., 0] * g + idx[..., 1]) * g + idx[..., 2]
        occ = torch.gather(self.mask.reshape(k, -1), 1, flat.reshape(k, -1)).reshape(flat.shape)
        return occ & inside

    def occupied_fraction(self) -> torch.Tensor:
        """(K,) fraction of occupied cells."""
        return self.mask.reshape(self.mask.shape[0], -1).float().mean(1)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"density": self.density.clone(), "mask": self.mask.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if tuple(state["density"].shape) != tuple(self.density.shape):
            raise ValueError(
                f"occupancy grid shape {tuple(state['density'].shape)} does not match {tuple(self.density.shape)}"
            )
        self.density = state["density"].clone().to(self.density.device)
        self.mask = state["mask"].clone().to(self.mask.device)
        self.bounds = self._bounds(self.mask)
