"""``recon text``: a prompt to textured meshes with Stable Diffusion or MVDream."""

from __future__ import annotations

import re
from pathlib import Path

import click

from recon.cli.common import YES_OPTION, ensure_weights, fail, first_line, run_and_report
from recon.distill.factory import METHODS


def default_out(prompt: str) -> Path:
    """out/<the prompt's words joined by underscores, at most 60 characters>."""
    slug = re.sub(r"[^A-Za-z0-9]+", "_", prompt).strip("_")[:60].strip("_")
    return Path("out") / (slug or "text")


@click.command("text")
@click.argument("prompt", required=False)
@click.option("--prior", default=None,
              help="sd (Stable Diffusion 2.1-base), mvdream, a model-zoo name (e.g. sd-1.5) or a diffusers "
                   "model folder. Picks the recipe configs/text-to-3d-sd.yaml or configs/text-to-3d-mvdream.yaml.")
@click.option("--hypotheses", "-k", type=click.IntRange(1, 64), default=None,
              help="Number of hypotheses K (default 4).")
@click.option("--seed", type=int, default=None, help="Run seed; hypothesis k uses (seed, k).")
@click.option("--config", "config_file", type=click.Path(path_type=Path), default=None,
              help="YAML recipe applied over the prior's recipe.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override any config field, e.g. --set stage1.steps=2000 (repeatable).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Output folder (default out/<prompt words>).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None)
@click.option("--method", type=click.Choice(METHODS), default=None, help="Distillation method (default dsd).")
@click.option("--from", "from_json", type=click.Path(path_type=Path), default=None,
              help="Reproduce the run a run.json of recon text describes (same prompt, config and seeds).")
@YES_OPTION
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
def text(prompt, prior, hypotheses, seed, config_file, overrides, out_dir, device, method, from_json, assume_yes, quiet,
         as_json):
    """Make K textured meshes (GLB, OBJ+MTL+PNG, PLY) of PROMPT, with turntables, a contact sheet,
    index.html and run.json. Running the same command again resumes an interrupted run."""
    from recon.config import ConfigError, check_limits
    from recon.io.errors import FileProblem
    from recon.pipeline.staged_run import RunConflict
    from recon.pipeline.text_to_3d import text_to_3d

    extra = list(overrides) + ([f"distill.method={method}"] if method else [])
    try:
        if from_json is not None:
            prompt, config = _from_run_json(from_json, prompt, extra, hypotheses, seed, device)
        else:
            if not prompt:
                fail('give a PROMPT, e.g. recon text "a wooden chair" --prior sd, or --from run.json', 2)
            from recon.pipeline.recipes import text_config

            config = text_config(config_file, extra, prior, hypotheses=hypotheses, seed=seed, device=device)
            check_limits(config)
    except ConfigError as exc:
        fail(str(exc), 2)
    except (FileProblem, ValueError, RuntimeError) as exc:  # --prior / run.json problems (zoo, folder)
        fail(first_line(exc))
    out_dir = out_dir or default_out(prompt)
    from recon.pipeline.text_prior import text_prior_model

    ensure_weights(text_prior_model(config.prior), assume_yes, quiet or as_json)
    run_and_report(lambda progress: text_to_3d(prompt, config, out_dir, progress), out_dir, quiet, as_json,
                   (FileProblem, RunConflict, ValueError, RuntimeError, OSError))


def _from_run_json(path: Path, prompt, extra, hypotheses, seed, device):
    """The prompt and config a recon text run.json recorded, with command-line changes on top."""
    from recon.io.manifest import read_run_json
    from recon.pipeline.text_to_3d import TextTo3DConfig

    record = read_run_json(path)
    recorded = record.input.get("prompt")
    if not isinstance(recorded, str):
        raise ValueError(f"{path}: not a recon text run (no prompt recorded); use recon run --from for photos")
    extra = list(extra)
    extra += [f"hypotheses={hypotheses}"] if hypotheses else []
    extra += [f"seed={seed}"] if seed is not None else []
    extra += [f"device={device}"] if device else []
    from recon.pipeline.from_record import recorded_config

    return prompt or recorded, recorded_config(path, TextTo3DConfig, record.config, extra)
