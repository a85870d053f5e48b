"""The CPU rasteriser against analytic oracles: ray casts for masks and depth, exact coverage counts for the
fill rule, closed-form triangle areas for antialiasing, finite differences for gradients, and a
silhouette-only fit (must-show 1)."""

from __future__ import annotations

import pytest
import torch
import trimesh
from raycast_oracles import boundary_band, ray_box, rotation

from recon.render.backend import RasterBackend
from recon.render.cameras import camera_batch, rays, to_clip
from recon.render.cpu import CpuRasterizer
from recon.scene.mesh_regularizers import laplacian_smoothness

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(params=[True, False], ids=["compiled", "torch"])
def raster(request) -> CpuRasterizer:
    """Both visibility paths face the same oracles: the compiled loop (CPU default) and the torch ops."""
    return CpuRasterizer(compiled=request.param)


def box_mesh(half: torch.Tensor, rot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    box = trimesh.creation.box(extents=(2 * half).tolist())
    v = torch.tensor(box.vertices, dtype=torch.float64) @ rot.T
    return v, torch.tensor(box.faces, dtype=torch.long)


def test_cpu_backend_satisfies_the_protocol():
    assert isinstance(CpuRasterizer(), RasterBackend)


def test_mask_and_depth_of_a_box_match_an_analytic_ray_cast(raster):
    h, w = 72, 96  # non-square: catches aspect-ratio and row/column mix-ups
    half = torch.tensor([0.5, 0.3, 0.4])
    rot = rotation((0.3, 0.7, -0.2))
    verts, faces = box_mesh(half, rot)
    cams = camera_batch([0, 35, -20], [0, 50, 200], [3.0, 3.5, 2.8], [30, 25, 35], (h, w), dtype=torch.float64)
    r = raster
    clip = to_clip(verts.float(), cams.mvp.float())
    rast, db = r.rasterize(clip, faces, (h, w))
    assert db is None and rast.shape == (3, h, w, 4)
    mask = rast[..., 3] > 0

    o, d = rays(cams, h, w, top_first=False)  # the rasteriser's row order
    t = ray_box(o, d, half, rot)
    ref = torch.isfinite(t)
    wrong = mask != ref
    assert ref.sum() > 1500
    # Off by at most one pixel on edges: every disagreement lies on the analytic silhouette band.
    assert not (wrong & ~boundary_band(ref)).any()
    assert wrong.sum() <= 0.02 * boundary_band(ref).sum()

    both = mask & ref
    hit = (o + t.clamp(max=1e9)[..., None] * d)  # (B, H, W, 3)
    clip_hit = to_clip(hit.reshape(3, -1, 3), cams.mvp).reshape(3, h, w, 4)
    zw_ref = clip_hit[..., 2] / clip_hit[..., 3]
    err = (rast[..., 2].double() - zw_ref).abs()
    # Away from creases and silhouettes (where the pixel may be given to the neighbouring face of a 1/16-pixel
    # snapped mesh) depth is exact to float32; next to them it is the neighbouring plane's value.
    tri = rast[..., 3]
    face_interior = both & ~boundary_band(tri == tri.roll(1, 1)) & ~boundary_band(tri == tri.roll(1, 2))
    face_interior &= ~boundary_band(ref)
    assert face_interior.sum() > 1000
    assert err[face_interior].max() < 2e-6
    assert err[both].max() < 1e-4
    # View-space depth interpolated as an attribute (perspective-correct) matches the ray distance along the axis.
    cam_z = -(torch.einsum("bij,vj->bvi", cams.view[:, :3, :3], verts) + cams.view[:, None, :3, 3])[..., 2:]
    depth, _ = r.interpolate(cam_z.float(), rast, faces)
    forward = -cams.c2w[:, :3, 2]
    depth_ref = t * (d * forward[:, None, None]).sum(-1)
    assert ((depth[..., 0].double() - depth_ref)[face_interior]).abs().max() < 1e-5


def test_shared_edges_and_vertices_are_covered_exactly_once(raster):
    # A tessellated square in NDC whose vertices sit exactly on pixel centres, so many pixel centres lie
    # exactly on shared edges and vertices; with per-vertex w != 1 the same NDC positions come from
    # different homogeneous coordinates. Every pixel centre inside must be covered once, none twice.
    h = w = 24
    g = torch.Generator().manual_seed(3)
    centres = (2 * torch.arange(w, dtype=torch.float64) + 1) / w - 1
    idx = torch.tensor([2, 5, 8, 12, 15, 19, 21])
    gx, gy = torch.meshgrid(centres[idx], centres[idx], indexing="ij")
    ndc_xy = torch.stack([gx, gy], -1).reshape(-1, 2)
    n = len(idx)
    quads = [(i * n + j, (i + 1) * n + j, (i + 1) * n + j + 1, i * n + j + 1)
             for i in range(n - 1) for j in range(n - 1)]
    faces = []
    for k, (a, b, c, d) in enumerate(quads):  # alternate diagonals and windings
        tris = [(a, b, c), (a, c, d)] if k % 2 else [(a, b, d), (b, c, d)]
        faces += [t if k % 3 else t[::-1] for t in tris]
    faces = torch.tensor(faces)
    r = raster
    for wscale in (torch.ones(ndc_xy.shape[0], dtype=torch.float64),
                   0.5 + 2 * torch.rand(ndc_xy.shape[0], generator=g, dtype=torch.float64)):
        clip = torch.cat([ndc_xy * wscale[:, None], torch.zeros_like(wscale)[:, None], wscale[:, None]], -1)
        clip = clip[None]
        cover = torch.zeros(h, w, dtype=torch.long)
        for f in range(faces.shape[0]):
            rast, _ = r.rasterize(clip, faces[f:f + 1], (h, w))
            cover += (rast[0, ..., 3] > 0).long()
        lo, hi = int(idx[0]), int(idx[-1])
        inside = torch.zeros(h, w, dtype=torch.bool)
        inside[lo:hi, lo:hi] = True  # half-open square: the top/right border pixels belong to no triangle
        interior = torch.zeros_like(inside)
        interior[lo + 1:hi, lo + 1:hi] = True
        assert cover.max() == 1, "double coverage on a shared edge or vertex"
        assert (cover[interior] == 1).all(), "crack between triangles"
        assert (cover[~inside & ~_border(lo, hi, h, w)] == 0).all()
        # The whole mesh in one call gives the same pixels.
        rast, _ = r.rasterize(clip, faces, (h, w))
        assert torch.equal(rast[0, ..., 3] > 0, cover > 0)


def test_a_ground_plane_through_the_near_plane_has_no_cracks_or_overlaps(raster):
    # A tessellated floor running behind the camera: triangles with a vertex behind the eye take the
    # homogeneous path. Per-triangle coverage counts must be 1 wherever the analytic floor is seen (away from
    # its outer border and the near-plane cut) and never 2.
    h = w = 32
    n = 9
    xs = torch.linspace(-3, 3, n, dtype=torch.float64)
    zs = torch.linspace(-4, 4, n, dtype=torch.float64)
    gx, gz = torch.meshgrid(xs, zs, indexing="ij")
    verts = torch.stack([gx, torch.full_like(gx, -0.5), gz], -1).reshape(-1, 3)
    faces = []
    for i in range(n - 1):
        for j in range(n - 1):
            a, b, c, d = i * n + j, (i + 1) * n + j, (i + 1) * n + j + 1, i * n + j + 1
            faces += [(a, b, c), (a, c, d)] if (i + j) % 2 else [(a, b, d), (b, c, d)]
    faces = torch.tensor(faces)
    cams = camera_batch(5, 10, 2.0, 70, (h, w), dtype=torch.float64)
    clip = to_clip(verts, cams.mvp)
    r = raster
    per_tri = torch.stack([r.rasterize(clip, faces[f:f + 1], (h, w))[0][0, ..., 3] > 0
                           for f in range(faces.shape[0])])
    homogeneous = [f for f in range(faces.shape[0]) if (clip[0, faces[f], 3] <= 0).any()]
    assert homogeneous and per_tri[homogeneous].any()
    cover = per_tri.long().sum(0)
    o, d = rays(cams, h, w, top_first=False)
    t = (-0.5 - o[0, ..., 1]) / d[0, ..., 1]
    hit = o[0] + t[..., None] * d[0]
    forward = -cams.c2w[0, :3, 2]
    seen = (t > 0) & (hit[..., 0].abs() < 3) & (hit[..., 2].abs() < 4) & (t * (d[0] * forward).sum(-1) > cams.near)
    assert seen.sum() > 200
    assert cover.max() == 1
    assert (cover[seen & ~boundary_band(seen[None])[0]] == 1).all()


def _border(lo: int, hi: int, h: int, w: int) -> torch.Tensor:
    b = torch.zeros(h, w, dtype=torch.bool)
    b[lo:hi + 1, lo:hi + 1] = True
    b[lo + 1:hi, lo + 1:hi] = False
    return b


def test_interpolation_is_perspective_correct(raster):
    # A strongly slanted quad; the interpolated world position of every covered pixel must lie on that
    # pixel's ray (affine screen-space interpolation would not).
    h = w = 40
    verts = torch.tensor([[-0.8, -0.5, -2.0], [0.8, -0.5, -2.0], [0.8, 0.5, 1.0], [-0.8, 0.5, 1.0]],
                         dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    cams = camera_batch(-25, 10, 3.0, 60, (h, w), dtype=torch.float64)
    r = raster
    rast, _ = r.rasterize(to_clip(verts, cams.mvp), faces, (h, w))
    pos, _ = r.interpolate(verts, rast, faces)
    o, d = rays(cams, h, w, top_first=False)
    m = rast[..., 3] > 0
    assert m.sum() > 200
    off = torch.linalg.cross(pos - o, d, dim=-1).norm(dim=-1)
    # Pixels next to an edge may be given to the 1/16-pixel snapped triangle while lying just outside the
    # exact one, where the barycentrics are clamped (as in nvdiffrast); everywhere else the point is on the ray.
    tri = rast[..., 3]
    inner = m & ~boundary_band(tri == 1) & ~boundary_band(tri == 2)
    assert inner.sum() > 150
    assert off[inner].max() < 1e-9
    assert off[m].max() < 0.01
    uv = rast[..., :2][m]
    assert (uv >= 0).all() and (uv.sum(-1) <= 1).all()


def test_triangle_crossing_the_near_plane_is_clipped_not_wrapped(raster):
    # One vertex behind the camera: pixels are covered only where the ray meets the triangle in front.
    h = w = 32
    cams = camera_batch(0, 0, 2.0, 60, (h, w), dtype=torch.float64)
    verts = torch.tensor([[-0.6, -0.4, 0.0], [0.6, -0.4, 0.0], [0.0, 0.3, 4.0]], dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2]])
    r = raster
    clip = to_clip(verts, cams.mvp)
    assert (clip[0, :, 3] < 0).any()
    rast, _ = r.rasterize(clip, faces, (h, w))
    o, d = rays(cams, h, w, top_first=False)
    # Moller-Trumbore ray/triangle intersection as the oracle, keeping hits beyond the near plane.
    e1, e2 = verts[1] - verts[0], verts[2] - verts[0]
    p = torch.linalg.cross(d, e2.expand_as(d), dim=-1)
    det = (p * e1).sum(-1)
    s = o - verts[0]
    u = (s * p).sum(-1) / det
    q = torch.linalg.cross(s, e1.expand_as(s), dim=-1)
    v = (d * q).sum(-1) / det
    t = (e2 * q).sum(-1) / det
    forward = -cams.c2w[0, :3, 2]
    ahead = t * (d * forward).sum(-1)
    ref = (u >= 0) & (v >= 0) & (u + v <= 1) & (ahead > cams.near)
    mask = rast[..., 3] > 0
    assert ref.sum() > 50
    assert not ((mask != ref) & ~boundary_band(ref)).any()


