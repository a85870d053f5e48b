"""Differentiable marching tetrahedra in plain torch.

Convention: the SDF is negative inside and positive outside; a vertex with sdf < 0 is inside (sdf == 0
counts as outside). A surface vertex sits on every grid edge whose ends differ in sign, at the zero of the
linear interpolation, p = v_a + s_a / (s_a - s_b) (v_b - v_a), so gradients reach both the SDF values and
the (deformed) grid positions. Each crossed edge yields one vertex shared by all tetrahedra around it, so
the mesh is watertight; faces are counter-clockwise seen from outside (normals point towards sdf > 0),
given positively oriented tetrahedra (see :mod:`recon.scene.tets`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from recon.scene.marching_tets_kernel import crossed_tets

# Local edges of a tetrahedron, as corner pairs.
TET_EDGES = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))


def _edge_id(a: int, b: int) -> int:
    return TET_EDGES.index((min(a, b), max(a, b)))


def _build_table() -> tuple[torch.Tensor, torch.Tensor]:
    """(16, 2, 3) local edge ids of the triangles for each inside-code (bit i = corner i inside), -1 padded,
    and (16,) triangle counts. Orientation is fixed on the reference tetrahedron with edge midpoints; it is
    the same for every positively oriented tetrahedron and every crossing position (the orientation of each
    triangle relative to an inside corner cannot change sign while the points stay inside their edges)."""
    ref = torch.tensor([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=torch.float64)
    table = torch.full((16, 2, 3), -1, dtype=torch.long)
    counts = torch.zeros(16, dtype=torch.long)
    for code in range(16):
        inside = [i for i in range(4) if code >> i & 1]
        outside = [i for i in range(4) if not code >> i & 1]
        if len(inside) in (0, 4):
            continue
        if len(inside) == 1 or len(inside) == 3:
            lone, others = (inside[0], outside) if len(inside) == 1 else (outside[0], inside)
            tris = [[_edge_id(lone, o) for o in others]]
        else:
            (a, b), (c, d) = inside, outside
            ac, ad, bd, bc = _edge_id(a, c), _edge_id(a, d), _edge_id(b, d), _edge_id(b, c)
            tris = [[ac, ad, bd], [ac, bd, bc]]
        ref_in = ref[inside].mean(0)
        for k, tri in enumerate(tris):
            p = torch.stack([(ref[TET_EDGES[e][0]] + ref[TET_EDGES[e][1]]) / 2 for e in tri])
            normal = torch.linalg.cross(p[1] - p[0], p[2] - p[0])
            if torch.dot(normal, p[0] - ref_in) < 0:  # must point away from the inside corners
                tri = [tri[0], tri[2], tri[1]]
            table[code, k] = torch.tensor(tri)
        counts[code] = len(tris)
    return table, counts


TRI_TABLE, NUM_TRIS = _build_table()


@dataclass
class MarchingTetsResult:
    """vertices (M, 3) differentiable; faces (F, 3) long; edges (M, 2) the grid vertices of the edge each
    surface vertex lies on (inside vertex first); weight (M,) the interpolation fraction from edges[:, 0]."""

    vertices: torch.Tensor
    faces: torch.Tensor
    edges: torch.Tensor
    weight: torch.Tensor


def marching_tets(vertices: torch.Tensor, tets: torch.Tensor, sdf: torch.Tensor) -> MarchingTetsResult:
    """vertices (Nv, 3), tets (Nt, 4) long (positively oriented), sdf (Nv,) -> the zero level set."""
    device = vertices.device
    nv = vertices.shape[0]
    with torch.no_grad():
        inside = sdf < 0
        if device.type == "cpu":
            active, code = crossed_tets(tets, inside)  # one compiled pass instead of five Nt-sized ops
        else:
            occ = inside[tets]  # (Nt, 4)
            code = (occ.long() * torch.tensor([1, 2, 4, 8], device=device)).sum(-1)
            active = ((code > 0) & (code < 15)).nonzero().squeeze(1)
            code = code.index_select(0, active)
        t_act = tets.index_select(0, active)
        pairs = t_act[:, torch.tensor(TET_EDGES, device=device)]  # (Na, 6, 2)
        crossing = inside[pairs[..., 0]] != inside[pairs[..., 1]]  # (Na, 6)
        lo = torch.minimum(pairs[..., 0], pairs[..., 1])
        hi = torch.maximum(pairs[..., 0], pairs[..., 1])
        key = lo * nv + hi
        uniq, inverse = torch.unique(key[crossing], return_inverse=True)
        edge_vertex = torch.full(key.shape, -1, dtype=torch.long, device=device)
        edge_vertex[crossing] = inverse
        tri_local = TRI_TABLE.to(device)[code]  # (Na, 2, 3)
        has = torch.arange(2, device=device)[None] < NUM_TRIS.to(device)[code][:, None]  # (Na, 2)
        faces = torch.gather(edge_vertex, 1, tri_local.clamp(min=0).reshape(-1, 6)).view(-1, 2, 3)[has]
        ea = torch.div(uniq, nv, rounding_mode="floor")
        eb = uniq - ea * nv
        # Inside end first, so the weight runs from the inside vertex.
        a_in = inside[ea]
        e_in = torch.where(a_in, ea, eb)
        e_out = torch.where(a_in, eb, ea)
    s_in, s_out = sdf[e_in], sdf[e_out]
    t = s_in / (s_in - s_out)
    verts = vertices[e_in] + t[:, None] * (vertices[e_out] - vertices[e_in])
    return MarchingTetsResult(verts, faces, torch.stack([e_in, e_out], dim=1), t)
