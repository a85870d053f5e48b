"""Export a finished run again from its checkpoints (``recon export``), with other export settings.

A run folder holds everything the meshes are made of: ``checkpoints/stage2.pt`` (each hypothesis's
refined DMTet), ``checkpoints/stage1.pt`` (the coarse fields, whose colour the meshes carry) and
``run.json`` (the resolved config). :func:`export_run` rebuilds each hypothesis's final surface from
them — no input photo, prompt or prior weights are needed — and runs the run's own export step
(:func:`~recon.pipeline.run_outputs.export_hypotheses`: clean-up, decimation, UV unwrap, bake, files)
with the recorded ``export`` settings and any ``export.KEY=VALUE`` overrides.

Everything is checked and loaded before anything is written. Files are exported into a hidden
staging folder inside the output folder and moved into place only when every hypothesis has been
exported, so a failure leaves nothing partial behind (and removes an output folder it created).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recon.config import ConfigError, from_dict, merge_overrides, parse_override, to_dict
from recon.io.errors import InputError, first_line
from recon.io.manifest import RunRecord, read_run_json
from recon.io.output_dir import ensure_writable_dir
from recon.pipeline.checkpoint import CheckpointError, check_checkpoint
from recon.pipeline.hypothesis_threads import auto_workers
from recon.pipeline.image_to_3d import ImageTo3D, ImageTo3DConfig
from recon.pipeline.run_outputs import Progress, export_hypotheses
from recon.pipeline.run_setup import resolve_device
from recon.pipeline.stage1_nerf import field_from_state
from recon.pipeline.stage2_dmtet import Stage2
from recon.pipeline.text_to_3d import TextTo3D, TextTo3DConfig
from recon.render.backend import RasterBackend
from recon.render.select import select_backend
from recon.scene.dmtet import DMTet
from recon.scene.mesh import Mesh

FORMATS = ("glb", "obj", "ply")
# Settings that may change at export time; the others made the checkpoints and must stay as recorded.
OVERRIDABLE = ("export.", "device", "backend")


@dataclass
class RunKind:
    """What kind of run a folder holds: its config class, checkpoint tag and the command that made it."""

    config: type
    tag: str
    command: str


IMAGE_RUN = RunKind(ImageTo3DConfig, ImageTo3D.checkpoint_tag, ImageTo3D.reproduce)
TEXT_RUN = RunKind(TextTo3DConfig, TextTo3D.checkpoint_tag, TextTo3D.reproduce)


@dataclass
class FinishedRun:
    """A run's config, the rasteriser it exports with and, per hypothesis index with a mesh, its raw
    surface and colour field."""

    config: Any
    backend: RasterBackend
    meshes: dict[int, Mesh]
    color_fns: dict[int, Any]


def check_formats(formats: Iterable[str]) -> tuple[str, ...]:
    """Format names, lower-cased and de-duplicated in order; ValueError (one line) for an unknown one."""
    out: list[str] = []
    for name in formats:
        fmt = name.strip().lower()
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {name!r}; choose from {', '.join(FORMATS)}")
        if fmt not in out:
            out.append(fmt)
    if not out:
        raise ValueError(f"give at least one format ({', '.join(FORMATS)})")
    return tuple(out)


def read_record(run_dir: Path) -> tuple[RunRecord, RunKind]:
    """The run's run.json and kind; InputError (one line) when the folder is no finished recon run."""
    if not run_dir.is_dir():
        problem = "not a folder" if run_dir.exists() else "no such folder"
        raise InputError(run_dir, problem, "give the output folder of a recon run")
    if not (run_dir / "run.json").is_file():
        if (run_dir / "checkpoints").is_dir():  # run.json is written last: this run stopped early
            raise InputError(run_dir, "the run has not finished stage 2",
                             "run the same recon run command again to finish it")
        raise InputError(run_dir, "not a recon run (no run.json)", "give the output folder of a recon run")
    record = read_run_json(run_dir / "run.json")
    kind = TEXT_RUN if isinstance(record.input.get("prompt"), str) else IMAGE_RUN
    return record, kind


def run_config(record: RunRecord, kind: RunKind, overrides: Sequence[str], path: Path) -> Any:
    """The recorded config with ``export.*`` (and ``device`` / ``backend``) overrides applied."""
    for text in overrides:
        key = ".".join(parse_override(text)[0])
        if not any(key == k or key.startswith(k) for k in OVERRIDABLE):
            raise ConfigError(f"--set {text}: only export.* settings (and device, backend) can change at "
                              "export time; the others made the checkpoints")
    try:
        recorded = from_dict(kind.config, record.config)
    except ConfigError as exc:
        raise InputError(path, f"its config does not fit this recon version ({exc})",
                         "export with the recon version that made the run") from exc
    return from_dict(kind.config, merge_overrides(to_dict(recorded), overrides))


