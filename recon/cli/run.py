"""``recon run`` and ``recon batch``: photos to textured meshes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

import click

from recon.cli.common import YES_OPTION, ensure_weights, fail, progress_bars, run_and_report
from recon.distill.factory import METHODS
from recon.io.segment import SegmenterModel


def _segment_overrides(segmenter, segmenter_model) -> list[str]:
    out = [f"input.segment.model={segmenter}"] if segmenter else []
    return out + ([f"input.segment.model_path={segmenter_model}"] if segmenter_model else [])


def _config(config_file, overrides, prior, hypotheses, seed, device, method, elevation=None):
    from recon.config import ConfigError, check_limits
    from recon.pipeline.recipes import image_config

    extra = list(overrides) + ([f"distill.method={method}"] if method else [])
    try:
        config = image_config(config_file, extra, prior, hypotheses=hypotheses, seed=seed, device=device,
                              elevation=elevation)
        check_limits(config)
        return config
    except ConfigError as exc:
        fail(str(exc), 2)


_COMMON = [
    click.option("--hypotheses", "-k", type=click.IntRange(1, 64), default=None,
                 help="Number of hypotheses K (default 4)."),
    click.option("--seed", type=int, default=None, help="Run seed; hypothesis k uses (seed, k)."),
    click.option("--config", "config_file", type=click.Path(path_type=Path), default=None,
                 help="YAML recipe (default: configs/cpu-demo.yaml for the library prior, "
                      "configs/image-to-3d.yaml for Zero-1-to-3)."),
    click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                 help="Override any config field, e.g. --set stage1.steps=200 (repeatable)."),
    click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None),
    click.option("--prior", default=None,
                 help="library (embedded, CPU), zero123, stable-zero123, a model-zoo name or a folder."),
    click.option("--method", type=click.Choice(METHODS), default=None, help="Distillation method (default dsd)."),
    click.option("--elevation", type=click.FloatRange(-89.0, 89.0), default=None, metavar="DEG",
                 help="Elevation of the input photo's camera in degrees, up from the object's horizon (config "
                      "key `elevation`; default 5 for Zero-1-to-3 as in threestudio's recipes, 0 for the "
                      "embedded library prior). It sets the input view of both stages and Zero-1-to-3's pose."),
    click.option("--segmenter", type=click.Choice(get_args(SegmenterModel)), default=None,
                 help="rembg model for photos without an alpha channel (default u2net)."),
    click.option("--segmenter-model", type=click.Path(path_type=Path), default=None,
                 help="Local .onnx file of that rembg model (default: where rembg keeps it, $REMBG_HOME; "
                      "rembg downloads it there on first use)."),
    YES_OPTION,
    click.option("--quiet", is_flag=True, help="No progress bars."),
    click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary."),
]


def common(fn):
    for option in reversed(_COMMON):
        fn = option(fn)
    return fn


@click.command("run")
@click.argument("image", required=False, type=click.Path(path_type=Path))
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Output folder (default out/<image name>).")
@click.option("--from", "from_json", type=click.Path(path_type=Path), default=None,
              help="Reproduce the run a run.json describes (same input, config and seeds).")
@click.option("--force", is_flag=True,
              help="With --from: reconstruct the input even if its sha256 differs from the recorded one.")
@common
def run(image, out_dir, from_json, force, hypotheses, seed, config_file, overrides, device, prior, method, elevation,
        segmenter, segmenter_model, assume_yes, quiet, as_json):
    """Reconstruct IMAGE into K textured meshes (GLB, OBJ+MTL+PNG, PLY), turntables, a contact sheet,
    index.html and run.json. Running the same command again resumes an interrupted run."""
    from recon.config import ConfigError
    from recon.io.errors import FileProblem
    from recon.io.manifest import read_run_json
    from recon.pipeline.image_to_3d import ImageTo3DConfig, RunConflict, reconstruct

    if from_json is not None:
        from recon.pipeline.from_record import check_input_hash, recorded_config, recorded_input

        extra = _flag_overrides([*overrides, *_segment_overrides(segmenter, segmenter_model)], hypotheses, seed,
                                device, method, elevation)
        try:
            record = read_run_json(from_json)
            recorded_image, sha = recorded_input(from_json, record.input)
            config = recorded_config(from_json, ImageTo3DConfig, record.config, extra)
            image = image or recorded_image
            check_input_hash(from_json, Path(image), sha, force)
        except FileProblem as exc:
            fail(str(exc))
        except ConfigError as exc:
            fail(str(exc), 2)
    else:
        if image is None:
            fail("give an IMAGE to reconstruct, or --from run.json", 2)
        config = _config(config_file, [*overrides, *_segment_overrides(segmenter, segmenter_model)], prior, hypotheses, seed, device, method,
                         elevation)
    out_dir = out_dir or Path("out") / Path(image).stem
    _fetch_before_run(Path(image), config, assume_yes, quiet or as_json)
    run_and_report(lambda progress: reconstruct(image, config, out_dir, progress), out_dir, quiet, as_json,
                   (FileProblem, RunConflict, ValueError, RuntimeError, OSError))


def _fetch_before_run(image: Path, config, assume_yes: bool, quiet: bool) -> None:
    """What the run will download, fetched before its progress bars start: the prior's weights (asked
    first, see ensure_weights), then rembg's model for a photo without an alpha channel. A photo that
    cannot be used is left to the run, which reports it before any download."""
    from recon.io.errors import InputError
    from recon.io.segment import fetch_rembg_model, photo_needs_segmenter, rembg_installed
    from recon.pipeline.prior_setup import image_prior_model

    seg = config.input.segment
    try:
        needs_rembg = photo_needs_segmenter(image, seg, config.input.max_pixels, config.input.min_side)
    except InputError:
        return
    ensure_weights(image_prior_model(config.prior), assume_yes, quiet)
    if needs_rembg and seg.model_path is None and rembg_installed():
        try:
            fetch_rembg_model(image, seg.model)
        except InputError as exc:
            fail(str(exc))


def _flag_overrides(overrides, hypotheses, seed, device, method, elevation=None) -> list[str]:
    """Command-line changes to a run.json's config, as ``key=value`` overrides."""
    extra = list(overrides)
    extra += [f"hypotheses={hypotheses}"] if hypotheses else []
    extra += [f"seed={seed}"] if seed is not None else []
    extra += [f"device={device}"] if device else []
    extra += [f"distill.method={method}"] if method else []
    extra += [f"elevation={elevation}"] if elevation is not None else []
    return extra


