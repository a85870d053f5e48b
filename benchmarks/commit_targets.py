"""Which member does each hypothesis's anchor ODE choose? The answer ``dsd-commit`` is meant to commit to.

``dsd-commit`` makes hypothesis k follow one ODE: DDIM from ε*_k conditioned on the input view, at the
anchor camera (``distill.anchor``, default elevation 30°, azimuth 135°). On the exact ``LibraryPrior`` its
endpoint is an image whose nearest member render (mean squared error at the anchor) names the member that
ε*_k chose — known before any 3D work. Printed per family: each seed's K choices, the gap between the
nearest and the second-nearest member (how decisive the endpoint is), and the histogram over all seeds.
``recon bench``'s assignments can be compared with these choices: a committed method reproduces them,
an averaging one does not.

    python benchmarks/commit_targets.py [--seeds 0-2] [-k 4] [--families board,...] [--seed-noise antithetic]
        [--json FILE]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import torch

from recon.diffusion.ddim import DDIMGrid, ddim_sample
from recon.distill import DistillConfig, Hypothesis, build_distiller
from recon.priors.library import LibraryPrior, LibraryPriorConfig
from recon.render.select import select_backend


def parse_seeds(text: str) -> list[int]:
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in text.split(",")]


def anchor_choices(prior: LibraryPrior, family: str, seeds: list[int], k: int, anchor: tuple[float, float],
                   distance: float, ode_steps: int, guidance: float, seed_noise: str = "independent") -> dict:
    """{seed: [(member, gap), ...] per hypothesis} and the member names of ``family``."""
    idx = [i for i, s in enumerate(prior.shapes) if s.family == family]
    names = [prior.shapes[i].member for i in idx]
    rgba = prior.input_view(prior.shapes[idx[0]].name, 256)
    image = (rgba[:3] * rgba[3:] + (1 - rgba[3:]))[None]
    cams = torch.tensor([[anchor[0], anchor[1], distance]] * k)
    cond = prior.condition(image=image, camera=cams)
    renders = prior.views(cams[:1])[0, idx]  # (M, 3, S, S)
    grid = DDIMGrid.make(prior.schedule, ode_steps)
    # The run's own ε* (distill.seed_noise decides how the K are drawn).
    distiller = build_distiller(prior, DistillConfig(method="dsd", seed_noise=seed_noise))
    out = {}
    for s in seeds:
        eps = distiller.init_state([Hypothesis(s, j) for j in range(k)]).eps_star[:, 0]
        x, _ = ddim_sample(prior, eps, cond, grid, guidance)
        err = ((renders[None] - x[:, None]) ** 2).flatten(2).mean(2)  # (K, M)
        two = err.topk(2, dim=1, largest=False)
        out[s] = [(names[int(two.indices[j, 0])], float(two.values[j, 1] - two.values[j, 0])) for j in range(k)]
    return {"members": names, "choices": out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0-2")
    ap.add_argument("-k", "--hypotheses", type=int, default=4)
    ap.add_argument("--size", type=int, default=32, help="prior image size (the CPU demo uses 32)")
    ap.add_argument("--anchor", default="30,135", help="elevation,azimuth in degrees (distill.anchor)")
    ap.add_argument("--distance", type=float, default=3.8)
    ap.add_argument("--ode-steps", type=int, default=10, help="distill.ode_steps")
    ap.add_argument("--guidance", type=float, default=3.0, help="CFG along the ODE (the prior's default)")
    ap.add_argument("--families", default=None, help="comma-separated (default: every family)")
    ap.add_argument("--library", type=Path, default=None, help="a library folder (default: data/library)")
    ap.add_argument("--json", type=Path, default=None, help="also write the choices as JSON")
    ap.add_argument("--seed-noise", default="independent", choices=["independent", "antithetic"],
                    help="distill.seed_noise: how the K seed noises of a run are drawn")
    ap.add_argument("--zero-snr", action="store_true", help="the library prior's zero-terminal-SNR schedule "
                    "(prior.library.zero_terminal_snr)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    anchor = tuple(float(v) for v in args.anchor.split(","))
    prior = LibraryPrior.from_folder(args.library, select_backend("cpu"), LibraryPriorConfig(image_size=args.size, zero_terminal_snr=args.zero_snr))
    families = args.families.split(",") if args.families else sorted({s.family for s in prior.shapes})
    seeds = parse_seeds(args.seeds)
    print(f"anchor ODE endpoints: elevation {anchor[0]}°, azimuth {anchor[1]}°, {args.ode_steps} DDIM steps, "
          f"CFG {args.guidance}, {args.size}² prior, K = {args.hypotheses}"
          + (", zero terminal SNR" if args.zero_snr else "") + f", seed noise {args.seed_noise}")
    print("| family | seed | member chosen by ε*_k (gap to 2nd nearest, MSE) | distinct |")
    print("|---|---|---|---|")
    report = {}
    for fam in families:
        res = anchor_choices(prior, fam, seeds, args.hypotheses, anchor, args.distance, args.ode_steps,
                             args.guidance, args.seed_noise)
        report[fam] = res
        hist = Counter()
        for s, picks in res["choices"].items():
            hist.update(m for m, _ in picks)
            cells = ", ".join(f"{m} ({g:.3f})" for m, g in picks)
            print(f"| {fam} | {s} | {cells} | {len({m for m, _ in picks})}/{len(res['members'])} |")
        print(f"| {fam} | all | " + ", ".join(f"{m} {hist[m]}" for m in res["members"]) + " | |")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
