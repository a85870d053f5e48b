"""DMTet geometry: an SDF value and a bounded deformation per tet-grid vertex, extracted by marching
tetrahedra into a differentiable :class:`~recon.scene.mesh.Mesh`.

- SDF convention: negative inside, positive outside (see :mod:`recon.scene.marching_tets`).
- Deformation: position = grid vertex + tanh(deform) * deform_fraction * cell_size, so a vertex never
  leaves a box of half-width deform_fraction cells (0.5 by default, threestudio's bound; below 0.5 no two
  vertices can swap places along an axis).
- Initialisation from a stage-1 density field: ``init_from_density`` sets
  sdf = log(threshold) - log(density) (zero exactly where density == threshold, negative where denser; the
  log makes linear interpolation along edges follow exponential fall-offs), extracts that surface, and then
  (``redistance=True``) replaces the values by signed distances to it (sign kept, magnitude = distance to a
  dense sample of the surface), so SDF learning rates are in world units whatever the density scale.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from recon.scene.marching_tets import MarchingTetsResult, marching_tets
from recon.scene.mesh import Mesh
from recon.scene.tets import tet_grid

FieldFn = Callable[[torch.Tensor], torch.Tensor]  # points (N, 3) -> values (N,)


def _evaluate(fn: FieldFn, points: torch.Tensor, chunk: int) -> torch.Tensor:
    out = [fn(points[i:i + chunk]).reshape(-1) for i in range(0, points.shape[0], chunk)]
    return torch.cat(out).to(points.dtype)


_EXACT_BAND_CELLS = 4  # grid cells around the surface where the SDF is the exact nearest-sample distance
_COARSE_STRIDE = 20  # beyond that band, distances to every 20th sample


def _distance_to_samples(samples, queries, band: float):
    """(Q,) distance from each query point (Q, 3) to its nearest surface sample (S, 3), float64 numpy.

    Exact (scipy's KD-tree) for queries whose coarse distance is within ``band``; beyond it, the distance to
    every ``_COARSE_STRIDE``-th sample, which overestimates by at most that subset's spacing. Exact queries
    far inside a closed surface visit nearly every sample (they are all about equally far), which made
    the exact version take ~2 s per hypothesis on the quick start; the far values only set how fast stage 2
    can move the surface there.
    """
    from scipy.spatial import cKDTree

    # workers=-1: queries split over every core (each query's answer is the same, whatever the split).
    dist = cKDTree(samples[::_COARSE_STRIDE]).query(queries, workers=-1)[0]
    near = dist < band
    if near.any():
        dist[near] = cKDTree(samples).query(queries[near], workers=-1)[0]
    return dist


def sample_surface(vertices: torch.Tensor, faces: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """(n, 3) points uniform by area on a triangle mesh (no gradients); draws on the CPU from ``generator``."""
    v = vertices.detach().double().cpu()
    f = faces.cpu()
    tri = v[f]
    area = torch.linalg.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]).norm(dim=-1)
    idx = torch.multinomial(area / area.sum(), n, replacement=True, generator=generator)
    r = torch.rand(n, 2, generator=generator, dtype=torch.float64)
    s = r[:, 0].sqrt()
    b0, b1 = 1 - s, s * (1 - r[:, 1])
    b2 = 1 - b0 - b1
    t = tri[idx]
    pts = b0[:, None] * t[:, 0] + b1[:, None] * t[:, 1] + b2[:, None] * t[:, 2]
    return pts.to(device=vertices.device, dtype=vertices.dtype)


class DMTet(nn.Module):
    """Parameters: ``sdf`` (Nv,) and ``deform`` (Nv, 3); buffers (not in the state dict): ``grid_vertices`` (Nv, 3),
    ``tets`` (Nt, 4)."""

    def __init__(self, resolution: int = 64, radius: float = 1.0, deform_fraction: float = 0.5):
        super().__init__()
        grid = tet_grid(resolution, radius)
        self.resolution = resolution
        self.radius = radius
        self.cell_size = grid.cell_size
        self.deform_fraction = deform_fraction
        # The grid follows from (resolution, radius), so checkpoints leave it out (it was 85 % of stage 2's).
        self.register_buffer("grid_vertices", grid.vertices, persistent=False)
        self.register_buffer("tets", grid.tets, persistent=False)
        self.sdf = nn.Parameter(torch.ones(grid.vertices.shape[0]))
        self.deform = nn.Parameter(torch.zeros_like(grid.vertices))

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """As nn.Module's; a state saved with the grid in it (checkpoints before the grid was left out) loads too."""
        state = {k: v for k, v in state_dict.items() if k not in ("grid_vertices", "tets")}
        return super().load_state_dict(state, strict, assign)

    def vertex_positions(self) -> torch.Tensor:
        """(Nv, 3) deformed grid vertices."""
        return self.grid_vertices + torch.tanh(self.deform) * (self.deform_fraction * self.cell_size)

    def march(self) -> MarchingTetsResult:
        return marching_tets(self.vertex_positions(), self.tets, self.sdf)

    def extract(self) -> Mesh:
        """The current surface as a Mesh whose vertices carry gradients to ``sdf`` and ``deform``."""
        r = self.march()
        return Mesh(vertices=r.vertices, faces=r.faces)

    @torch.no_grad()
    def init_from_sdf(self, sdf_fn: FieldFn, chunk: int = 1 << 16) -> None:
        """sdf = sdf_fn(grid vertices) (negative inside); resets the deformation."""
        self.deform.zero_()
        self.sdf.copy_(_evaluate(sdf_fn, self.grid_vertices, chunk))

    @torch.no_grad()
    def init_from_density(self, density_fn: FieldFn, threshold: float, redistance: bool = True,
                          samples: int = 200_000, seed: int = 0, chunk: int = 1 << 16) -> None:
        """Initialise from a volume density (>= 0): the surface is the level density == threshold.

        Raises ValueError when that level set is empty inside the grid (threshold above or below every
        density value), naming the density range so the caller can pick a threshold.
        """
        if threshold <= 0:
            raise ValueError(f"density threshold must be > 0, got {threshold}")
        self.deform.zero_()
        density = _evaluate(density_fn, self.grid_vertices, chunk).clamp(min=0)
        tiny = threshold * 1e-6
        sdf = torch.log(torch.tensor(threshold + tiny)) - torch.log(density + tiny)
        self.sdf.copy_(sdf)
        if not bool((sdf < 0).any()) or bool((sdf < 0).all()):
            raise ValueError(f"no surface at density threshold {threshold}: densities on the grid range "
                             f"{float(density.min()):.4g}..{float(density.max()):.4g}")
        if not redistance:
            return
        r = self.march()
        if r.faces.shape[0] == 0:
            return
        g = torch.Generator().manual_seed(seed)
        pts = sample_surface(r.vertices, r.faces, samples, g)
        dist = _distance_to_samples(pts.double().cpu().numpy(), self.grid_vertices.double().cpu().numpy(),
                                    band=_EXACT_BAND_CELLS * self.cell_size)
        dist = torch.as_tensor(dist, dtype=sdf.dtype, device=sdf.device)
        # Keep every sign (hence the topology), floor magnitudes so no value becomes exactly 0.
        self.sdf.copy_(torch.where(sdf < 0, -1.0, 1.0) * dist.clamp(min=1e-4 * self.cell_size))
