"""Shared CLI plumbing: seed-list parsing, clear one-line errors, progress bars, weights on demand."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

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


YES_OPTION = click.option("--yes", "-y", "assume_yes", is_flag=True,
                          help="Download missing model weights without asking (for scripts and jobs).")


def stdin_is_tty() -> bool:
    """Whether there is a terminal to ask a question on."""
    return sys.stdin is not None and sys.stdin.isatty()


def human_bytes(n: int) -> str:
    """1234567 -> '1.2 MB' (decimal units, as the Hugging Face hub shows sizes)."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


def ensure_weights(name_or_path: str | Path | None, assume_yes: bool, quiet: bool = False) -> None:
    """Before a run: a zoo model whose weights are not on this machine is downloaded now, once the user
    agrees (``--yes``, or ``y`` on a terminal), into ``$RECON_MODELS/<name>`` when set, else the Hugging
    Face cache, with huggingface_hub's progress bars. Everything else (a folder, a present model, the
    library prior) is left to the run. Every refusal is one ``error:`` line and exit status 1:

    - ``RECON_OFFLINE=1`` / ``HF_HUB_OFFLINE=1``: what to fetch (repo, revision, size) and how;
    - no terminal and no ``--yes``: rerun with ``--yes`` or run ``recon models pull NAME``;
    - the hub unreachable or refusing: what to download by hand and where to put it.
    """
    if name_or_path is None:
        return
    from recon.priors.zoo import (
        ZooError,
        download_needed,
        download_place,
        download_plan,
        offline_reason,
        pull,
    )

    try:
        entry = download_needed(name_or_path)
    except ZooError as exc:
        fail(str(exc))
        return
    if entry is None:
        return
    name, where = entry.name, download_place(entry)
    what = f"{entry.hub_id} at revision {entry.revision} ({entry.size}; licence: {entry.licence})"
    off = offline_reason()
    if off:
        fail(f"model {name!r} is not on this machine and {off} forbids downloading it: fetch {what}, by running "
             f"`recon models pull {name}` without {off.split('=')[0]} (here, or on a machine with network and "
             f"then copy {where} here)")
        return
    if not assume_yes and not stdin_is_tty():
        fail(f"model {name!r} is not on this machine and there is no terminal to ask before downloading {what}: "
             f"rerun with --yes to download it into {where}, or run `recon models pull {name}` first")
        return
    try:
        plan = download_plan(entry)
    except ZooError as exc:
        fail(str(exc))
        return
    size = human_bytes(plan.bytes) if plan.files else "nothing"
    click.echo(f"model {name!r} is not on this machine: {size} to download ({len(plan.files)} files of "
               f"{entry.hub_id}@{entry.revision[:12]}) into {where}", err=True)
    click.echo(f"licence: {entry.licence} (read it before use: https://huggingface.co/{entry.hub_id})", err=True)
    try:
        agreed = assume_yes or click.confirm("Download it now?", default=False, err=True)
    except click.Abort:  # Ctrl-C or end of input at the question
        agreed = False
    if not agreed:
        fail(f"model {name!r} was not downloaded: answer y, rerun with --yes, or run `recon models pull {name}`")
        return
    try:
        path = pull(entry, progress=not quiet)
    except ZooError as exc:
        fail(str(exc))
        return
    except KeyboardInterrupt:
        fail(f"interrupted while downloading {name!r}; run the same command again: the files already downloaded "
             "are kept", 130)
        return
    click.echo(f"{name}: downloaded and verified at {path}", err=True)
