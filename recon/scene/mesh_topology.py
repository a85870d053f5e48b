"""Edge adjacency of triangle meshes, vectorised (no Python loops over faces).

Used by the rasterisers' silhouette antialiasing (which edges are silhouettes) and by the mesh
regularisers (normal consistency across interior edges).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class EdgeAdjacency:
    """Per face-corner edge information for faces (F, 3).

    Edge i of face f joins vertices faces[f, (i+1) % 3] and faces[f, (i+2) % 3] (the edge opposite
    corner i, nvdiffrast's numbering).

    opposite: (F, 3) long, the vertex of the neighbouring face across edge i that is not on the edge,
        or -1 on a boundary edge (only the first two faces on a non-manifold edge see each other).
    neighbor: (F, 3) long, the face across edge i, or -1.
    interior: (E, 2) long, face pairs sharing an edge (each manifold interior edge once).
    interior_edge: (E, 2) long, the two vertices of each interior edge.
    boundary_edges: (Eb, 2) long, vertices of edges used by exactly one face.
    nonmanifold_edges: number of edges used by more than two faces.
    """

    opposite: torch.Tensor
    neighbor: torch.Tensor
    interior: torch.Tensor
    interior_edge: torch.Tensor
    boundary_edges: torch.Tensor
    nonmanifold_edges: int


def edge_adjacency(faces: torch.Tensor, num_vertices: int | None = None) -> EdgeAdjacency:
    """faces (F, 3) integer -> :class:`EdgeAdjacency`."""
    faces = faces.long()
    f = faces.shape[0]
    device = faces.device
    if num_vertices is None:
        num_vertices = int(faces.max()) + 1 if f else 0
    a = faces[:, [1, 2, 0]].reshape(-1)  # (F*3,) occurrence o = 3 f + i: edge opposite corner i
    b = faces[:, [2, 0, 1]].reshape(-1)
    lo, hi = torch.minimum(a, b), torch.maximum(a, b)
    key = lo * max(num_vertices, 1) + hi
    order = torch.argsort(key, stable=True)
    sk = key[order]
    n = sk.numel()
    pos = torch.arange(n, device=device)
    new_group = torch.ones(n, dtype=torch.bool, device=device)
    if n > 1:
        new_group[1:] = sk[1:] != sk[:-1]
    group_id = torch.cumsum(new_group.long(), 0) - 1
    starts = pos[new_group]
    sizes = torch.bincount(group_id, minlength=starts.numel())
    rank = pos - starts[group_id]
    size = sizes[group_id]
    # Partner of each occurrence in sorted order: the first two of a group see each other.
    partner_sorted = torch.full((n,), -1, dtype=torch.long, device=device)
    first = (rank == 0) & (size >= 2)
    second = (rank == 1)
    partner_sorted[first] = pos[first] + 1
    partner_sorted[second] = pos[second] - 1
    partner = torch.full((n,), -1, dtype=torch.long, device=device)
    has = partner_sorted >= 0
    partner[order[has]] = order[partner_sorted[has]]  # occurrence -> partner occurrence
    corner_vertex = faces.reshape(-1)
    opposite = torch.where(partner >= 0, corner_vertex[partner.clamp(min=0)], torch.full_like(partner, -1))
    neighbor = torch.where(partner >= 0, partner.clamp(min=0) // 3, torch.full_like(partner, -1))
    occ_first = order[first]
    occ_second = order[pos[first] + 1]
    interior = torch.stack([occ_first // 3, occ_second // 3], dim=1)
    interior_edge = torch.stack([lo[occ_first], hi[occ_first]], dim=1)
    single = size == 1
    boundary = torch.stack([lo[order[single]], hi[order[single]]], dim=1)
    nonmanifold = int(((rank == 0) & (size > 2)).sum())
    return EdgeAdjacency(opposite.view(f, 3), neighbor.view(f, 3), interior, interior_edge, boundary, nonmanifold)
