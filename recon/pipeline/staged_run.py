"""The image and the text runs' shared orchestration: :class:`StagedRun` and :func:`execute`.

A run is a :class:`StagedRun` subclass that says only what differs between its inputs:

- :meth:`~StagedRun.prepare` — inputs and prior (sets ``prior`` and ``hash``), before any folder is touched;
- :meth:`~StagedRun.condition` — the prior's condition at a batch of guidance cameras;
- :meth:`~StagedRun.known_views` — stage 1's reference views (the input photo), or None (text);
- :meth:`~StagedRun.view_targets` — stage 2's photometric targets, or None (text);
- :meth:`~StagedRun.surface_level` — the stage-1 density level hypothesis k's DMTet starts from, or
  None when that field holds no surface;
- :meth:`~StagedRun.new_record` and :meth:`~StagedRun.page` — the run.json record and the index page.

Here: the folder check, both stages built and stepped by the one loop
(:func:`~recon.pipeline.stage.run_stage`, checkpoints in ``OUT/checkpoints``), stage 2 built from what
stage 1 hands over (:class:`Stage1Handoff`), and :func:`execute`, which runs the stages in order, exports,
reports (:mod:`recon.pipeline.run_outputs`) and writes ``run.json`` last.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from recon.config import check_limits
from recon.diffusion.timesteps import TimestepConfig
from recon.distill.base import Hypothesis
from recon.io.atomic import atomic_write_text
from recon.io.manifest import RunRecord, now_iso, write_run_json
from recon.io.output_dir import check_not_foreign, ensure_writable_dir, move_aside_outputs, remove_stale_temps
from recon.pipeline.checkpoint import check_checkpoint
from recon.pipeline.determinism import reproducible_kernels
from recon.pipeline.guidance import DistillGuidance
from recon.pipeline.hypothesis_threads import HypothesisThreads, auto_workers
from recon.pipeline.interrupt import StopRequest, graceful_interrupt
from recon.pipeline.known_views import KnownViews
from recon.pipeline.run_outputs import (
    EmptyHypothesis,
    HypothesisResult,
    Progress,
    Reconstruction,
    export_hypotheses,
    write_report,
)
from recon.pipeline.run_setup import resolve_device, reuse_trajectories, stage1_stream_seed, stage_distiller
from recon.pipeline.stage import run_stage
from recon.pipeline.stage1_nerf import Stage1
from recon.pipeline.stage2_batch import Stage2Batch
from recon.pipeline.stage2_dmtet import Stage2, ViewTargets
from recon.pipeline.surface_level import DensityFn
from recon.priors.base import Condition, Prior
from recon.render.select import select_backend
from recon.scene.dmtet import DMTet
from recon.scene.field import RadianceField
from recon.scene.isosurface import solid_density_fn
from recon.scene.mesh import Mesh


class RunConflict(RuntimeError):
    """The output folder holds a different run; nothing is overwritten."""


@dataclass
class Stage1Handoff:
    """What stage 2 takes from stage 1: the trained stage (its K fields give stage 2's starting surfaces and
    colours) and stage 1's guidance (stage 2 reuses its ODE trajectories, :func:`reuse_trajectories`)."""

    stage: Stage1
    guidance: DistillGuidance


@dataclass
class Stage2Output:
    """Stage 2's meshes, one per hypothesis in ``StagedRun.kept`` (in that order), and its guidance."""

    meshes: list[Mesh]
    guidance: DistillGuidance


