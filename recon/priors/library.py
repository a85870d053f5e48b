"""LibraryPrior: an exact, view-conditioned prior over a folder of meshes, with Zero-1-to-3's interface.

The data distribution at a camera π is a Gaussian mixture over the library's renders there:

    p(x | image, π) = Σ_m w_m(image) N(render_m(π), s² I),   w_m ∝ exp(−‖render_m(π_ref) − image‖² / (2 D σ_in²))

so members that explain the input view equally well (a family that looks the same from the front)
share the weight, and the prior is genuinely ambiguous about their backs. ε̂ is the closed-form
posterior-mean noise prediction of that mixture (``mixture_eps``), exact at every t. The
unconditional branch (Zero-1-to-3 zeroes image and pose there) is the uniform mixture over the library
at the same camera. Model space is RGB in [-1, 1] at ``image_size``², white background.

Shapes are normalised at construction the way an input photo is recentred (object's longer side =
(1 − border_ratio) of the frame in the reference view, centred), so renders and recentred inputs
agree in scale. Renders are cached per camera (optionally binned), since trajectories and the
reference view reuse cameras.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from recon.diffusion.schedule import NoiseSchedule
from recon.priors.base import Condition, Prior
from recon.priors.gaussian_mixture import mixture_eps
from recon.render.backend import RasterBackend
from recon.render.cameras import DEFAULT_DISTANCE, DEFAULT_FOVY, camera_batch, to_clip
from recon.render.mesh_render import render_mesh
from recon.scene.toy_world import LibraryShape, build_library, default_library_path, load_library


@dataclass
class LibraryPriorConfig:
    """image_size: render side (model space is (3, S, S)); std: per-pixel std s of each component;
    input_std: σ_in, how sharply the input view selects shapes; border_ratio: recentring convention
    (as ``recon.io.recentre``); render_bin_deg: cameras are snapped to this grid for rendering
    (0 = exact; 2° moves a 64² render by under half a pixel and lets renders be reused); guidance_scale: default CFG (threestudio's Zero-1-to-3 default is 3)."""

    image_size: int = 64
    std: float = 0.05
    input_std: float = 0.1
    border_ratio: float = 0.2
    render_bin_deg: float = 2.0
    fovy: float = DEFAULT_FOVY
    guidance_scale: float = 3.0
    max_cached_views: int = 2048
    zero_terminal_snr: bool = False


# ᾱ_T of the zero-terminal-SNR library schedule: small enough that exp(-ᾱ_T ‖μ‖² / 2) differs between members by
# < 1 % (‖μ‖² <= 3 · 64² here), large enough that x̂0 = (x - √(1-ᾱ) ε̂) / √ᾱ keeps float32 precision.
TERMINAL_ALPHA = 1e-6


def library_schedule(zero_terminal_snr: bool) -> NoiseSchedule:
    """Stable Diffusion's scaled-linear schedule; rescaled to (almost) zero terminal SNR on request."""
    base = NoiseSchedule.scaled_linear(rescale_zero_snr=zero_terminal_snr)
    if not zero_terminal_snr:
        return base
    abar = base.alphas_cumprod.clone()
    abar[-1] = max(float(abar[-1]), TERMINAL_ALPHA)
    return replace(base, alphas_cumprod=abar)


def _image_tag(image: torch.Tensor) -> str:
    return "img:" + hashlib.sha1(image.detach().cpu().to(torch.float32).numpy().tobytes()).hexdigest()[:16]


class LibraryPrior(Prior):
    """Closed-form view-conditioned prior over ``shapes``; see the module docstring."""

    latent = False

    def __init__(
        self,
        shapes: Sequence[LibraryShape],
        backend: RasterBackend,
        config: LibraryPriorConfig | None = None,
        schedule: NoiseSchedule | None = None,
        reference: tuple[float, float, float] = (0.0, 0.0, DEFAULT_DISTANCE),
    ) -> None:
        super().__init__()
        if not shapes:
            raise ValueError("a LibraryPrior needs at least one shape")
        self.config = config or LibraryPriorConfig()
        self.backend = backend
        self.schedule = schedule or library_schedule(self.config.zero_terminal_snr)
        self.default_guidance_scale = self.config.guidance_scale
        self.reference = reference
        self.shapes = [replace(s, mesh=self._normalise(s.mesh)) for s in shapes]
        self._views: OrderedDict[tuple[float, float, float], torch.Tensor] = OrderedDict()

    @classmethod
    def from_folder(cls, folder: str | Path | None, backend: RasterBackend,
                    config: LibraryPriorConfig | None = None, **kwargs) -> LibraryPrior:
        """The library in ``folder``; None uses ``data/library`` (or builds the toy world in code)."""
        if folder is None:
            path = default_library_path()
            shapes = load_library(path) if (path / "library.yaml").is_file() else build_library()
        else:
            shapes = load_library(folder)
        return cls(shapes, backend, config, **kwargs)

    # -- geometry normalisation: match how an input photo is recentred
    def _normalise(self, mesh):
        """Scale and shift ``mesh`` so its reference-view silhouette is centred with its longer side
        (1 − border_ratio) of the frame. Two passes absorb perspective's dependence on scale."""
        size = 128  # 1/128 of the frame is finer than any render the prior is used at
        elev, azim, dist = self.reference
        for _ in range(2):
            cam = camera_batch(torch.tensor([elev]), torch.tensor([azim]), dist, self.config.fovy, size)
            alpha = render_mesh(mesh, cam, self.backend, antialias=False).mask[0, 0]
            ys, xs = torch.nonzero(alpha, as_tuple=True)
            if ys.numel() == 0:
                raise ValueError("a library shape is not visible from the reference view")
            lo_x, hi_x = xs.min().item(), xs.max().item() + 1
            lo_y, hi_y = ys.min().item(), ys.max().item() + 1
            scale = size * (1 - self.config.border_ratio) / max(hi_x - lo_x, hi_y - lo_y)
            # pixel offset of the bbox centre from the image centre, in world units at the origin's depth
            world_per_px = 2 * dist * math.tan(math.radians(self.config.fovy) / 2) / size
            dx = ((lo_x + hi_x) / 2 - size / 2) * world_per_px
            dy = -((lo_y + hi_y) / 2 - size / 2) * world_per_px
            c2w = cam.c2w[0].to(mesh.vertices)
            shift = c2w[:3, 0] * dx + c2w[:3, 1] * dy
            mesh = replace(mesh, vertices=(mesh.vertices - shift) * scale)
        return mesh

    # -- Prior interface
    @property
    def sample_shape(self) -> tuple[int, ...]:
        s = self.config.image_size
        return (3, s, s)

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.shapes]

    def views(self, cameras: torch.Tensor) -> torch.Tensor:
        """(B, 3) absolute (elevation°, azimuth°, distance) -> (B, M, 3, S, S) renders in [-1, 1]."""
        out = []
        missing: dict[tuple[float, float, float], None] = {}
        keys = [self._key(c) for c in cameras]
        for key in keys:
            if key not in self._views:
                missing[key] = None
        if missing:
            cams = torch.tensor(list(missing), dtype=torch.float32)
            cam = camera_batch(cams[:, 0], cams[:, 1], cams[:, 2], self.config.fovy, self.config.image_size)
            per_shape = [self._colour(s.mesh, cam) for s in self.shapes]  # M x (n, 3, S, S)
            stack = torch.stack(per_shape, dim=1) * 2 - 1  # (n, M, 3, S, S)
            for i, key in enumerate(missing):
                self._views[key] = stack[i].detach()
        for key in keys:
            self._views.move_to_end(key)
            out.append(self._views[key])
        while len(self._views) > self.config.max_cached_views:
            self._views.popitem(last=False)
        return torch.stack(out)

    def _colour(self, mesh, cam) -> torch.Tensor:
        """(n, 3, S, S) antialiased vertex-colour render on white, rows top-first; colour only (the
        mixture means need no depth, normals or positions, which ``render_mesh`` also computes)."""
        size = self.config.image_size
        clip = to_clip(mesh.vertices, cam.mvp.to(mesh.vertices))
        rast, _ = self.backend.rasterize(clip, mesh.faces, (size, size))
        colour, _ = self.backend.interpolate(mesh.vertex_colors, rast, mesh.faces)
        covered = rast[..., 3:4] > 0
        rgb = torch.where(covered, colour, torch.ones_like(colour))
        rgb = self.backend.antialias(rgb.contiguous(), rast, clip, mesh.faces)
        return rgb.flip(1).permute(0, 3, 1, 2)

    def _key(self, camera: torch.Tensor) -> tuple[float, float, float]:
        elev, azim, dist = (float(v) for v in camera)
        step = self.config.render_bin_deg
        if step > 0:
            elev, azim = round(elev / step) * step, round(azim / step) * step
        return (round(elev, 6), round(azim % 360.0, 6), round(dist, 6))

    def log_weights(self, image: torch.Tensor) -> torch.Tensor:
        """(M,) log w_m from how well each shape's reference render explains ``image`` (1, 3, H, W) in [0, 1]."""
        s = self.config.image_size
        img = image.to(torch.float32)
        if img.shape[-1] != s or img.shape[-2] != s:
            img = F.interpolate(img, (s, s), mode="bilinear", align_corners=False, antialias=True)
        ref = self.views(torch.tensor([self.reference]))[0]  # (M, 3, S, S) in [-1, 1]
        mse = ((ref - (img * 2 - 1)) ** 2).flatten(1).mean(1)
        log_w = -mse / (2 * self.config.input_std**2)
        return log_w - torch.logsumexp(log_w, 0)

    def condition(
        self,
        image: torch.Tensor | None = None,
        camera: torch.Tensor | None = None,
        reference: Sequence[float] | None = None,
        **_: object,
    ) -> Condition:
        """Condition on an input view and target cameras.

        Args:
            image: (1, 3, H, W) RGB in [0, 1], white background, recentred; None = unconditional.
            camera: (B, 3) absolute (elevation°, azimuth°, distance) of the target views; default the
                reference view.
            reference: the input view's (elevation°, azimuth°, distance); must match the prior's.
        """
        if reference is not None and tuple(float(v) for v in reference) != tuple(float(v) for v in self.reference):
            raise ValueError(f"this LibraryPrior was normalised for reference view {self.reference}, got {tuple(reference)}")
        if camera is None:
            camera = torch.tensor([self.reference], dtype=torch.float32)
        camera = torch.as_tensor(camera, dtype=torch.float32).reshape(-1, 3)
        m = len(self.shapes)
        if image is None:
            log_w, tag = torch.full((m,), -math.log(m)), "uniform"
        else:
            log_w, tag = self.log_weights(image), _image_tag(image)
        return self._condition(log_w, tag, camera)

    def _condition(self, log_w: torch.Tensor, tag: str, camera: torch.Tensor) -> Condition:
        b = camera.shape[0]
        return Condition(tensors={"log_weights": log_w.expand(b, -1).clone(), "camera": camera.clone()},
                         tags=(tag,) * b, cameras=camera.clone(),
                         rebuild=lambda cams: self._condition(log_w, tag, cams.to(torch.float32)))

    def _model_eps(self, x_t: torch.Tensor, t: torch.Tensor, cond: Condition, uncond: torch.Tensor) -> torch.Tensor:
        x = x_t.reshape(x_t.shape[0], -1).to(torch.float64)
        means = self.views(cond.tensors["camera"]).flatten(2).to(torch.float64)  # (N, M, D)
        m = means.shape[1]
        uniform = torch.full((m,), -math.log(m), dtype=torch.float64)
        log_w = torch.where(uncond.unsqueeze(1), uniform, cond.tensors["log_weights"].to(torch.float64))
        a = self.schedule.alpha(t.cpu())
        stds = torch.full((m,), self.config.std, dtype=torch.float64)
        return mixture_eps(x, a, means, stds, log_w).reshape(x_t.shape).to(x_t.dtype)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, 3, S, S) in [-1, 1], resized (differentiably) to the prior's size."""
        s = self.config.image_size
        if images.shape[-1] != s or images.shape[-2] != s:
            images = F.interpolate(images, (s, s), mode="bilinear", align_corners=False, antialias=True)
        return images * 2 - 1

    # -- for tests, examples and the benchmark
    @torch.no_grad()
    def input_view(self, name: str, size: int = 256) -> torch.Tensor:
        """(4, size, size) RGBA in [0, 1] of shape ``name`` from the reference view (straight alpha)."""
        shape = next((s for s in self.shapes if s.name == name), None)
        if shape is None:
            raise KeyError(f"no shape {name!r} in this library ({', '.join(self.names)})")
        elev, azim, dist = self.reference
        cam = camera_batch(torch.tensor([elev]), torch.tensor([azim]), dist, self.config.fovy, size)
        out = render_mesh(shape.mesh, cam, self.backend, background=0.0)
        alpha = out.alpha[0].clamp(0, 1)
        rgb = torch.where(alpha > 0, out.rgb[0] / alpha.clamp(min=1e-6), torch.ones_like(out.rgb[0]))
        return torch.cat([rgb.clamp(0, 1), alpha])

    def posterior(self, image: torch.Tensor) -> dict[str, float]:
        """Shape name -> weight given the input view."""
        return dict(zip(self.names, self.log_weights(image).exp().tolist()))
