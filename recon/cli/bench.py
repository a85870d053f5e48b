"""``recon bench``: the toy-world ground-truth benchmark (the recipe's method vs SDS, DSD, ASD, SDI...)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from recon.cli.common import fail, first_line, parse_seeds, progress_bars


@click.command("bench")
@click.option("--cases", type=click.Choice(["smoke", "full"]), default="smoke", show_default=True,
              help="Case set: smoke (crate and drum, seed 0, the recipe's method and sds, plus a noise-floor run "
                   "per family) or full (every library family, seeds 0-2 with a floor run at each, the recipe's method, dsd and sds; hours; "
                   "see docs/toy-world-benchmark.md).")
@click.option("--methods", default=None,
              help="Comma-separated methods (default: the recipe's distill.method and sds; full adds dsd); 'default' "
                   "is the recipe's method; NAME-cal calibrates the guidance weight to SDS's gradient magnitude.")
@click.option("--families", default=None,
              help="Comma-separated library families (default: the case set's; with --library, all of its families).")
@click.option("--library", "library", type=click.Path(path_type=Path), default=None,
              help="A shape-library folder laid out like data/library (library.yaml + <family>/<member>.ply, closed "
                   "vertex-coloured meshes, +Y up, input camera on +Z): the prior and the ground truth.")
@click.option("--prior", "prior", default=None,
              help="The runs' prior, as `recon run --prior` takes it: library, zero123, a model-zoo name (toy-zero123) "
                   "or a folder; its recipe is the default --config. Inputs and ground truth still come from the shape "
                   "library (data/library or --library).")
@click.option("--no-noise-floor", "no_noise_floor", is_flag=True,
              help="Skip the extra floor runs; use the floor recorded in --out by an earlier bench (else 0, "
                   "with a warning).")
@click.option("--floor-seeds", "floor_seeds", type=click.IntRange(1, 64), default=3, show_default=True,
              help="How many of the seeds (the first ones) get a floor run per family (the first method run again "
                   "with other random streams); the floor comes from all of these pairs.")
@click.option("--keep-checkpoints", "keep_checkpoints", is_flag=True,
              help="Keep each finished run's stage checkpoints (tens of MB a run at the full budget); by default "
                   "they are deleted once the run's result is written.")
@click.option("--seeds", default=None, help="Run seeds, e.g. 0-2 or 0,3 (default: the case set's).")
@click.option("--hypotheses", "-k", type=click.IntRange(1, 64), default=4, show_default=True)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("out/bench"), show_default=True,
              help="Output folder; finished runs in it are reused.")
@click.option("--config", "config_file", type=click.Path(path_type=Path), default=None,
              help="Recipe (default configs/cpu-demo.yaml, or --prior's recipe); the case set's budget and --set go "
                   "on top.")
@click.option("--set", "--set-override", "overrides", multiple=True, metavar="[METHOD:]KEY=VALUE",
              help="Override a config field for every run, or for one method with METHOD: in front (repeatable).")
@click.option("--tau", type=float, default=0.05, show_default=True, help="F-score distance (world units).")
@click.option("--delta", type=float, default=0.03, show_default=True,
              help="δ of the discriminative distance: how close to every other member a point must be to count as "
                   "the shared body (world units).")
@click.option("--points", type=click.IntRange(100, 10**7), default=20000, show_default=True,
              help="Surface samples per mesh for Chamfer and F-score.")
@click.option("--threads", type=click.IntRange(0, 256), default=1, show_default=True,
              help="torch threads (0 = torch's default); 1 is fastest on a busy small CPU.")
@click.option("--quiet", is_flag=True, help="No progress bars or log lines.")
@click.option("--json", "as_json", is_flag=True,
              help="Print {methods: {NAME: {coverage, unassigned, best_of_k_chamfer, fidelity, diversity}}, families: "
                   "{FAMILY: {noise_floor, answer_stability, methods: {...}}}}.")
def bench(cases, methods, families, library, prior, no_noise_floor, floor_seeds, keep_checkpoints, seeds, hypotheses, out_dir, config_file, overrides, tau,
          delta, points, threads, quiet, as_json):
    """Reconstruct library objects whose backs the input view hides with each method, K hypotheses each, and
    score them against every plausible ground truth: coverage (hypotheses assigned to members where the
    members differ, with the family's measured noise floor as margin), unassigned share, best-of-K Chamfer
    and F-score, fidelity, diversity, input-view PSNR / IoU, time, memory, prior evaluations. Writes
    bench.md, bench.json and figure.png to --out; running the command again skips finished runs."""
    import torch

    from recon.bench import BenchConfig, run_bench
    from recon.config import ConfigError
    from recon.io.errors import FileProblem

    if config_file is not None and not config_file.is_file():
        fail(f"{config_file}: no such config file; pass a YAML recipe such as configs/cpu-demo.yaml", 2)
    if tau <= 0:
        fail(f"--tau must be > 0, got {tau}", 2)
    if delta <= 0:
        fail(f"--delta must be > 0, got {delta}", 2)
    try:
        seed_list = parse_seeds(seeds) if seeds else None
    except click.BadParameter as exc:
        fail(f"--seeds: {exc.message}", 2)
    if threads:
        torch.set_num_threads(threads)
    config = BenchConfig(
        cases=cases,
        methods=[m for m in (x.strip() for x in methods.split(",")) if m] if methods else None,
        families=[f for f in (x.strip() for x in families.split(",")) if f] if families else None,
        seeds=seed_list,
        hypotheses=hypotheses,
        config=str(config_file) if config_file else None,
        overrides=list(overrides),
        points=points,
        tau=tau,
        delta=delta,
        library=str(library) if library is not None else None,
        noise_floor=not no_noise_floor,
        floor_seeds=floor_seeds,
        prior=prior,
        keep_checkpoints=keep_checkpoints,
    )
    log = None if (quiet or as_json) else (lambda msg: click.echo(msg, err=True))
    command = "recon bench " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "recon bench"
    try:
        with progress_bars(quiet or as_json) as progress:
            result = run_bench(config, out_dir, progress, log=log, command=command,
                               warn=lambda msg: click.echo(f"warning: {msg}", err=True))
    except (ConfigError, FileProblem) as exc:
        fail(str(exc), 2)
        return
    except (OSError, ValueError, RuntimeError) as exc:
        fail(first_line(exc))
        return
    except KeyboardInterrupt:
        fail(f"interrupted; run the same command again to resume from {out_dir}", 130)
        return
    if as_json:
        from recon.bench.report import json_summary

        click.echo(json.dumps(json_summary(result.results, result.floors), indent=2))
    else:
        click.echo(result.markdown.read_text())
        click.echo(f"{result.ran} runs done, {result.reused} reused, {len(result.failed)} failed in "
                   f"{result.seconds:.0f} s: {result.markdown}, {result.json}, {result.figure}")
    if result.failed:
        raise SystemExit(1)