def test_pixels_beyond_the_far_plane_are_clipped(raster):
    # A floor-like triangle running from 1 to 5 units ahead with the far plane at 3: covered only where the
    # ray meets it before the far plane (per-pixel z/w clipping, as nvdiffrast does).
    h = w = 32
    cams = camera_batch(0, 0, 2.0, 60, (h, w), far=3.0, dtype=torch.float64)
    verts = torch.tensor([[-2.5, 0.8, -3.0], [2.5, 0.8, -3.0], [0.0, -0.4, 1.0]], dtype=torch.float64)
    rast, _ = raster.rasterize(to_clip(verts, cams.mvp), torch.tensor([[0, 1, 2]]), (h, w))
    o, d = rays(cams, h, w, top_first=False)
    n = torch.linalg.cross(verts[1] - verts[0], verts[2] - verts[0])
    t = ((verts[0] - o) @ n) / (d @ n)
    hit = o + t[..., None] * d
    # Barycentric inside test of the plane hit (closed form), and the hit's depth along the view axis.
    e = [torch.linalg.cross((verts[(i + 2) % 3] - verts[(i + 1) % 3]).expand_as(hit), hit - verts[(i + 1) % 3], dim=-1) @ n
         for i in range(3)]
    inside = (e[0] >= 0) & (e[1] >= 0) & (e[2] >= 0)
    ahead = t * (d @ -cams.c2w[0, :3, 2])
    ref = inside & (ahead > cams.near) & (ahead < cams.far)
    mask = rast[..., 3] > 0
    assert ref.sum() > 30 and (inside & (ahead >= cams.far)).sum() > 30
    assert not ((mask != ref) & ~boundary_band(ref)).any()


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "torch"])
def test_chunking_and_batching_do_not_change_the_result(compiled):
    ico = trimesh.creation.icosphere(subdivisions=3, radius=0.6)
    verts = torch.tensor(ico.vertices, dtype=torch.float32)
    faces = torch.tensor(ico.faces)
    cams = camera_batch([0, 40], [0, 130], 3.0, 30, 48)
    clip = to_clip(verts, cams.mvp)
    a, _ = CpuRasterizer(compiled=compiled).rasterize(clip, faces, (48, 48))
    b, _ = CpuRasterizer(max_pairs=97, compiled=False).rasterize(clip, faces, (48, 48))
    c0, _ = CpuRasterizer(compiled=compiled).rasterize(clip[:1], faces, (48, 48))
    c1, _ = CpuRasterizer(compiled=compiled).rasterize(clip[1:], faces, (48, 48))
    assert torch.equal(a, b)
    assert torch.equal(a, torch.cat([c0, c1]))


