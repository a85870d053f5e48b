"""What the image and the text pipelines share: stage loops, stage 2 from stage 1, export, report.

A run is a :class:`StagedRun` subclass that says only what differs between its inputs:

- :meth:`~StagedRun.condition` — the prior's condition at a batch of guidance cameras;
- :meth:`~StagedRun.known_views` — stage 1's reference views (the input photo), or None (text);
- :meth:`~StagedRun.view_targets` — stage 2's photometric targets, or None (text);
- :meth:`~StagedRun.surface_level` — the stage-1 density level hypothesis k's DMTet starts from, or
  None when that field holds no surface;
- :meth:`~StagedRun.new_record` and :meth:`~StagedRun.page` — the run.json record and the index page.

Everything else lives here: checkpointed, interruptible stage loops (``OUT/checkpoints``), stage 2
built from the stage-1 field (:func:`best_level` picks density levels by silhouette IoU), export,
turntables / contact sheet / ``index.html``, the output-folder conflict check, and :func:`execute`,
which runs the stages in order and writes ``run.json`` last.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recon.config import check_limits, to_dict
from recon.diffusion.timesteps import TimestepConfig
from recon.distill.base import DistillConfig, Hypothesis
from recon.distill.factory import build_distiller
from recon.io.atomic import atomic_write_text
from recon.io.export import ExportConfig, export_mesh
from recon.io.output_dir import check_not_foreign, ensure_writable_dir, move_aside_outputs, remove_stale_temps
from recon.io.report import (
    SHEET_VIEWS,
    HypothesisEntry,
    RunRecord,
    now_iso,
    write_contact_sheet,
    write_index_html,
    write_run_json,
    write_turntable,
)
from recon.pipeline.checkpoint import check_checkpoint, restore, save_checkpoint
from recon.pipeline.determinism import reproducible_kernels
from recon.pipeline.guidance import DistillGuidance
from recon.pipeline.interrupt import StopRequest, graceful_interrupt
from recon.pipeline.stage1_nerf import KnownViews, Stage1
from recon.pipeline.stage2_batch import Stage2Batch
from recon.pipeline.stage2_dmtet import Stage2, ViewTargets
from recon.priors.base import Condition, Prior
from recon.render.backend import RasterBackend
from recon.render.cameras import Cameras, camera_batch
from recon.render.mesh_render import render_mesh
from recon.render.select import select_backend
from recon.scene.dmtet import DMTet
from recon.scene.isosurface import solid_density_fn
from recon.scene.mesh import Mesh

Progress = Callable[[str, int, int], None]
DensityFn = Callable[[torch.Tensor], torch.Tensor]

# Candidate DMTet levels, as fractions of the field's largest density on the tet grid.
LEVEL_FRACTIONS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.65)


@dataclass
class ReportConfig:
    """turntable_frames: frames per turntable; render_size: turntable / contact-sheet render side."""

    turntable_frames: int = 24
    render_size: int = 192
    elevation: float = 15.0


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


@dataclass
class EmptyHypothesis:
    """A hypothesis whose stage-1 field holds no surface, so it has no mesh (recorded in run.json)."""

    index: int
    reason: str


class RunConflict(RuntimeError):
    """The output folder holds a different run; nothing is overwritten."""


def config_hash(config: Any, input_sha256: str) -> str:
    """16 hex digits identifying (config, input): the same command in the same folder resumes."""
    data = json.dumps({"config": to_dict(config), "input": input_sha256}, sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but torch sees no CUDA device; use --device cpu")
    return name


def reuse_trajectories(source: DistillGuidance, target: DistillGuidance) -> None:
    """Let ``target`` (stage 2) reuse the ODE trajectories ``source`` (stage 1) computed: they depend on
    ε*, the condition and the grid only, and cache keys carry the hypothesis, so nothing is recomputed
    for a (hypothesis, camera bin) stage 1 already visited."""
    a, b = source.state.cache, target.state.cache
    if a is not None and b is not None and b.same_paths(a):
        target.state.cache = a


def stage_distiller(prior: Prior, distill: DistillConfig, timesteps: TimestepConfig, steps: int,
                    camera_bin: float, guidance_scale: float | None):
    """The distiller of one stage: ``distill`` with the stage's timestep schedule over its steps."""
    config = dataclasses.replace(distill, timesteps=dataclasses.replace(timesteps, total_steps=steps),
                                 camera_bin=camera_bin)
    if guidance_scale is not None:
        config.guidance_scale = guidance_scale
    return build_distiller(prior, config)


@torch.no_grad()
def density_max(geometry: DMTet, density_fn: DensityFn) -> float:
    """The largest density of ``density_fn`` on the tet grid's vertices."""
    return float(density_fn(geometry.grid_vertices).max())


