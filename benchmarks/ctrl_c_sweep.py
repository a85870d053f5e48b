"""Ctrl-C at fixed moments of a tiny ``python -m recon run``: the exit status and the line each one gives.

For hunting races of the interrupt path (tests/cli/test_cli_input_safety.py sends its Ctrl-C after a guessed
delay). Each delay starts a fresh run of the tests' tiniest recipe on data/examples/crate.png, sends SIGINT
after that many seconds and prints the status (130: recon's interrupted exit; 0: the run had finished; a
negative status: killed by the signal) and the last stderr line. ``--shutdown N`` instead times, over N
uninterrupted runs, how long the interpreter takes from the last exit handler to the process's end (the window
in which a Ctrl-C lands after everything was written).

    python benchmarks/ctrl_c_sweep.py 1.7 1.75 1.8 4.4 5.0     # delays in seconds
    python benchmarks/ctrl_c_sweep.py --shutdown 3

Time it on a quiet machine: the delays that hit a given phase move with the load.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "cli"))
from cli_helpers import CRATE, TINIEST  # noqa: E402

# recon's own main, run as `python -m recon` runs it, after an exit handler that records the time: handlers run
# last-registered first, so this one runs after every handler recon and the libraries register.
TIMED_MAIN = """
import atexit, os, sys, time
stamp = sys.argv.pop(1)
atexit.register(lambda: open(stamp, "w").write(repr(time.time())))
sys.argv[0] = os.path.join({root!r}, "recon", "__main__.py")
from recon.cli import main
main(prog_name="recon")
"""


def interrupted(delay: float, out: Path) -> tuple[int, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "recon", "run", str(CRATE), "--out", str(out), *TINIEST],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    lines = [line for line in err.splitlines() if line.strip()]
    return proc.returncode, lines[-1] if lines else ""


def shutdown_seconds(out: Path, stamp: Path) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    code = TIMED_MAIN.format(root=str(ROOT))
    subprocess.run([sys.executable, "-c", code, str(stamp), "run", str(CRATE), "--out", str(out), *TINIEST],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    return time.time() - float(stamp.read_text())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("delays", type=float, nargs="*", help="seconds after start to send SIGINT")
    parser.add_argument("--shutdown", type=int, default=0, metavar="N", help="time the shutdown over N runs")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if args.shutdown:
            print("| run | last exit handler to process end (s) |\n|---|---|")
            for i in range(args.shutdown):
                print(f"| {i} | {shutdown_seconds(Path(tmp) / f'shut{i}', Path(tmp) / 'stamp'):.2f} |")
        if args.delays:
            print("| delay (s) | status | last stderr line |\n|---|---|---|")
            for i, delay in enumerate(args.delays):
                status, line = interrupted(delay, Path(tmp) / f"run{i}")
                print(f"| {delay:.2f} | {status} | {line} |", flush=True)


if __name__ == "__main__":
    main()
