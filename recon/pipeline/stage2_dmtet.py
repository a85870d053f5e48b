"""Stage 2: refine a DMTet surface with photometric targets and/or a guidance loss.

Each step extracts the mesh by marching tetrahedra, renders it through a rasteriser backend with colour from
``color_fn`` at every covered pixel's surface point, and minimises

    weights.rgb * MSE(rgb, target rgb) + weights.mask * MSE(alpha, target mask)   (photometric, target views)
  + weights.guidance * guidance(rgb of random views, step)                       (e.g. the distiller's loss;
                                                                                   the views: guidance_cameras)
  + weights.normal_consistency * normal_consistency + weights.laplacian * laplacian   (on the extracted mesh)

with Adam over the SDF and the deformation. Colour: ``color_fn`` is the stage-1 colour field. It is
**frozen by default** (stage 2 refines geometry; the colour is read at the refined surface points and
gradients still flow through the points into the geometry); with ``finetune_color=True`` and a
``torch.nn.Module`` colour field its parameters are optimised too, at ``lr_color``.

Guidance views: ``guidance_views_per_step`` random cameras from ``cameras`` (the same
:class:`~recon.pipeline.camera_groups.CameraSampling` as stage 1's), or with ``cameras.group = G > 1`` groups of G
views at one elevation spread evenly in azimuth (MVDream's 4 views 90° apart;
:mod:`recon.pipeline.camera_groups`).

Randomness (which target views, which random cameras) comes from one ``torch.Generator`` seeded by
``config.seed``; :meth:`Stage2.state_dict` holds everything needed to resume bit-identically on the CPU:
parameters, optimiser moments, step, that generator's state and torch's global RNG state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as nnf

from recon.pipeline.camera_groups import CameraSampling, check_group
from recon.render.backend import RasterBackend
from recon.render.cameras import Cameras
from recon.render.mesh_render import MeshRender, render_mesh
from recon.scene.dmtet import DMTet
from recon.scene.mesh import Mesh
from recon.scene.mesh_regularizers import laplacian_smoothness, normal_consistency

STAGE = "stage2_dmtet"  # checkpoint tag

ColorFn = Callable[[torch.Tensor], torch.Tensor]  # points (N, 3) -> colours (N, 3) in [0, 1]
GuidanceFn = Callable[[torch.Tensor, int], torch.Tensor]  # rgb (B, 3, H, W) in [0, 1], step -> scalar loss


@dataclass
class Stage2Weights:
    """Stage-2 loss weights (constants), spelled as stage 1's ``stage1.weights.*``."""

    rgb: float = 1.0
    mask: float = 1.0
    guidance: float = 1.0
    normal_consistency: float = 0.1
    laplacian: float = 0.0


@dataclass
class Stage2Config:
    steps: int = 200
    tet_resolution: int = 64
    grid_radius: float = 1.0
    deform_fraction: float = 0.5
    lr_sdf: float = 0.01
    lr_deform: float = 0.01
    lr_color: float = 1e-3
    finetune_color: bool = False
    resolution: int = 128  # render size of guidance views
    target_resolution: int = 0  # render size of the input-view target (0 = the prepared input's own size)
    target_views_per_step: int = 4
    guidance_views_per_step: int = 4
    cameras: CameraSampling = field(default_factory=CameraSampling)  # guidance views (group 4 for MVDream)
    background: float = 1.0
    weights: Stage2Weights = field(default_factory=Stage2Weights)
    seed: int = 0
    # Threads that step whole hypotheses side by side (0 = one per CPU core on the CPU, 1 on a GPU).
    parallel_hypotheses: int = 0


