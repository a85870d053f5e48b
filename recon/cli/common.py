"""Shared CLI plumbing: seed-list parsing, clear one-line errors, progress bars."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator

import click

from recon.io.errors import first_line


def parse_seeds(text: str) -> list[int]:
    """``"0-3,7"`` -> [0, 1, 2, 3, 7]."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part[1:]:
                lo, hi = part.split("-", 1) if not part.startswith("-") else (part, part)
                seeds.extend(range(int(lo), int(hi) + 1))
            else:
                seeds.append(int(part))
        except ValueError as exc:
            raise click.BadParameter(f"{part!r} is not a seed or a range like 0-7") from exc
    if not seeds:
        raise click.BadParameter("give at least one seed")
    return seeds


def fail(message: str, code: int = 1) -> None:
    """Print one clear error line to stderr and exit non-zero."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


@contextlib.contextmanager
def progress_bars(quiet: bool = False) -> Iterator[Callable[[str, int, int], None]]:
    """A ``progress(label, done, total)`` callback drawing one rich bar per label (no-op if quiet)."""
    if quiet:
        yield lambda label, done, total: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description:>14}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), transient=False) as bars:
        tasks: dict[str, int] = {}

        def update(label: str, done: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = bars.add_task(label, total=total)
            bars.update(tasks[label], completed=done, total=total)

        yield update


def run_and_report(job: Callable[[Callable[[str, int, int], None]], object], out_dir, quiet: bool,
                   as_json: bool, expected: tuple[type[BaseException], ...]) -> None:
    """Run ``job(progress)`` (a ``recon run`` / ``recon text`` reconstruction) with progress bars, turn
    the ``expected`` errors and Ctrl-C into one line and an exit code, and print the result summary."""
    try:
        with progress_bars(quiet or as_json) as progress:
            result = job(progress)
    except expected as exc:
        fail(first_line(exc))
        return
    except KeyboardInterrupt:
        fail(f"interrupted; run the same command again to resume from {out_dir}/checkpoints", 130)
        return
    if as_json:
        click.echo(json.dumps({"out": str(result.out_dir), "run_json": str(result.run_json),
                               "seconds": round(result.seconds, 2), "resumed": result.resumed,
                               "hypotheses": [{"index": h.index, "seed": h.seed,
                                               "meshes": {k: str(p) for k, p in h.paths.items()}}
                                              for h in result.hypotheses]}, indent=2))
        return
    click.echo(f"{len(result.hypotheses)} hypotheses in {result.out_dir} ({result.seconds:.0f} s"
               f"{', resumed' if result.resumed else ''}): open {result.out_dir / 'index.html'}")