@torch.no_grad()
def best_level(geometry: DMTet, density_fn: DensityFn, cameras: Cameras, masks: torch.Tensor,
               backend: RasterBackend, top: float | None = None) -> float | None:
    """The density level whose DMTet surface's silhouettes best match ``masks`` (IoU over all views).

    Args:
        cameras: N cameras at the masks' resolution.
        masks: (N, H, W) bool target silhouettes (the input mask; or the stage-1 field's opacity).
        top: the field's largest density on the grid (computed when None).
    Returns the best of ``top × LEVEL_FRACTIONS``, or None when no level gives a surface. Coarse
    fields differ in scale from run to run (softplus densities of a few units to tens), so a fixed
    level either swallows the object or tears holes in it; the silhouettes decide.
    """
    top = density_max(geometry, density_fn) if top is None else top
    if top <= 0:
        return None
    best, best_iou = None, -1.0
    for level in (top * f for f in LEVEL_FRACTIONS):
        try:
            geometry.init_from_density(density_fn, level, redistance=False)
        except ValueError:
            continue
        mesh = geometry.extract()
        if mesh.num_faces == 0:
            continue
        sil = render_mesh(mesh, cameras, backend, antialias=False).mask[:, 0]
        iou = float((sil & masks).sum()) / max(float((sil | masks).sum()), 1.0)
        if iou > best_iou + 1e-3:
            best, best_iou = level, iou
    return best


def export_hypotheses(indices: list[int], meshes: list[Mesh], color_fns: dict[int, Callable], folder: Path,
                      backend: RasterBackend, config: ExportConfig, seed: int,
                      progress: Progress) -> list[HypothesisResult]:
    """Export step of a run (and of ``recon export``): hypothesis ``indices[i]``'s raw surface
    ``meshes[i]``, coloured by ``color_fns[indices[i]]``, to ``folder/hypothesis_<k>.<format>``."""
    results = []
    for i, (k, mesh) in enumerate(zip(indices, meshes)):
        progress("export", i, len(meshes))
        res = export_mesh(mesh, color_fns[k], folder, f"hypothesis_{k}", backend, config)
        results.append(HypothesisResult(k, seed, mesh, dict(res.paths)))
    progress("export", len(meshes), len(meshes))
    return results


def stage1_stream_seed(seed: int, offset: int) -> int:
    """The seed of a run's stage-1 streams: the run seed in the high 32 bits, ``stage1.seed`` (an offset,
    0 by default) in the low ones, so seed 0 keeps its streams and no (seed, offset) pair with offsets
    below 2³² shares streams with another (``seed * 1000 + offset``, stage 2's rule, would make seed s
    with the noise floor's offset 1000 replay seed s + 1)."""
    if not 0 <= offset < 2**32:
        raise ValueError(f"stage1.seed {offset} is outside 0..2^32-1 (it offsets the run seed's streams)")
    return (int(seed) << 32) + int(offset)


