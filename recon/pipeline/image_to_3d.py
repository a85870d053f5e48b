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

import dataclasses
import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from recon.config import to_dict
from recon.diffusion.timesteps import TimestepConfig
from recon.distill.base import DistillConfig, Hypothesis
from recon.distill.factory import build_distiller
from recon.io.atomic import atomic_write_text
from recon.io.export import ExportConfig, export_mesh
from recon.io.output_dir import ensure_writable_dir
from recon.io.prepare import InputConfig, prepare_input
from recon.io.report import (
    HypothesisEntry,
    new_run_record,
    now_iso,
    write_contact_sheet,
    write_index_html,
    write_png,
    write_run_json,
    write_turntable,
)
from recon.pipeline.checkpoint import load_checkpoint, save_checkpoint
from recon.pipeline.guidance import DistillGuidance
from recon.pipeline.interrupt import StopRequest, graceful_interrupt
from recon.pipeline.prior_setup import ImagePriorConfig, build_image_prior
from recon.pipeline.stage1_nerf import KnownViews, Stage1, Stage1Config
from recon.pipeline.stage2_batch import Stage2Batch
from recon.pipeline.stage2_dmtet import Stage2, Stage2Config, ViewTargets
from recon.render.cameras import DEFAULT_DISTANCE, DEFAULT_FOVY, camera_batch
from recon.render.mesh_render import render_mesh
from recon.render.select import select_backend
from recon.scene.dmtet import DMTet
from recon.scene.isosurface import solid_density_fn
from recon.scene.mesh import Mesh

Progress = Callable[[str, int, int], None]


@dataclass
class ReportConfig:
    """turntable_frames: frames per turntable; render_size: turntable / contact-sheet render side."""

    turntable_frames: int = 24
    render_size: int = 192
    elevation: float = 15.0


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


@dataclass
class HypothesisResult:
    index: int
    seed: int
    mesh: Mesh
    paths: dict[str, Path]


@dataclass
class Reconstruction:
    out_dir: Path
    hypotheses: list[HypothesisResult]
    run_json: Path
    seconds: float
    resumed: bool = False


class RunConflict(RuntimeError):
    """The output folder holds a different run; nothing is overwritten."""