class StagedRun:
    """One run, stage by stage (:func:`execute` runs them all; the bench drives them one at a time).

    ``config`` is an :class:`~recon.pipeline.image_to_3d.ImageTo3DConfig` or a
    :class:`~recon.pipeline.text_to_3d.TextTo3DConfig`: both carry hypotheses, seed, device, backend,
    distance, fovy, prior (``guidance_scale``, ``camera_bin``), distill, stage1/stage2 timesteps,
    stage1, stage2, density_threshold, export, report and checkpoint_every. ``out_dir`` holds the
    checkpoints and, after :meth:`export` / :meth:`report`, the outputs. After :meth:`stage2`, ``kept``,
    ``empty``, ``levels`` and ``color_fns`` say which hypotheses have a surface, from which level, coloured how.
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
        self.checkpoints: dict[str, dict[str, Any]] = {}  # read and checked by check_folder
        self.kept: list[int] = list(range(config.hypotheses))  # hypotheses that reached stage 2
        self.empty: list[EmptyHypothesis] = []
        self.levels: list[float] = []
        self.color_fns: dict[int, Any] = {}

    # -- what a subclass says
    def prepare(self) -> None:
        """Load the inputs and the prior and set ``prior`` and ``hash``; touches no folder."""
        raise NotImplementedError

    def condition(self, cameras: torch.Tensor) -> Condition:
        """The prior's condition at cameras (N, 3) (elevation°, azimuth°, distance)."""
        raise NotImplementedError

    def known_views(self) -> KnownViews | None:
        return None

    def view_targets(self) -> ViewTargets | None:
        return None

    def surface_level(self, stage1: Stage1, geometry: DMTet, density_fn: DensityFn, k: int) -> float | None:
        """The density level hypothesis k's DMTet starts from; None = the field holds no surface. Called on one
        thread per hypothesis (side by side): anything it caches on ``self`` needs a lock."""
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

    def _run(self, name: str, stage: Stage1 | Stage2Batch, label: str, stop: StopRequest) -> None:
        """Step ``stage`` to its end with the one loop: resumed from ``checkpoints/<name>.pt`` when that exists,
        checkpointed there every ``checkpoint_every`` steps, at the end and on Ctrl-C."""
        path, tag = self.ckpt_dir / f"{name}.pt", f"{self.checkpoint_tag}_{name}"
        resume = (self.checkpoints.get(name) or check_checkpoint(path, tag)) if path.exists() else False
        self.resumed = self.resumed or resume is not False
        run_stage(stage, checkpoint_path=path, checkpoint_tag=tag, checkpoint_every=self.config.checkpoint_every,
                  stop=stop, progress=lambda done, total, _: self.progress(label, done, total), resume=resume)

    # -- stage 1
    def stage1(self, stop: StopRequest) -> Stage1Handoff:
        """K radiance fields fitted together; returns what stage 2 needs of them."""
        c = self.config
        guidance = self.guidance(c.stage1_timesteps, c.stage1.steps)
        # The run's seed reaches every stage-1 stream (field init, cameras, rays, backgrounds); stage1.seed
        # offsets them (the bench's noise-floor partner keeps the seed, so ε*, and moves the streams).
        cfg = dataclasses.replace(c.stage1, seed=stage1_stream_seed(c.seed, c.stage1.seed))
        stage = Stage1(cfg, self.known_views(), hypotheses=[h.index for h in self.hyps], guidance=guidance)
        self._run("stage1", stage, "stage 1 NeRF", stop)
        return Stage1Handoff(stage, guidance)

    # -- stage 2
    def stage2(self, stage1: Stage1Handoff, stop: StopRequest) -> Stage2Output:
        """DMTet surfaces from each hypothesis's stage-1 density, refined together; the meshes are those of
        the hypotheses in ``self.kept`` (those whose field holds a surface), in that order."""
        c = self.config
        field = stage1.stage.field.requires_grad_(False)  # stage 2 reads the stage-1 colour, never trains it
        stages = []
        self.levels, self.kept, self.empty = [], [], []
        targets = self.view_targets()
        # Each hypothesis's starting surface on its own thread (level search, cavity fill, redistancing: 0.8 s
        # each on the quick start, mostly small ops one core runs as fast as two).
        threads = HypothesisThreads(auto_workers(c.stage2.parallel_hypotheses, self.device, len(self.hyps)),
                                    "recon-surface")
        try:
            found = threads.map(lambda k: self._starting_surface(stage1.stage, field, k), range(len(self.hyps)))
        finally:
            threads.close()
        for k, surface in enumerate(found):
            if isinstance(surface, EmptyHypothesis):
                self.empty.append(surface)
                continue
            geometry, level = surface
            self.levels.append(level)
            self.kept.append(k)
            cfg = dataclasses.replace(c.stage2, seed=c.seed * 1000 + k + c.stage2.seed)  # stage2.seed offsets the streams
            stages.append(Stage2(cfg, geometry, field.color_fn(k), self.backend, targets=targets, guidance=None,
                                 batched=True))
        if not stages:
            raise RuntimeError(f"no hypothesis has a surface to refine ({self.empty[0].reason}); run more "
                               "stage-1 steps, change the guidance weights, or try another --seed")
        guidance = self.guidance(c.stage2_timesteps, c.stage2.steps, [self.hyps[k] for k in self.kept], commit=False)
        reuse_trajectories(stage1.guidance, guidance)
        batch = Stage2Batch(stages, guidance, auto_workers(c.stage2.parallel_hypotheses, self.device, len(stages)))
        try:
            self._run("stage2", batch, "stage 2 DMTet", stop)
        finally:
            batch.close()
        self.color_fns = {k: s.color_fn for k, s in zip(self.kept, stages)}
        return Stage2Output([s.mesh() for s in stages], guidance)

    def _starting_surface(self, stage1: Stage1, field: RadianceField, k: int) -> tuple[DMTet, float] | EmptyHypothesis:
        """Hypothesis k's DMTet at its stage-1 density level, or why it has none."""
        c = self.config
        geometry = DMTet(c.stage2.tet_resolution, c.stage2.grid_radius, c.stage2.deform_fraction)
        density_fn = field.density_fn(k)
        level = c.density_threshold or self.surface_level(stage1, geometry, density_fn, k)
        if level is None:
            return EmptyHypothesis(k, "the stage-1 field holds no surface")
        try:
            # Cavities filled: the coarse field's inner walls would otherwise become DMTet surfaces.
            geometry.init_from_density(solid_density_fn(density_fn, level), level)
        except ValueError as exc:  # a fixed density_threshold above or below the whole field
            return EmptyHypothesis(k, str(exc))
        return geometry, level

    # -- export and report
    def export(self, meshes: list[Mesh]) -> list[HypothesisResult]:
        """Write each mesh (GLB, OBJ+MTL+PNG, PLY) under ``meshes/`` as ``hypothesis_<k>``."""
        c = self.config
        return export_hypotheses(self.kept, meshes, self.color_fns, self.out / "meshes", self.backend, c.export, c.seed,
                                 self.progress, auto_workers(c.export.parallel_hypotheses, self.device, len(meshes)))

    def report(self, results: list[HypothesisResult]) -> None:
        """Turntables, the contact sheet and index.html (:func:`~recon.pipeline.run_outputs.write_report`)."""
        write_report(self.out, self.config, results, self.color_fns, self.backend, self.page(), self.empty,
                     self.reproduce)


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
    run.prepare()
    ensure_writable_dir(out)
    try:
        run.check_folder()
        record = run.new_record(command)
        with graceful_interrupt() as stop, reproducible_kernels(run.device):
            with record.stage("stage1_nerf", run.prior):
                stage1 = run.stage1(stop)
            with record.stage("stage2_dmtet", run.prior):
                stage2 = run.stage2(stage1, stop)
            stop.check()  # a Ctrl-C after stage 2's last checkpoint (its surface extraction) stops before export
        if (out / "run.json").exists():  # a finished run is written again: keep its outputs
            move_aside_outputs(out)
        with record.stage("export"):
            results = run.export(stage2.meshes)
        with record.stage("report"):
            run.report(results)
    except BaseException:
        if created and not any((out / "checkpoints").glob("*.pt")):
            shutil.rmtree(out, ignore_errors=True)
        raise
    record.outputs.update(
        run_hash=run.hash,
        hypotheses=[{"index": r.index, "seed": r.seed,
                     "meshes": {k: str(p.relative_to(out)) for k, p in r.paths.items()},
                     **({"silhouette_iou_raw_vs_exported": round(r.silhouette_iou, 6)}
                        if r.silhouette_iou is not None else {})} for r in results],
        guidance_evals={"stage1": stage1.guidance.stats.evals, "stage2": stage2.guidance.stats.evals},
        resumed=run.resumed,
    )
    if run.empty:
        record.outputs["empty_hypotheses"] = [{"index": e.index, "reason": e.reason} for e in run.empty]
    record.finished = now_iso()
    run_json = write_run_json(out / "run.json", record)
    return Reconstruction(out, results, run_json, time.perf_counter() - start, run.resumed)