def test_rasterize_gradients_match_finite_differences():
    g = torch.Generator().manual_seed(0)
    base = torch.tensor([[[-0.7, -0.6, 0.1, 1.0], [0.8, -0.3, 0.2, 1.3], [0.1, 0.7, -0.1, 0.9]]],
                        dtype=torch.float64)
    base = base + 0.01 * torch.randn(base.shape, generator=g, dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2]])
    r = CpuRasterizer()
    rast0, _ = r.rasterize(base, faces, (16, 16))
    weight = torch.randn(1, 16, 16, 2, generator=g, dtype=torch.float64) * (rast0[..., 3:] > 0)

    def f(v):
        rast, _ = r.rasterize(v, faces, (16, 16))
        return (rast[..., :2] * weight).sum()

    x = base.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(f, (x,), eps=1e-7, atol=1e-5, rtol=1e-4)


def _triangle_area_px(v: torch.Tensor, h: int, w: int) -> torch.Tensor:
    p = v[:, :2] / v[:, 3:]
    px = torch.stack([(p[:, 0] + 1) * w / 2, (p[:, 1] + 1) * h / 2], -1)
    e1, e2 = px[1] - px[0], px[2] - px[0]
    return 0.5 * (e1[0] * e2[1] - e1[1] * e2[0]).abs()


