"""Text to 3D: one prompt -> K textured meshes, one per hypothesis (DSD seed).

The image pipeline's stages with a text prior and no known views
(:class:`~recon.pipeline.staged_run.StagedRun` holds the shared machinery):

1. **Coarse NeRF** — K radiance fields shaped by the distiller alone at random views (no reference
   term; sparsity and opacity regularisers), one batched prior call per step for K hypotheses ×
   views. Stable Diffusion gets view-dependent prompts from each row's camera; MVDream gets groups
   of 4 views 90° apart at one elevation (``stage1.cameras.group = 4``), one t per group.
2. **DMTet** — each field's density initialises a tetrahedral SDF at the level chosen by
   :class:`SurfaceLevelConfig` (there is no input silhouette: the field's own rendered opacity
   plays its part), refined by guidance only; colour from the stage-1 field.
3. **Export and report** — exactly an image run's outputs: ``meshes/hypothesis_<k>.{glb,obj,mtl,png,ply}``,
   turntables, contact sheet, ``index.html`` and ``run.json`` with the prompt recorded as the input.

Interrupt (Ctrl-C) and resume work as for images: the same command in the same folder continues
from the last checkpoint.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from recon.diffusion.timesteps import TimestepConfig
from recon.distill.base import DistillConfig
from recon.io.export import ExportConfig
from recon.io.manifest import RunRecord, new_run_record
from recon.pipeline.camera_groups import CameraSampling
from recon.pipeline.run_outputs import Progress, Reconstruction, ReportConfig
from recon.pipeline.run_setup import config_hash
from recon.pipeline.stage1_config import LossWeights, Stage1Config
from recon.pipeline.stage1_nerf import Stage1
from recon.pipeline.stage2_dmtet import Stage2Config, Stage2Weights
from recon.pipeline.staged_run import StagedRun, execute
from recon.pipeline.surface_level import best_level
from recon.pipeline.text_prior import TextPriorConfig, build_text_prior
from recon.priors.base import Condition
from recon.render.cameras import DEFAULT_DISTANCE, DEFAULT_FOVY, Cameras, camera_batch
from recon.scene.dmtet import DMTet

MVDREAM_VIEWS = 4


@dataclass
class SurfaceLevelConfig:
    """How stage 2 picks each hypothesis's DMTet level when there is no input silhouette.

    The stage-1 field is rendered (deterministically) from ``views`` cameras evenly spaced in azimuth
    at ``elevation``, ``resolution``² pixels; pixels with opacity above ``opacity`` are its
    silhouettes. The level — a fraction of the field's largest density — whose DMTet surface best
    matches them (IoU over all views; :func:`~recon.pipeline.surface_level.best_level`) is used: the
    surface keeps what the coarse field shows as opaque. A field with no such pixel in any view is
    empty: that hypothesis gets no mesh (``run.json`` lists it under ``outputs.empty_hypotheses``)
    and the others go on; when every field is empty the run stops with one error line.
    """

    views: int = 8
    elevation: float = 15.0
    resolution: int = 64
    opacity: float = 0.5


def _text_stage1() -> Stage1Config:
    # DSD's text setting (DESIGN.md): Adam 0.01, renders 128 -> 512, guidance and regularisers only.
    return Stage1Config(
        steps=10_000, resolutions=[128, 256, 512], batch_sizes=[1, 1, 1], milestones=[5_000, 8_000],
        cameras=CameraSampling(elevation_range=(-10.0, 90.0)), guidance_background="mixed",
        weights=LossWeights(rgb=0.0, mask=0.0, guidance=1.0, normal_smooth=0.0, sparsity=1.0, opaque=0.1),
    )


def _text_stage2() -> Stage2Config:
    return Stage2Config(steps=400, tet_resolution=128, resolution=256, guidance_views_per_step=4,
                        cameras=CameraSampling(elevation_range=(-10.0, 60.0)), weights=Stage2Weights(guidance=1.0))


@dataclass
class TextTo3DConfig:
    """Everything a text-to-3D run depends on except the prompt (``run.json`` records both).

    hypotheses, seed: K hypotheses; hypothesis k's ε* and random streams derive from (seed, k).
    distance, fovy: camera of the report's turntables and of the surface-level views (the guidance
        cameras' own ranges are in ``stage1.cameras`` / ``stage2``).
    prior: the text prior (:class:`~recon.pipeline.text_prior.TextPriorConfig`).
    distill: the distiller (dsd by default); its ``timesteps`` are replaced by ``stage1_timesteps`` /
        ``stage2_timesteps`` with ``total_steps`` = the stage's steps.
    stage1_timesteps: DSD's text schedule: t falls from 0.98 to 0.32 with a sqrt anneal (the DSD
        authors' threestudio fork, ``sqrt_anneal``), which spends less time at large t.
    density_threshold: a fixed stage-1 density level for DMTet; None (default) uses ``level``.
    checkpoint_every: steps between checkpoints in both stages (0 = only at stage ends).
    """

    hypotheses: int = 4
    seed: int = 0
    device: str = "auto"
    backend: str = "auto"
    distance: float = DEFAULT_DISTANCE
    fovy: float = DEFAULT_FOVY
    prior: TextPriorConfig = field(default_factory=TextPriorConfig)
    distill: DistillConfig = field(default_factory=lambda: DistillConfig(method="dsd"))
    stage1_timesteps: TimestepConfig = field(
        default_factory=lambda: TimestepConfig(kind="anneal", t_max=0.98, t_min=0.32, anneal="sqrt"))
    stage2_timesteps: TimestepConfig = field(
        default_factory=lambda: TimestepConfig(kind="anneal", t_max=0.5, t_min=0.02, anneal="sqrt"))
    stage1: Stage1Config = field(default_factory=_text_stage1)
    stage2: Stage2Config = field(default_factory=_text_stage2)
    density_threshold: float | None = None
    level: SurfaceLevelConfig = field(default_factory=SurfaceLevelConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    checkpoint_every: int = 50


def prompt_sha256(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()


class TextTo3D(StagedRun):
    """One text-to-3D run, stage by stage (:func:`text_to_3d` runs them all)."""

    checkpoint_tag = "text_to_3d"
    reproduce = "recon text"

    def __init__(self, prompt: str, config: TextTo3DConfig, out_dir: Path, progress: Progress | None) -> None:
        super().__init__(config, out_dir, progress)
        self.prompt = prompt
        self._silhouettes: tuple[Stage1, Cameras, torch.Tensor] | None = None
        self._silhouettes_lock = threading.Lock()  # the hypotheses' level searches run on threads

    # -- setup
    def prepare(self) -> None:
        """Check the prompt and settings, then load the prior (errors are one line, nothing written yet)."""
        c = self.config
        if not self.prompt.strip():
            raise ValueError('the prompt is empty; describe the object, e.g. recon text "a wooden chair"')
        if c.prior.kind == "mvdream" and (c.stage1.cameras.group != MVDREAM_VIEWS
                                          or c.stage2.cameras.group != MVDREAM_VIEWS):
            raise ValueError(f"MVDream denoises groups of {MVDREAM_VIEWS} views: set stage1.cameras.group="
                             f"{MVDREAM_VIEWS} and stage2.cameras.group={MVDREAM_VIEWS} (configs/text-to-3d-mvdream.yaml "
                             "does), with batch sizes that are multiples of 4")
        self.prior = build_text_prior(c.prior, self.device)
        self.hash = config_hash(c, prompt_sha256(self.prompt))

    def condition(self, cameras: torch.Tensor) -> Condition:
        p = self.config.prior
        cond = self.prior.condition(prompt=self.prompt, negative_prompt=p.negative_prompt, camera=cameras)
        if p.kind == "sd" and not p.perp_neg:
            # Only the view suffix depends on the camera, and it is in each row's tag: key DSD's
            # trajectories by it (4 per hypothesis) rather than by camera bins of identical conditions.
            cond.cameras = None
            cond.rebuild = None
        return cond

    # -- stage 2's starting level
    @torch.no_grad()
    def silhouettes(self, stage1: Stage1) -> tuple[Cameras, torch.Tensor]:
        """The level cameras (V) and every hypothesis's stage-1 silhouettes (K, V, H, W) bool."""
        with self._silhouettes_lock:
            if self._silhouettes is None or self._silhouettes[0] is not stage1:
                lc, c = self.config.level, self.config
                azimuth = torch.arange(lc.views, dtype=torch.float64) * (360.0 / lc.views)
                cams = camera_batch(torch.full((lc.views,), lc.elevation), azimuth, c.distance, c.fovy, lc.resolution)
                out = stage1.render(Cameras.cat([cams] * stage1.num_hypotheses), lc.resolution)
                self._silhouettes = (stage1, cams, out["opacity"][:, :, 0] > lc.opacity)
            return self._silhouettes[1], self._silhouettes[2]

    def surface_level(self, stage1: Stage1, geometry: DMTet, density_fn, k: int) -> float | None:
        cams, masks = self.silhouettes(stage1)
        if not bool(masks[k].any()):
            return None
        return best_level(geometry, density_fn, cams, masks[k], self.backend)

    # -- records
    def new_record(self, command: str) -> RunRecord:
        return new_run_record(command, self.config, [h.seed for h in self.hyps], device=self.device,
                              extra_input={"prompt": self.prompt, "sha256": prompt_sha256(self.prompt)})

    def page(self) -> tuple[str, str | None, dict[str, Any]]:
        p = self.config.prior
        return f"recon: {self.prompt}", None, {"prompt": self.prompt, "prior": p.path or p.kind}


def text_to_3d(
    prompt: str,
    config: TextTo3DConfig | None = None,
    out_dir: str | Path = "out/text",
    progress: Progress | None = None,
    command: str = "recon text",
) -> Reconstruction:
    """Prompt -> K textured meshes in ``out_dir`` (see the module docstring). Resumes an interrupted run.

    The prompt, settings and model folder are checked before anything is written; a run that fails
    before its first checkpoint removes the output folder it created.
    """
    config = config or TextTo3DConfig()
    run = TextTo3D(prompt, config, Path(out_dir), progress)
    return execute(run, Path(out_dir), command)
