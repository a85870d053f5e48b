"""``recon models list|pull|verify``: the model zoo from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import click

from recon.cli.common import fail


@click.group()
def models() -> None:
    """Known diffusion priors: which are on this machine, fetch them, check them.

    Models are looked for in an explicit folder, then $RECON_MODELS/<name>/, then the Hugging Face cache.
    """


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return f"{n} B"


_QUIET = click.option("--quiet", is_flag=True, help="Print nothing but errors (and the --json summary).")


@models.command("list")
@_QUIET
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def list_models(quiet: bool, as_json: bool) -> None:
    """Known models, whether each is on this machine, and where."""
    from recon.priors.zoo import ZooError, load_zoo, locate, models_dir

    try:
        zoo = load_zoo()
        rows = []
        for entry in zoo.entries:
            places = locate(entry)
            rows.append({
                "name": entry.name, "kind": entry.kind + (f" ({entry.variant})" if entry.variant else ""),
                "hub_id": entry.hub_id, "revision": entry.revision, "licence": entry.licence, "size": entry.size,
                "present": bool(places), "path": str(places[0].path) if places else None,
                "source": places[0].source if places else None, "description": entry.description,
                "local": entry.local or None,
            })
    except ZooError as exc:
        fail(str(exc))
        return
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if quiet:
        return
    root = models_dir()
    click.echo(f"RECON_MODELS: {root if root is not None else '(not set)'}")
    for row in rows:
        label = {"recon_models": "$RECON_MODELS", "hf_cache": "Hugging Face cache",
                 "shipped": "the repository"}.get(row["source"], "")
        where = f"present in {label}: {row['path']}" if row["present"] else "not on this machine"
        click.echo(f"{row['name']:<15} {row['kind']:<32} {row['size']:<20} {where}")
        origin = f"shipped in the repository ({row['local']})" if row["local"] else f"{row['hub_id']}@{row['revision'][:12]}"
        click.echo(f"{'':<15} {origin}  licence: {row['licence']}")


@models.command()
@click.argument("name")
@click.option("--to", "dest", type=click.Path(path_type=Path), default=None,
              help="Download into this folder (default: $RECON_MODELS/NAME, else the Hugging Face cache).")
@click.option("--force", is_flag=True, help="Download even if a verified copy is already present.")
@_QUIET
@click.option("--json", "as_json", is_flag=True, help="Print {name, path, downloaded} as JSON.")
def pull(name: str, dest: Path | None, force: bool, quiet: bool, as_json: bool) -> None:
    """Download model NAME from the Hugging Face hub and verify it (files already downloaded are kept;
    a dropped connection is resumed, see docs/priors.md)."""
    from recon.priors.verify_folder import verify_folder
    from recon.priors.weight_files import WeightsError
    from recon.priors.zoo import ZooError, load_zoo, locate
    from recon.priors.zoo import pull as pull_model

    try:
        entry = load_zoo().get(name)
        if not force:
            for place in locate(entry):
                try:
                    verify_folder(place.path, entry.kind)
                except WeightsError:
                    continue  # an incomplete copy: download over it
                _say(quiet, as_json, f"{name} is already present and verified: {place.path}",
                     {"name": name, "path": str(place.path), "downloaded": False})
                return
        if not (quiet or as_json):
            click.echo(f"downloading {name} ({entry.size}) from {entry.hub_id}@{entry.revision}; licence: {entry.licence}")
        path = pull_model(entry, dest, progress=not (quiet or as_json))
    except ZooError as exc:
        fail(str(exc))
        return
    _say(quiet, as_json, f"{name}: downloaded and verified at {path}",
         {"name": name, "path": str(path), "downloaded": True})


def _say(quiet: bool, as_json: bool, line: str, summary: dict) -> None:
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    elif not quiet:
        click.echo(line)


@models.command()
@click.argument("name_or_path")
@click.option("--kind", type=click.Choice(["stable-diffusion", "zero123", "mvdream"]), default=None,
              help="Model kind of a folder (default: from the zoo entry, else from the folder's layout).")
@_QUIET
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def verify(name_or_path: str, kind: str | None, quiet: bool, as_json: bool) -> None:
    """Check a model (zoo NAME or folder PATH): files present, safetensors only, shapes match."""
    from recon.priors.verify_folder import verify_folder
    from recon.priors.weight_files import WeightsError
    from recon.priors.zoo import ZooError, resolve

    try:
        resolved = resolve(name_or_path)
        chosen = kind or (resolved.entry.kind if resolved.entry else None)
        report = verify_folder(resolved.path, chosen)  # type: ignore[arg-type]
    except (ZooError, WeightsError) as exc:
        fail(str(exc))
        return
    if as_json:
        click.echo(json.dumps({"path": str(report.root), "kind": report.kind, "bytes": report.total_bytes, "ok": True,
                               "components": [{"name": c.name, "files": [str(f) for f in c.files],
                                               "variant": c.variant, "tensors": c.tensors, "dtypes": list(c.dtypes)}
                                              for c in report.components]}, indent=2))
        return
    if quiet:
        return
    click.echo(f"{report.root}: {report.kind}, {_human(report.total_bytes)} of weights")
    for comp in report.components:
        detail = f"{comp.tensors} tensors, {', '.join(comp.dtypes)}" if comp.tensors else "ok"
        variant = f" (variant {comp.variant})" if comp.variant else ""
        click.echo(f"  {comp.name:<24} {len(comp.files)} file(s){variant}: {detail}")
    click.echo("OK")