@click.command("batch")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--out", "out_root", type=click.Path(path_type=Path), default=Path("out/batch"), show_default=True,
              help="One sub-folder per image.")
@click.option("--shard", default="0/1", show_default=True, help="Process shard I of N (I/N), e.g. one per GPU.")
@click.option("--ray", "ray_address", default=None, metavar="ADDRESS",
              help="Run the images as Ray tasks: 'local' starts Ray here, 'auto' joins the running cluster, "
                   "or a cluster address (needs recon[ray]).")
@click.option("--gpus-per-image", type=float, default=None, help="With --ray: GPUs per image (default 1 on CUDA).")
@common
def batch(folder, out_root, shard, ray_address, gpus_per_image, hypotheses, seed, config_file, overrides, device,
          prior, method, elevation, segmenter, segmenter_model, assume_yes, quiet, as_json):
    """Reconstruct every image in FOLDER. Finished images are skipped, a bad image is reported and the
    others go on; the summary table lists the failures (exit status 1 if any). With --ray, Ray spreads
    the images over the GPUs of a machine or a cluster."""
    from recon.pipeline.batch import reconstruct_batch

    try:
        i, n = (int(v) for v in shard.split("/"))
        if not 0 <= i < n:
            raise ValueError
    except ValueError:
        fail(f"--shard {shard!r} is not I/N with 0 <= I < N", 2)
    config = _config(config_file, [*overrides, *_segment_overrides(segmenter, segmenter_model)], prior, hypotheses, seed, device, method,
                     elevation)
    from recon.pipeline.prior_setup import image_prior_model

    ensure_weights(image_prior_model(config.prior), assume_yes, quiet or as_json)
    try:
        if ray_address is not None:
            from recon.pipeline.ray_batch import reconstruct_batch_ray

            summary = reconstruct_batch_ray(folder, config, out_root, None if ray_address == "local" else ray_address,
                                            gpus_per_image)
        else:
            with progress_bars(quiet or as_json) as progress:
                summary = reconstruct_batch(folder, config, out_root, progress, shard=(i, n))
    except (FileNotFoundError, RuntimeError) as exc:
        fail(str(exc))
        return
    rows = [{"image": str(it.image), "status": it.status, "out": str(it.out_dir), "seconds": round(it.seconds, 1),
             "error": it.error} for it in summary.items]
    if as_json:
        click.echo(json.dumps({"items": rows, "failed": len(summary.failed)}, indent=2))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"recon batch {folder}")
        for col in ("image", "status", "seconds", "output / error"):
            table.add_column(col)
        for it in summary.items:
            table.add_row(it.image.name, it.status, f"{it.seconds:.0f}" if it.seconds else "",
                          it.error if it.error else str(it.out_dir))
        Console(stderr=False).print(table)
    if summary.failed:
        click.echo(f"error: {len(summary.failed)} of {len(summary.items)} images failed (see the table)", err=True)
        raise SystemExit(1)
