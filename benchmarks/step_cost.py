"""Seconds per step of stage 1 and stage 2 of the quick start, per thread setting, quiet and beside busy processes.

Each row runs the quick start (``recon run data/examples/crate.png`` with the CPU demo recipe) in a fresh
process, times stage-1 steps 5-35 and stage-2 steps 2-8, and stops. The settings are torch's thread count,
OpenMP's wait policy (read once, when torch loads OpenMP) and stage 2's hypothesis threads.

    python benchmarks/step_cost.py                       # the default grid, quiet and with 1 busy process
    python benchmarks/step_cost.py --load 0 --set stage1.resolutions=[64]
    python benchmarks/step_cost.py --spin                # bounded spinning instead of passive waiting

The ratios within one run are the figures to quote (absolute times move with the machine).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPIN = "x = 0\nwhile True:\n    x += 1\n"

CHILD = r"""
import json, sys, tempfile, time
from pathlib import Path
import torch
threads, overrides = int(sys.argv[1]), json.loads(sys.argv[2])
torch.set_num_threads(threads)
from recon.pipeline import image_to_3d
from recon.pipeline.recipes import image_config
import recon.pipeline.stage1_nerf as s1
import recon.pipeline.stage2_batch as s2
step1, step2 = s1.Stage1.step, s2.Stage2Batch.step
t = {"n1": 0, "n2": 0}

def timed1(self):
    t["n1"] += 1
    if t["n1"] == 5:
        t["t1"] = time.perf_counter()
    out = step1(self)
    if t["n1"] == 35:
        t["stage1"] = (time.perf_counter() - t["t1"]) / 30
    return out

def timed2(self):
    t["n2"] += 1
    if t["n2"] == 2:
        t["t2"] = time.perf_counter()
    out = step2(self)
    if t["n2"] == 8:
        t["stage2"] = (time.perf_counter() - t["t2"]) / 6
        print(json.dumps({"stage1": t["stage1"], "stage2": t["stage2"]}), flush=True)
        raise SystemExit(0)
    return out

s1.Stage1.step, s2.Stage2Batch.step = timed1, timed2
config = image_config(None, ["stage1.steps=35", *overrides], None)
with tempfile.TemporaryDirectory() as out:
    image_to_3d.reconstruct(str(Path(sys.argv[3])), config, Path(out) / "run")
"""

# (label, torch threads, OMP_WAIT_POLICY or "SPIN<n>" for GOMP_SPINCOUNT=n or None for the runtime's default,
#  stage2.parallel_hypotheses)
GRID = [
    ("1 thread", 1, None, 1),
    ("2 threads, default wait", 2, None, 1),
    ("2 threads, passive wait", 2, "PASSIVE", 1),
    ("2 threads, passive, 2 hypothesis threads", 2, "PASSIVE", 2),
]
SPIN_GRID = [
    ("2 threads, spin 10000, 2 hypothesis threads", 2, "SPIN10000", 2),
    ("2 threads, spin 100000, 2 hypothesis threads", 2, "SPIN100000", 2),
    ("2 threads, default wait, 2 hypothesis threads", 2, None, 2),
]


def measure(threads: int, policy: str | None, parallel: int, overrides: list[str], image: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy and policy.startswith("SPIN"):
        env["GOMP_SPINCOUNT"] = policy[4:]  # spin this many iterations, then sleep (libgomp)
    elif policy:
        env["OMP_WAIT_POLICY"] = policy
    args = [*overrides, f"stage2.parallel_hypotheses={parallel}"]
    out = subprocess.run([sys.executable, "-c", CHILD, str(threads), json.dumps(args), image], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise SystemExit(f"error: the timed run failed:\n{out.stderr[-2000:]}")
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", default=str(ROOT / "data" / "examples" / "crate.png"))
    parser.add_argument("--load", type=int, nargs="+", default=[0, 1], help="busy processes beside each row")
    parser.add_argument("--spin", action="store_true", help="rows with bounded spinning (GOMP_SPINCOUNT) instead")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    print(f"recipe: configs/cpu-demo.yaml {' '.join(args.overrides)}   cores: {os.cpu_count()}   "
          f"{time.strftime('%Y-%m-%d %H:%M')}")
    print("| setting | busy processes | stage 1 s/step | stage 2 s/step | stage 1 / quiet | stage 2 / quiet |")
    print("|---|---:|---:|---:|---:|---:|")
    quiet: dict[str, dict] = {}
    for load in args.load:
        for label, threads, policy, parallel in (SPIN_GRID if args.spin else GRID):
            busy = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(load)]
            try:
                r = measure(threads, policy, parallel, args.overrides, args.image)
            finally:
                for p in busy:
                    p.kill()
                    p.wait()
            if not load:
                quiet[label] = r
            q = quiet.get(label)
            ratios = f"{r['stage1'] / q['stage1']:.2f} | {r['stage2'] / q['stage2']:.2f}" if q else "– | –"
            print(f"| {label} | {load} | {r['stage1']:.3f} | {r['stage2']:.3f} | {ratios} |", flush=True)


if __name__ == "__main__":
    main()
