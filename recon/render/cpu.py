"""A CPU rasteriser in torch (inner loops compiled with numba on the CPU) with nvdiffrast's rasterize / interpolate / antialias contract.

Layouts are those of :class:`recon.render.backend.RasterBackend`: clip-space vertices (B, V, 4), faces
(F, 3), ``rast`` (B, H, W, 4) = (u, v, z/w, triangle_id + 1) with row 0 at the bottom (NDC y = -1).
Pixel (column j, row i) samples NDC ((2j + 1) / W - 1, (2i + 1) / H - 1).

How it works:

- **Visibility** (no gradients): triangles in front of the eye are snapped to a 1/16-pixel grid (as in
  nvdiffrast's rasteriser) and get integer edge functions; triangles with a vertex behind the eye (or far
  outside the screen) get homogeneous 2D edge functions e_i = (V_j x V_k) . (x_ndc, y_ndc, 1) over (x, y, w)
  (Olano & Greer), which need no near-plane clipping. Each triangle is expanded into the rows of its pixel
  bounding box, each row into the span of columns its three half-planes allow, and every candidate pixel
  centre is decided by the exact edge-function test (vectorised with ``repeat_interleave``, in chunks that
  bound memory). A z-buffer keeps the nearest z/w per pixel (ties: the lower triangle id); z/w outside
  [-1, 1] is clipped per pixel, like nvdiffrast's frustum clipping.
- **Fill rule**: snapped edge functions are exact integers (held in float64 below 2^53), and the homogeneous
  ones of an edge shared by two triangles are exact negations of each other (same operands, swapped), so a
  pixel centre exactly on an edge or vertex is decided consistently by a top-left rule (a zero edge function
  counts as inside iff the oriented edge normal points to +x, or to +y when it has no x part — the same as
  nudging the sample point by an infinitesimal (1, 0+) step): no cracks and no double coverage along shared
  edges, and (for snapped triangles, i.e. all in front of the eye) at shared vertices.
- **Barycentrics** (differentiable): for covered pixels, perspective-correct (u, v) are recomputed from the
  clip-space positions with nvdiffrast's formula, so gradients reach the vertices; like nvdiffrast, u and v
  are clamped in the forward pass only and z/w carries no gradient.
- **Antialias**: nvdiffrast's analytic silhouette-edge antialiasing (Laine et al. 2020, "Modular primitives
  for high-performance differentiable rendering", Sec. 3.4): for each horizontally or vertically adjacent
  pixel pair with different triangle ids, take the nearer triangle, find where its edges cross the segment
  between the two pixel centres, and if the furthest crossing edge is a silhouette edge (a boundary edge or
  one whose neighbouring face folds to the same side in screen space) blend the two colours by the crossing
  position. The crossing position is a differentiable function of the edge's vertices, which is how
  gradients reach vertex positions at silhouettes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import torch

from recon.scene.mesh_topology import edge_adjacency

_MAX_TRIANGLES = 1 << 24  # triangle ids are stored as float32 in rast[..., 3], exact up to 2^24
# Faces (summed over the kept tensors) whose opposite vertices CpuRasterizer keeps: 48 bytes a face (the
# faces tensor it holds and the answer), 48 MiB in all.
OPPOSITE_CACHE_FACES = 1 << 20
_SUB = 16  # subpixel grid of snapped vertices (nvdiffrast's rasteriser snaps to 1/16 pixel too)
_GUARD = float(1 << 24)  # snapped |coordinate| bound in subpixels: edge functions stay exact (< 2^53)


def _check_inputs(verts_clip: torch.Tensor, faces: torch.Tensor) -> None:
    if verts_clip.dim() != 3 or verts_clip.shape[-1] != 4:
        raise ValueError(f"verts_clip must be (B, V, 4), got {tuple(verts_clip.shape)}")
    if faces.dim() != 2 or faces.shape[-1] != 3:
        raise ValueError(f"faces must be (F, 3), got {tuple(faces.shape)}")
    if faces.shape[0] >= _MAX_TRIANGLES:
        raise ValueError(f"at most {_MAX_TRIANGLES - 1} triangles are supported, got {faces.shape[0]}")
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= verts_clip.shape[1]):
        raise ValueError("faces index vertices out of range")


def _pixel_centres(n: int, dtype: torch.dtype, device) -> torch.Tensor:
    """NDC of pixel centres along one axis, index 0 at -1 (left / bottom)."""
    return ((2 * torch.arange(n, dtype=torch.float64, device=device) + 1) / n - 1).to(dtype)


def _pixel_frame(h: int, w: int, dtype: torch.dtype) -> tuple:
    """What the compiled antialias loops read, as NumPy arrays in ``dtype``: per-column and per-row offsets
    of pixel centres from the image centre (``col + 0.5 - W/2``, op for op as the torch path computes them) and
    the constants (W/2, H/2, 1, 0.5, lowest finite value)."""
    fx = torch.arange(w).to(dtype) + 0.5 - w / 2
    fy = torch.arange(h).to(dtype) + 0.5 - h / 2
    consts = torch.tensor([w / 2, h / 2, 1.0, 0.5, -torch.finfo(dtype).max], dtype=dtype)
    return fx.numpy(), fy.numpy(), consts.numpy()


def _gather_vertices(values: torch.Tensor, batch: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """values (B, V, C), batch (P,), index (P, K) -> values[batch[:, None], index] as (P, K, C), via the
    much faster index_select on a flattened view."""
    nb, nv, nc = values.shape
    flat = (batch[:, None] * nv + index).reshape(-1)
    return values.reshape(nb * nv, nc).index_select(0, flat).view(*index.shape, nc)


def _cross_xyw(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cross product of (..., 3) vectors written out so that cross(b, a) == -cross(a, b) bit for bit."""
    ax, ay, aw = a.unbind(-1)
    bx, by, bw = b.unbind(-1)
    return torch.stack([ay * bw - aw * by, aw * bx - ax * bw, ax * by - ay * bx], dim=-1)


