"""Noise predictions per second of the full-size Zero-1-to-3 and Stable Diffusion priors.

The networks are built from the published configurations (recon.priors.architectures) with random
weights — the same cost as the real weights, nothing downloaded. One *prediction* is one CFG-guided
noise estimate ε_u + s(ε_c − ε_u) for one sample: two network rows, evaluated with every other row
of the batch in ONE network call (the Prior interface's batching). Batches 1/4/8/16 show what
batching K hypotheses × views buys over one call per sample.

    python benchmarks/prior_throughput.py                          # CPU: small latents (8²), fp32 and fp16
    python benchmarks/prior_throughput.py --device cuda --latent 0 # GPU: the models' real sizes (32², 64²)
    python benchmarks/prior_throughput.py --device cuda --latent 0 --channels-last --compile

``--latent 0`` uses each model's real latent size; any other value shrinks the spatial size only
(the architecture stays full-size), which is what makes CPU runs finish.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch

MODELS = ("zero123", "sd21", "sd15")


MODEL_NAMES = {"zero123": "zero123-xl", "sd21": "sd-2.1-base", "sd15": "sd-1.5"}  # recon.priors.random_models


def build_prior(name: str, speed, latent: int, size: str = "full"):
    """A prior of the full-size architecture ``name`` with random weights, prepared with ``speed``.

    ``size="tiny"`` builds the tiny stand-ins of the same layout instead (``benchmarks/gpu_check.py
    --dry-run``). The networks are initialised on the device they run on (seconds on a GPU, not minutes)."""
    from recon.diffusion.schedule import NoiseSchedule
    from recon.priors import architectures as arch
    from recon.priors.random_models import build_image_encoder, build_unet, build_vae, model_configs
    from recon.priors.speed import prepare_module

    configs = model_configs(MODEL_NAMES[name], size)
    schedule = NoiseSchedule.from_config(arch.SD_SCHEDULER)
    unet_cfg = {**configs["unet"], "sample_size": latent or configs["unet"]["sample_size"]}
    with torch.device(speed.torch_device()):
        unet = prepare_module(build_unet(unet_cfg), speed, denoiser=True)
        vae = prepare_module(build_vae(configs["vae"]), speed)
        if name == "zero123":
            from recon.priors.components import ClipImagePreprocess
            from recon.priors.zero123 import Zero123Prior

            encoder = prepare_module(build_image_encoder(configs["image"]), speed)
            dim = int(configs["image"]["projection_dim"])
            projection = prepare_module(torch.nn.Linear(dim + 4, dim), speed)
            side = int(configs["clip_image_size"])
            return Zero123Prior(unet, schedule, vae, encoder, projection, ClipImagePreprocess(side, side),
                                speed=speed)
    from recon.priors.stable_diffusion import StableDiffusionPrior

    return StableDiffusionPrior(unet, schedule, vae, None, None, speed=speed)


def make_condition(name: str, prior, batch: int):
    if name == "zero123":
        image = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(1))
        az = torch.linspace(-180, 180, batch + 1)[:-1]
        cams = torch.stack([torch.full((batch,), 10.0), az, torch.full((batch,), 3.8)], dim=1)
        return prior.condition(image=image, camera=cams)
    dim = int(prior.unet.config.cross_attention_dim)
    g = torch.Generator().manual_seed(2)
    return prior.condition(embeddings=torch.randn(77, dim, generator=g),
                           negative_embeddings=torch.randn(77, dim, generator=g), batch=batch)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(name: str, dtype: str, args) -> list[dict]:
    from recon.priors.speed import SpeedConfig

    speed = SpeedConfig(device=args.device, dtype=dtype, channels_last=args.channels_last, sdpa=not args.no_sdpa,
                        compile=args.compile, compile_backend=getattr(args, "compile_backend", "inductor"))
    device = speed.torch_device()
    t0 = time.perf_counter()
    prior = build_prior(name, speed, args.latent, getattr(args, "size", "full"))
    build_s = time.perf_counter() - t0
    scale = 3.0 if name == "zero123" else 7.5
    rows = []
    for batch in args.batches:
        cond = make_condition(name, prior, batch)
        g = torch.Generator().manual_seed(3)
        x = torch.randn(batch, *prior.sample_shape, generator=g).to(device)
        t = torch.randint(20, 980, (batch,), generator=g).to(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        with torch.no_grad():
            for _ in range(args.warmup):
                prior.predict_noise(x, t, cond, scale)
            sync(device)
            calls0, evals0 = prior.counter.snapshot()
            start = time.perf_counter()
            for _ in range(args.repeats):
                prior.predict_noise(x, t, cond, scale)
            sync(device)
            elapsed = time.perf_counter() - start
        calls, evals = prior.counter.snapshot()
        rows.append({
            "model": name, "dtype": dtype, "batch": batch, "latent": prior.sample_shape[-1],
            "calls_per_step": (calls - calls0) / args.repeats, "rows_per_call": (evals - evals0) / (calls - calls0),
            "ms_per_call": 1000 * elapsed / args.repeats, "predictions_per_s": batch * args.repeats / elapsed,
            "peak_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
            "build_s": build_s,
        })
        print(f"  {name:8} {dtype:8} batch {batch:3d}: {rows[-1]['ms_per_call']:9.1f} ms/call "
              f"{rows[-1]['predictions_per_s']:8.2f} pred/s", flush=True)
    del prior
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return rows


def table(rows: list[dict]) -> str:
    out = ["| model | dtype | latent | batch | network rows / call | ms / call | predictions / s | vs batch 1 |"
           + (" peak GiB |" if rows and rows[0]["peak_gib"] is not None else ""),
           "|---|---|---|---|---|---|---|---|" + ("---|" if rows and rows[0]["peak_gib"] is not None else "")]
    base = {}
    for r in rows:
        key = (r["model"], r["dtype"])
        base.setdefault(key, r["predictions_per_s"] if r["batch"] == 1 else None)
        ratio = r["predictions_per_s"] / base[key] if base.get(key) else float("nan")
        line = (f"| {r['model']} | {r['dtype']} | {r['latent']}² | {r['batch']} | {r['rows_per_call']:.0f} | "
                f"{r['ms_per_call']:.1f} | {r['predictions_per_s']:.2f} | {ratio:.2f}× |")
        if r["peak_gib"] is not None:
            line += f" {r['peak_gib']:.2f} |"
        out.append(line)
    return "\n".join(out)


def dtype_ratios(rows: list[dict], dtypes: list[str]) -> str:
    if len(dtypes) < 2:
        return ""
    a, b = dtypes[0], dtypes[1]
    index = {(r["model"], r["dtype"], r["batch"]): r["predictions_per_s"] for r in rows}
    lines = [f"{b} / {a} throughput:"]
    for (model, dtype, batch), value in index.items():
        if dtype == b and (model, a, batch) in index:
            lines.append(f"  {model} batch {batch}: {value / index[(model, a, batch)]:.2f}×")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="zero123,sd21", help=f"comma-separated from {', '.join(MODELS)}")
    parser.add_argument("--batches", default="1,4,8,16")
    parser.add_argument("--dtypes", default="float32,float16")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--latent", type=int, default=None,
                        help="latent side (0 = the model's real size; default 8 on CPU, 0 on CUDA)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--no-sdpa", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args()
    args.batches = [int(b) for b in args.batches.split(",")]
    if args.threads:
        torch.set_num_threads(args.threads)
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.set_verbosity_error()  # casting random-weight models is expected here
    from recon.priors.speed import SpeedConfig

    device = SpeedConfig(device=args.device).torch_device()
    if args.latent is None:
        args.latent = 0 if device.type == "cuda" else 8
    dtypes = [d for d in args.dtypes.split(",") if d]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"device {device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    rows = []
    for model in args.models.split(","):
        for dtype in dtypes:
            rows += measure(model, dtype, args)
    print()
    print(table(rows))
    print()
    print(dtype_ratios(rows, dtypes))
    if args.json:
        from recon.io.atomic import atomic_write_text

        atomic_write_text(args.json, json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
