"""Does one ε* give one object in every view? Per-view DDIM endpoints on the exact LibraryPrior.

DSD (the paper's appendix, Fig. 9) assumes that the ODEs a hypothesis follows at different cameras, all
started from its one ε*, end on the same object. This measures it on the embedded prior, where the
answer is checkable: for each family and seed, DDIM (10 steps, the recipe's CFG) from ε* conditioned on
the family's front view at azimuths 0°, 30°, …, 330° (elevation 15°), and at each camera the member
whose render is nearest the endpoint (mean squared error). Views where the members render alike (the
front, where the family is ambiguous by design) are left out: a view counts if its nearest and second
nearest member renders differ by more than ``--min-gap`` in mean squared error.

Printed per family: the share of seeds whose counted views all pick one member, the mean share of a
seed's counted views that agree with its most frequent pick, and the histogram of picks.

    python benchmarks/cross_view_agreement.py [--seeds 32] [--size 32] [--families crate,drum,...]

``--noise sphere`` tests noise that agrees across views (issue 9's first direction, after the noise-warping work
on video): each seed's noise lives on a sphere of ``--radius`` around the object, as a cube map of N(0, 1) texels
(``--texels`` per face side), and a view's noise at a pixel is the sum of the visible texels whose centres project
into it divided by √count, so every pixel is still N(0, 1) and pixels stay independent, while a surface point keeps
its noise from view to view; pixels that see no texel keep the seed's image-plane noise. ``--pairs`` also prints,
per view distance, how often two views of one seed pick the same member.
"""

from __future__ import annotations

import argparse
import math
from collections import Counter

import torch

from recon import seeding
from recon.diffusion.ddim import DDIMGrid, ddim_sample
from recon.priors.library import LibraryPrior, LibraryPriorConfig
from recon.render.cameras import camera_batch
from recon.render.select import select_backend

AZIMUTH_STEP = 30
AZIMUTHS = [float(a) for a in range(0, 360, AZIMUTH_STEP)]


def cube_directions(n: int) -> torch.Tensor:
    """(6 n², 3) unit directions through the texel centres of a cube map with n × n texels per face."""
    u = (torch.arange(n, dtype=torch.float64) + 0.5) / n * 2 - 1
    a, b = torch.meshgrid(u, u, indexing="ij")
    one = torch.ones_like(a)
    faces = [(one, a, b), (-one, a, b), (a, one, b), (a, -one, b), (a, b, one), (a, b, -one)]
    d = torch.stack([torch.stack(f, -1) for f in faces]).reshape(-1, 3)
    return d / d.norm(dim=-1, keepdim=True)