@dataclass
class ViewTargets:
    """N target views: cameras (N), rgb (N, 3, H, W) in [0, 1] and/or mask (N, 1, H, W) in [0, 1], row 0 = top.

    Where a mask is given, the target rgb is composited over the stage's background with it, so the targets'
    own background does not matter.
    """

    cameras: Cameras
    rgb: torch.Tensor | None = None
    mask: torch.Tensor | None = None

    def __post_init__(self):
        if self.rgb is None and self.mask is None:
            raise ValueError("view targets need rgb, mask or both")
        n = len(self.cameras)
        for name, t in (("rgb", self.rgb), ("mask", self.mask)):
            if t is not None and (t.dim() != 4 or t.shape[0] != n):
                raise ValueError(f"target {name} must be (N={n}, C, H, W), got {tuple(t.shape)}")

    @property
    def resolution(self) -> tuple[int, int]:
        t = self.rgb if self.rgb is not None else self.mask
        return int(t.shape[2]), int(t.shape[3])


class Stage2:
    """One stage-2 optimisation of a :class:`DMTet` (already initialised, e.g. ``init_from_density``); a
    :class:`~recon.pipeline.stage.Stage` (step it with :func:`~recon.pipeline.stage.run_stage`).

    ``batched=True`` declares that a :class:`~recon.pipeline.stage2_batch.Stage2Batch` supplies the
    guidance, so a stage with neither targets nor its own guidance (text-to-3D) is allowed.
    """

    checkpoint_tag = STAGE

    def __init__(
        self,
        config: Stage2Config,
        geometry: DMTet,
        color_fn: ColorFn,
        backend: RasterBackend,
        targets: ViewTargets | None = None,
        guidance: GuidanceFn | None = None,
        batched: bool = False,
    ):
        if targets is None and guidance is None and not batched:
            raise ValueError("stage 2 needs photometric targets, a guidance loss, or both")
        check_group(config.guidance_views_per_step, config.cameras.group, "stage2.guidance_views_per_step")
        self.config = config
        self.geometry = geometry
        self.color_fn = color_fn
        self.backend = backend
        self.targets = targets
        self.guidance = guidance
        self.step_index = 0
        self.generator = torch.Generator().manual_seed(config.seed)
        groups = [
            {"params": [geometry.sdf], "lr": config.lr_sdf},
            {"params": [geometry.deform], "lr": config.lr_deform},
        ]
        self._color_module = None
        if config.finetune_color:
            if not isinstance(color_fn, torch.nn.Module):
                raise ValueError("finetune_color needs a torch.nn.Module colour field")
            self._color_module = color_fn
            groups.append({"params": list(color_fn.parameters()), "lr": config.lr_color})
        self.optimizer = torch.optim.Adam(groups)
        self.history: list[dict[str, float]] = []
        self.guidance_cameras: Cameras | None = None  # the random views of the latest guidance call

    @property
    def total_steps(self) -> int:
        return self.config.steps

    # ----------------------------------------------------------------- rendering
    def render(self, mesh: Mesh, cameras: Cameras, resolution: tuple[int, int]) -> MeshRender:
        return render_mesh(mesh, cameras, self.backend, resolution, color_fn=self.color_fn,
                           background=self.config.background)

    def _photometric(self, mesh: Mesh) -> dict[str, torch.Tensor]:
        t = self.targets
        n = len(t.cameras)
        k = min(self.config.target_views_per_step, n)
        idx = torch.randperm(n, generator=self.generator)[:k].sort().values
        device = mesh.vertices.device
        out = self.render(mesh, t.cameras[idx].to(device=device), t.resolution)
        losses = {}
        if t.mask is not None:
            mask = t.mask[idx].to(device=device, dtype=out.alpha.dtype)
            losses["mask"] = nnf.mse_loss(out.alpha, mask)
        if t.rgb is not None:
            rgb = t.rgb[idx].to(device=device, dtype=out.rgb.dtype)
            if t.mask is not None:
                rgb = rgb * mask + self.config.background * (1 - mask)
            losses["rgb"] = nnf.mse_loss(out.rgb, rgb)
        return losses

    def guidance_views(self, mesh: Mesh) -> tuple[torch.Tensor, Cameras]:
        """This step's random views of ``mesh``: rgb (V, 3, H, W) with gradients, and their cameras."""
        c = self.config
        cams = c.cameras.draw(c.guidance_views_per_step, self.generator, c.resolution)
        # Camera-conditioned guidance (e.g. Zero-1-to-3's relative pose) reads them from here.
        self.guidance_cameras = cams
        out = self.render(mesh, cams.to(device=mesh.vertices.device), (c.resolution, c.resolution))
        return out.rgb, cams

    # ------------------------------------------------------------------ training
    def begin_step(self) -> tuple[Mesh, dict[str, torch.Tensor]]:
        """Extract the surface and compute this step's weighted terms other than guidance."""
        c = self.config
        mesh = self.geometry.extract()
        if mesh.num_faces == 0:
            raise RuntimeError(f"stage 2: the DMTet surface vanished at step {self.step_index} (every SDF value has "
                               "one sign); lower the learning rates or check the stage-1 density threshold")
        terms: dict[str, torch.Tensor] = {}
        if self.targets is not None:
            photo = self._photometric(mesh)
            if "rgb" in photo:
                terms["rgb"] = c.weights.rgb * photo["rgb"]
            if "mask" in photo:
                terms["mask"] = c.weights.mask * photo["mask"]
        w = c.weights
        if w.normal_consistency:
            terms["normal_consistency"] = w.normal_consistency * normal_consistency(mesh.vertices, mesh.faces)
        if w.laplacian:
            terms["laplacian"] = w.laplacian * laplacian_smoothness(mesh.vertices, mesh.faces)
        return mesh, terms

    def finish_step(self, terms: dict[str, torch.Tensor], loss: torch.Tensor | None = None) -> dict[str, float]:
        """Backpropagate ``loss`` (default: the sum of ``terms``), step Adam, record the terms."""
        loss = sum(terms.values()) if loss is None else loss
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        return self.apply(terms)

    def apply(self, terms: dict[str, torch.Tensor]) -> dict[str, float]:
        """Step Adam on gradients already accumulated (e.g. by a batch of hypotheses' joint backward)."""
        self.optimizer.step()
        self.step_index += 1
        record = {k: float(v.detach()) for k, v in terms.items()}
        record["loss"] = float(sum(record.values()))
        self.history.append(record)
        return record

    def step(self) -> dict[str, float]:
        """One optimisation step; returns the weighted loss terms as floats."""
        mesh, terms = self.begin_step()
        if self.guidance is not None:
            rgb, _ = self.guidance_views(mesh)
            terms["guidance"] = self.config.weights.guidance * self.guidance(rgb, self.step_index)
        return self.finish_step(terms)

    @torch.no_grad()
    def mesh(self, with_colors: bool = True) -> Mesh:
        """The current surface, detached, with vertex colours from ``color_fn`` (clamped to [0, 1])."""
        m = self.geometry.extract()
        verts = m.vertices.detach()
        colors = None
        if with_colors and verts.shape[0]:
            colors = self.color_fn(verts).clamp(0, 1)
        return Mesh(vertices=verts, faces=m.faces, vertex_colors=colors)

    # --------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        state = {
            "step": self.step_index,
            "geometry": {k: v.detach().clone() for k, v in self.geometry.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "config": asdict(self.config),
            "history": list(self.history),
        }
        if self._color_module is not None:
            state["color"] = self._color_module.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = state["config"]
        for key in ("tet_resolution", "grid_radius", "deform_fraction", "finetune_color"):
            if saved[key] != getattr(self.config, key):
                raise ValueError(f"checkpoint has {key}={saved[key]!r}, this run {getattr(self.config, key)!r}")
        self.geometry.load_state_dict(state["geometry"])
        if self._color_module is not None:
            self._color_module.load_state_dict(state["color"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.step_index = int(state["step"])
        self.history = list(state.get("history", []))