def _supersampled_coverage(ndc_xy: torch.Tensor, h: int, w: int, s: int = 32) -> torch.Tensor:
    """(H, W) fraction of each pixel inside the 2D triangle ndc_xy (3, 2), from s x s samples per pixel."""
    px = (torch.arange(w * s, dtype=torch.float64) + 0.5) / (w * s) * 2 - 1
    py = (torch.arange(h * s, dtype=torch.float64) + 0.5) / (h * s) * 2 - 1
    yy, xx = torch.meshgrid(py, px, indexing="ij")

    def edge(a, b):
        return (b[0] - a[0]) * (yy - a[1]) - (b[1] - a[1]) * (xx - a[0])

    e = torch.stack([edge(ndc_xy[1], ndc_xy[2]), edge(ndc_xy[2], ndc_xy[0]), edge(ndc_xy[0], ndc_xy[1])])
    inside = (e >= 0).all(0) | (e <= 0).all(0)
    return inside.double().view(h, s, w, s).mean((1, 3))


def test_antialiased_coverage_and_its_gradient_match_the_triangle_area(raster):
    # For a lone triangle every edge is a silhouette. Oracles: per-pixel coverage from 32x32 supersampling,
    # and the closed-form derivative of the triangle's area (the integral of coverage) w.r.t. its vertices.
    h = w = 64
    g = torch.Generator().manual_seed(0)
    faces = torch.tensor([[0, 1, 2]])
    r = raster
    for _ in range(3):
        xy = torch.rand(1, 3, 2, generator=g, dtype=torch.float64) * 1.8 - 0.9
        verts = torch.cat([xy, torch.zeros(1, 3, 1, dtype=torch.float64),
                           torch.ones(1, 3, 1, dtype=torch.float64)], -1).requires_grad_(True)
        rast, _ = r.rasterize(verts, faces, (h, w))
        hard = (rast[..., 3:] > 0).double()
        aa = r.antialias(hard, rast, verts, faces)
        cov = _supersampled_coverage(xy[0], h, w)
        partial = (cov > 0) & (cov < 1)
        mae_hard = float((hard[0, ..., 0] - cov)[partial].abs().mean())
        mae_aa = float((aa.detach()[0, ..., 0] - cov)[partial].abs().mean())
        print(f"edge pixels {int(partial.sum())}: coverage error hard {mae_hard:.3f}, antialiased {mae_aa:.3f}")
        assert mae_aa < 0.25 * mae_hard and mae_aa < 0.06
        # Antialiasing only blends silhouette pixels: interior and far background are untouched.
        changed = (aa.detach() != hard)[0, ..., 0]
        assert changed.any() and not (changed & ~boundary_band(hard[..., 0].bool())[0]).any()

        area = _triangle_area_px(verts[0], h, w)
        (grad_aa,) = torch.autograd.grad(aa.sum(), verts)
        (grad_area,) = torch.autograd.grad(area, verts)
        gx = grad_aa[0, :, :2].reshape(-1)
        gref = grad_area[0, :, :2].reshape(-1)
        cos = torch.dot(gx, gref) / (gx.norm() * gref.norm())
        ratio = gx.norm() / gref.norm()
        print(f"area gradient: cosine {float(cos):.4f}, norm ratio {float(ratio):.4f}")
        assert cos > 0.98
        assert (ratio - 1).abs() < 0.15


