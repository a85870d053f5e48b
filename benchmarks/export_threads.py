"""A finished run's export (every hypothesis: clean-up, decimation, UV unwrap, bake, GLB/OBJ/PLY) timed on 1 and
more worker threads in one process, and the files compared byte for byte.

    python benchmarks/export_threads.py out/crate                   # workers 1 and 2, twice each, alternating
    python benchmarks/export_threads.py out/crate --workers 1,2,4 --repeats 3

The run folder is only read (its checkpoints rebuild the surfaces, as ``recon export`` does); the files go to
temporary folders. Ratios within one run are the figures to quote. The last column compares each setting's
files with the run's own ``meshes/`` (what the code that ran it exported).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from recon.pipeline.reexport import load_finished_run
from recon.pipeline.run_outputs import export_hypotheses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a finished run folder (run.json and checkpoints/)")
    parser.add_argument("--workers", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    run, _ = load_finished_run(args.run)
    ks = sorted(run.meshes)
    counts = [int(w) for w in args.workers.split(",")]
    times: dict[int, list[float]] = {w: [] for w in counts}
    files: dict[int, dict[str, bytes]] = {}
    for _ in range(args.repeats):
        for w in counts:  # alternating, so drift on the machine hits every setting alike
            with tempfile.TemporaryDirectory() as d:
                start = time.perf_counter()
                export_hypotheses(ks, [run.meshes[k] for k in ks], run.color_fns, Path(d), run.backend,
                                  run.config.export, run.config.seed, lambda *_: None, workers=w)
                times[w].append(time.perf_counter() - start)
                files[w] = {p.name: p.read_bytes() for p in Path(d).iterdir()}
    base = min(times[counts[0]])
    print(f"{args.run}: {len(ks)} hypotheses, torch threads {torch.get_num_threads()}, best of {args.repeats}")
    own = {p.name: p.read_bytes() for p in (args.run / "meshes").iterdir()}
    print("| export threads | seconds (best) | all runs | vs first | files identical to first | identical to the run's |")
    print("|---:|---:|---|---:|---|---|")
    for w in counts:
        same = files[w] == files[counts[0]]
        theirs = sum(own.get(name) == data for name, data in files[w].items())
        print(f"| {w} | {min(times[w]):.2f} | {', '.join(f'{t:.2f}' for t in times[w])} | "
              f"{base / min(times[w]):.2f}x | {'yes' if same else 'NO'} | {theirs} of {len(files[w])} |")


if __name__ == "__main__":
    main()
