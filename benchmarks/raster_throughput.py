"""Rasteriser throughput: ms per frame for rasterize + interpolate (vertex colours) + antialias.

CPU rasteriser at 64/128/256 square for tori of 1k/10k/50k faces, forward only and forward + backward
(gradients to vertex positions and colours); nvdiffrast on CUDA as well where CUDA and nvdiffrast exist.
Each figure is the median over repeats of a batch of 4 views, divided by 4. The CPU backend runs twice,
interleaved per cell: its compiled loops (the default on CPU tensors) and its plain torch ops
(``CpuRasterizer(compiled=False)``, the path other devices take), with the ratio.

    python benchmarks/raster_throughput.py [--threads 1] [--repeats 5]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from recon.render.cameras import camera_batch, to_clip
from recon.render.cpu import CpuRasterizer
from recon.render.select import nvdiffrast_available

FACES = {"1k": (25, 20), "10k": (100, 50), "50k": (250, 100)}  # (ring, tube) quads -> 2 * n * m faces
RESOLUTIONS = (64, 128, 256)
VIEWS = 4


def torus(n: int, m: int, big: float = 0.5, small: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    u = torch.arange(n) * 2 * math.pi / n
    v = torch.arange(m) * 2 * math.pi / m
    uu, vv = torch.meshgrid(u, v, indexing="ij")
    ring = big + small * torch.cos(vv)
    verts = torch.stack([ring * torch.cos(uu), small * torch.sin(vv), ring * torch.sin(uu)], -1).reshape(-1, 3)
    i, j = torch.meshgrid(torch.arange(n), torch.arange(m), indexing="ij")
    a = i * m + j
    b = ((i + 1) % n) * m + j
    c = ((i + 1) % n) * m + (j + 1) % m
    d = i * m + (j + 1) % m
    faces = torch.cat([torch.stack([a, b, c], -1).reshape(-1, 3), torch.stack([a, c, d], -1).reshape(-1, 3)])
    return verts.float(), faces


def frame_ms(backend, verts, faces, cams, res: int, backward: bool, repeats: int, device: str) -> float:
    verts = verts.to(device)
    faces = faces.to(device)
    colors = (verts - verts.min(0).values) / (verts.max(0).values - verts.min(0).values)
    mvp = cams.mvp.to(device)

    def once():
        v = verts.clone().requires_grad_(backward)
        col = colors.clone().requires_grad_(backward)
        clip = to_clip(v, mvp)
        rast, _ = backend.rasterize(clip, faces, (res, res))
        img, _ = backend.interpolate(col, rast, faces)
        out = backend.antialias(img, rast, clip, faces)
        if backward:
            out.sum().backward()
        if device == "cuda":
            torch.cuda.synchronize()

    once()  # warm-up (and nvdiffrast's plugin build)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        once()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000 / VIEWS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cams = camera_batch([0, 30, -20, 60], [0, 100, 200, 300], 2.2, 40, 64)
    backends = [("cpu", CpuRasterizer(), "cpu")]
    torch_ops = CpuRasterizer(compiled=False)
    if nvdiffrast_available():
        from recon.render.nvdiffrast_backend import NvdiffrastRasterizer

        backends.append(("cuda", NvdiffrastRasterizer(), "cuda"))
    print(f"torch {torch.__version__}, {args.threads} thread(s), {VIEWS} views per batch, median of "
          f"{args.repeats}; ms per frame (rasterize + interpolate + antialias)")
    for name, backend, device in backends:
        print(f"\nbackend {name}")
        extra = f" {'torch fwd':>10} {'torch f+b':>10} {'fwd x':>6} {'f+b x':>6}" if name == "cpu" else ""
        print(f"{'faces':>6} {'res':>5} {'forward ms':>11} {'fwd+bwd ms':>11} {'fwd vs 64²':>11}{extra}")
        for label, (n, m) in FACES.items():
            verts, faces = torus(n, m)
            base = None
            for res in RESOLUTIONS:
                fwd = frame_ms(backend, verts, faces, cams, res, False, args.repeats, device)
                bwd = frame_ms(backend, verts, faces, cams, res, True, args.repeats, device)
                base = base or fwd
                row = f"{label:>6} {res:>4}² {fwd:>11.2f} {bwd:>11.2f} {fwd / base:>10.2f}x"
                if name == "cpu":
                    tf = frame_ms(torch_ops, verts, faces, cams, res, False, args.repeats, device)
                    tb = frame_ms(torch_ops, verts, faces, cams, res, True, args.repeats, device)
                    row += f" {tf:>10.2f} {tb:>10.2f} {tf / fwd:>5.1f}x {tb / bwd:>5.1f}x"
                print(row, flush=True)


if __name__ == "__main__":
    main()
