"""``recon bench``: the toy-world ground-truth benchmark (SDS vs DSD vs ASD vs SDI)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from recon.cli.common import fail, first_line, parse_seeds, progress_bars


@click.command("bench")
@click.option("--cases", type=click.Choice(["smoke", "full"]), default="smoke", show_default=True,
              help="Case set: smoke (2 families, 1 seed, dsd,sds: about 8 min on 2 CPU cores) or full "
                   "(3 families, 3 seeds, 4 methods: hours; see docs/toy-world-benchmark.md).")
@click.option("--methods", default=None,
              help="Comma-separated methods (default: smoke dsd,sds; full dsd,sds,asd,sdi); NAME-cal calibrates the guidance weight to SDS's gradient magnitude.")
@click.option("--families", default=None, help="Comma-separated library families (default: the case set's).")
@click.option("--seeds", default=None, help="Run seeds, e.g. 0-2 or 0,3 (default: the case set's).")
@click.option("--hypotheses", "-k", type=click.IntRange(1, 64), default=4, show_default=True)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=Path("out/bench"), show_default=True,
              help="Output folder; finished runs in it are reused.")
@click.option("--config", "config_file", type=click.Path(path_type=Path), default=None,
              help="Recipe (default configs/cpu-demo.yaml); the case set's budget and --set go on top.")
@click.option("--set", "--set-override", "overrides", multiple=True, metavar="[METHOD:]KEY=VALUE",
              help="Override a config field for every run, or for one method with METHOD: in front (repeatable).")
@click.option("--tau", type=float, default=0.05, show_default=True, help="F-score distance (world units).")
@click.option("--points", type=click.IntRange(100, 10**7), default=20000, show_default=True,
              help="Surface samples per mesh for Chamfer and F-score.")
@click.option("--threads", type=click.IntRange(0, 256), default=1, show_default=True,
              help="torch threads (0 = torch's default); 1 is fastest on a busy small CPU.")
@click.option("--quiet", is_flag=True, help="No progress bars or log lines.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
def bench(cases, methods, families, seeds, hypotheses, out_dir, config_file, overrides, tau, points, threads, quiet,
          as_json):
    """Reconstruct library objects whose backs the input view hides with each method, K hypotheses each, and
    score them against every plausible ground truth: best-of-K Chamfer and F-score, fidelity, diversity,
    coverage, input-view PSNR / IoU, time, memory, prior evaluations. Writes bench.md, bench.json and
    figure.png to --out; running the command again skips finished runs."""
    import torch

    from recon.bench import BenchConfig, run_bench
    from recon.config import ConfigError
    from recon.io.errors import FileProblem

    if config_file is not None and not config_file.is_file():
        fail(f"{config_file}: no such config file; pass a YAML recipe such as configs/cpu-demo.yaml", 2)
    if tau <= 0:
        fail(f"--tau must be > 0, got {tau}", 2)
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
    )
    log = None if (quiet or as_json) else (lambda msg: click.echo(msg, err=True))
    command = "recon bench " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else "recon bench"
    try:
        with progress_bars(quiet or as_json) as progress:
            result = run_bench(config, out_dir, progress, log=log, command=command)
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
        click.echo(json.dumps({"out": str(result.out_dir), "markdown": str(result.markdown), "json": str(result.json),
                               "figure": str(result.figure) if result.figure else None, "ran": result.ran,
                               "reused": result.reused, "failed": result.failed,
                               "seconds": round(result.seconds, 1)}, indent=2))
    else:
        click.echo(result.markdown.read_text())
        click.echo(f"{result.ran} runs done, {result.reused} reused, {len(result.failed)} failed in "
                   f"{result.seconds:.0f} s: {result.markdown}, {result.json}, {result.figure}")
    if result.failed:
        raise SystemExit(1)
