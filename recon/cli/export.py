"""``recon export``: a finished run's meshes again, in other formats or with other export settings."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import click

from recon.cli.common import fail, first_line, progress_bars


@click.command("export")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--format", "formats", multiple=True, metavar="glb|obj|ply",
              help="Format(s) to write, repeatable or a comma list (default: glb,obj,ply).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Output folder (default RUN_DIR/export; the run's own meshes/ are left alone).")
@click.option("--set", "overrides", multiple=True, metavar="export.KEY=VALUE",
              help="Change an export setting, e.g. --set export.target_faces=5000 (repeatable).")
@click.option("--hypothesis", "hypotheses", type=int, multiple=True,
              help="Export only hypothesis K (repeatable; default all).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
def export(run_dir, formats, out_dir, overrides, hypotheses, quiet, as_json):
    """Export the meshes of the finished run in RUN_DIR again from its checkpoints (no input image or
    model weights needed): clean-up, decimation, UV unwrap, texture bake and the chosen formats."""
    from recon.config import ConfigError
    from recon.io.errors import FileProblem
    from recon.pipeline.checkpoint import CheckpointError
    from recon.pipeline.reexport import FORMATS, export_run

    names = [part for text in formats for part in text.split(",") if part.strip()] or list(FORMATS)
    out = out_dir if out_dir is not None else run_dir / "export"
    try:
        with contextlib.ExitStack() as stack:
            bars: list = []

            def progress(label: str, done: int, total: int) -> None:
                if not bars:  # bars start with the first step, so an early error prints one line only
                    bars.append(stack.enter_context(progress_bars(quiet or as_json)))
                bars[0](label, done, total)

            paths = export_run(run_dir, names, out, overrides, hypotheses or None, progress)
    except ConfigError as exc:
        fail(first_line(exc), 2)
        return
    except (FileProblem, CheckpointError, ValueError, RuntimeError) as exc:
        fail(first_line(exc))
        return
    except KeyboardInterrupt:
        fail(f"interrupted; no file of this export was left in {out}", 130)
        return
    if as_json:
        click.echo(json.dumps({"out": str(out), "files": [str(p) for p in paths]}, indent=2))
    elif not quiet:
        click.echo(f"{len(paths)} mesh files in {out}")
