"""Compiled (numba) inner loop of the CPU rasteriser's visibility pass.

The torch version of this loop (``CpuRasterizer._candidates`` and the z-buffer merge) expands every
(triangle, row, pixel) candidate into tensors: dozens of small ops per call, which on the 32²–128² renders of
the quick start cost more in dispatch than in arithmetic. This loop does the same float64 arithmetic in the
same order (row spans, exact edge-function test with the top-left rule, z/w clipping, nearest z with ties to
the lower triangle id), so both give the same triangle ids.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_SUB = 16.0
_GUARD = float(1 << 24)
_J = (1, 2, 0)
_K = (2, 0, 1)


@njit(cache=True, nogil=True)
def setup_triangles(pos, faces, h, w):  # pragma: no cover - compiled
    """``CpuRasterizer._setup`` in one loop: pos (B, V, 4) float64 clip positions, faces (F, 3) int64 ->
    the same dict entries as arrays (a, b, c, zc, wc, c0, c1, r0, ny, keep), same arithmetic."""
    bsz, nf = pos.shape[0], faces.shape[0]
    n = bsz * nf
    a = np.empty((n, 3))
    b = np.empty((n, 3))
    c = np.empty((n, 3))
    zc = np.empty((n, 3))
    wc = np.empty((n, 3))
    c0 = np.empty(n, np.int64)
    c1 = np.empty(n, np.int64)
    r0 = np.empty(n, np.int64)
    ny = np.empty(n, np.int64)
    keep = np.empty(n, np.int64)
    x = np.empty(3)
    y = np.empty(3)
    z = np.empty(3)
    ww = np.empty(3)
    sw = np.empty(3)
    sx = np.empty(3)
    sy = np.empty(3)
    px = np.empty(3)
    py = np.empty(3)
    nrm = np.empty((3, 3))
    sxs, sys_ = 2 / (w * _SUB), 2 / (h * _SUB)
    out = 0
    for bi in range(bsz):
        for fi in range(nf):
            for i in range(3):
                v = faces[fi, i]
                x[i], y[i], z[i], ww[i] = pos[bi, v, 0], pos[bi, v, 1], pos[bi, v, 2], pos[bi, v, 3]
            if ((x[0] > ww[0] and x[1] > ww[1] and x[2] > ww[2]) or (x[0] < -ww[0] and x[1] < -ww[1] and x[2] < -ww[2])
                    or (y[0] > ww[0] and y[1] > ww[1] and y[2] > ww[2])
                    or (y[0] < -ww[0] and y[1] < -ww[1] and y[2] < -ww[2])
                    or (z[0] > ww[0] and z[1] > ww[1] and z[2] > ww[2])
                    or (z[0] < -ww[0] and z[1] < -ww[1] and z[2] < -ww[2])):
                continue
            in_front = ww[0] > 0 and ww[1] > 0 and ww[2] > 0
            snapped = in_front
            for i in range(3):
                sw[i] = ww[i] if ww[i] > 0 else 1.0
                sx[i] = np.rint((x[i] / sw[i] + 1) * (w * _SUB / 2))
                sy[i] = np.rint((y[i] / sw[i] + 1) * (h * _SUB / 2))
                if not (abs(sx[i]) <= _GUARD and abs(sy[i]) <= _GUARD):
                    snapped = False
            for i in range(3):
                if snapped:
                    px[i] = sx[i] / _SUB - 0.5
                    py[i] = sy[i] / _SUB - 0.5
                else:
                    px[i] = (x[i] / sw[i] + 1) * (w / 2) - 0.5
                    py[i] = (y[i] / sw[i] + 1) * (h / 2) - 0.5
            if in_front:
                lo_c = max(math.ceil(min(px[0], px[1], px[2]) - 1e-6), 0.0)
                hi_c = min(math.floor(max(px[0], px[1], px[2]) + 1e-6), w - 1.0)
                lo_r = max(math.ceil(min(py[0], py[1], py[2]) - 1e-6), 0.0)
                hi_r = min(math.floor(max(py[0], py[1], py[2]) + 1e-6), h - 1.0)
            else:
                lo_c, hi_c, lo_r, hi_r = 0.0, w - 1.0, 0.0, h - 1.0
            if not (hi_c - lo_c + 1 > 0 and hi_r - lo_r + 1 > 0):
                continue
            if snapped:
                det = ((sx[2] - sx[1]) * (sy[0] - sy[1]) - (sy[2] - sy[1]) * (sx[0] - sx[1]))
            else:
                for e in range(3):
                    j, k = _J[e], _K[e]
                    nrm[e, 0] = y[j] * ww[k] - ww[j] * y[k]
                    nrm[e, 1] = ww[j] * x[k] - x[j] * ww[k]
                    nrm[e, 2] = x[j] * y[k] - y[j] * x[k]
                det = nrm[0, 0] * x[0] + nrm[0, 1] * y[0] + nrm[0, 2] * ww[0]
            if det == 0 or not math.isfinite(det):
                continue
            sign = 1.0 if det > 0 else -1.0
            for e in range(3):
                j, k = _J[e], _K[e]
                if snapped:
                    dx = sx[k] - sx[j]
                    dy = sy[k] - sy[j]
                    a[out, e] = -dy * sign
                    b[out, e] = dx * sign
                    c[out, e] = (dy * sx[j] - dx * sy[j]) * sign
                    zc[out, e] = z[e] / sw[e]
                    wc[out, e] = 1.0
                else:
                    a[out, e] = nrm[e, 0] * sxs * sign
                    b[out, e] = nrm[e, 1] * sys_ * sign
                    c[out, e] = ((nrm[e, 2] - nrm[e, 0]) - nrm[e, 1]) * sign
                    zc[out, e] = z[e]
                    wc[out, e] = ww[e]
            c0[out], c1[out], r0[out] = int(lo_c), int(hi_c), int(lo_r)
            ny[out] = int(hi_r - lo_r + 1)
            keep[out] = bi * nf + fi
            out += 1
    return a[:out], b[:out], c[:out], zc[:out], wc[:out], c0[:out], c1[:out], r0[:out], ny[:out], keep[:out]


@njit(cache=True, nogil=True)
def nearest_triangles(a, b, c, zc, wc, c0, c1, r0, ny, keep, nf, h, w, bsz):  # pragma: no cover - compiled
    """Triangle set-up of ``CpuRasterizer._setup`` (T, 3) float64 a, b, c, zc, wc and (T,) int64 c0, c1, r0,
    ny, keep -> (bsz * h * w,) int64 id of the nearest triangle per pixel, -1 where none."""
    npix = bsz * h * w
    best_d = np.full(npix, np.inf)
    best_t = np.full(npix, -1, np.int64)
    kr = np.empty(3)
    ev = np.empty(3)
    for t in range(a.shape[0]):
        bb = keep[t] // nf
        f = keep[t] - bb * nf
        for i in range(ny[t]):
            row = r0[t] + i
            py = row * _SUB + _SUB / 2
            lo = -np.inf
            hi = np.inf
            dead = False
            for e in range(3):
                kr[e] = b[t, e] * py + c[t, e]
                ar = a[t, e]
                if ar == 0.0:
                    if kr[e] < 0.0:
                        dead = True
                else:
                    bound = -kr[e] / ar
                    if ar > 0.0:
                        lo = max(lo, bound)
                    else:
                        hi = min(hi, bound)
            if dead:
                continue
            j0 = max(math.ceil((lo - _SUB / 2) / _SUB - 1e-6), float(c0[t]))
            j1 = min(math.floor((hi - _SUB / 2) / _SUB + 1e-6), float(c1[t]))
            if not j1 >= j0:
                continue
            span = int(j1 - j0 + 1)
            start = int(min(max(j0, 0.0), float(w)))
            base = (bb * h + row) * w
            for col in range(start, start + span):
                px = col * _SUB + _SUB / 2
                inside = True
                for e in range(3):
                    ar = a[t, e]
                    ev[e] = ar * px + kr[e]
                    if not (ev[e] > 0.0 or (ev[e] == 0.0 and (ar > 0.0 or (ar == 0.0 and b[t, e] > 0.0)))):
                        inside = False
                        break
                if not inside:
                    continue
                num = 0.0
                den = 0.0
                for e in range(3):
                    num += ev[e] * zc[t, e]
                    den += ev[e] * wc[t, e]
                zw = num / den
                if not (zw >= -1.0 and zw <= 1.0):
                    continue
                p = base + col
                if zw < best_d[p] or (zw == best_d[p] and f < best_t[p]):
                    best_d[p] = zw
                    best_t[p] = f
    return best_t


@njit(cache=True, nogil=True)
def silhouette_pairs(tri, zbuf, verts, faces, opposite, fx, fy, consts):  # pragma: no cover - compiled
    """``CpuRasterizer._antialias_work`` in one loop, same arithmetic in the vertices' dtype.

    tri (B, H, W) int64 triangle ids (-1 none), zbuf (B, H, W) z/w, verts (B, V, 4) clip positions, faces
    (F, 3) int64, opposite (F, 3) int64 (``EdgeAdjacency.opposite``), fx (W,) / fy (H,) pixel-centre offsets
    ``col + 0.5 - W/2`` / ``row + 0.5 - H/2`` in the vertices' dtype, consts = (W/2, H/2, 1, 0.5, lowest) in that dtype
    -> (flat0, flat1, own, edge, ds, d) of the pixel pairs whose colours get blended, horizontal pairs first.
    """
    bsz, h, w = tri.shape
    n_max = 2 * bsz * h * w
    o_f0 = np.empty(n_max, np.int64)
    o_own = np.empty(n_max, np.int64)
    o_edge = np.empty(n_max, np.int64)
    o_ds = np.empty(n_max, verts.dtype)
    o_d = np.empty(n_max, np.int64)
    half_w, half_h, one, lowest = consts[0], consts[1], consts[2], consts[4]
    eps_lo, eps_hi = -consts[2] / 16, consts[2] + consts[2] / 16
    x = np.empty(3, verts.dtype)
    y = np.empty(3, verts.dtype)
    ox = np.empty(3, verts.dtype)
    oy = np.empty(3, verts.dtype)
    n = 0
    for d in range(2):
        for bi in range(bsz):
            for r in range(h - d):
                for cc in range(w - 1 + d):
                    r1, c1 = r + d, cc + 1 - d
                    t0, t1 = tri[bi, r, cc], tri[bi, r1, c1]
                    if t0 == t1:
                        continue
                    use1 = t0 < 0 or (t1 >= 0 and not (zbuf[bi, r, cc] < zbuf[bi, r1, c1]))
                    own = t1 if use1 else t0
                    ds = -one if use1 else one
                    row, col = (r1, c1) if use1 else (r, cc)
                    for i in range(3):
                        v = faces[own, i]
                        op = opposite[own, i]
                        if op < 0:
                            op = v
                        x[i] = verts[bi, v, 0] / verts[bi, v, 3] * half_w - fx[col]
                        y[i] = verts[bi, v, 1] / verts[bi, v, 3] * half_h - fy[row]
                        ox[i] = verts[bi, op, 0] / verts[bi, op, 3] * half_w - fx[col]
                        oy[i] = verts[bi, op, 1] / verts[bi, op, 3] * half_h - fy[row]
                    bb = (x[1] - x[0]) * (y[2] - y[0]) - (x[2] - x[0]) * (y[1] - y[0])
                    any_sil = False
                    best = lowest
                    best_e = 0
                    best_sil = False
                    best_dx = x[0]
                    best_dy = x[0]
                    for e in range(3):
                        j, k = _J[e], _K[e]
                        wing = (x[j] - ox[e]) * (y[k] - oy[e]) - (x[k] - ox[e]) * (y[j] - oy[e])
                        sil = np.signbit(wing) == np.signbit(bb)
                        any_sil = any_sil or sil
                        if d == 1:
                            xj, yj, xk, yk = y[j], x[j], y[k], x[k]
                        else:
                            xj, yj, xk, yk = x[j], y[j], x[k], y[k]
                        dx = xk - xj
                        dy = yk - yj
                        if np.signbit(yj) != np.signbit(yk) and dy != 0:
                            dc = ds * (xj * dy - yj * dx) / dy
                        else:
                            dc = lowest
                        if e == 0 or dc > best:
                            best, best_e, best_sil, best_dx, best_dy = dc, e, sil, dx, dy
                    if (any_sil and best_sil and abs(best_dy) >= abs(best_dx)
                            and best > eps_lo and best < eps_hi):
                        o_f0[n] = (bi * h + r) * w + cc
                        o_own[n] = own
                        o_edge[n] = best_e
                        o_ds[n] = ds
                        o_d[n] = d
                        n += 1
    return o_f0[:n], o_own[:n], o_edge[:n], o_ds[:n], o_d[:n]


@njit(cache=True, nogil=True)
def rast_from_ids(tri, verts, faces, cx, cy, unit, out):  # pragma: no cover - compiled
    """``CpuRasterizer._rast_from_ids``'s forward values: tri (B, H, W) ids, verts (B, V, 4), faces (F, 3),
    cx (W,) / cy (H,) NDC pixel centres and unit (1,) = 1, all in the vertices' dtype, out (B, H, W, 4)
    zeros -> filled in place with (u, v, z/w, id + 1), same arithmetic in that dtype."""
    bsz, h, w = tri.shape
    one = unit[0]
    zero = one - one
    px = np.empty(3, verts.dtype)
    py = np.empty(3, verts.dtype)
    for bi in range(bsz):
        for r in range(h):
            for c in range(w):
                f = tri[bi, r, c]
                if f < 0:
                    continue
                for i in range(3):
                    v = faces[f, i]
                    px[i] = verts[bi, v, 0] - cx[c] * verts[bi, v, 3]
                    py[i] = verts[bi, v, 1] - cy[r] * verts[bi, v, 3]
                a0 = px[1] * py[2] - py[1] * px[2]
                a1 = px[2] * py[0] - py[2] * px[0]
                a2 = px[0] * py[1] - py[0] * px[1]
                at = a0 + a1 + a2
                b0 = a0 / at
                b1 = a1 / at
                v0, v1, v2 = faces[f, 0], faces[f, 1], faces[f, 2]
                zw = ((verts[bi, v0, 2] * a0 + verts[bi, v1, 2] * a1 + verts[bi, v2, 2] * a2)
                      / (verts[bi, v0, 3] * a0 + verts[bi, v1, 3] * a1 + verts[bi, v2, 3] * a2))
                zw = min(max(zw, -one), one)
                c0 = min(max(b0, zero), one)
                c1 = min(max(b1, zero), one)
                scale = one / max(c0 + c1, one)
                out[bi, r, c, 0] = b0 + (c0 * scale - b0)
                out[bi, r, c, 1] = b1 + (c1 * scale - b1)
                out[bi, r, c, 2] = zw
                out[bi, r, c, 3] = f + one


@njit(cache=True, nogil=True)
def interpolate(attr, rast, faces, unit, out):  # pragma: no cover - compiled
    """``CpuRasterizer.interpolate``'s forward values: attr (1 or B, V, C), rast (B, H, W, 4), faces (F, 3),
    unit (1,) = 1 in rast's dtype, out (B, H, W, C) zeros -> filled in place with
    u a[f0] + v a[f1] + (1 - u - v) a[f2]."""
    bsz, h, w = rast.shape[:3]
    one = unit[0]
    for bi in range(bsz):
        ab = bi if attr.shape[0] == bsz else 0
        for r in range(h):
            for c in range(w):
                f = np.int64(rast[bi, r, c, 3]) - 1
                if f < 0:
                    continue
                u, v = rast[bi, r, c, 0], rast[bi, r, c, 1]
                k = one - u - v
                i0, i1, i2 = faces[f, 0], faces[f, 1], faces[f, 2]
                for ch in range(attr.shape[2]):
                    out[bi, r, c, ch] = u * attr[ab, i0, ch] + v * attr[ab, i1, ch] + k * attr[ab, i2, ch]


@njit(cache=True, nogil=True)
def blend_pairs(color, f0, f1, own, edge, ds, d, verts, faces, fx, fy, consts, out):  # pragma: no cover
    """``CpuRasterizer.antialias``'s forward values: color (N, C) flat pixels, the pairs of
    :func:`silhouette_pairs`, fx, fy and consts as there, out (N, C) a copy of color
    -> blended in place, in pair order."""
    h, w = fy.shape[0], fx.shape[0]
    half_w, half_h, half = consts[0], consts[1], consts[3]
    zero = consts[2] - consts[2]
    for p in range(f0.shape[0]):
        s = ds[p]
        origin = f0[p] if s > 0 else f1[p]
        bi = origin // (h * w)
        rem = origin - bi * h * w
        row = rem // w
        col = rem - row * w
        vj = faces[own[p], (edge[p] + 1) % 3]
        vk = faces[own[p], (edge[p] + 2) % 3]
        xj = verts[bi, vj, 0] / verts[bi, vj, 3] * half_w - fx[col]
        yj = verts[bi, vj, 1] / verts[bi, vj, 3] * half_h - fy[row]
        xk = verts[bi, vk, 0] / verts[bi, vk, 3] * half_w - fx[col]
        yk = verts[bi, vk, 1] / verts[bi, vk, 3] * half_h - fy[row]
        if d[p] == 1:
            xj, yj = yj, xj
            xk, yk = yk, xk
        dx = xk - xj
        dy = yk - yj
        dc = s * (xj * dy - yj * dx) / dy
        clamped = min(max(dc, zero), consts[2])
        alpha = s * (half - clamped)
        target = f0[p] if alpha > 0 else f1[p]
        for ch in range(color.shape[1]):
            out[target, ch] += alpha * (color[f1[p], ch] - color[f0[p], ch])
