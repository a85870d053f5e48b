"""``recon distill2d``: the paper's 2D setting on the built-in mixture prior or a diffusers folder."""

from __future__ import annotations

import json
from pathlib import Path

import click

from recon.cli.common import fail, parse_seeds, progress_bars
from recon.distill.factory import METHODS


@click.command()
@click.option("--method", "methods", default="dsd,sds,asd,sdi,consistent3d", show_default=True,
              help=f"Comma-separated methods: {', '.join(METHODS)}.")
@click.option("--seeds", default="0-7", show_default=True, help="Seeds, e.g. 0-7 or 1,5,9 (one column each).")
@click.option("--steps", default=200, show_default=True, type=click.IntRange(1, 100_000), help="Optimisation steps per image.")
@click.option("--prior", default="gmm", show_default=True,
              help="'gmm' (built-in mixture of small pictures) or a diffusers pipeline folder.")
@click.option("--modes", default=4, show_default=True, type=click.IntRange(1, 8), help="gmm: number of pictures.")
@click.option("--size", default=16, show_default=True, type=click.IntRange(4, 256), help="gmm: picture side in pixels.")
@click.option("--prompt", default=None, help="Prompt, for a diffusers prior with a text encoder.")
@click.option("--guidance-scale", type=float, default=None, help="CFG scale (default: the prior's).")
@click.option("--init", "init", default=None, type=click.Choice(["gmm-near", "grey", "noise"]),
              help="Shared start image (default: gmm-near for gmm, grey otherwise).")
@click.option("--out", "out_dir", default="out/distill2d", show_default=True, type=click.Path(path_type=Path))
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def distill2d(methods, seeds, steps, prior, modes, size, prompt, guidance_scale, init, out_dir, quiet, as_json):
    """Optimise one image per (method, seed) from one shared init and compare the methods.

    Writes OUT/grid.png (one row per method plus the DDIM reference, one column per seed) and
    OUT/metrics.json (per-image nearest mode, diversity, cost).
    """
    from recon.pipeline.distill2d import Distill2DConfig, run_distill2d

    names = [m.strip() for m in methods.split(",") if m.strip()]
    bad = [m for m in names if m not in METHODS]
    if bad:
        fail(f"unknown method {bad[0]!r}; choose from {', '.join(METHODS)}", 2)
    config = Distill2DConfig(methods=names, seeds=parse_seeds(seeds), steps=steps, prior=prior, modes=modes,
                             size=size, prompt=prompt, guidance_scale=guidance_scale,
                             init=init or ("gmm-near" if prior == "gmm" else "grey"))
    try:
        with progress_bars(quiet or as_json) as progress:
            result = run_distill2d(config, out_dir, progress=progress)
    except (FileNotFoundError, ValueError, OSError) as exc:
        fail(str(exc))
        return
    if as_json:
        click.echo(json.dumps(result.metrics, indent=2))
        return
    for name, m in result.metrics["methods"].items():
        extra = ""
        if "modes_visited" in m:
            extra = f"  modes visited {len(m['modes_visited'])}  within radius {m['within_mode_radius']:.0%}"
        cost = f"  {m['evals_per_step']:.2f} evals/step" if "evals_per_step" in m else ""
        div = m.get("mean_pairwise_distance", float("nan"))
        click.echo(f"{name:>13}: diversity {div:7.3f}{extra}{cost}")
    click.echo(f"wrote {result.grid_path} and {result.metrics_path}")
