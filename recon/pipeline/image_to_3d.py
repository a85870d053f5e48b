"""Image to 3D: one photo -> K textured meshes, one per hypothesis (DSD seed).

Stages, each checkpointed every ``checkpoint_every`` steps and at its end (``OUT/checkpoints``):

1. **Coarse NeRF** — K radiance fields fitted to the input view (RGB + mask) and guided at random
   views by the distiller (one batched prior call per step for all K hypotheses × views).
2. **DMTet** — each field's density initialises a tetrahedral SDF, refined with the input view and
   guidance; colour from the stage-1 field.
3. **Export** — per hypothesis a GLB, OBJ+MTL+PNG and PLY; a turntable; then the contact sheet,
   ``index.html`` and ``run.json``.

A run interrupted (Ctrl-C) stops at a step boundary after writing a checkpoint; running the same
command again resumes and gives the same meshes as an uninterrupted run (CPU, same seed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from recon.diffusion.timesteps import TimestepConfig
from recon.distill.base import DistillConfig
from recon.io.export import ExportConfig
from recon.io.manifest import RunRecord, new_run_record
from recon.io.prepare import InputConfig, prepare_input
from recon.io.report import write_png
from recon.pipeline.known_views import KnownViews
from recon.pipeline.prior_setup import ImagePriorConfig, build_image_prior
from recon.pipeline.run_outputs import HypothesisResult, Progress, Reconstruction, ReportConfig
from recon.pipeline.run_setup import config_hash, resolve_device
from recon.pipeline.stage1_config import Stage1Config
from recon.pipeline.stage1_nerf import Stage1
from recon.pipeline.stage2_dmtet import Stage2Config, ViewTargets
from recon.pipeline.staged_run import RunConflict, StagedRun, execute
from recon.pipeline.surface_level import best_level, density_max
from recon.render.cameras import DEFAULT_DISTANCE, DEFAULT_FOVY, camera_batch
from recon.scene.dmtet import DMTet

__all__ = [
    "HypothesisResult", "ImageTo3D", "ImageTo3DConfig", "Progress", "Reconstruction", "ReportConfig",
    "RunConflict", "config_hash", "reconstruct", "resolve_device",
]


@dataclass
class ImageTo3DConfig:
    """Everything an image-to-3D run depends on (``run.json`` records it; ``--set`` overrides it).

    hypotheses, seed: K hypotheses; hypothesis k's ε* and random streams derive from (seed, k).
    elevation: the input view's elevation in degrees; distance, fovy: its camera.
    distill: the distiller (``method`` dsd, sds, asd, sdi, consistent3d); its ``timesteps`` are replaced
        by ``stage1_timesteps`` / ``stage2_timesteps`` (with ``total_steps`` = the stage's steps).
    stage2_enabled: False stops after stage 1 and exports marching cubes of the density instead.
    density_threshold: the stage-1 density level DMTet starts from; None (default) picks, per
        hypothesis, the level whose surface best matches the input silhouette.
    checkpoint_every: steps between checkpoints in both stages (0 = only at stage ends).
    """

    hypotheses: int = 4
    seed: int = 0
    device: str = "auto"
    backend: str = "auto"
    elevation: float = 0.0
    distance: float = DEFAULT_DISTANCE
    fovy: float = DEFAULT_FOVY
    prior: ImagePriorConfig = field(default_factory=ImagePriorConfig)
    distill: DistillConfig = field(default_factory=lambda: DistillConfig(method="dsd"))
    stage1_timesteps: TimestepConfig = field(
        default_factory=lambda: TimestepConfig(kind="anneal", t_max=0.85, t_min=0.2))
    stage2_timesteps: TimestepConfig = field(
        default_factory=lambda: TimestepConfig(kind="anneal", t_max=0.5, t_min=0.02))
    input: InputConfig = field(default_factory=InputConfig)
    stage1: Stage1Config = field(default_factory=Stage1Config)
    stage2: Stage2Config = field(default_factory=Stage2Config)
    stage2_enabled: bool = True
    density_threshold: float | None = None
    export: ExportConfig = field(default_factory=ExportConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    checkpoint_every: int = 50


class ImageTo3D(StagedRun):
    """One reconstruction, stage by stage (``reconstruct`` runs them all; the benchmark drives them
    one at a time: ``prepare()``, ``stage1(stop)``, ``stage2(stage1, stop)``, ``export(stage2.meshes)``,
    ``report(results, record)``). The shared machinery is :class:`~recon.pipeline.staged_run.StagedRun`."""

    checkpoint_tag = "image_to_3d"

    def __init__(self, image_path: Path, config: ImageTo3DConfig, out_dir: Path, progress: Progress | None):
        super().__init__(config, out_dir, progress)
        self.image_path = image_path

    # -- setup
    def prepare(self) -> None:
        c = self.config
        prepared = prepare_input(self.image_path, c.input)
        self.input_sha = prepared.image.sha256
        self.rgba = torch.as_tensor(prepared.recentred.rgba).permute(2, 0, 1).float()  # (4, S, S)
        self.image = torch.as_tensor(prepared.recentred.rgb_white).permute(2, 0, 1)[None].float()
        self.reference = (c.elevation, 0.0, c.distance)
        self.prior = build_image_prior(c.prior, self.backend, self.device, self.reference)
        self.hash = config_hash(c, self.input_sha)

    def condition(self, cameras: torch.Tensor):
        return self.prior.condition(image=self.image, camera=cameras, reference=self.reference)

    def known_views(self) -> KnownViews:
        c = self.config
        return KnownViews.from_image(self.rgba, c.elevation, c.distance, c.fovy)

    def view_targets(self) -> ViewTargets:
        c = self.config
        rgba = self.rgba[None]
        size = c.stage2.target_resolution
        if size and size != rgba.shape[-1]:
            # Area averaging keeps the mask's partial coverage at the edges (what antialiased alpha renders).
            rgba = torch.nn.functional.interpolate(rgba, (size, size), mode="area")
        cam = camera_batch(c.elevation, 0.0, c.distance, c.fovy, tuple(rgba.shape[2:]))
        return ViewTargets(cam, rgb=rgba[:, :3], mask=rgba[:, 3:])

    def surface_level(self, stage1: Stage1, geometry: DMTet, density_fn, k: int) -> float:
        return self.pick_level(geometry, density_fn, k)

    @torch.no_grad()
    def pick_level(self, geometry: DMTet, density_fn, k: int) -> float:
        """The density level whose surface best matches the input mask from the reference view (IoU)."""
        c = self.config
        size = 128
        mask = torch.nn.functional.interpolate(self.rgba[None, 3:], (size, size), mode="area")[0, 0] > 0.5
        cam = camera_batch(c.elevation, 0.0, c.distance, c.fovy, size)
        top = density_max(geometry, density_fn)
        if top <= 0:
            raise RuntimeError(f"hypothesis {k}: stage 1 produced an empty field; raise stage1.weights.mask "
                               "or check the input mask")
        best = best_level(geometry, density_fn, cam, mask[None], self.backend, top)
        if best is None:
            raise RuntimeError(f"hypothesis {k}: no density level of the stage-1 field gives a surface")
        return best

    # -- records
    def new_record(self, command: str) -> RunRecord:
        return new_run_record(command, self.config, [h.seed for h in self.hyps], input_path=self.image_path,
                              device=self.device)

    def page(self) -> tuple[str, str | None, dict]:
        write_png(self.out / "input.png", self.rgba.permute(1, 2, 0).numpy())
        return f"recon: {self.image_path.name}", "input.png", {}


def reconstruct(
    image: str | Path,
    config: ImageTo3DConfig | None = None,
    out_dir: str | Path = "out/run",
    progress: Progress | None = None,
    command: str = "recon run",
) -> Reconstruction:
    """Photo -> K textured meshes in ``out_dir`` (see the module docstring). Resumes an interrupted run.

    The input is checked before anything is written; a run that fails before its first checkpoint
    removes the output folder it created, so bad input leaves nothing behind.
    """
    config = config or ImageTo3DConfig()
    run = ImageTo3D(Path(image), config, Path(out_dir), progress)
    return execute(run, Path(out_dir), command)
