"""Wall time, peak memory and prior evaluations per stage of ``recon run`` with a recipe.

Each configuration runs in a fresh process (peak RSS is its own) on the same input.

    python benchmarks/pipeline_cpu.py                                   # CPU demo recipe, DSD vs SDS
    python benchmarks/pipeline_cpu.py --methods dsd --hypotheses 1 4    # cost of batching K hypotheses
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def one_run(image: str, method: str, k: int, threads: int, overrides: list[str], queue) -> None:
    import torch

    from recon.pipeline.image_to_3d import reconstruct
    from recon.pipeline.recipes import image_config

    if threads:
        torch.set_num_threads(threads)
    config = image_config(None, [*overrides, f"distill.method={method}"], None, hypotheses=k)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = reconstruct(image, config, Path(out) / "run")
        total = time.perf_counter() - start
        record = json.loads(result.run_json.read_text())
    queue.put({"total": total, "stages": record["stages"], "threads": torch.get_num_threads(),
               "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", default=str(ROOT / "data" / "examples" / "crate.png"))
    parser.add_argument("--methods", nargs="+", default=["dsd", "sds"])
    parser.add_argument("--hypotheses", nargs="+", type=int, default=[4])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    print(f"recipe: configs/cpu-demo.yaml {' '.join(args.overrides)}  input: {Path(args.image).name}")
    print("| method | K | stage 1 s | stage 2 s | export s | report s | total s | prior evals (1 / 2) | peak RSS MB | threads |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for method in args.methods:
        for k in args.hypotheses:
            queue = ctx.Queue()
            proc = ctx.Process(target=one_run, args=(args.image, method, k, args.threads, args.overrides, queue))
            proc.start()
            r = queue.get()
            proc.join()
            s = {st["name"]: st for st in r["stages"]}
            print(f"| {method} | {k} | {s['stage1_nerf']['seconds']:.1f} | {s['stage2_dmtet']['seconds']:.1f} "
                  f"| {s['export']['seconds']:.1f} | {s['report']['seconds']:.1f} | {r['total']:.1f} "
                  f"| {s['stage1_nerf']['prior_evals']} / {s['stage2_dmtet']['prior_evals']} "
                  f"| {r['peak_mb']:.0f} | {r['threads']} |", flush=True)


if __name__ == "__main__":
    main()
