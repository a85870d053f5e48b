"""The quick start (``recon run data/examples/crate.png``) timed per stage, against a baseline commit, in one run.

Every configuration runs ``python -m recon run`` in a fresh process whose working directory is the tree
being measured (the working tree, or a temporary ``git worktree`` of ``--baseline``), so each imports its
own ``recon``. Absolute times move between machines and with whatever else runs on them; the ratios
printed at the end (baseline / current, loaded / quiet) are the figures to quote.

    python benchmarks/pipeline_cpu.py --baseline dea1aeb            # quick start: current vs dea1aeb
    python benchmarks/pipeline_cpu.py --baseline dea1aeb 4b51704    # ... and vs a second commit
    python benchmarks/pipeline_cpu.py --baseline dea1aeb --load 1   # ... and current beside 1 busy process
    python benchmarks/pipeline_cpu.py --methods dsd-commit sds --hypotheses 1 4   # current tree only

Per row: wall time of each stage (from the run's ``run.json``), the whole command's wall time (imports
included), peak RSS of the process, prior rows per step of each stage, and torch's thread count. Each
baseline's meshes, textures and figures (every ``meshes/*`` file, contact sheet, turntables) are also
compared byte for byte with the current run's: "identical" means a speed-up changed no output at all.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# A competing CPU-bound process: one Python thread spinning (what "one other CPU-bound process" means).
SPIN = "x = 0\nwhile True:\n    x += 1\n"


@dataclass
class Row:
    label: str
    seconds: float
    peak_mb: float
    stages: dict
    threads: int | str


def worktree(commit: str, parent: Path) -> Path:
    path = parent / f"baseline-{commit}"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), commit],
                   check=True, capture_output=True)
    return path


def run_once(label: str, tree: Path, image: str, args: list[str], out_root: Path) -> Row:
    """One ``recon run`` in a child process rooted at ``tree``; wall time and the child's own peak RSS."""
    out = out_root / label.replace(" ", "_").replace("/", "_")
    cmd = [sys.executable, "-m", "recon", "run", image, "--out", str(out), "--quiet", *args]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=tree, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    output = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"error: {label} failed in {tree}:\n{output}")
    record = json.loads((out / "run.json").read_text())
    steps = {"stage1_nerf": record.get("config", {}).get("stage1", {}).get("steps"),
             "stage2_dmtet": record.get("config", {}).get("stage2", {}).get("steps")}
    stages = {}
    for st in record["stages"]:
        n = steps.get(st["name"])
        evals = st.get("prior_evals")
        stages[st["name"]] = {"seconds": st["seconds"], "prior_evals": evals,
                              "rows_per_step": (evals / n) if (evals is not None and n) else None}
    threads = record.get("device", {}).get("torch_threads", "?") if isinstance(record.get("device"), dict) else "?"
    return Row(label, seconds, usage.ru_maxrss / 1024, stages, threads)


def output_digests(out: Path) -> dict[str, str]:
    """sha256 of the run's meshes, textures and figures (not run.json, checkpoints or the HTML index)."""
    files = [*out.glob("meshes/*"), *out.glob("*.png"), *out.glob("*.gif")]
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(files)}


def spinners(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(n)]


def fmt(value, spec: str = ".1f") -> str:
    return "–" if value is None else format(value, spec)


def table(rows: list[Row]) -> None:
    print("| run | stage 1 s | stage 2 s | export s | report s | command s | rows/step (1 / 2) | peak RSS MB "
          "| threads |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        def get(name: str, key: str, r: Row = r):
            return r.stages.get(name, {}).get(key)

        print(f"| {r.label} | {fmt(get('stage1_nerf', 'seconds'))} | {fmt(get('stage2_dmtet', 'seconds'))} "
              f"| {fmt(get('export', 'seconds'))} | {fmt(get('report', 'seconds'))} | {r.seconds:.1f} "
              f"| {fmt(get('stage1_nerf', 'rows_per_step'), '.2f')} / {fmt(get('stage2_dmtet', 'rows_per_step'), '.2f')} "
              f"| {r.peak_mb:.0f} | {r.threads} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", default="data/examples/crate.png", help="input, relative to each tree")
    parser.add_argument("--baseline", nargs="+", default=[], metavar="COMMIT",
                        help="also time the quick start at these commits")
    parser.add_argument("--load", type=int, default=0, metavar="N",
                        help="also time the current tree beside N competing CPU-bound processes")
    parser.add_argument("--methods", nargs="+", default=[], help="extra current-tree rows, one per method")
    parser.add_argument("--hypotheses", nargs="+", type=int, default=[], help="extra rows, one per K")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="applied to the current tree's runs only")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = parser.parse_args()

    current_args = [a for kv in args.overrides for a in ("--set", kv)]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="recon-pipeline-cpu-") as tmp:
        tmp_path = Path(tmp)
        base_trees = {c: worktree(c, tmp_path) for c in args.baseline}
        same: dict[str, str] = {}
        try:
            print(f"input: {args.image}   cores: {os.cpu_count()}   python: {sys.executable}", flush=True)
            for commit, tree in base_trees.items():
                rows.append(run_once(f"baseline {commit}", tree, args.image, [], tmp_path))
            rows.append(run_once("current", ROOT, args.image, current_args, tmp_path))
            mine = output_digests(tmp_path / "current")
            for commit in base_trees:
                theirs = output_digests(tmp_path / f"baseline_{commit}")
                equal = sum(theirs.get(k) == v for k, v in mine.items())
                same[commit] = f"{equal} of {len(mine)} output files byte-identical"
            if args.load:
                busy = spinners(args.load)
                try:
                    rows.append(run_once(f"current, {args.load} busy", ROOT, args.image, current_args, tmp_path))
                finally:
                    for p in busy:
                        p.kill()
                        p.wait()
            for method in args.methods:
                for k in args.hypotheses or [4]:
                    rows.append(run_once(f"{method} K={k}", ROOT, args.image,
                                         [*current_args, "--set", f"distill.method={method}", "--hypotheses", str(k)],
                                         tmp_path))
        finally:
            for tree in base_trees.values():
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                               capture_output=True)
    table(rows)
    by = {r.label: r for r in rows}
    cur = by["current"]
    for commit in args.baseline:
        base = by[f"baseline {commit}"]
        print(f"\nspeed-up of the quick start, {commit} / current: {base.seconds / cur.seconds:.2f}x "
              f"({base.seconds:.0f} s -> {cur.seconds:.0f} s); {same[commit]}")
        for name in ("stage1_nerf", "stage2_dmtet", "export"):
            b, c = base.stages.get(name, {}).get("seconds"), cur.stages.get(name, {}).get("seconds")
            if b and c:
                print(f"  {name}: {b / c:.2f}x ({b:.0f} s -> {c:.0f} s)")
    if args.load:
        loaded = by[f"current, {args.load} busy"]
        print(f"loaded / quiet ({args.load} competing process): {loaded.seconds / cur.seconds:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps([r.__dict__ for r in rows], indent=1))


if __name__ == "__main__":
    main()
