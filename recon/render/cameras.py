"""Orbit cameras around an object at the origin, their matrices, and the rays through pixel centres.

Conventions (also in ``docs/architecture-3d.md``):

- **World**: right-handed, +Y up, the same axes as glTF; the object sits at the origin. The input
  (front) view looks at the object from +Z towards -Z.
- **Orbit angles** in degrees. ``azimuth`` 0 = the input/front view (camera on the +Z axis);
  positive azimuth turns the camera counter-clockwise seen from above (+Y), from +Z towards +X, so
  azimuth 90 sees the object's +X side. ``elevation`` is measured up from the horizontal (XZ) plane;
  +90 looks straight down from +Y. Camera position::

      eye = distance * (cos(elev) sin(azim), sin(elev), cos(elev) cos(azim))

- **Camera frame** (OpenGL): the camera looks along its -Z axis, +X right, +Y up. ``c2w`` columns are
  (right, up, back, eye) with back = eye / |eye|; right = (cos azim, 0, -sin azim) is defined at every
  elevation, so the straight-down view has no singularity.
- **Clip space** (OpenGL, as nvdiffrast expects): ``proj`` maps view space to clip space with NDC x, y, z
  in [-1, 1], +y up, z = -1 at ``near`` and +1 at ``far``; ``fovy`` is the full vertical field of view
  and the aspect ratio is W / H. ``mvp = proj @ view``, ``view = inverse(c2w)``.
- **Pixels**: pixel (column j, row i) has its centre at NDC x = (2j + 1) / W - 1. Images returned to
  users (renders, :func:`rays`) have **row 0 = top** (NDC y = 1 - (2i + 1) / H). A rasteriser's raw output
  (``rast`` and anything interpolated from it) has **row 0 = bottom** (NDC y = (2i + 1) / H - 1), like
  nvdiffrast; :func:`flip_rows` converts between the two.
- **Units**: world units; the default orbit (distance 3.8, fovy 20°, threestudio's Zero-1-to-3 setting)
  frames an object of radius about 0.6.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

DEFAULT_DISTANCE = 3.8
DEFAULT_FOVY = 20.0
DEFAULT_NEAR = 0.1
DEFAULT_FAR = 100.0


@dataclass
class Cameras:
    """A batch of B orbit cameras. Angles in degrees; all tensors share one device and dtype.

    elevation, azimuth, distance, fovy: (B,); c2w, view, proj, mvp: (B, 4, 4);
    resolution: (H, W) the projection's aspect ratio was built for.
    """

    elevation: torch.Tensor
    azimuth: torch.Tensor
    distance: torch.Tensor
    fovy: torch.Tensor
    c2w: torch.Tensor
    view: torch.Tensor
    proj: torch.Tensor
    mvp: torch.Tensor
    resolution: tuple[int, int]
    near: float = DEFAULT_NEAR
    far: float = DEFAULT_FAR

    def __len__(self) -> int:
        return int(self.c2w.shape[0])

    @property
    def eye(self) -> torch.Tensor:
        """(B, 3) camera centres in world space."""
        return self.c2w[:, :3, 3]

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> Cameras:
        def move(t: torch.Tensor) -> torch.Tensor:
            return t.to(device=device, dtype=dtype)

        return Cameras(move(self.elevation), move(self.azimuth), move(self.distance), move(self.fovy),
                       move(self.c2w), move(self.view), move(self.proj), move(self.mvp),
                       self.resolution, self.near, self.far)

    def __getitem__(self, index) -> Cameras:
        """A sub-batch (index: int, slice, or 1-D index tensor); always keeps the batch dimension."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return Cameras(self.elevation[index], self.azimuth[index], self.distance[index], self.fovy[index],
                       self.c2w[index], self.view[index], self.proj[index], self.mvp[index],
                       self.resolution, self.near, self.far)

    @staticmethod
    def cat(items: list[Cameras]) -> Cameras:
        first = items[0]
        if any(c.resolution != first.resolution or c.near != first.near or c.far != first.far for c in items):
            raise ValueError("cannot concatenate cameras with different resolution, near or far")
        fields = ("elevation", "azimuth", "distance", "fovy", "c2w", "view", "proj", "mvp")
        parts = {f: torch.cat([getattr(c, f) for c in items]) for f in fields}
        return Cameras(**parts, resolution=first.resolution, near=first.near, far=first.far)


