"""The ``recon`` command line. Commands only parse arguments and call the Python API."""

from __future__ import annotations

import click

from recon import __version__
from recon.cli.bench import bench
from recon.cli.distill2d import distill2d
from recon.cli.export import export
from recon.cli.models import models
from recon.cli.run import batch, run
from recon.cli.text import text
from recon.cli.train import train


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="recon")
def main() -> None:
    """recon: several plausible textured 3D meshes from one photo or one prompt (Diverse Score Distillation)."""


main.add_command(distill2d)
main.add_command(models)
main.add_command(run)
main.add_command(batch)
main.add_command(bench)
main.add_command(text)
main.add_command(export)
main.add_command(train)