def load_finished_run(run_dir: str | Path, overrides: Sequence[str] = ()) -> tuple[FinishedRun, RunKind]:
    """Rebuild every hypothesis's final surface and colour field from ``run_dir``'s checkpoints.

    Raises InputError (folder, run.json, unfinished run), ConfigError (overrides) or CheckpointError
    (a missing, damaged or mismatching checkpoint), each one line.
    """
    run_dir = Path(run_dir)
    record, kind = read_record(run_dir)
    config = run_config(record, kind, overrides, run_dir / "run.json")
    ckpt = run_dir / "checkpoints"
    unfinished = InputError(run_dir, "the run has not finished stage 2",
                            f"run the same {kind.command} command again to finish it")
    if not (ckpt / "stage2.pt").is_file():
        raise unfinished
    kept = recorded_hypotheses(record, config.hypotheses, run_dir / "run.json")
    stage1 = check_checkpoint(ckpt / "stage1.pt", f"{kind.tag}_stage1")
    stage2 = check_checkpoint(ckpt / "stage2.pt", f"{kind.tag}_stage2")
    backend = select_backend(config.backend, _device(config.device))
    try:
        field = field_from_state(stage1)
        states = stage2["stages"]
        if len(states) != len(kept):
            raise ValueError(f"holds {len(states)} hypotheses, run.json lists {len(kept)}")
        if any(int(s["step"]) < config.stage2.steps for s in states):
            raise unfinished
        meshes, color_fns = {}, {}
        for k, state in zip(kept, states):
            geometry = DMTet(config.stage2.tet_resolution, config.stage2.grid_radius, config.stage2.deform_fraction)
            geometry.load_state_dict(state["geometry"])
            color_fns[k] = field.color_fn(k)
            # The run's own final surface: Stage2.mesh() of the refined geometry.
            meshes[k] = Stage2(config.stage2, geometry, color_fns[k], backend, batched=True).mesh()
    except InputError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{ckpt}: the checkpoints do not fit {run_dir / 'run.json'} "
                              f"({first_line(exc)}); export from an untouched run folder") from exc
    return FinishedRun(config, backend, meshes, color_fns), kind


def recorded_hypotheses(record: RunRecord, total: int, path: Path) -> list[int]:
    """The hypothesis indices run.json's ``outputs.hypotheses`` lists, checked: integers in 0..total-1,
    each once; InputError naming run.json otherwise (a hand-edited ``index: "../x"`` included)."""
    entries = record.outputs.get("hypotheses") if isinstance(record.outputs, dict) else None
    if not isinstance(entries, list) or not entries:
        raise InputError(path, "outputs.hypotheses is missing or not a list", "export from an untouched run folder")
    kept: list[int] = []
    for i, entry in enumerate(entries):
        index = entry.get("index") if isinstance(entry, dict) else None
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < total or index in kept:
            raise InputError(path, f"outputs.hypotheses[{i}].index is {index!r}, not a new hypothesis number in "
                             f"0..{total - 1}", "export from an untouched run folder")
        kept.append(index)
    return kept


def _device(name: str) -> str:
    try:
        return resolve_device(name)
    except ValueError as exc:
        raise ValueError("the run used device cuda but torch sees no CUDA device here; add --set device=cpu") \
            from exc


def export_run(run_dir: str | Path, formats: Iterable[str] = FORMATS, out_dir: str | Path | None = None,
               overrides: Sequence[str] = (), hypotheses: Iterable[int] | None = None,
               progress: Progress | None = None) -> list[Path]:
    """Export the finished run in ``run_dir`` again; returns the written mesh files (one per format
    and hypothesis; an OBJ's MTL and PNG lie beside it).

    Args:
        formats: any of glb, obj, ply.
        out_dir: where ``hypothesis_<k>.<format>`` go (default ``run_dir/export``; the run's own
            ``meshes/`` only when named explicitly).
        overrides: ``export.KEY=VALUE`` settings over the run's recorded ``export`` config
            (``device=`` / ``backend=`` too).
        hypotheses: indices to export (default every hypothesis with a mesh).
    Raises one-line errors (InputError, OutputError, ConfigError, CheckpointError, ValueError)
    before anything is written; a later failure removes what this call wrote.
    """
    run_dir = Path(run_dir)
    progress = progress or (lambda label, done, total: None)
    formats = check_formats(formats)
    run, _ = load_finished_run(run_dir, overrides)
    chosen = _check_hypotheses(run, hypotheses)
    out = Path(out_dir) if out_dir is not None else run_dir / "export"
    config = dataclasses.replace(run.config.export, formats=formats)
    created = _first_missing(out)
    ensure_writable_dir(out)
    staging = Path(tempfile.mkdtemp(prefix=".recon-export-", dir=out))
    try:
        workers = auto_workers(config.parallel_hypotheses, run.meshes[chosen[0]].vertices.device, len(chosen))
        results = export_hypotheses(chosen, [run.meshes[k] for k in chosen], run.color_fns, staging, run.backend,
                                    config, run.config.seed, progress, workers)
        # Textures and materials first, so an OBJ in place always has its MTL and PNG beside it.
        staged = sorted(staging.iterdir(), key=lambda p: p.suffix.lstrip(".") in formats)
        for path in staged:
            os.replace(path, out / path.name)
    except BaseException:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [out / p.name for r in results for p in r.paths.values()]


def _check_hypotheses(run: FinishedRun, hypotheses: Iterable[int] | None) -> list[int]:
    if hypotheses is None:
        return sorted(run.meshes)
    total = run.config.hypotheses
    chosen: list[int] = []
    for k in hypotheses:
        if not 0 <= k < total:
            raise ValueError(f"hypothesis {k} is out of range; this run has hypotheses 0-{total - 1}")
        if k not in run.meshes:
            raise ValueError(f"hypothesis {k} has no mesh (its stage-1 field held no surface); "
                             f"choose from {', '.join(str(i) for i in sorted(run.meshes))}")
        if k not in chosen:
            chosen.append(k)
    return chosen


def _first_missing(path: Path) -> Path | None:
    """The outermost folder of ``path`` that does not exist yet (what creating it would add), or None."""
    missing = None
    for p in [path, *path.parents]:
        if p.exists():
            break
        missing = p
    return missing
