"""Prior evaluations per optimisation step for each distiller, over one run on the DSD schedule.

Every method optimises the same K images for the same number of steps with t annealed from 0.98 to
0.02 (DSD's schedule) and CFG s = 7.5 on the main term. Counts come from the prior's own counter:
an *eval* is one noise prediction of one sample on one CFG branch; a *call* is one batched network
forward. Each method runs in a fresh process so its wall time and peak RSS are its own.

    python benchmarks/distill_cost.py --threads 1        # analytic prior: exact counts, fast
    python benchmarks/distill_cost.py --prior unet       # a random-weight UNet: counts + real network time
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time

import torch

# (label, method, trajectory cache, where DSD reads ε_ode)
CASES = [
    ("SDS (CFG)", "sds", True, "grid"),
    ("ASD", "asd", True, "grid"),
    ("SDI", "sdi", True, "grid"),
    ("Consistent3D", "consistent3d", True, "grid"),
    ("DSD, cached", "dsd", True, "grid"),
    ("DSD, cached, ODE to t₊ (Alg. 3)", "dsd", True, "t_plus"),
    ("DSD, no cache (authors')", "dsd", False, "grid"),
]


def make_prior(kind: str):
    from recon.priors import GaussianMixturePrior

    if kind == "gmm":
        return GaussianMixturePrior.pictures(4, 16, default_guidance_scale=7.5)
    from diffusers import UNet2DConditionModel

    from recon.diffusion import NoiseSchedule
    from recon.priors.diffusers_unet import DiffusersUNetPrior

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=32, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=64, attention_head_dim=8, norm_num_groups=16,
    )
    return DiffusersUNetPrior(unet, NoiseSchedule.scaled_linear(), default_guidance_scale=7.5)


def condition(prior, k):
    from recon.priors import GaussianMixturePrior

    if isinstance(prior, GaussianMixturePrior):
        return prior.condition(weights=[0.55, 0.15, 0.15, 0.15], batch=k)
    return prior.condition(embeddings=torch.randn(1, 8, 64, generator=torch.Generator().manual_seed(0)), batch=k)


def run_case(kind: str, method: str, cache: bool, target: str, steps: int, k: int, threads: int, queue) -> None:
    if threads > 0:
        # The analytic prior's tensors are tiny: thread hand-offs, not arithmetic, would be timed.
        torch.set_num_threads(threads)
    from recon.diffusion import TimestepConfig
    from recon.distill import DistillConfig, build_distiller, optimize_image

    prior = make_prior(kind)
    cond = condition(prior, k)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    config = DistillConfig(method=method, cache=cache, ode_target=target, guidance_scale=7.5,  # type: ignore[arg-type]
                           timesteps=TimestepConfig(kind="anneal", t_max=0.98, t_min=0.02, total_steps=steps))
    init = torch.zeros(prior.sample_shape, dtype=prior.dtype)
    # Untimed warm-up (first-call allocations, kernel selection) on a throwaway distiller.
    optimize_image(prior, build_distiller(prior, config), init, 3, list(range(k)), cond, lr=0.05, optimizer="adam")
    prior.counter.calls = prior.counter.evals = 0
    distiller = build_distiller(prior, config)
    start = time.perf_counter()
    result = optimize_image(prior, distiller, init, steps, list(range(k)), cond, lr=0.05, optimizer="adam")
    seconds = time.perf_counter() - start
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put(dict(evals=result.evals, calls=result.calls, seconds=seconds, peak_mb=rss1 / 1024,
                   extra_mb=(rss1 - rss0) / 1024))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prior", choices=["gmm", "unet"], default="gmm")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--hypotheses", type=int, default=1, help="images optimised together (K)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per case (0: torch's default)")
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    rows = []
    for label, method, cache, target in CASES:
        queue = ctx.Queue()
        proc = ctx.Process(target=run_case, args=(args.prior, method, cache, target, args.steps, args.hypotheses, args.threads, queue))
        proc.start()
        stats = queue.get()
        proc.join()
        rows.append((label, stats))
    sds = rows[0][1]
    k, n = args.hypotheses, args.steps
    threads = args.threads or torch.get_num_threads()
    print(f"prior={args.prior}  steps={n}  K={k}  threads={threads}  CFG 7.5  t: 0.98 -> 0.02 (DSD schedule)")
    print("| method | evals/step/hyp | calls/step | evals vs SDS | wall s | ms/step | wall vs SDS | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, s in rows:
        print(f"| {label} | {s['evals'] / n / k:.3f} | {s['calls'] / n:.3f} | {s['evals'] / sds['evals']:.2f}x "
              f"| {s['seconds']:.2f} | {1000 * s['seconds'] / n:.2f} | {s['seconds'] / sds['seconds']:.2f}x "
              f"| {s['peak_mb']:.0f} |")


if __name__ == "__main__":
    main()
