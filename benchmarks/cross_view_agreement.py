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
"""

from __future__ import annotations

import argparse
from collections import Counter

import torch

from recon import seeding
from recon.diffusion.ddim import DDIMGrid, ddim_sample
from recon.priors.library import LibraryPrior, LibraryPriorConfig
from recon.render.select import select_backend

AZIMUTHS = [float(a) for a in range(0, 360, 30)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=32)
    ap.add_argument("--size", type=int, default=32, help="prior image size (the CPU demo uses 32)")
    ap.add_argument("--elevation", type=float, default=15.0)
    ap.add_argument("--guidance", type=float, default=3.0, help="CFG along the ODE (the prior's default)")
    ap.add_argument("--families", default=None, help="comma-separated (default: every family)")
    ap.add_argument("--min-gap", type=float, default=1e-3)
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
        all_one, agree, picks = 0, [], Counter()
        for s in range(args.seeds):
            eps = seeding.eps_star(s, 0, prior.sample_shape).expand(len(AZIMUTHS), -1, -1, -1).clone()
            x, _ = ddim_sample(prior, eps, cond, grid, args.guidance)
            pick = ((renders - x[:, None]) ** 2).flatten(2).mean(2).argmin(1)[counted].tolist()
            _, n = Counter(pick).most_common(1)[0]
            all_one += n == len(pick)
            agree.append(n / len(pick))
            picks.update(names[p] for p in pick)
        hist = ", ".join(f"{m} {picks[m]}" for m in names)
        print(f"| {fam} | {len(names)} | {len(counted)} of {len(AZIMUTHS)} | {all_one}/{args.seeds} | "
              f"{sum(agree) / len(agree):.2f} | {hist} |")


if __name__ == "__main__":
    main()