def config_hash(config: ImageTo3DConfig, input_sha256: str) -> str:
    data = json.dumps({"config": to_dict(config), "input": input_sha256}, sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but torch sees no CUDA device; use --device cpu")
    return name


def _stage_distiller(prior, config: ImageTo3DConfig, timesteps: TimestepConfig, steps: int):
    distill = dataclasses.replace(config.distill, timesteps=dataclasses.replace(timesteps, total_steps=steps),
                                  camera_bin=config.prior.camera_bin)
    if config.prior.guidance_scale is not None:
        distill.guidance_scale = config.prior.guidance_scale
    return build_distiller(prior, distill)


class ImageTo3D:
    """One reconstruction, stage by stage (``reconstruct`` runs them all; the benchmark drives them
    one at a time). ``out_dir`` holds the checkpoints and, after ``export``/``report``, the outputs."""

    def __init__(self, image_path: Path, config: ImageTo3DConfig, out_dir: Path, progress: Progress | None):
        self.image_path = image_path
        self.config = config
        self.out = out_dir
        self.progress = progress or (lambda label, done, total: None)
        self.ckpt_dir = out_dir / "checkpoints"
        self.device = resolve_device(config.device)
        self.backend = select_backend(config.backend, self.device)
        self.hyps = [Hypothesis(config.seed, k) for k in range(config.hypotheses)]

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

    def guidance(self, timesteps: TimestepConfig, steps: int) -> DistillGuidance:
        distiller = _stage_distiller(self.prior, self.config, timesteps, steps)
        return DistillGuidance(self.prior, distiller, self.hyps, self.condition)

    def check_folder(self) -> None:
        """Refuse an output folder that holds another run; keep going in one that holds this run."""
        marker = self.out / "run.json"
        state = self.ckpt_dir / "run_hash.txt"
        for path in (marker, state):
            if path.exists():
                existing = self._read_hash(path)
                if existing != self.hash:
                    raise RunConflict(f"{self.out}: holds a different run (other input or settings); "
                                      "choose another --out folder or delete that one")
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(state, self.hash)

    @staticmethod
    def _read_hash(path: Path) -> str | None:
        try:
            if path.suffix == ".json":
                return json.loads(path.read_text()).get("outputs", {}).get("run_hash")
            return path.read_text().strip()
        except (OSError, ValueError):
            return None

    # -- stage 1
    def stage1(self, stop: StopRequest) -> Stage1:
        c = self.config
        views = KnownViews.from_image(self.rgba, c.elevation, c.distance, c.fovy)
        guidance = self.guidance(c.stage1_timesteps, c.stage1.steps)
        stage = Stage1(c.stage1, views, hypotheses=[h.index for h in self.hyps], guidance=guidance)
        path = self.ckpt_dir / "stage1.pt"
        if path.exists():
            state = load_checkpoint(path, "image_to_3d_stage1")
            stage.load_state_dict(state["stage"])
            guidance.load_state_dict(state["guidance"])
            self.resumed = True

        def save() -> None:
            save_checkpoint(path, {"stage": stage.state_dict(), "guidance": guidance.state_dict()},
                            "image_to_3d_stage1")

        total = c.stage1.steps
        while stage.step_index < total:
            stage.step()
            self.progress("stage 1 NeRF", stage.step_index, total)
            if (c.checkpoint_every and stage.step_index % c.checkpoint_every == 0) or stop.requested:
                save()
                stop.check()
        save()
        self.stage1_guidance = guidance
        return stage

    # -- stage 2
    def stage2(self, stage1: Stage1, stop: StopRequest) -> list[Mesh]:
        c = self.config
        field = stage1.field.requires_grad_(False)  # stage 2 reads the stage-1 colour, never trains it
        stages = []
        self.levels: list[float] = []
        for k in range(len(self.hyps)):
            geometry = DMTet(c.stage2.tet_resolution, c.stage2.grid_radius, c.stage2.deform_fraction)
            density_fn, color_fn = field.density_fn(k), field.color_fn(k)
            level = c.density_threshold or self.pick_level(geometry, density_fn, k)
            # Cavities filled: the coarse field's inner walls would otherwise become DMTet surfaces.
            geometry.init_from_density(solid_density_fn(density_fn, level), level)
            self.levels.append(level)
            cam = camera_batch(c.elevation, 0.0, c.distance, c.fovy, tuple(self.rgba.shape[1:]))
            targets = ViewTargets(cam, rgb=self.rgba[None, :3], mask=self.rgba[None, 3:])
            cfg = dataclasses.replace(c.stage2, seed=c.seed * 1000 + k)
            stages.append(Stage2(cfg, geometry, color_fn, self.backend, targets=targets, guidance=None))
        guidance = self.guidance(c.stage2_timesteps, c.stage2.steps)
        batch = Stage2Batch(stages, guidance)
        path = self.ckpt_dir / "stage2.pt"
        if path.exists():
            batch.load_state_dict(load_checkpoint(path, "image_to_3d_stage2"))
            self.resumed = True
        total = c.stage2.steps
        while batch.step < total:
            batch.train_step()
            self.progress("stage 2 DMTet", batch.step, total)
            if (c.checkpoint_every and batch.step % c.checkpoint_every == 0) or stop.requested:
                save_checkpoint(path, batch.state_dict(), "image_to_3d_stage2")
                stop.check()
        save_checkpoint(path, batch.state_dict(), "image_to_3d_stage2")
        self.stage2_guidance = guidance
        self.color_fns = [s.color_fn for s in stages]
        return [s.mesh() for s in stages]

    @torch.no_grad()
    def pick_level(self, geometry: DMTet, density_fn, k: int) -> float:
        """The density level whose surface best matches the input mask from the reference view (IoU).

        Coarse fields differ in scale from run to run (softplus densities of a few units to tens), so a
        fixed level either swallows the object or tears holes in it; the input silhouette decides.
        """
        c = self.config
        size = 128
        mask = torch.nn.functional.interpolate(self.rgba[None, 3:], (size, size), mode="area")[0, 0] > 0.5
        cam = camera_batch(c.elevation, 0.0, c.distance, c.fovy, size)
        top = float(density_fn(geometry.grid_vertices).max())
        if top <= 0:
            raise RuntimeError(f"hypothesis {k}: stage 1 produced an empty field; raise stage1.weights.mask "
                               "or check the input mask")
        best, best_iou = None, -1.0
        for level in (top * f for f in (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.65)):
            try:
                geometry.init_from_density(density_fn, level, redistance=False)
            except ValueError:
                continue
            mesh = geometry.extract()
            if mesh.num_faces == 0:
                continue
            sil = render_mesh(mesh, cam, self.backend, antialias=False).mask[0, 0]
            iou = float((sil & mask).sum()) / max(float((sil | mask).sum()), 1.0)
            if iou > best_iou + 1e-3:
                best, best_iou = level, iou
        if best is None:
            raise RuntimeError(f"hypothesis {k}: no density level of the stage-1 field gives a surface")
        return best

    # -- export and report
    def export(self, meshes: list[Mesh]) -> list[HypothesisResult]:
        results = []
        for k, mesh in enumerate(meshes):
            self.progress("export", k, len(meshes))
            res = export_mesh(mesh, self.color_fns[k], self.out / "meshes", f"hypothesis_{k}", self.backend,
                              self.config.export)
            results.append(HypothesisResult(k, self.config.seed, mesh, dict(res.paths)))
        self.progress("export", len(meshes), len(meshes))
        return results

    def report(self, results: list[HypothesisResult], record) -> None:
        rc = self.config.report
        n = rc.turntable_frames
        sheet = []
        entries = []
        for res in results:
            azim = torch.linspace(0, 360, n + 1)[:-1]
            cams = camera_batch(torch.full((n,), rc.elevation), azim, self.config.distance, self.config.fovy,
                                rc.render_size)
            with torch.no_grad():
                frames = render_mesh(res.mesh, cams, self.backend, color_fn=self.color_fns[res.index]).rgb
            frames = (frames.permute(0, 2, 3, 1).clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
            gif = self.out / f"turntable_{res.index}.gif"
            write_turntable(gif, list(frames))
            sheet.append(frames[n // 8])  # a three-quarter view
            entries.append(HypothesisEntry(res.index, self.config.seed, gif.name,
                                           {fmt: str(p.relative_to(self.out)) for fmt, p in res.paths.items()}))
        write_contact_sheet(self.out / "contact_sheet.png", sheet, [h.seed for h in self.hyps])
        write_png(self.out / "input.png", self.rgba.permute(1, 2, 0).numpy())
        write_index_html(self.out / "index.html", f"recon: {self.image_path.name}", entries, "contact_sheet.png",
                         input_image="input.png",
                         summary={"method": self.config.distill.method, "hypotheses": len(results),
                                  "seed": self.config.seed})


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
    start = time.perf_counter()
    out = Path(out_dir)
    created = not out.exists()
    run = ImageTo3D(Path(image), config, out, progress)
    run.resumed = False
    run.prepare()  # input errors surface here, before the output folder is touched
    ensure_writable_dir(out)
    try:
        run.check_folder()
        record = new_run_record(command, config, [h.seed for h in run.hyps], input_path=image, device=run.device)
        with graceful_interrupt() as stop:
            with record.stage("stage1_nerf", run.prior):
                stage1 = run.stage1(stop)
            with record.stage("stage2_dmtet", run.prior):
                meshes = run.stage2(stage1, stop)
        with record.stage("export"):
            results = run.export(meshes)
        with record.stage("report"):
            run.report(results, record)
    except BaseException:
        if created and not any((out / "checkpoints").glob("*.pt")):
            shutil.rmtree(out, ignore_errors=True)
        raise
    record.outputs.update(
        run_hash=run.hash,
        hypotheses=[{"index": r.index, "seed": r.seed,
                     "meshes": {k: str(p.relative_to(out)) for k, p in r.paths.items()}} for r in results],
        guidance_evals={"stage1": run.stage1_guidance.stats.evals, "stage2": run.stage2_guidance.stats.evals},
        resumed=run.resumed,
    )
    record.finished = now_iso()
    run_json = write_run_json(out / "run.json", record)
    return Reconstruction(out, results, run_json, time.perf_counter() - start, run.resumed)