def test_an_edge_in_front_of_a_surface_is_antialiased_by_the_nearer_triangle(raster):
    # A triangle in front of a screen-filling quad: pixel pairs across its edge are both covered, and the
    # blend must come from the nearer triangle's edge (nvdiffrast's rule). Oracle: supersampled coverage.
    h = w = 64
    back = torch.tensor([[-1.5, -1.5], [1.5, -1.5], [1.5, 1.5], [-1.5, 1.5]], dtype=torch.float64)
    for tri in ([[-0.6, -0.5], [0.7, -0.3], [0.1, 0.6]], [[0.5, 0.6], [-0.7, 0.2], [-0.2, -0.7]],
                [[-0.3, -0.6], [0.6, 0.1], [-0.5, 0.5]]):
        xy = torch.tensor(tri, dtype=torch.float64)
        pts = torch.cat([xy, back])
        z = torch.tensor([-0.5] * 3 + [0.5] * 4, dtype=torch.float64)[:, None]
        verts = torch.cat([pts, z, torch.ones_like(z)], -1)[None]
        faces = torch.tensor([[0, 1, 2], [3, 4, 5], [3, 5, 6]])
        rast, _ = raster.rasterize(verts, faces, (h, w))
        front = (rast[..., 3:] == 1).double()
        aa = raster.antialias(front, rast, verts, faces)
        cov = _supersampled_coverage(xy, h, w)
        partial = (cov > 0) & (cov < 1)
        mae_hard = float((front[0, ..., 0] - cov)[partial].abs().mean())
        mae_aa = float((aa[0, ..., 0] - cov)[partial].abs().mean())
        assert mae_aa < 0.25 * mae_hard and mae_aa < 0.06


