"""Stage-1 (coarse NeRF) step cost on the CPU: ms per optimisation step and peak memory.

One step = occupancy refresh when due (every 16 steps) + reference-view rays (RGB, mask, opacity) + V guidance views
per hypothesis at random cameras with normals (normal smoothness, sparsity, opacity) + backward + Adam.
The guidance callback is a trivial MSE, so the figures exclude any prior / distiller: they are the
3D engine's own cost. Every configuration runs in a fresh subprocess (so peak RSS is its own), warms up
for ``--warmup`` steps and reports the median of ``--steps`` timed steps, with the field evaluations
(samples) per step and the load average around the measurement (other jobs on the machine inflate
the figures).

    python benchmarks/nerf_step.py [--threads 1 2] [--steps 20] [--warmup 6]

``--library-run N`` instead runs a whole stage 1 (N steps, K = 4, 64², one guidance view per
hypothesis) guided by DSD over the built-in ``LibraryPrior`` (the CPU demo's prior) and prints the
wall time, the part spent in the guidance callback (prior + distiller) and the mesh per hypothesis:

    python benchmarks/nerf_step.py --library-run 300 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

CONFIGS = [  # (resolution, K, views per hypothesis, early-termination transmittance)
    (64, 1, 1, 0.0),
    (64, 4, 1, 0.0),
    (128, 1, 1, 0.0),
    (128, 4, 1, 0.0),
    (64, 4, 4, 0.0),
    (64, 4, 1, 1e-3),
]


def _disc_rgba(size: int):
    import torch

    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    c = (size - 1) / 2
    disc = (((yy - c) ** 2 + (xx - c) ** 2) < (0.3 * size) ** 2).float()
    rgba = torch.ones(4, size, size)
    rgba[0] = 1 - 0.6 * disc
    rgba[1] = 1 - 0.2 * disc
    rgba[3] = disc
    return rgba


def child(res: int, k: int, views: int, min_t: float, threads: int, steps: int, warmup: int, samples: int,
          rays: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from recon.pipeline.known_views import KnownViews
    from recon.pipeline.stage1_config import Stage1Config
    from recon.pipeline.stage1_nerf import Stage1

    cfg = Stage1Config(steps=10**6, resolutions=[res], batch_sizes=[views], milestones=[], reference_rays=rays)
    cfg.volume.samples_per_ray = samples
    cfg.volume.min_transmittance = min_t

    def guidance(rgb, cameras, step):
        return (rgb - 0.5).square().mean()

    stage = Stage1(cfg, KnownViews.from_image(_disc_rgba(res)), hypotheses=k, guidance=guidance)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(warmup):
        stage.step()
    load0 = os.getloadavg()[0]
    times, evals = [], []
    for _ in range(steps):
        r = stage.step()
        times.append(r.seconds)
        evals.append(r.samples)
    load1 = os.getloadavg()[0]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"res": res, "k": k, "views": views, "min_t": min_t, "threads": threads, "ms": 1e3 * statistics.median(times),
            "ms_min": 1e3 * min(times), "samples": int(statistics.median(evals)), "peak_mib": peak / 1024,
            "setup_mib": rss0 / 1024, "load": (load0, load1)}


def library_run(steps: int, threads: int, k: int = 4) -> None:
    import torch

    torch.set_num_threads(threads)
    from recon.diffusion.timesteps import TimestepConfig
    from recon.distill.base import DistillConfig, Hypothesis, sd_loss
    from recon.distill.factory import build_distiller
    from recon.pipeline.known_views import KnownViews
    from recon.pipeline.stage import run_stage
    from recon.pipeline.stage1_config import Stage1Config
    from recon.pipeline.stage1_nerf import Stage1
    from recon.priors.library import LibraryPrior
    from recon.render.cpu import CpuRasterizer
    from recon.scene.isosurface import extract_mesh

    prior = LibraryPrior.from_folder(None, CpuRasterizer())
    rgba = prior.input_view(prior.names[0], 64)
    image = rgba[None, :3]
    distiller = build_distiller(prior, DistillConfig(
        method="dsd", timesteps=TimestepConfig(kind="anneal", t_min=0.02, t_max=0.98, total_steps=steps)))
    state = distiller.init_state([Hypothesis(0, i) for i in range(k)])
    spent = [0.0]

    def guidance(rgb, cameras, step):
        start = time.perf_counter()
        x = prior.encode(rgb)
        cond = prior.condition(image=image, camera=torch.stack([cameras.elevation, cameras.azimuth,
                                                                cameras.distance], -1))
        rows = torch.arange(k).repeat_interleave(rgb.shape[0] // k)  # hypothesis-major batch
        grad = distiller.grad(x, step, cond, state.for_rows(rows)).grad
        spent[0] += time.perf_counter() - start
        return sd_loss(x, grad)

    cfg = Stage1Config(steps=steps, resolutions=[64], batch_sizes=[1], milestones=[], reference_rays=1024)
    cfg.volume.samples_per_ray = 32
    stage = Stage1(cfg, KnownViews.from_image(rgba), hypotheses=k, guidance=guidance)
    load0 = os.getloadavg()[0]
    start = time.perf_counter()
    run_stage(stage)
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    meshes = [extract_mesh(stage.field.density_fn(i), 7.5, resolution=96, color_fn=stage.field.color_fn(i))
              for i in range(k)]
    extract = time.perf_counter() - start
    print(f"stage 1, LibraryPrior ({prior.names[0]!r} input) + DSD, K={k}, 64², {steps} steps, {threads} thread(s): "
          f"{seconds:.1f} s, of which guidance {spent[0]:.1f} s; marching cubes for {k} meshes {extract:.1f} s; "
          f"faces per hypothesis {[m.num_faces for m in meshes]}; load average {load0:.1f}–{os.getloadavg()[0]:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=6)
    ap.add_argument("--samples", type=int, default=32, help="samples per ray")
    ap.add_argument("--rays", type=int, default=1024, help="reference rays per hypothesis per step")
    ap.add_argument("--library-run", type=int, default=0, metavar="STEPS",
                    help="run a whole stage 1 with LibraryPrior + DSD instead (first --threads value)")
    ap.add_argument("--child", type=str, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.library_run:
        library_run(args.library_run, args.threads[0])
        return
    if args.child:
        res, k, views, min_t, threads = args.child.split(",")
        print(json.dumps(child(int(res), int(k), int(views), float(min_t), int(threads), args.steps, args.warmup,
                               args.samples, args.rays)))
        return
    print(f"stage-1 step on the CPU: {args.samples} samples/ray, {args.rays} reference rays/hypothesis, "
          f"median of {args.steps} steps after {args.warmup} warm-up steps")
    print("| render | K | views/hyp | early stop T | threads | ms/step (median) | min | × K=1 step | field evals/step "
          "| peak RSS MiB | load avg |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    base: dict[tuple[int, int], float] = {}
    for threads in args.threads:
        for res, k, views, min_t in CONFIGS:
            cmd = [sys.executable, __file__, "--child", f"{res},{k},{views},{min_t},{threads}", "--steps", str(args.steps),
                   "--warmup", str(args.warmup), "--samples", str(args.samples), "--rays", str(args.rays)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            if k == 1 and views == 1 and min_t == 0:
                base[(res, threads)] = r["ms"]
            ratio = r["ms"] / base[(res, threads)] if (res, threads) in base else float("nan")
            print(f"| {res}² | {k} | {views} | {min_t:g} | {threads} | {r['ms']:.0f} | {r['ms_min']:.0f} | {ratio:.2f} "
                  f"| {r['samples']} | {r['peak_mib']:.0f} | {r['load'][0]:.1f}–{r['load'][1]:.1f} |", flush=True)


if __name__ == "__main__":
    main()