class CpuRasterizer:
    """The CPU backend. Works on any torch device (it is plain torch), tuned for the CPU.

    max_pairs bounds the (triangle, pixel) candidate pairs tested at once (memory ~ 200 bytes per pair).
    compiled: on CPU tensors, run the loops that carry no gradient (visibility, the antialias pass's pixel
    pairs; and barycentrics, interpolation and the blend where no gradient is asked for) compiled
    (:mod:`recon.render.cpu_kernels`, same arithmetic in the same order, same results) instead of as vectorised
    torch ops; other devices always use the torch ops.
    """

    name = "cpu"

    def __init__(self, max_pairs: int = 1 << 20, compiled: bool = True):
        self.max_pairs = int(max_pairs)
        self.compiled = bool(compiled)
        # Silhouette tests need each edge's opposite vertex; a prior renders the same fixed meshes every
        # step, so the last few faces tensors' answers are kept (holding the tensor, so its id stays its own,
        # and its version counter, so an in-place edit is a miss). The LRU is bounded by faces, not entries: it
        # must hold a whole library plus a step's meshes (capped at 16 entries, the 17 toy-world members,
        # rendered in turn, evicted each other and every lookup missed).
        self._opposite: OrderedDict[int, tuple[torch.Tensor, int, int, torch.Tensor]] = OrderedDict()
        self._opposite_lock = threading.Lock()

    def _opposite_vertices(self, faces: torch.Tensor, num_vertices: int) -> torch.Tensor:
        """``edge_adjacency(faces, num_vertices).opposite``, remembered for the most recent faces tensors (at most
        :data:`OPPOSITE_CACHE_FACES` faces in all; the newest is always kept)."""
        key = id(faces)
        with self._opposite_lock:
            hit = self._opposite.get(key)
            if hit is not None and hit[0] is faces and hit[1] == faces._version and hit[2] == num_vertices:
                self._opposite.move_to_end(key)
                return hit[3]
        opposite = edge_adjacency(faces, num_vertices).opposite
        with self._opposite_lock:
            self._opposite[key] = (faces, faces._version, num_vertices, opposite)
            kept = sum(int(v[0].shape[0]) for v in self._opposite.values())
            while kept > OPPOSITE_CACHE_FACES and len(self._opposite) > 1:
                kept -= int(self._opposite.popitem(last=False)[1][0].shape[0])
        return opposite

    # ------------------------------------------------------------------ rasterize
    def rasterize(
        self, verts_clip: torch.Tensor, faces: torch.Tensor, resolution: tuple[int, int]
    ) -> tuple[torch.Tensor, None]:
        """verts_clip (B, V, 4), faces (F, 3), resolution (H, W) -> (rast (B, H, W, 4), None)."""
        _check_inputs(verts_clip, faces)
        h, w = int(resolution[0]), int(resolution[1])
        faces_l = faces.long()
        with torch.no_grad():
            tri = self.visible_triangles(verts_clip.detach(), faces_l, h, w)
        if self._compiled_forward(verts_clip):
            from recon.render.cpu_kernels import rast_from_ids

            dtype = verts_clip.dtype
            out = torch.zeros(*tri.shape, 4, dtype=dtype)
            rast_from_ids(tri.numpy(), verts_clip.detach().contiguous().numpy(), faces_l.contiguous().numpy(),
                          _pixel_centres(w, dtype, "cpu").numpy(), _pixel_centres(h, dtype, "cpu").numpy(),
                          torch.ones(1, dtype=dtype).numpy(), out.numpy())
            return out, None
        return self._rast_from_ids(verts_clip, faces_l, tri), None

    def _compiled_forward(self, *tensors: torch.Tensor) -> bool:
        """True where the compiled loops may stand in for the torch ops: CPU tensors of a float dtype that
        no gradient will flow through (e.g. a prior's renders of fixed meshes)."""
        return (self.compiled and all(t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64)
                                      for t in tensors)
                and not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors)))

    def visible_triangles(self, verts_clip: torch.Tensor, faces: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """(B, H, W) long id of the nearest triangle covering each pixel centre, -1 where none."""
        bsz, device = verts_clip.shape[0], verts_clip.device
        nf = faces.shape[0]
        best_d = torch.full((bsz * h * w,), float("inf"), dtype=torch.float64, device=device)
        best_t = torch.full((bsz * h * w,), -1, dtype=torch.long, device=device)
        if nf == 0 or bsz == 0:
            return best_t.view(bsz, h, w)
        if self.compiled and device.type == "cpu":
            from recon.render.cpu_kernels import nearest_triangles, setup_triangles

            pos = verts_clip.to(torch.float64).contiguous().numpy()
            tris = setup_triangles(pos, faces.contiguous().numpy(), h, w)
            return torch.from_numpy(nearest_triangles(*tris, nf, h, w, bsz)).view(bsz, h, w)
        tris = self._setup(verts_clip, faces, h, w)
        keep = tris["keep"]
        if keep.numel() == 0:
            return best_t.view(bsz, h, w)
        # Chunks of whole triangles whose bounding boxes hold at most max_pairs pixels (one huge triangle
        # alone): an upper bound on the candidate pixels of the chunk.
        box = tris["nx"] * tris["ny"]
        ends = torch.cumsum(box, 0)
        start = 0
        while start < keep.numel():
            base = int(ends[start - 1]) if start else 0
            stop = max(int(torch.searchsorted(ends, base + self.max_pairs, right=True)), start + 1)
            pix, zw, tri_f = self._candidates(tris, start, stop, h, w, nf)
            # z-buffer merge, ties to the lower triangle id; deterministic.
            new_d = best_d.scatter_reduce(0, pix, zw, reduce="amin", include_self=True)
            winner = (zw == new_d.index_select(0, pix)).nonzero().squeeze(1)
            cand = torch.full_like(best_t, _MAX_TRIANGLES)
            cand.scatter_reduce_(0, pix.index_select(0, winner), tri_f.index_select(0, winner),
                                 reduce="amin", include_self=True)
            same = new_d == best_d
            merged = torch.where(same & (best_t >= 0), torch.minimum(best_t, cand), cand)
            best_t = torch.where(merged >= _MAX_TRIANGLES, best_t, merged)
            best_d = new_d
            start = stop
        return best_t.view(bsz, h, w)

    @staticmethod
    def _candidates(tris: dict[str, torch.Tensor], start: int, stop: int, h: int, w: int, nf: int):
        """Covered pixels of triangles [start, stop): flat pixel index (b * H + row) * W + col, z/w, face id.

        Row spans first: on each bounding-box row the three edge half-planes bound the covered columns, so
        only pixels near the span are expanded; the exact edge-function test then decides every pixel.
        """
        device = tris["a"].device
        sel = slice(start, stop)
        a, b, c = tris["a"][sel], tris["b"][sel], tris["c"][sel]  # (T, 3) each: e_i = a_i px + b_i py + c_i
        ny = tris["ny"][sel]
        # (triangle, row) pairs.
        t_row = torch.repeat_interleave(torch.arange(stop - start, device=device), ny)
        offs = torch.cumsum(ny, 0) - ny
        row = tris["r0"][sel].index_select(0, t_row) + (torch.arange(t_row.numel(), device=device)
                                                        - offs.index_select(0, t_row))
        py = row.to(torch.float64) * _SUB + _SUB / 2
        ar = a.index_select(0, t_row)
        kr = b.index_select(0, t_row) * py[:, None] + c.index_select(0, t_row)  # e = ar * px + kr on this row
        # Column span from the half-planes ar * px + kr >= 0 (ties are settled by the exact test below).
        with torch.no_grad():
            bound = -kr / torch.where(ar != 0, ar, torch.ones_like(ar))
            inf = torch.full_like(bound, float("inf"))
            lo = torch.where(ar > 0, bound, -inf).max(-1).values
            hi = torch.where(ar < 0, bound, inf).min(-1).values
            dead = ((ar == 0) & (kr < 0)).any(-1)
            c0 = tris["c0"][sel].index_select(0, t_row)
            c1 = tris["c1"][sel].index_select(0, t_row)
            j0 = torch.maximum(torch.ceil((lo - _SUB / 2) / _SUB - 1e-6), c0.to(torch.float64))
            j1 = torch.minimum(torch.floor((hi - _SUB / 2) / _SUB + 1e-6), c1.to(torch.float64))
            span = torch.where(dead, 0, (j1 - j0 + 1).clamp(min=0)).long()
            j0 = torch.where(dead, 0, j0.clamp(min=0, max=w)).long()
        # Pixels of the spans.
        rows_kept = (span > 0).nonzero().squeeze(1)
        span = span.index_select(0, rows_kept)
        p_row = torch.repeat_interleave(rows_kept, span)
        offs = torch.cumsum(span, 0) - span
        k = torch.arange(p_row.numel(), device=device) - torch.repeat_interleave(offs, span)
        col = j0.index_select(0, p_row) + k
        px = (col.to(torch.float64) * _SUB + _SUB / 2)[:, None]
        ap = ar.index_select(0, p_row)
        e = ap * px + kr.index_select(0, p_row)  # (P, 3) oriented edge functions
        top_left = (ap > 0) | ((ap == 0) & (b.index_select(0, t_row.index_select(0, p_row)) > 0))
        inside = ((e > 0) | ((e == 0) & top_left)).all(-1).nonzero().squeeze(1)
        e = e.index_select(0, inside)
        p_row = p_row.index_select(0, inside)
        col = col.index_select(0, inside)
        t_loc = t_row.index_select(0, p_row)
        zc = tris["zc"][sel].index_select(0, t_loc)
        wc = tris["wc"][sel].index_select(0, t_loc)
        zw = (e * zc).sum(-1) / (e * wc).sum(-1)
        ok = ((zw >= -1) & (zw <= 1)).nonzero().squeeze(1)
        t_glob = tris["keep"][sel].index_select(0, t_loc.index_select(0, ok))
        bb = torch.div(t_glob, nf, rounding_mode="floor")
        pix = (bb * h + row.index_select(0, p_row.index_select(0, ok))) * w + col.index_select(0, ok)
        return pix, zw.index_select(0, ok), t_glob - bb * nf

    @staticmethod
    def _setup(verts_clip: torch.Tensor, faces: torch.Tensor, h: int, w: int) -> dict[str, torch.Tensor]:
        """Per-triangle edge functions and bounding boxes, for the T triangles that may cover a pixel.

        Returns a dict of (T, 3) float64 ``a``, ``b``, ``c`` — oriented edge functions e_i(p) = a_i px + b_i py
        + c_i over pixel coordinates in 1/16-pixel units (pixel (j, i) at (16 j + 8, 16 i + 8)), positive
        inside — ``zc``, ``wc`` (z/w at a pixel = sum e_i zc_i / sum e_i wc_i), (T,) long box ``c0``, ``c1``,
        ``r0``, ``nx``, ``ny``, and ``keep``, the global triangle ids b * F + f.

        Triangles in front of the eye and inside the guard band are snapped to 1/16 pixel (as nvdiffrast's
        rasteriser does) and their edge functions are exact integers held in float64 (below 2^53), so ties
        at shared edges and vertices are decided exactly. Others (a vertex behind the eye or far off screen)
        use homogeneous edge functions over (x, y, w) (Olano & Greer), which need no near-plane clipping and
        are exactly antisymmetric across shared edges.
        """
        bsz = verts_clip.shape[0]
        nf = faces.shape[0]
        pos = verts_clip.to(torch.float64)
        flat_faces = (faces[None] + torch.arange(bsz, device=faces.device)[:, None, None] * pos.shape[1])
        tv = pos.reshape(-1, 4).index_select(0, flat_faces.reshape(-1)).view(bsz * nf, 3, 4)
        x, y, z, ww = tv.unbind(-1)  # (B*F, 3)
        outside = ((x > ww).all(-1) | (x < -ww).all(-1) | (y > ww).all(-1) | (y < -ww).all(-1)
                   | (z > ww).all(-1) | (z < -ww).all(-1))
        # Snapped screen positions: 1/16-pixel integer units, only in front of the eye and in the guard band.
        in_front = (ww > 0).all(-1)
        safe_w = torch.where(ww > 0, ww, torch.ones_like(ww))
        sx = torch.round((x / safe_w + 1) * (w * _SUB / 2))
        sy = torch.round((y / safe_w + 1) * (h * _SUB / 2))
        snapped = in_front & (sx.abs() <= _GUARD).all(-1) & (sy.abs() <= _GUARD).all(-1)
        # Pixel-index boxes: centres j with j + 0.5 inside the (snapped) extent; whole screen when a vertex
        # is behind the eye. The 1e-6 pixel slack only guards rounding.
        snap3 = snapped[:, None]
        px = torch.where(snap3, sx / _SUB, (x / safe_w + 1) * (w / 2)) - 0.5
        py = torch.where(snap3, sy / _SUB, (y / safe_w + 1) * (h / 2)) - 0.5
        zero = torch.zeros_like(in_front, dtype=torch.float64)
        c0 = torch.where(in_front, torch.ceil(px.min(-1).values - 1e-6), zero).clamp(min=0)
        c1 = torch.where(in_front, torch.floor(px.max(-1).values + 1e-6), zero + (w - 1)).clamp(max=w - 1)
        r0 = torch.where(in_front, torch.ceil(py.min(-1).values - 1e-6), zero).clamp(min=0)
        r1 = torch.where(in_front, torch.floor(py.max(-1).values + 1e-6), zero + (h - 1)).clamp(max=h - 1)
        nx = (c1 - c0 + 1).clamp(min=0)
        ny = (r1 - r0 + 1).clamp(min=0)
        # Most triangles of a dense mesh cover no pixel centre: drop them before the edge-function setup.
        keep = (~outside & (nx > 0) & (ny > 0)).nonzero().squeeze(1)
        x, y, z, ww, sx, sy, safe_w = (t.index_select(0, keep) for t in (x, y, z, ww, sx, sy, safe_w))
        snapped = snapped.index_select(0, keep)
        j, k = [1, 2, 0], [2, 0, 1]

        # Homogeneous path: N_i = V_j x V_k over (x, y, w); e_i = N_i . (x_ndc, y_ndc, 1), rewritten over
        # fixed-point pixel coordinates with x_ndc = px * sx - 1 (every step negates exactly with N).
        hom = torch.stack([x, y, ww], dim=-1)  # (T, 3 vertices, 3)
        normals = _cross_xyw(hom[:, j], hom[:, k])  # (T, 3 edges, 3)
        det_h = (normals[:, 0] * hom[:, 0]).sum(-1)  # V_0 . (V_1 x V_2)
        nx_, ny_, nw_ = normals.unbind(-1)
        sxs, sys_ = 2 / (w * _SUB), 2 / (h * _SUB)
        a_h, b_h, c_h = nx_ * sxs, ny_ * sys_, (nw_ - nx_) - ny_

        # Snapped path: e_i(p) = (V_k - V_j) x (p - V_j), exact integers.
        dx = sx[:, k] - sx[:, j]
        dy = sy[:, k] - sy[:, j]
        a_s, b_s = -dy, dx
        c_s = dy * sx[:, j] - dx * sy[:, j]
        det_s = dx[:, 0] * (sy[:, 0] - sy[:, 1]) - dy[:, 0] * (sx[:, 0] - sx[:, 1])  # e_0(V_0)

        snap3 = snapped[:, None]
        det = torch.where(snapped, det_s, det_h)
        sign = torch.sign(det)[:, None]  # exact: +-1
        good = ((det != 0) & torch.isfinite(det)).nonzero().squeeze(1)

        def take(t: torch.Tensor) -> torch.Tensor:
            return t.index_select(0, good)

        out = {
            "a": take(torch.where(snap3, a_s, a_h) * sign),
            "b": take(torch.where(snap3, b_s, b_h) * sign),
            "c": take(torch.where(snap3, c_s, c_h) * sign),
            "zc": take(torch.where(snap3, z / safe_w, z)),
            "wc": take(torch.where(snap3, torch.ones_like(ww), ww)),
        }
        keep = keep.index_select(0, good)
        for name, t in (("c0", c0), ("c1", c1), ("r0", r0), ("nx", nx), ("ny", ny)):
            out[name] = t.index_select(0, keep).long()
        out["keep"] = keep
        return out

    @staticmethod
    def _rast_from_ids(verts_clip: torch.Tensor, faces: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
        """Differentiable (u, v, z/w, id + 1) for pixels with a triangle id; zeros elsewhere."""
        bsz, h, w = tri.shape
        dtype, device = verts_clip.dtype, verts_clip.device
        flat = (tri.reshape(-1) >= 0).nonzero().squeeze(1)
        f = tri.reshape(-1).index_select(0, flat)
        b = torch.div(flat, h * w, rounding_mode="floor")
        rc = flat - b * h * w
        r = torch.div(rc, w, rounding_mode="floor")
        c = rc - r * w
        p = _gather_vertices(verts_clip, b, faces.index_select(0, f))  # (P, 3, 4)
        fx = _pixel_centres(w, dtype, device).index_select(0, c)[:, None]
        fy = _pixel_centres(h, dtype, device).index_select(0, r)[:, None]
        px = p[..., 0] - fx * p[..., 3]
        py = p[..., 1] - fy * p[..., 3]
        a0 = px[:, 1] * py[:, 2] - py[:, 1] * px[:, 2]
        a1 = px[:, 2] * py[:, 0] - py[:, 2] * px[:, 0]
        a2 = px[:, 0] * py[:, 1] - py[:, 0] * px[:, 1]
        at = a0 + a1 + a2
        b0 = a0 / at
        b1 = a1 / at
        a = torch.stack([a0, a1, a2], dim=-1).detach()
        zw = ((p[..., 2].detach() * a).sum(-1) / (p[..., 3].detach() * a).sum(-1)).clamp(-1, 1)
        # nvdiffrast clamps barycentrics in the forward pass only; keep its unclamped gradient.
        c0 = b0.detach().clamp(0, 1)
        c1 = b1.detach().clamp(0, 1)
        scale = 1 / torch.clamp(c0 + c1, min=1)
        b0 = b0 + (c0 * scale - b0).detach()
        b1 = b1 + (c1 * scale - b1).detach()
        vals = torch.stack([b0, b1, zw, (f + 1).to(dtype)], dim=-1)
        rast = torch.zeros(bsz * h * w, 4, dtype=dtype, device=device)
        return rast.index_copy(0, flat, vals).view(bsz, h, w, 4)

    # ---------------------------------------------------------------- interpolate
    def interpolate(
        self, attr: torch.Tensor, rast: torch.Tensor, faces: torch.Tensor
    ) -> tuple[torch.Tensor, None]:
        """attr (V, C), (1, V, C) or (B, V, C) -> ((B, H, W, C), None); zero where no triangle.

        value = u * a[f0] + v * a[f1] + (1 - u - v) * a[f2]; gradients reach attr and rast's (u, v).
        """
        if attr.dim() == 2:
            attr = attr.unsqueeze(0)
        bsz, h, w, _ = rast.shape
        if attr.shape[0] not in (1, bsz):
            raise ValueError(f"attr batch {attr.shape[0]} does not match rast batch {bsz}")
        if self._compiled_forward(attr, rast) and attr.dtype == rast.dtype:
            from recon.render.cpu_kernels import interpolate

            out = torch.zeros(bsz, h, w, attr.shape[-1], dtype=attr.dtype)
            interpolate(attr.detach().contiguous().numpy(), rast.detach().contiguous().numpy(),
                        faces.long().contiguous().numpy(),
                        torch.ones(1, dtype=rast.dtype).numpy(), out.numpy())
            return out, None
        tri = rast[..., 3].detach().reshape(-1).long() - 1
        flat = (tri >= 0).nonzero().squeeze(1)
        vi = faces.long().index_select(0, tri.index_select(0, flat))  # (P, 3)
        b = torch.div(flat, h * w, rounding_mode="floor")
        av = _gather_vertices(attr, b if attr.shape[0] == bsz else torch.zeros_like(b), vi)  # (P, 3, C)
        uv = rast.reshape(-1, 4).index_select(0, flat)
        u, v = uv[:, 0:1], uv[:, 1:2]
        vals = u * av[:, 0] + v * av[:, 1] + (1 - u - v) * av[:, 2]
        out = torch.zeros(bsz * h * w, attr.shape[-1], dtype=vals.dtype, device=rast.device)
        return out.index_copy(0, flat, vals).view(bsz, h, w, -1), None

    # ------------------------------------------------------------------ antialias
    def antialias(
        self, color: torch.Tensor, rast: torch.Tensor, verts_clip: torch.Tensor, faces: torch.Tensor
    ) -> torch.Tensor:
        """color (B, H, W, C) -> antialiased (B, H, W, C); gradients reach color and verts_clip."""
        bsz, h, w, ch = color.shape
        faces_l = faces.long()
        flat_color = color.reshape(-1, ch)
        with torch.no_grad():
            work = self._antialias_work(rast.detach(), verts_clip.detach(), faces_l)
        if work is None:
            return color
        flat0, flat1, own, edge, ds, d = work
        if self._compiled_forward(color, verts_clip) and color.dtype == verts_clip.dtype:
            from recon.render.cpu_kernels import blend_pairs

            out = flat_color.detach().clone()
            blend_pairs(flat_color.detach().contiguous().numpy(), flat0.numpy(), flat1.numpy(), own.numpy(), edge.numpy(),
                        ds.numpy(), d.numpy(), verts_clip.detach().contiguous().numpy(), faces_l.contiguous().numpy(),
                        *_pixel_frame(h, w, verts_clip.dtype), out.numpy())
            return out.view(bsz, h, w, ch)
        # Differentiable crossing position of the chosen edge, relative to the owning pixel's centre.
        origin = torch.where(ds > 0, flat0, flat1)
        b = torch.div(origin, h * w, rounding_mode="floor")
        rem = origin - b * h * w
        row = torch.div(rem, w, rounding_mode="floor")
        col = rem - row * w
        fo = faces_l.index_select(0, own)
        vj = fo.gather(1, ((edge + 1) % 3)[:, None])
        vk = fo.gather(1, ((edge + 2) % 3)[:, None])
        pj = _gather_vertices(verts_clip, b, vj)[:, 0]
        pk = _gather_vertices(verts_clip, b, vk)[:, 0]
        xj, yj = self._pixel_space(pj, col, row, w, h)
        xk, yk = self._pixel_space(pk, col, row, w, h)
        vertical = d.bool()
        xj, yj = torch.where(vertical, yj, xj), torch.where(vertical, xj, yj)
        xk, yk = torch.where(vertical, yk, xk), torch.where(vertical, xk, yk)
        dx, dy = xk - xj, yk - yj
        dc = ds * (xj * dy - yj * dx) / dy
        clamped = dc.clamp(0, 1)
        # Saturated crossings give no position gradient (nvdiffrast kills them as well).
        saturated = (dc.detach() <= 0) | (dc.detach() >= 1)
        clamped = torch.where(saturated, clamped.detach(), clamped)
        alpha = ds * (0.5 - clamped)
        target = torch.where(alpha.detach() > 0, flat0, flat1)
        contrib = alpha[:, None] * (flat_color.index_select(0, flat1) - flat_color.index_select(0, flat0))
        return flat_color.index_add(0, target, contrib.to(flat_color.dtype)).view(bsz, h, w, ch)

    @staticmethod
    def _pixel_space(p: torch.Tensor, col: torch.Tensor, row: torch.Tensor, w: int, h: int):
        """Clip positions (N, 4) -> pixel-unit coordinates relative to pixel (col, row)'s centre."""
        x = p[:, 0] / p[:, 3] * (w / 2) - (col.to(p.dtype) + 0.5 - w / 2)
        y = p[:, 1] / p[:, 3] * (h / 2) - (row.to(p.dtype) + 0.5 - h / 2)
        return x, y

    def _antialias_work_compiled(self, tri: torch.Tensor, zbuf: torch.Tensor, verts_clip: torch.Tensor,
                                 faces: torch.Tensor):
        """:meth:`_antialias_work` through the compiled loop (same pairs, same order)."""
        from recon.render.cpu_kernels import silhouette_pairs

        h, w = tri.shape[1:]
        opposite = self._opposite_vertices(faces, verts_clip.shape[1])
        f0, own, edge, ds, d = (torch.from_numpy(a) for a in silhouette_pairs(
            tri.contiguous().numpy(), zbuf.contiguous().numpy(), verts_clip.contiguous().numpy(),
            faces.contiguous().numpy(), opposite.contiguous().numpy(), *_pixel_frame(h, w, verts_clip.dtype)))
        if f0.numel() == 0:
            return None
        return f0, f0 + torch.where(d == 1, w, 1), own, edge, ds, d

    def _antialias_work(self, rast: torch.Tensor, verts_clip: torch.Tensor, faces: torch.Tensor):
        """Pixel pairs whose colours get blended: (flat0, flat1, owning face, edge index, ds, d) or None."""
        bsz, h, w, _ = rast.shape
        device = rast.device
        tri = rast[..., 3].long() - 1
        zbuf = rast[..., 2]
        if self.compiled and device.type == "cpu":
            return self._antialias_work_compiled(tri, zbuf, verts_clip, faces)
        idx = torch.arange(bsz * h * w, device=device).view(bsz, h, w)
        f0 = torch.cat([idx[:, :, :-1][tri[:, :, :-1] != tri[:, :, 1:]],
                        idx[:, :-1, :][tri[:, :-1, :] != tri[:, 1:, :]]])
        n_h = int((tri[:, :, :-1] != tri[:, :, 1:]).sum())
        d = torch.zeros_like(f0)
        d[n_h:] = 1
        if f0.numel() == 0:
            return None
        f1 = f0 + torch.where(d == 1, w, 1)
        tflat, zflat = tri.reshape(-1), zbuf.reshape(-1)
        t0, t1 = tflat[f0], tflat[f1]
        use1 = (t0 < 0) | ((t1 >= 0) & ~(zflat[f0] < zflat[f1]))
        own = torch.where(use1, t1, t0)
        ds = torch.where(use1, -1.0, 1.0).to(verts_clip.dtype)
        origin = torch.where(use1, f1, f0)
        b = torch.div(origin, h * w, rounding_mode="floor")
        rem = origin - b * h * w
        row = torch.div(rem, w, rounding_mode="floor")
        col = rem - row * w

        vi = faces.index_select(0, own)  # (P, 3)
        op = self._opposite_vertices(faces, verts_clip.shape[1]).index_select(0, own)
        op = torch.where(op >= 0, op, vi)  # no neighbour: the vertex itself, always a silhouette
        pv = _gather_vertices(verts_clip, b, vi)  # (P, 3, 4)
        po = _gather_vertices(verts_clip, b, op)
        fxp = (col.to(pv.dtype) + 0.5 - w / 2)[:, None]
        fyp = (row.to(pv.dtype) + 0.5 - h / 2)[:, None]
        x = pv[..., 0] / pv[..., 3] * (w / 2) - fxp
        y = pv[..., 1] / pv[..., 3] * (h / 2) - fyp
        ox = po[..., 0] / po[..., 3] * (w / 2) - fxp
        oy = po[..., 1] / po[..., 3] * (h / 2) - fyp
        j, k = [1, 2, 0], [2, 0, 1]

        def area(ax, ay, bx, by, cx, cy):
            return (bx - ax) * (cy - ay) - (cx - ax) * (by - ay)

        bb = area(x[:, 0], y[:, 0], x[:, 1], y[:, 1], x[:, 2], y[:, 2])
        # Wing triangles: each edge with the neighbour's opposite vertex in place of the own corner.
        wing = area(ox, oy, x[:, j], y[:, j], x[:, k], y[:, k])  # (P, 3)
        sil = torch.signbit(wing) == torch.signbit(bb)[:, None]
        vertical = (d == 1)[:, None]
        xs_, ys_ = torch.where(vertical, y, x), torch.where(vertical, x, y)
        dx = xs_[:, k] - xs_[:, j]
        dy = ys_[:, k] - ys_[:, j]
        num = ds[:, None] * (xs_[:, j] * dy - ys_[:, j] * dx)
        crosses = (torch.signbit(ys_[:, j]) != torch.signbit(ys_[:, k])) & (dy != 0)
        dc = torch.where(crosses, num / torch.where(dy != 0, dy, torch.ones_like(dy)),
                         torch.full_like(num, -torch.finfo(num.dtype).max))
        di = dc.argmax(-1)
        pick = torch.arange(di.numel(), device=device)
        dcs = dc[pick, di]
        eps = 0.0625  # nvdiffrast accepts crossings up to 1/16 pixel outside the pair
        ok = (sil.any(-1) & sil[pick, di] & (dy[pick, di].abs() >= dx[pick, di].abs())
              & (dcs > -eps) & (dcs < 1 + eps))
        if not bool(ok.any()):
            return None
        return f0[ok], f1[ok], own[ok], di[ok], ds[ok], d[ok]