def test_intersections_are_not_antialiased(raster):
    # Two quads crossing each other along x = 0 (z changes sign there): the ids change along the crossing,
    # but it is no triangle's edge, so nothing is blended there (nvdiffrast leaves intersections aliased).
    h = w = 32
    a = [[-0.6, -0.6, -0.4, 1], [0.6, -0.6, 0.4, 1], [0.6, 0.6, 0.4, 1], [-0.6, 0.6, -0.4, 1]]
    b = [[-0.6, -0.6, 0.4, 1], [0.6, -0.6, -0.4, 1], [0.6, 0.6, -0.4, 1], [-0.6, 0.6, 0.4, 1]]
    verts = torch.tensor([a + b], dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    rast, _ = raster.rasterize(verts, faces, (h, w))
    tri = rast[..., 3:]
    color = torch.where(tri <= 2, 0.2, 0.9).double() * (tri > 0)
    assert ((tri == 1) | (tri == 2)).sum() > 100 and ((tri == 3) | (tri == 4)).sum() > 100
    aa = raster.antialias(color, rast, verts, faces)
    changed = (aa != color)[0, ..., 0]
    assert changed.any() and not (changed & ~boundary_band(tri[..., 0] > 0)[0]).any()


def test_interior_edges_are_not_antialiased(raster):
    # Two coplanar triangles sharing an edge: the shared edge is not a silhouette, so colours are untouched
    # along it even though the triangle ids change there.
    h = w = 32
    verts = torch.tensor([[[-0.8, -0.8, 0, 1], [0.8, -0.8, 0, 1], [0.8, 0.8, 0, 1], [-0.8, 0.8, 0, 1]]],
                         dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    r = raster
    rast, _ = r.rasterize(verts, faces, (h, w))
    tri = rast[..., 3:]
    color = torch.where(tri == 1, 0.2, torch.where(tri == 2, 0.9, 0.0)).double()
    aa = r.antialias(color, rast, verts, faces)
    changed = (aa != color)[0, ..., 0]
    covered = (tri[0, ..., 0] > 0)
    assert not (changed & ~boundary_band(covered[None])[0]).any()


def test_faces_edited_in_place_are_not_served_from_the_adjacency_cache(raster):
    # The rasteriser remembers each faces tensor's edge adjacency; editing the tensor in place (here: the
    # quad's second triangle stops sharing the diagonal) must give what a fresh rasteriser gives.
    h = w = 32
    verts = torch.tensor([[[-0.8, -0.8, 0, 1], [0.8, -0.8, 0, 1], [0.8, 0.8, 0, 1], [-0.8, 0.8, 0, 1],
                           [-0.8, -0.8, 0, 1], [0.8, 0.8, 0, 1]]], dtype=torch.float64)
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])

    def draw(r):
        rast, _ = r.rasterize(verts, faces, (h, w))
        tri = rast[..., 3:]
        return r.antialias(torch.where(tri == 1, 0.2, 0.9).double() * (tri > 0), rast, verts, faces)

    before = draw(raster)
    faces[1] = torch.tensor([4, 5, 3])
    after = draw(raster)
    assert torch.equal(after, draw(CpuRasterizer(compiled=raster.compiled)))
    assert not torch.equal(before, after)


