"""``recon train toy-zero123``: train recon's embedded tiny Zero-1-to-3 on the toy world."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import click

from recon.cli.common import fail, progress_bars


@click.group()
def train() -> None:
    """Train recon's own small priors (CPU-sized)."""


@train.command("toy-zero123")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True,
              help="Model folder to write (diffusers layout; e.g. models/toy-zero123).")
@click.option("--steps", type=click.IntRange(0, None), default=None,
              help="Denoiser steps (default 4000; about 30 min on one CPU thread).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--resume", is_flag=True,
              help="Continue from the checkpoint in --checkpoints (a run without one starts afresh). A resumed run "
                   "is bit-identical to an uninterrupted one; a larger --steps extends a finished run.")
@click.option("--checkpoints", type=click.Path(path_type=Path), default=None,
              help="Checkpoint folder (default OUT/checkpoints; keep it outside a folder you ship).")
@click.option("--vae-steps", type=click.IntRange(1, None), default=None, help="Autoencoder steps (default 1500).")
@click.option("--batch-size", type=click.IntRange(1, None), default=None, help="Denoiser batch (default 32).")
@click.option("--train-clip/--frozen-clip", default=None,
              help="Train the CLIP image encoder with the denoiser, or keep it at its seeded init (default).")
@click.option("--other-inputs", type=click.FloatRange(0, 1), default=None,
              help="Share of training pairs whose input is a non-front view (default 0: front only).")
@click.option("--threads", type=click.IntRange(1, 256), default=1, show_default=True,
              help="torch threads; results are bit-identical only for the same count.")
@click.option("--quiet", is_flag=True, help="No progress bar or log lines.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
def toy_zero123(out_dir, steps, seed, resume, checkpoints, vae_steps, batch_size, train_clip, other_inputs, threads,
                quiet, as_json):
    """Render the toy-world library from many views and train a tiny Zero-1-to-3 on (front view, relative
    pose) -> target view; write it to --out in zero123-xl's diffusers layout with training.json and README.md
    (command, seed, steps, losses, sha256 of the training data). Ctrl-C checkpoints at the next step;
    the same command with --resume continues."""
    import torch

    from recon.pipeline.interrupt import graceful_interrupt
    from recon.priors.weight_files import WeightsError
    from recon.train import ToyZero123Config, TrainError, train_toy_zero123

    torch.set_num_threads(threads)
    overrides = {"steps": steps, "vae_steps": vae_steps, "batch_size": batch_size, "train_clip": train_clip,
                 "other_input_prob": other_inputs}
    config = ToyZero123Config(seed=seed, **{k: v for k, v in overrides.items() if v is not None})
    # The command that reproduces these weights (--resume and the display flags do not change them).
    args = ["--out", str(out_dir), "--steps", str(config.steps), "--seed", str(seed)]
    args += ["--checkpoints", str(checkpoints)] if checkpoints is not None else []
    for flag, value in (("--vae-steps", vae_steps), ("--batch-size", batch_size), ("--other-inputs", other_inputs)):
        args += [flag, str(value)] if value is not None else []
    args += [] if train_clip is None else ["--train-clip" if train_clip else "--frozen-clip"]
    command = shlex.join(["python", "-m", "recon", "train", "toy-zero123", *args, "--threads", str(threads)])

    def log(line: str) -> None:
        if not (quiet or as_json):
            click.echo(line, err=True)

    try:
        with progress_bars(quiet or as_json) as progress, graceful_interrupt() as stop:
            result = train_toy_zero123(out_dir, config, checkpoints, resume, progress, log, command, stop)
    except (TrainError, WeightsError, FileNotFoundError, ValueError) as exc:
        fail(str(exc).splitlines()[0])
        return
    except KeyboardInterrupt:
        fail(f"interrupted; run the same command with --resume to continue from "
             f"{checkpoints or out_dir / 'checkpoints'}", 130)
        return
    summary = {"out": str(result.out), "steps": result.steps, "final_loss": result.final_loss,
               "eval_loss": result.eval_loss, "seconds": round(result.seconds, 1),
               "data_sha256": result.data_sha256, "resumed": result.resumed}
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(f"{result.out}: {result.steps} steps, final loss {result.final_loss:.5f} (EMA eval "
                   f"{result.eval_loss:.5f}), {result.seconds:.0f} s of training; data sha256 {result.data_sha256}")