def _as_batch(x, batch: int, dtype: torch.dtype, device) -> torch.Tensor:
    t = torch.as_tensor(x, dtype=dtype, device=device).reshape(-1)
    if t.numel() == 1 and batch > 1:
        t = t.expand(batch)
    if t.numel() != batch:
        raise ValueError(f"expected 1 or {batch} values, got {t.numel()}")
    return t.clone()


def _resolution(resolution: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(resolution, int):
        return (resolution, resolution)
    h, w = resolution
    return (int(h), int(w))


def orbit_c2w(elevation_deg: torch.Tensor, azimuth_deg: torch.Tensor, distance: torch.Tensor) -> torch.Tensor:
    """(B,) angles in degrees and distances -> (B, 4, 4) camera-to-world (OpenGL camera frame)."""
    e = torch.deg2rad(elevation_deg)
    a = torch.deg2rad(azimuth_deg)
    back = torch.stack([torch.cos(e) * torch.sin(a), torch.sin(e), torch.cos(e) * torch.cos(a)], dim=-1)
    zero = torch.zeros_like(a)
    right = torch.stack([torch.cos(a), zero, -torch.sin(a)], dim=-1)
    up = torch.cross(back, right, dim=-1)
    c2w = torch.zeros(*a.shape, 4, 4, dtype=a.dtype, device=a.device)
    c2w[:, :3, 0] = right
    c2w[:, :3, 1] = up
    c2w[:, :3, 2] = back
    c2w[:, :3, 3] = back * distance[:, None]
    c2w[:, 3, 3] = 1
    return c2w


def rigid_inverse(m: torch.Tensor) -> torch.Tensor:
    """(B, 4, 4) rotation + translation -> its inverse (exact transpose, no general solve)."""
    r = m[:, :3, :3].transpose(1, 2)
    out = torch.zeros_like(m)
    out[:, :3, :3] = r
    out[:, :3, 3] = -(r @ m[:, :3, 3:4])[..., 0]
    out[:, 3, 3] = 1
    return out


def perspective(fovy_deg: torch.Tensor, aspect: float, near: float = DEFAULT_NEAR,
                far: float = DEFAULT_FAR) -> torch.Tensor:
    """(B,) vertical field of view in degrees -> (B, 4, 4) OpenGL projection (NDC z in [-1, 1])."""
    f = 1.0 / torch.tan(torch.deg2rad(fovy_deg) / 2)
    p = torch.zeros(*f.shape, 4, 4, dtype=f.dtype, device=f.device)
    p[:, 0, 0] = f / aspect
    p[:, 1, 1] = f
    p[:, 2, 2] = (far + near) / (near - far)
    p[:, 2, 3] = 2 * far * near / (near - far)
    p[:, 3, 2] = -1
    return p


def camera_batch(
    elev_deg,
    azim_deg,
    dist=DEFAULT_DISTANCE,
    fovy_deg=DEFAULT_FOVY,
    resolution: int | tuple[int, int] = 256,
    *,
    near: float = DEFAULT_NEAR,
    far: float = DEFAULT_FAR,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> Cameras:
    """Cameras from angles in degrees. Each argument is a scalar or a sequence/tensor of length B
    (scalars broadcast). ``resolution`` is (H, W) or one int for square images."""
    sizes = [torch.as_tensor(x).numel() for x in (elev_deg, azim_deg, dist, fovy_deg)]
    batch = max(sizes)
    # Build in float64 so that float32 matrices are correctly rounded, then cast.
    e, a, d, f = (_as_batch(x, batch, torch.float64, device) for x in (elev_deg, azim_deg, dist, fovy_deg))
    h, w = _resolution(resolution)
    c2w = orbit_c2w(e, a, d)
    view = rigid_inverse(c2w)
    proj = perspective(f, w / h, near, far)
    mvp = proj @ view
    cast = {"dtype": dtype}
    return Cameras(e.to(**cast), a.to(**cast), d.to(**cast), f.to(**cast), c2w.to(**cast), view.to(**cast),
                   proj.to(**cast), mvp.to(**cast), (h, w), near, far)


def input_view(elevation_deg: float = 0.0, distance: float = DEFAULT_DISTANCE, fovy_deg: float = DEFAULT_FOVY,
               resolution: int | tuple[int, int] = 256, **kwargs) -> Cameras:
    """The input photo's camera: azimuth 0 (looking from +Z), elevation given or 0°."""
    return camera_batch(elevation_deg, 0.0, distance, fovy_deg, resolution, **kwargs)


def random_cameras(
    n: int,
    generator: torch.Generator,
    elevation_range: tuple[float, float] = (-10.0, 45.0),
    azimuth_range: tuple[float, float] = (-180.0, 180.0),
    distance_range: tuple[float, float] = (DEFAULT_DISTANCE, DEFAULT_DISTANCE),
    fovy_range: tuple[float, float] = (DEFAULT_FOVY, DEFAULT_FOVY),
    resolution: int | tuple[int, int] = 256,
    **kwargs,
) -> Cameras:
    """n cameras with angles, distance and fovy uniform in the given ranges (degrees).

    Exactly 4 * n values are drawn from ``generator`` (in the order elevation, azimuth, distance, fovy, in
    float64 on the CPU), so the draws are the same on every device and for every range.
    """
    u = torch.rand(4, n, generator=generator, dtype=torch.float64)

    def span(row: int, lo_hi: tuple[float, float]) -> torch.Tensor:
        lo, hi = lo_hi
        return lo + (hi - lo) * u[row]

    return camera_batch(span(0, elevation_range), span(1, azimuth_range), span(2, distance_range),
                        span(3, fovy_range), resolution, **kwargs)


def to_clip(vertices: torch.Tensor, mvp: torch.Tensor) -> torch.Tensor:
    """World positions (V, 3) or (B, V, 3) and mvp (B, 4, 4) -> clip positions (B, V, 4)."""
    if vertices.dim() == 2:
        vertices = vertices.unsqueeze(0)
    homo = torch.cat([vertices, torch.ones_like(vertices[..., :1])], dim=-1)
    return homo @ mvp.transpose(1, 2).to(vertices.dtype)


def pixel_ndc(h: int, w: int, *, top_first: bool = True, dtype: torch.dtype = torch.float32,
              device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """NDC coordinates of pixel centres: x (W,), y (H,). With ``top_first`` row 0 is the top (y = +1 side);
    otherwise row 0 is the bottom, the rasteriser's raw order."""
    x = (2 * torch.arange(w, dtype=torch.float64, device=device) + 1) / w - 1
    y = (2 * torch.arange(h, dtype=torch.float64, device=device) + 1) / h - 1
    if top_first:
        y = y.flip(0)
    return x.to(dtype), y.to(dtype)


def rays(cameras: Cameras, h: int, w: int, *, top_first: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """World-space rays through pixel centres -> (origins (B, H, W, 3), unit directions (B, H, W, 3)).

    Row 0 is the top of the image (the user-facing order) unless ``top_first=False``, which gives the
    rasteriser's row order. The pixel grid and aspect are those of the (H, W) asked for; use the same (H, W)
    the cameras were built with, or the rays will not match the rasteriser.
    """
    dtype, device = cameras.c2w.dtype, cameras.c2w.device
    x, y = pixel_ndc(h, w, top_first=top_first, dtype=dtype, device=device)
    tan_half = torch.tan(torch.deg2rad(cameras.fovy) / 2)  # (B,)
    aspect = w / h
    gy, gx = torch.meshgrid(y, x, indexing="ij")  # (H, W)
    dirs_cam = torch.stack([
        gx[None] * (tan_half * aspect)[:, None, None],
        gy[None] * tan_half[:, None, None],
        -torch.ones_like(gx)[None].expand(len(cameras), h, w),
    ], dim=-1)  # (B, H, W, 3)
    dirs = torch.einsum("bij,bhwj->bhwi", cameras.c2w[:, :3, :3], dirs_cam)
    dirs = torch.nn.functional.normalize(dirs, dim=-1)
    origins = cameras.eye[:, None, None, :].expand_as(dirs)
    return origins, dirs


def flip_rows(image: torch.Tensor, layout: str = "bhwc") -> torch.Tensor:
    """Flip image rows (bottom-first raster output <-> top-first user images).

    layout "bhwc" (rasteriser tensors, rows on dim 1) or "bchw" (rows on dim 2)."""
    if layout == "bhwc":
        return image.flip(1)
    if layout == "bchw":
        return image.flip(2)
    raise ValueError(f"unknown layout {layout!r}; use 'bhwc' or 'bchw'")