def test_a_library_of_fixed_meshes_drawn_in_turn_computes_each_adjacency_once(raster, monkeypatch):
    # The toy-world prior draws its 17 member meshes every step; each one's edge adjacency must be computed
    # once, not once per draw (an LRU of 16 entries missed on every draw of 17 meshes in turn).
    import recon.render.cpu as cpu

    calls = []
    real = cpu.edge_adjacency
    monkeypatch.setattr(cpu, "edge_adjacency", lambda f, n=None: calls.append(1) or real(f, n))
    verts, faces = box_mesh(torch.tensor([0.4, 0.3, 0.2], dtype=torch.float64), rotation((0.3, 0.5, 0.1)))
    clip = to_clip(verts, camera_batch(torch.tensor([20.0]), torch.tensor([30.0]), 3.0, 40.0, 32).mvp.double())
    library = [faces.clone() for _ in range(40)]
    for _ in range(3):
        for f in library:
            rast, _ = raster.rasterize(clip, f, (32, 32))
            raster.antialias(rast[..., 3:].clone(), rast, clip, f)
    assert len(calls) == len(library)


def test_silhouette_only_optimisation_moves_a_mesh_onto_target_masks():
    # Must-show 1: masks alone (gradients only through antialiased silhouettes) pull a sphere onto a box.
    res = 64
    r = CpuRasterizer()
    ico = trimesh.creation.icosphere(subdivisions=3, radius=0.4)
    v0 = torch.tensor(ico.vertices, dtype=torch.float32)
    faces = torch.tensor(ico.faces)
    half = torch.tensor([0.45, 0.3, 0.3])
    bv, bf = box_mesh(half, torch.eye(3, dtype=torch.float64))
    bv = (bv + torch.tensor([0.1, 0.05, 0.0], dtype=torch.float64)).float()
    cams = camera_batch([0, 0, 0, 0, 60], [0, 90, 180, 270, 30], 3.8, 20, res)
    with torch.no_grad():
        rt, _ = r.rasterize(to_clip(bv, cams.mvp), bf, (res, res))
    target = (rt[..., 3:] > 0).float()

    def iou(v):
        with torch.no_grad():
            rast, _ = r.rasterize(to_clip(v, cams.mvp), faces, (res, res))
            m, t = rast[..., 3:] > 0, target > 0
            return float((m & t).sum() / (m | t).sum())

    offset = torch.zeros_like(v0, requires_grad=True)
    opt = torch.optim.Adam([offset], lr=0.01)
    start = iou(v0)
    for _ in range(120):
        v = v0 + offset
        clip = to_clip(v, cams.mvp)
        rast, _ = r.rasterize(clip, faces, (res, res))
        alpha = r.antialias((rast[..., 3:] > 0).float(), rast, clip, faces)
        loss = ((alpha - target) ** 2).mean() + laplacian_smoothness(v, faces)
        opt.zero_grad()
        loss.backward()
        opt.step()
    end = iou(v0 + offset.detach())
    print(f"silhouette fit: IoU {start:.3f} -> {end:.4f}")
    assert start < 0.8
    assert end > 0.95


@pytest.mark.parametrize("bad", ["verts", "faces", "index"])
def test_bad_inputs_fail_with_a_clear_error(bad):
    verts = torch.zeros(1, 3, 4)
    faces = torch.tensor([[0, 1, 2]])
    if bad == "verts":
        verts = torch.zeros(3, 4)
    elif bad == "faces":
        faces = torch.tensor([0, 1, 2])
    else:
        faces = torch.tensor([[0, 1, 5]])
    with pytest.raises(ValueError):
        CpuRasterizer().rasterize(verts, faces, (8, 8))


def test_tensors_that_require_grad_render_under_no_grad(raster):
    # A prior renders under torch.no_grad(); its vertices may still be leaf tensors that require grad.
    verts = torch.tensor([[[-0.6, -0.5, 0, 1], [0.7, -0.3, 0, 1], [0.1, 0.6, 0, 1]]], dtype=torch.float64,
                         requires_grad=True)
    faces = torch.tensor([[0, 1, 2]])
    colour = torch.rand(3, 3, dtype=torch.float64, requires_grad=True)
    with torch.no_grad():
        rast, _ = raster.rasterize(verts, faces, (16, 16))
        img, _ = raster.interpolate(colour, rast, faces)
        out = raster.antialias(img, rast, verts, faces)
    ref_rast, _ = raster.rasterize(verts.detach(), faces, (16, 16))
    ref, _ = raster.interpolate(colour.detach(), ref_rast, faces)
    assert torch.equal(out, raster.antialias(ref, ref_rast, verts.detach(), faces))