class StagedRun:
    """One run, stage by stage (:func:`execute` runs them all; benchmarks drive them one at a time).

    ``config`` is an :class:`~recon.pipeline.image_to_3d.ImageTo3DConfig` or a
    :class:`~recon.pipeline.text_to_3d.TextTo3DConfig`: both carry hypotheses, seed, device, backend,
    distance, fovy, prior (``guidance_scale``, ``camera_bin``), distill, stage1/stage2 timesteps,
    stage1, stage2, density_threshold, export, report and checkpoint_every. ``out_dir`` holds the
    checkpoints and, after :meth:`export` / :meth:`report`, the outputs. Subclasses set ``prior``
    and ``hash`` in ``prepare()``.
    """

    checkpoint_tag = "run"  # checkpoint kinds are f"{tag}_stage1" / f"{tag}_stage2"
    reproduce = "recon run"  # the command that reproduces a run from its run.json (``--from``)
    prior: Prior
    hash: str

    def __init__(self, config: Any, out_dir: Path, progress: Progress | None) -> None:
        self.config = config
        self.out = out_dir
        self.progress = progress or (lambda label, done, total: None)
        self.ckpt_dir = out_dir / "checkpoints"
        self.device = resolve_device(config.device)
        self.backend = select_backend(config.backend, self.device)
        self.hyps = [Hypothesis(config.seed, k) for k in range(config.hypotheses)]
        self.resumed = False
        self.kept: list[int] = list(range(config.hypotheses))  # hypotheses that reached stage 2
        self.empty: list[EmptyHypothesis] = []

    # -- what a subclass says
    def condition(self, cameras: torch.Tensor) -> Condition:
        """The prior's condition at cameras (N, 3) (elevation°, azimuth°, distance)."""
        raise NotImplementedError

    def known_views(self) -> KnownViews | None:
        return None

    def view_targets(self) -> ViewTargets | None:
        return None

    def surface_level(self, stage1: Stage1, geometry: DMTet, density_fn: DensityFn, k: int) -> float | None:
        """The density level hypothesis k's DMTet starts from; None = the field holds no surface."""
        raise NotImplementedError

    def new_record(self, command: str) -> RunRecord:
        raise NotImplementedError

    def page(self) -> tuple[str, str | None, dict[str, Any]]:
        """(title, input image file inside the run folder or None, extra summary rows) of index.html."""
        raise NotImplementedError

    # -- shared
    def guidance(self, timesteps: TimestepConfig, steps: int, hyps: list[Hypothesis] | None = None,
                 commit: bool = True) -> DistillGuidance:
        """A stage's guidance; ``commit=False`` (stage 2) skips ``dsd-commit``'s commit phase, which the
        hypotheses went through in stage 1."""
        c = self.config
        distill = c.distill if commit else dataclasses.replace(c.distill, commit_fraction=0.0)
        distiller = stage_distiller(self.prior, distill, timesteps, steps, c.prior.camera_bin,
                                    c.prior.guidance_scale)
        return DistillGuidance(self.prior, distiller, self.hyps if hyps is None else hyps, self.condition)

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
        # Before anything in the folder changes: temporary files of a killed write go, and every
        # checkpoint is read and checked (a damaged one is named and nothing else is touched).
        remove_stale_temps(self.out, self.ckpt_dir, self.out / "meshes")
        self.checkpoints = {name: check_checkpoint(self.ckpt_dir / f"{name}.pt", f"{self.checkpoint_tag}_{name}")
                            for name in ("stage1", "stage2") if (self.ckpt_dir / f"{name}.pt").exists()}
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        if self._read_hash(state) != self.hash:
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
        tag = f"{self.checkpoint_tag}_stage1"
        guidance = self.guidance(c.stage1_timesteps, c.stage1.steps)
        # The run's seed reaches every stage-1 stream (field init, cameras, rays, backgrounds); stage1.seed
        # offsets them (the bench's noise-floor partner keeps the seed, so ε*, and moves the streams).
        cfg = dataclasses.replace(c.stage1, seed=stage1_stream_seed(c.seed, c.stage1.seed))
        stage = Stage1(cfg, self.known_views(), hypotheses=[h.index for h in self.hyps], guidance=guidance)
        path = self.ckpt_dir / "stage1.pt"
        if path.exists():
            state = getattr(self, "checkpoints", {}).get("stage1") or check_checkpoint(path, tag)
            restore(path, lambda s: (stage.load_state_dict(s["stage"]), guidance.load_state_dict(s["guidance"])),
                    state)
            self.resumed = True

        def save() -> None:
            save_checkpoint(path, {"stage": stage.state_dict(), "guidance": guidance.state_dict()}, tag)

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
        """DMTet surfaces from each hypothesis's stage-1 density, refined together; returns the meshes
        of the hypotheses in ``self.kept`` (those whose field holds a surface), in that order."""
        c = self.config
        tag = f"{self.checkpoint_tag}_stage2"
        field = stage1.field.requires_grad_(False)  # stage 2 reads the stage-1 colour, never trains it
        stages = []
        self.levels: list[float] = []
        self.kept, self.empty = [], []
        targets = self.view_targets()
        for k in range(len(self.hyps)):
            geometry = DMTet(c.stage2.tet_resolution, c.stage2.grid_radius, c.stage2.deform_fraction)
            density_fn, color_fn = field.density_fn(k), field.color_fn(k)
            level = c.density_threshold or self.surface_level(stage1, geometry, density_fn, k)
            if level is None:
                self.empty.append(EmptyHypothesis(k, "the stage-1 field holds no surface"))
                continue
            try:
                # Cavities filled: the coarse field's inner walls would otherwise become DMTet surfaces.
                geometry.init_from_density(solid_density_fn(density_fn, level), level)
            except ValueError as exc:  # a fixed density_threshold above or below the whole field
                self.empty.append(EmptyHypothesis(k, str(exc)))
                continue
            self.levels.append(level)
            self.kept.append(k)
            cfg = dataclasses.replace(c.stage2, seed=c.seed * 1000 + k + c.stage2.seed)  # stage2.seed offsets the streams
            stages.append(Stage2(cfg, geometry, color_fn, self.backend, targets=targets, guidance=None,
                                 batched=True))
        if not stages:
            raise RuntimeError(f"no hypothesis has a surface to refine ({self.empty[0].reason}); run more "
                               "stage-1 steps, change the guidance weights, or try another --seed")
        guidance = self.guidance(c.stage2_timesteps, c.stage2.steps, [self.hyps[k] for k in self.kept], commit=False)
        reuse_trajectories(self.stage1_guidance, guidance)
        batch = Stage2Batch(stages, guidance)
        path = self.ckpt_dir / "stage2.pt"
        if path.exists():
            restore(path, batch.load_state_dict, getattr(self, "checkpoints", {}).get("stage2") or
                    check_checkpoint(path, tag))
            self.resumed = True
        total = c.stage2.steps
        while batch.step < total:
            batch.train_step()
            self.progress("stage 2 DMTet", batch.step, total)
            if (c.checkpoint_every and batch.step % c.checkpoint_every == 0) or stop.requested:
                save_checkpoint(path, batch.state_dict(), tag)
                stop.check()
        save_checkpoint(path, batch.state_dict(), tag)
        self.stage2_guidance = guidance
        self.color_fns = {k: s.color_fn for k, s in zip(self.kept, stages)}
        return [s.mesh() for s in stages]

    # -- export and report
    def export(self, meshes: list[Mesh]) -> list[HypothesisResult]:
        """Write each mesh (GLB, OBJ+MTL+PNG, PLY) under ``meshes/`` as ``hypothesis_<k>``."""
        return export_hypotheses(self.kept, meshes, self.color_fns, self.out / "meshes", self.backend,
                                 self.config.export, self.config.seed, self.progress)

    def report(self, results: list[HypothesisResult], record: RunRecord | None = None) -> None:
        """Turntables, the contact sheet and index.html (``record`` is unused; kept for callers)."""
        c = self.config
        rc = c.report
        n = rc.turntable_frames
        sheet, entries = [], []
        for res in results:
            # The turntable's n frames, then the contact sheet's views, in one render call.
            azim = torch.cat([torch.linspace(0, 360, n + 1)[:-1], torch.tensor(list(SHEET_VIEWS.values()))])
            cams = camera_batch(torch.full((len(azim),), rc.elevation), azim, c.distance, c.fovy, rc.render_size)
            with torch.no_grad():
                frames = render_mesh(res.mesh, cams, self.backend, color_fn=self.color_fns[res.index]).rgb
            frames = (frames.permute(0, 2, 3, 1).clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
            gif = self.out / f"turntable_{res.index}.gif"
            write_turntable(gif, list(frames[:n]))
            sheet.append(frames[n:])
            entries.append(HypothesisEntry(res.index, res.seed, gif.name,
                                           {fmt: str(p.relative_to(self.out)) for fmt, p in res.paths.items()}))
        write_contact_sheet(self.out / "contact_sheet.png", sheet, [r.seed for r in results],
                            indices=[r.index for r in results], view_names=list(SHEET_VIEWS))
        title, input_image, extra = self.page()
        summary = {"method": c.distill.method, "hypotheses": len(results), "seed": c.seed, **extra}
        if self.empty:
            summary["without a surface"] = ", ".join(f"#{e.index}" for e in self.empty)
        write_index_html(self.out / "index.html", title, entries, "contact_sheet.png", input_image=input_image,
                         summary=summary, reproduce=self.reproduce)


def execute(run: StagedRun, out: Path, command: str) -> Reconstruction:
    """Prepare (inputs and prior: errors surface before the output folder is touched), run both stages
    with interrupt-safe checkpoints, export, report and write ``run.json`` last.

    A run that fails before its first checkpoint removes the output folder it created, so bad input
    leaves nothing behind. Running the same command again resumes from the checkpoints.
    """
    start = time.perf_counter()
    created = not out.exists()
    # Refusals before any work: out-of-range settings, a peak beyond the memory there is, a folder of
    # files recon did not write (recon.pipeline.memory_estimate, recon.io.output_dir).
    from recon.pipeline.memory_estimate import check_memory

    check_limits(run.config)
    check_memory(run.config, run.device)
    check_not_foreign(out)
    run.prepare()  # type: ignore[attr-defined]
    ensure_writable_dir(out)
    try:
        run.check_folder()
        record = run.new_record(command)
        with graceful_interrupt() as stop, reproducible_kernels(run.device):
            with record.stage("stage1_nerf", run.prior):
                stage1 = run.stage1(stop)
            with record.stage("stage2_dmtet", run.prior):
                meshes = run.stage2(stage1, stop)
        if (out / "run.json").exists():  # a finished run is written again: keep its outputs
            move_aside_outputs(out)
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
    if run.empty:
        record.outputs["empty_hypotheses"] = [{"index": e.index, "reason": e.reason} for e in run.empty]
    record.finished = now_iso()
    run_json = write_run_json(out / "run.json", record)
    return Reconstruction(out, results, run_json, time.perf_counter() - start, run.resumed)