def sphere_noise(texels: torch.Tensor, image_noise: torch.Tensor, cams: torch.Tensor, size: int, radius: float,
                 fovy: float) -> torch.Tensor:
    """texels (C, 6 n²) on the sphere, image_noise (C, S, S), cams (V, 3) (elevation°, azimuth°, distance) ->
    (V, C, S, S): each pixel the normalised sum of the visible texels that project into it."""
    c, count = texels.shape
    dirs = cube_directions(round(math.sqrt(count / 6)))
    points = torch.cat([dirs * radius, torch.ones(count, 1, dtype=dirs.dtype)], 1)
    cam = camera_batch(cams[:, 0], cams[:, 1], cams[:, 2], fovy, size, dtype=torch.float64)
    out = []
    for v in range(len(cams)):
        clip = points @ cam.mvp[v].T
        col = torch.floor((clip[:, 0] / clip[:, 3] + 1) / 2 * size).long()
        row = torch.floor((1 - clip[:, 1] / clip[:, 3]) / 2 * size).long()
        seen = (dirs @ cam.eye[v] > radius) & (row >= 0) & (row < size) & (col >= 0) & (col < size)
        pix = (row * size + col)[seen]
        total = torch.zeros(c, size * size, dtype=texels.dtype).index_add_(1, pix, texels[:, seen])
        n = torch.bincount(pix, minlength=size * size).to(texels.dtype)
        out.append(torch.where(n > 0, total / n.clamp(min=1).sqrt(), image_noise.reshape(c, -1)).reshape(c, size, size))
    return torch.stack(out).float()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=32)
    ap.add_argument("--size", type=int, default=32, help="prior image size (the CPU demo uses 32)")
    ap.add_argument("--elevation", type=float, default=15.0)
    ap.add_argument("--guidance", type=float, default=3.0, help="CFG along the ODE (the prior's default)")
    ap.add_argument("--families", default=None, help="comma-separated (default: every family)")
    ap.add_argument("--min-gap", type=float, default=1e-3)
    ap.add_argument("--noise", choices=["image", "sphere"], default="image",
                    help="image: ε* in every view's image plane (DSD); sphere: ε* on a sphere around the object")
    ap.add_argument("--radius", type=float, default=0.6, help="--noise sphere: the sphere's radius (world units)")
    ap.add_argument("--texels", type=int, default=96, help="--noise sphere: texels per cube-map face side")
    ap.add_argument("--pairs", action="store_true", help="also print agreement by view distance")
    args = ap.parse_args()
    torch.set_num_threads(1)

    prior = LibraryPrior.from_folder(None, select_backend("cpu"), LibraryPriorConfig(image_size=args.size))
    families = args.families.split(",") if args.families else sorted({s.family for s in prior.shapes})
    grid = DDIMGrid.make(prior.schedule, 10)
    cams = torch.tensor([[args.elevation, a, 3.8] for a in AZIMUTHS])
    print("| family | members | counted views | seeds, all views one member | mean agreement with the seed's pick | picks over all counted views |")
    print("|---|---|---|---|---|---|")
    for fam in families:
        idx = [i for i, s in enumerate(prior.shapes) if s.family == fam]
        names = [prior.shapes[i].member for i in idx]
        rgba = prior.input_view(prior.shapes[idx[0]].name, 256)
        image = (rgba[:3] * rgba[3:] + (1 - rgba[3:]))[None]
        cond = prior.condition(image=image, camera=cams)
        renders = prior.views(cams)[:, idx]  # (V, M, 3, S, S)
        gaps = ((renders[:, :, None] - renders[:, None]) ** 2).flatten(3).mean(3)  # (V, M, M)
        gaps = gaps + torch.eye(len(idx)) * 1e9
        counted = [v for v in range(len(AZIMUTHS)) if float(gaps[v].min()) > args.min_gap]
        all_one, agree, picks, pairs = 0, [], Counter(), {}
        for s in range(args.seeds):
            eps = seeding.eps_star(s, 0, prior.sample_shape).expand(len(AZIMUTHS), -1, -1, -1).clone()
            if args.noise == "sphere":
                g = seeding.generator(s, 0, "sphere_noise")
                texels = torch.randn(eps.shape[1], 6 * args.texels ** 2, generator=g, dtype=torch.float64)
                eps = sphere_noise(texels, eps[0].double(), cams, args.size, args.radius, prior.config.fovy)
            x, _ = ddim_sample(prior, eps, cond, grid, args.guidance)
            every = ((renders - x[:, None]) ** 2).flatten(2).mean(2).argmin(1).tolist()
            pick = [every[v] for v in counted]
            for i, a in enumerate(counted):
                for b in counted[i + 1:]:
                    gap = min(b - a, len(AZIMUTHS) - (b - a)) * AZIMUTH_STEP
                    pairs.setdefault(gap, []).append(every[a] == every[b])
            _, n = Counter(pick).most_common(1)[0]
            all_one += n == len(pick)
            agree.append(n / len(pick))
            picks.update(names[p] for p in pick)
        hist = ", ".join(f"{m} {picks[m]}" for m in names)
        print(f"| {fam} | {len(names)} | {len(counted)} of {len(AZIMUTHS)} | {all_one}/{args.seeds} | "
              f"{sum(agree) / len(agree):.2f} | {hist} |")
        if args.pairs:
            print("|  | same pick, views apart: " + ", ".join(f"{g}° {sum(v) / len(v):.2f}" for g, v in sorted(pairs.items()))
                  + " | | | | |")


if __name__ == "__main__":
    main()
