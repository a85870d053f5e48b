"""The ``recon`` command line. Commands only parse arguments and call the Python API.

Every failure, usage errors included, is one ``error:`` line on stderr with a non-zero exit; Ctrl-C at
any moment (even while the modules below are still importing) is one line and exit status 130.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys


def _interrupted_while_starting(signum, frame) -> None:  # pragma: no cover - timing dependent
    sys.stderr.write("error: interrupted while starting; nothing was written\n")
    sys.stderr.flush()
    os._exit(130)


def _exit_interrupted() -> None:
    """Exit with status 130 now, after the exit handlers, skipping the interpreter's shutdown.

    A Ctrl-C that lands inside code built by ``exec`` of a string (dataclasses and namedtuple make their
    methods that way, on import) marks CPython 3.11 as stopped by an unhandled KeyboardInterrupt even
    though recon handled it, and at shutdown the interpreter then kills itself with SIGINT: no status
    130, seen in CI (tests/cli/test_cli_interrupt_exit.py reproduces it).
    """
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(130)


def _is_the_cli() -> bool:
    """True in the ``recon`` console script and ``python -m recon`` (not when a program imports recon)."""
    argv0 = sys.argv[0] if sys.argv else ""
    name, parent = os.path.basename(argv0), os.path.basename(os.path.dirname(argv0))
    return name in ("recon", "recon.exe") or (name == "__main__.py" and parent == "recon")


# Installed before the heavy imports (torch) below: a Ctrl-C during start-up is one line, not a traceback.
if _is_the_cli():
    with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
        signal.signal(signal.SIGINT, _interrupted_while_starting)
    # torch's OpenMP threads spin while they wait for each other; beside another busy process that spinning
    # steals the core the other thread needs, and the quick start's stage 1 ran 3.3x slower (docs/benchmarks.md,
    # "Threads under load"). Passive waiting must be chosen before OpenMP starts, i.e. before torch is imported;
    # a user's own OMP_WAIT_POLICY wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import click  # noqa: E402

from recon import __version__  # noqa: E402
from recon.cli.bench import bench  # noqa: E402
from recon.cli.distill2d import distill2d  # noqa: E402
from recon.cli.export import export  # noqa: E402
from recon.cli.models import models  # noqa: E402
from recon.cli.run import batch, run  # noqa: E402
from recon.cli.text import text  # noqa: E402
from recon.cli.train import train  # noqa: E402


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class ReconGroup(click.Group):
    """A click group whose usage errors are one ``error:`` line (not click's ``Usage:`` block and
    ``Error:``) and whose Ctrl-C, wherever it lands, is one line and exit status 130."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:  # callers that handle errors themselves (tests, embedding)
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        main_thread = threading_main()
        if main_thread:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            self._standalone_main(args, prog_name, complete_var, **extra)
        except SystemExit as exc:
            if main_thread and _is_the_cli():  # recon's own process, not a program or test runner calling main
                # The command is over, its line printed and its files written: a Ctrl-C in the exit handlers or
                # the interpreter's shutdown (1.3–1.5 s after a tiny run on 2 cores, docs/input-safety.md) would
                # print a traceback or kill the process by SIGINT with no line.
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                if exc.code == 130:
                    _exit_interrupted()
            raise

    def _standalone_main(self, args, prog_name, complete_var, **extra) -> None:
        try:
            argv = sys.argv[1:] if args is None else list(args)
            if argv and argv[0] in HEAVY_COMMANDS:
                from recon.pipeline.interrupt import held_interrupt

                with held_interrupt():  # trimesh swallows a KeyboardInterrupt raised inside its own imports
                    import trimesh  # noqa: F401
            code = super().main(args, prog_name or "recon", complete_var, False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help() if exc.ctx else "recon --help", err=True)
            sys.exit(2)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else "recon"
            click.echo(f"error: {where}: {_one_line(exc.format_message()).rstrip('.')}; see '{where} --help'", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"error: {_one_line(exc.format_message())}", err=True)
            sys.exit(exc.exit_code)
        except (click.Abort, KeyboardInterrupt):
            click.echo("error: interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:  # one a command did not turn into its own line (click would add "Aborted!")
            click.echo("error: interrupted", err=True)
            sys.exit(130)


# Commands that load the pipeline (and trimesh with it).
HEAVY_COMMANDS = {"run", "batch", "text", "bench", "export", "distill2d", "train"}


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


@click.group(cls=ReconGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
