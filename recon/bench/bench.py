"""``run_bench``: the toy-world benchmark end to end (inputs, ground truth, runs, noise floors, report).

Every run goes through :class:`recon.bench.runner.BenchRun`; finished runs are read back instead of
being run again, so an interrupted or extended bench (more seeds, another method) only runs what is
missing. Each family also gets floor runs (:mod:`recon.bench.noise_floor`) unless
``BenchConfig.noise_floor`` is off. Hypotheses are assigned to members with the family's floor as the
margin (:mod:`recon.bench.assign`) when the report is built from all runs of this bench.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from recon.bench import metrics as M
from recon.bench import noise_floor as NF
from recon.bench.assign import apply_assignment
from recon.bench.calibrate import calibrate, scaled_weight_overrides
from recon.bench.cases import RunSpec, Variant, case_set, resolve_methods, runs_for
from recon.bench.discriminative import DEFAULT_DELTA, split_body
from recon.bench.library_check import check_library
from recon.bench.report import write_report
from recon.bench.runner import (
    BenchRun,
    GroundTruth,
    MetricSettings,
    render_views,
    write_rgba_png,
)
from recon.config import ConfigError, from_dict, merge_overrides, to_dict
from recon.distill.base import Method
from recon.io.atomic import atomic_write_text
from recon.io.errors import InputError, first_line
from recon.io.output_dir import ensure_writable_dir
from recon.io.report import write_png
from recon.pipeline.image_to_3d import ImageTo3DConfig
from recon.pipeline.prior_setup import build_image_prior
from recon.pipeline.recipes import image_config
from recon.render.cameras import DEFAULT_DISTANCE, DEFAULT_FOVY
from recon.render.select import select_backend

Progress = Callable[[str, int, int], None]


def known_methods() -> tuple[str, ...]:
    """Every distiller name ``distill.method`` accepts (the ``Method`` Literal of recon.distill.base)."""
    return tuple(typing.get_args(Method))


@dataclass
class BenchConfig:
    """What to run.

    cases: ``smoke`` or ``full`` (families, seeds and budget; see :mod:`recon.bench.cases`).
    methods: variant labels (None = the case set's) — a distiller name (equal loss weights), ``default``
        (the recipe's distill.method) or ``NAME-cal`` (guidance weights calibrated to SDS's gradient
        magnitude, :mod:`recon.bench.calibrate`).
    families, seeds: replace the case set's (None = the set's own; with ``library``, every family of it).
    hypotheses: K per run.
    config: recipe file (None = ``configs/cpu-demo.yaml``, the exact LibraryPrior).
    overrides: ``KEY=VALUE`` for every run, or ``LABEL:KEY=VALUE`` for one variant (e.g.
        ``dsd:stage1.weights.guidance=10``), applied after the case set's budget.
    points, tau, delta: surface samples per mesh, the F-score distance, δ of the discriminative distance.
    input_size: side of the rendered input views.
    library: a shape-library folder (layout of ``data/library``) for the ground truth and, when the runs use
        the LibraryPrior, for their prior too (sets ``prior.path``); None = the recipe's (the shipped library).
    noise_floor: run each family's floor runs; False = use the floor recorded in the bench folder (or 0).
    floor_seeds: how many of the seeds (the first ones) get a floor pair per family (at least 1).
    prior: the runs' prior, as ``recon run --prior`` takes it (``library``, ``zero123``, a zoo name such as
        ``toy-zero123``, a folder); None = the recipe's. Without ``config`` the prior's own recipe is the
        base (``configs/toy-zero123.yaml`` for toy-zero123; :func:`recon.pipeline.recipes.recipe_for`). With
        a learned prior the inputs and the ground truth still come from the shape library
        (``data/library`` or ``library``); its prior.path is in every run's config, so in the run hash.
    keep_checkpoints: keep each finished run's stage checkpoints (deleted by default once its result is written).
    """

    cases: str = "smoke"
    methods: list[str] | None = None
    families: list[str] | None = None
    seeds: list[int] | None = None
    hypotheses: int = 4
    config: str | None = None
    overrides: list[str] = field(default_factory=list)
    points: int = 20000
    tau: float = 0.05
    delta: float = DEFAULT_DELTA
    input_size: int = 256
    library: str | None = None
    noise_floor: bool = True
    floor_seeds: int = 3
    prior: str | None = None
    keep_checkpoints: bool = False


@dataclass
class BenchResult:
    """results: the method runs (assigned with their family's floor); floors: family -> noise floor."""

    out_dir: Path
    results: list[dict[str, Any]]
    ran: int
    reused: int
    failed: list[str]
    markdown: Path
    json: Path
    figure: Path | None
    seconds: float
    floors: dict[str, NF.NoiseFloor] = field(default_factory=dict)


def split_overrides(overrides: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """(overrides for every run, {variant label: its own overrides}); ``LABEL:KEY=VALUE`` targets one label."""
    common: list[str] = []
    per: dict[str, list[str]] = {}
    for text in overrides:
        key, sep, value = text.partition("=")
        if not sep:
            raise ConfigError(f"override {text!r} is not of the form KEY=VALUE or METHOD:KEY=VALUE")
        if ":" in key:
            label, _, key = key.partition(":")
            per.setdefault(label.strip().lower(), []).append(f"{key}={value}")
        else:
            common.append(text)
    return common, per


def _variants(labels: list[str]) -> list[Variant]:
    out = []
    known = known_methods()
    for label in labels:
        v = Variant.parse(label)
        if v.method == "sds":
            v = Variant("sds")  # SDS is the calibration reference: its calibrated weights are its own
        if v.method not in known:
            raise ConfigError(f"unknown method {label!r}; use one of {', '.join(known)} or default "
                              "(optionally with -cal for calibrated guidance weights)")
        if v not in out:
            out.append(v)
    return out


def _with(config: ImageTo3DConfig, overrides: list[str]) -> ImageTo3DConfig:
    return from_dict(ImageTo3DConfig, merge_overrides(to_dict(config), overrides))


def family_input(prior, family: str, size: int, files: dict[str, Path] | None = None
                 ) -> tuple[torch.Tensor, list[str]]:
    """(4, size, size) RGBA front view of the family, and its members; refuses a family whose members do
    not all look the same from the front (the benchmark shares one run between them). ``files``
    (``family/member`` -> PLY) names the offending file in the error."""
    members = [s.name for s in prior.shapes if s.family == family]
    if not members:
        families = sorted({s.family for s in prior.shapes})
        raise ConfigError(f"no family {family!r} in the shape library (families: {', '.join(families)})")
    views = [prior.input_view(m, size) for m in members]
    for name, v in zip(members[1:], views[1:]):
        diff = float((v - views[0]).abs().max())
        if diff > 1 / 255:
            problem = (f"{name} differs from {members[0]} in the front view (input camera on +Z at distance "
                       f"{DEFAULT_DISTANCE:g}, fovy {DEFAULT_FOVY:g}°; largest difference {diff:.2f})")
            remedy = ("move its hidden parts behind the front body and inside its silhouette: every member of a "
                      "benchmark family must look the same from the input camera")
            if files and name in files:
                raise InputError(files[name], problem, remedy)
            raise ConfigError(f"{problem}; {remedy}")
    return views[0], members


def library_digest(prior) -> str:
    """16 hex of a hash over the library the prior holds (names, normalised geometry and colours)."""
    h = hashlib.sha256()
    for s in prior.shapes:
        h.update(s.name.encode())
        for t in (s.mesh.vertices, s.mesh.faces, s.mesh.vertex_colors):
            if t is not None:
                h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _library_families(prior) -> list[str]:
    return list(dict.fromkeys(s.family for s in prior.shapes))


def run_bench(bench: BenchConfig, out_dir: str | Path = "out/bench", progress: Progress | None = None,
              log: Callable[[str], None] | None = None, command: str = "recon bench",
              warn: Callable[[str], None] | None = None) -> BenchResult:
    """Run (or finish) the benchmark ``bench`` in ``out_dir`` and write its report there. ``log`` gets
    progress lines, ``warn`` the warnings a user must see (a missing noise floor)."""
    start = time.perf_counter()
    log = log or (lambda msg: None)
    warn = warn or log
    out = Path(out_dir)
    cs = case_set(bench.cases)
    seeds = bench.seeds if bench.seeds is not None else cs.seeds
    common, per_label = split_overrides(bench.overrides)
    base = image_config(bench.config, [*cs.budget, *common], prior=bench.prior, hypotheses=bench.hypotheses)
    # Inputs and ground truth come from a shape library: the runs' own prior when it is the LibraryPrior, else
    # the CPU demo's (configs/cpu-demo.yaml) library.
    truth_prior = base.prior if base.prior.kind == "library" else image_config(None).prior
    if bench.library is not None:
        truth_prior = dataclasses.replace(truth_prior, path=str(Path(bench.library).resolve()))
        if base.prior.kind == "library":
            base = dataclasses.replace(base, prior=truth_prior)
    files = check_library(truth_prior.path)[1] if truth_prior.path else None  # one clear error per bad file
    variants = _variants(resolve_methods(bench.methods or cs.methods, base.distill.method))
    if base.prior.kind != "library" and any(v.weighting == "calibrated" for v in variants):
        raise ConfigError("calibrated methods (NAME-cal) need the library prior: the calibration probes its "
                          "posterior mean")
    unknown = sorted(set(per_label) - {v.label for v in variants})
    if unknown:
        raise ConfigError(f"override for {unknown[0]!r}, which is not among the benchmarked methods")
    settings = MetricSettings(points=bench.points, tau=bench.tau, delta=bench.delta)
    ensure_writable_dir(out)  # one clear error before any work

    backend = select_backend(base.backend, "cuda" if base.device == "cuda" else "cpu")
    reference = (base.elevation, 0.0, base.distance)
    prior = build_image_prior(truth_prior, backend, "cpu", reference)
    library = library_digest(prior)
    if bench.families:
        families = bench.families
    elif truth_prior.path is not None or cs.families is None:
        families = _library_families(prior)
    else:
        families = cs.families
    images: dict[str, Path] = {}
    truths: dict[str, GroundTruth] = {}
    for fam in families:
        rgba, members = family_input(prior, fam, bench.input_size, files)
        images[fam] = write_rgba_png(out / "inputs" / f"{fam}.png", rgba)
        shapes = [s for s in prior.shapes if s.family == fam]
        points = [M.outer_surface_points(s.mesh, settings.points) for s in shapes]
        truths[fam] = GroundTruth(fam, members, [s.mesh for s in shapes], points, split_body(points, settings.delta))
        for s in shapes:
            views = render_views(s.mesh, settings.views, settings.render_size, backend, base.distance, base.fovy)
            write_png(out / "gt" / f"{s.family}_{s.member}.png", views)

    factors = _calibration(out, base, prior, images, families, variants, log) \
        if any(v.weighting == "calibrated" for v in variants) else {}

    # The seeds that get a floor pair (the first ones; at least one when floors are measured).
    floor_seeds = seeds[:max(1, bench.floor_seeds)] if bench.noise_floor and variants else []
    specs = runs_for(families, variants, seeds, floor_seeds=len(floor_seeds))
    results, failed = [], []
    by_key: dict[str, dict[str, Any]] = {}
    ran = reused = 0
    for i, spec in enumerate(specs):
        if progress:
            progress("bench runs", i, len(specs))
        extra = [f"distill.method={spec.variant.method}", f"seed={spec.seed}"]
        info: dict[str, Any] = {}
        if spec.variant.weighting == "calibrated":
            f1, f2 = factors[spec.family][spec.variant.method]["stage1"], factors[spec.family][spec.variant.method]["stage2"]
            extra += scaled_weight_overrides(base, f1, f2)
            info["calibration_factor"] = {"stage1": f1, "stage2": f2}
        try:
            config = _with(base, extra + per_label.get(spec.variant.label, []))
            if spec.floor:
                config = _with(config, NF.stream_overrides(config.stage1.seed, config.stage2.seed))
        except ConfigError as exc:
            raise ConfigError(f"{spec.variant.label}: {exc}") from exc
        info["guidance_weight"] = {"stage1": config.stage1.weights.guidance, "stage2": config.stage2.weights.guidance}
        run = BenchRun(spec, config, images[spec.family], out, truths[spec.family], settings, info, progress, library,
                       bench.keep_checkpoints)
        result = run.cached()
        if result is not None:
            reused += 1
            log(f"{spec.key}: finished earlier ({run.dir.name}), reused")
        else:
            log(f"{spec.key}: running in {run.dir}")
            try:
                result = run.run()
                ran += 1
            except (RuntimeError, ValueError) as exc:
                failed.append(f"{spec.key}: {first_line(exc)}")
                log(f"{spec.key}: FAILED ({failed[-1]})")
                continue
        result["dir"] = str(run.dir.relative_to(out))
        by_key[spec.key] = result
        if not spec.floor:
            results.append(result)
    if progress:
        progress("bench runs", len(specs), len(specs))
    floors = _floors(out, bench, settings, families, variants, floor_seeds, by_key, warn)
    for r in results:
        apply_assignment(r, floors[r["family"]].value)
    md, js, fig = write_report(out, results, truths, bench, settings, failed,
                               {"seeds": seeds, "families": families, "budget": cs.budget + common,
                                "calibration": factors, "command": command, "floors": floors,
                                "library": truth_prior.path, "library_digest": library,
                                "prior": {"kind": base.prior.kind, "path": base.prior.path}})
    return BenchResult(out, results, ran, reused, failed, md, js, fig, time.perf_counter() - start, floors)


def _floors(out: Path, bench: BenchConfig, settings: MetricSettings, families: list[str], variants: list[Variant],
            floor_seeds: list[int], by_key: dict[str, dict[str, Any]],
            warn: Callable[[str], None]) -> dict[str, NF.NoiseFloor]:
    """Each family's noise floor: measured from its floor pairs (at ``floor_seeds``, empty when floors are not
    measured), else recorded by an earlier bench, else 0."""
    recorded = NF.read_recorded(out)
    floors: dict[str, NF.NoiseFloor] = {}
    for fam in families:
        pairs, runs, paired_seeds = [], [], []
        for seed in floor_seeds:
            a = by_key.get(RunSpec(fam, variants[0], seed).key)
            b = by_key.get(RunSpec(fam, variants[0], seed, floor=True).key)
            if a is not None and b is not None:
                pairs.append((a["discriminative"], b["discriminative"]))
                runs.append([a["dir"], b["dir"]])
                paired_seeds.append(seed)
        if pairs:
            if len(pairs) < len(floor_seeds):
                warn(f"{fam}: {len(floor_seeds) - len(pairs)} of its {len(floor_seeds)} floor pairs did not finish; "
                     f"its floor comes from seeds {paired_seeds}")
            floors[fam] = NF.measure(fam, pairs, label=variants[0].label, seeds=paired_seeds, runs=runs,
                                     delta=settings.delta, points=settings.points)
            continue
        kept = NF.recorded_floor(recorded, fam, settings.delta)
        if kept is not None:
            floors[fam] = kept
            continue
        floors[fam] = NF.NoiseFloor(fam, 0.0, "none", delta=settings.delta, points=settings.points)
        why = ("its floor runs did not finish" if bench.noise_floor else
               f"--no-noise-floor and none is recorded in {out / NF.FLOOR_FILE} for δ = {settings.delta:g}")
        warn(f"no noise floor for {fam} ({why}): hypotheses are assigned with margin 0, so its coverage can "
             "count noise; run the bench without --no-noise-floor to measure the floor")
    if any(f.source == "measured" for f in floors.values()):
        NF.record(out, floors)
    return floors


def _calibration(out: Path, base: ImageTo3DConfig, prior, images: dict[str, Path], families: list[str],
                 variants: list[Variant], log) -> dict[str, dict[str, dict[str, float]]]:
    """Weight factors per family and method, cached in ``calibration.json`` by the base config's hash."""
    from recon.io.prepare import prepare_input

    methods = sorted({v.method for v in variants if v.weighting == "calibrated"})
    key = hashlib.sha256(json.dumps(to_dict(base), sort_keys=True).encode()).hexdigest()[:16]
    path = out / "calibration.json"
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        cache = {}
    entry = cache.get(key, {})
    changed = False
    for fam in families:
        have = entry.get(fam, {}).get("factors", {})
        if all(m in have for m in methods):
            continue
        prepared = prepare_input(images[fam], base.input)
        image = torch.as_tensor(prepared.recentred.rgb_white).permute(2, 0, 1)[None].float()
        cal = calibrate(prior, image, (base.elevation, 0.0, base.distance), base, methods)
        entry[fam] = {"norms": cal.norms, "factors": {**have, **cal.factors}}
        log(f"calibration {fam}: " + ", ".join(f"{m} ×{f['stage1']:.3g}/{f['stage2']:.3g}"
                                               for m, f in cal.factors.items()))
        changed = True
    if changed:
        cache[key] = entry
        atomic_write_text(path, json.dumps(cache, indent=1))
    return {fam: entry[fam]["factors"] for fam in families}
