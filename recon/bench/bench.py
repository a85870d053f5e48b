"""``run_bench``: the toy-world benchmark end to end (inputs, ground truth, runs, report).

Every run goes through :class:`recon.bench.runner.BenchRun`; finished runs are read back instead of
being run again, so an interrupted or extended bench (more seeds, another method) only runs what is
missing. The report is rebuilt from all runs of this bench each time.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from recon.bench import metrics as M
from recon.bench.calibrate import calibrate, scaled_weight_overrides
from recon.bench.cases import Variant, case_set, runs_for
from recon.bench.report import write_report
from recon.bench.runner import (
    BenchRun,
    GroundTruth,
    MetricSettings,
    render_views,
    write_rgba_png,
)
from recon.config import ConfigError, from_dict, merge_overrides, to_dict
from recon.io.atomic import atomic_write_text
from recon.io.errors import first_line
from recon.io.output_dir import ensure_writable_dir
from recon.io.report import write_png
from recon.pipeline.image_to_3d import ImageTo3DConfig
from recon.pipeline.prior_setup import build_image_prior
from recon.pipeline.recipes import image_config
from recon.render.select import select_backend

Progress = Callable[[str, int, int], None]
KNOWN_METHODS = ("sds", "asd", "sdi", "dsd", "consistent3d", "sampling")


@dataclass
class BenchConfig:
    """What to run.

    cases: ``smoke`` or ``full`` (families, seeds and budget; see :mod:`recon.bench.cases`).
    methods: variant labels (None = the case set's) — a distiller name (equal loss weights) or ``NAME-cal`` (guidance weights
        calibrated to SDS's gradient magnitude, :mod:`recon.bench.calibrate`).
    families, seeds: replace the case set's (None = the set's own).
    hypotheses: K per run.
    config: recipe file (None = ``configs/cpu-demo.yaml``, the exact LibraryPrior).
    overrides: ``KEY=VALUE`` for every run, or ``LABEL:KEY=VALUE`` for one variant (e.g.
        ``dsd:stage1.weights.guidance=10``), applied after the case set's budget.
    points, tau: surface samples per mesh and the F-score distance.
    input_size: side of the rendered input views.
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
    input_size: int = 256


@dataclass
class BenchResult:
    out_dir: Path
    results: list[dict[str, Any]]
    ran: int
    reused: int
    failed: list[str]
    markdown: Path
    json: Path
    figure: Path | None
    seconds: float


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
    for label in labels:
        v = Variant.parse(label)
        if v.method == "sds":
            v = Variant("sds")  # SDS is the calibration reference: its calibrated weights are its own
        if v.method not in KNOWN_METHODS:
            raise ConfigError(f"unknown method {label!r}; use one of {', '.join(KNOWN_METHODS)} "
                              "(optionally with -cal for calibrated guidance weights)")
        if v not in out:
            out.append(v)
    return out


def _with(config: ImageTo3DConfig, overrides: list[str]) -> ImageTo3DConfig:
    return from_dict(ImageTo3DConfig, merge_overrides(to_dict(config), overrides))


def family_input(prior, family: str, size: int) -> tuple[torch.Tensor, list[str]]:
    """(4, size, size) RGBA front view of the family, and its members; refuses a family whose members do
    not all look the same from the front (the benchmark shares one run between them)."""
    members = [s.name for s in prior.shapes if s.family == family]
    if not members:
        families = sorted({s.family for s in prior.shapes})
        raise ConfigError(f"no family {family!r} in the shape library (families: {', '.join(families)})")
    views = [prior.input_view(m, size) for m in members]
    for name, v in zip(members[1:], views[1:]):
        if float((v - views[0]).abs().max()) > 1 / 255:
            raise ConfigError(f"{name} differs from {members[0]} in the front view; every member of a "
                              "benchmark family must look the same from the input camera")
    return views[0], members


def run_bench(bench: BenchConfig, out_dir: str | Path = "out/bench", progress: Progress | None = None,
              log: Callable[[str], None] | None = None, command: str = "recon bench") -> BenchResult:
    """Run (or finish) the benchmark ``bench`` in ``out_dir`` and write its report there."""
    start = time.perf_counter()
    log = log or (lambda msg: None)
    out = Path(out_dir)
    cs = case_set(bench.cases)
    families = bench.families or cs.families
    seeds = bench.seeds if bench.seeds is not None else cs.seeds
    variants = _variants(bench.methods or cs.methods)
    common, per_label = split_overrides(bench.overrides)
    unknown = sorted(set(per_label) - {v.label for v in variants})
    if unknown:
        raise ConfigError(f"override for {unknown[0]!r}, which is not among the benchmarked methods")
    base = image_config(bench.config, [*cs.budget, *common], hypotheses=bench.hypotheses)
    if base.prior.kind != "library":
        raise ConfigError("recon bench needs the library prior (prior.kind=library): ground truth comes from it")
    settings = MetricSettings(points=bench.points, tau=bench.tau)
    ensure_writable_dir(out)  # one clear error before any work

    backend = select_backend(base.backend, "cuda" if base.device == "cuda" else "cpu")
    reference = (base.elevation, 0.0, base.distance)
    prior = build_image_prior(base.prior, backend, "cpu", reference)
    images: dict[str, Path] = {}
    truths: dict[str, GroundTruth] = {}
    for fam in families:
        rgba, members = family_input(prior, fam, bench.input_size)
        images[fam] = write_rgba_png(out / "inputs" / f"{fam}.png", rgba)
        shapes = [s for s in prior.shapes if s.family == fam]
        truths[fam] = GroundTruth(fam, members, [s.mesh for s in shapes],
                                  [M.outer_surface_points(s.mesh, settings.points) for s in shapes])
        for s in shapes:
            views = render_views(s.mesh, settings.views, settings.render_size, backend, base.distance, base.fovy)
            write_png(out / "gt" / f"{s.family}_{s.member}.png", views)

    factors = _calibration(out, base, prior, images, families, variants, log) \
        if any(v.weighting == "calibrated" for v in variants) else {}

    specs = runs_for(families, variants, seeds)
    results, failed = [], []
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
        except ConfigError as exc:
            raise ConfigError(f"{spec.variant.label}: {exc}") from exc
        info["guidance_weight"] = {"stage1": config.stage1.weights.guidance, "stage2": config.stage2.w_guidance}
        run = BenchRun(spec, config, images[spec.family], out, truths[spec.family], settings, info, progress)
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
        results.append(result)
    if progress:
        progress("bench runs", len(specs), len(specs))
    md, js, fig = write_report(out, results, truths, bench, settings, failed,
                               {"seeds": seeds, "families": families, "budget": cs.budget + common,
                                "calibration": factors, "command": command})
    return BenchResult(out, results, ran, reused, failed, md, js, fig, time.perf_counter() - start)


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
