"""Does the toy Zero-1-to-3 model the toy world's ambiguity? DDIM samples of the backs, from the front view.

For each family of the shape library, the front view (what every member of the family looks like from the
input camera) conditions DDIM samples at back views (default azimuths 120°, 180°, 240° at elevation 0) from
many seeds. Seed s uses the same starting noise ε*_s (``recon.seeding.eps_star(s, 0, ...)``) at every
azimuth, as one DSD hypothesis does. Each decoded sample (32², RGB in [0, 1]) is compared with every library
member's render at the same camera (the renders the model was trained on: ``recon.train.toy_data``):

- distance = RMSE over pixels and channels, in [0, 1] units;
- **in family**: the nearest render over the whole library belongs to the input's family;
- **near**: in family and within ``--threshold`` of that render (default 0.10: about 3x the autoencoder's
  own reconstruction RMSE of the renders, 0.032; the smallest member-to-member distances within a family
  at each camera are printed beside it, since some backs differ by less than that);
- **decisive**: in family and nearer to its member m than half the distance from m to m's closest sibling
  at that camera, so (triangle inequality) nearer to m than to any other member — the sample depicts m;
- **nearest member, all samples**: how all samples spread over the family's members (nearest within the
  family, whatever the distance) — the distribution over members;
- **members hit**: members with at least one near sample;
- **same member at all azimuths**: the share of seeds whose nearest member is the same at every azimuth (one
  object per ε*), next to the chance level Σ_m p_m^A for the observed member frequencies p_m and A azimuths.

    python benchmarks/toy_zero123_samples.py                      # toy-zero123, 16 seeds, CFG 3
    python benchmarks/toy_zero123_samples.py --seeds 32 --guidance 1,3 --grid /tmp/samples.png --json out.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import torch


def parse_floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


@torch.no_grad()
def sample_family(prior, front: torch.Tensor, cameras: torch.Tensor, seeds: int, steps: int,
                  guidance: float) -> torch.Tensor:
    """(seeds, A, 3, S, S) decoded DDIM samples; row (s, a) starts from ε*_s at camera a."""
    from recon.diffusion.ddim import DDIMGrid, ddim_sample
    from recon.seeding import eps_star

    n_az = cameras.shape[0]
    cams = cameras.repeat(seeds, 1)  # seed-major
    cond = prior.condition(image=front, camera=cams, reference=(0.0, 0.0, float(cameras[0, 2])))
    eps = torch.stack([eps_star(s, 0, prior.sample_shape) for s in range(seeds)])
    eps = eps.repeat_interleave(n_az, dim=0)
    grid = DDIMGrid.make(prior.schedule, steps)
    latents, _ = ddim_sample(prior, eps, cond, grid, guidance)
    images = prior.decode(latents)
    return images.reshape(seeds, n_az, *images.shape[1:])


def score(samples: torch.Tensor, renders: torch.Tensor, names: list[str], family_idx: list[int],
          threshold: float) -> dict:
    """samples (N, A, 3, S, S); renders (M, A, 3, S, S) of the whole library at the same cameras."""
    n, n_az = samples.shape[:2]
    fam = torch.tensor(family_idx)
    dist = ((samples[:, :, None] - renders.transpose(0, 1)[None]) ** 2).flatten(3).mean(3).sqrt()  # (N, A, M)
    nearest = dist.argmin(2)
    nearest_d = dist.min(2).values
    in_family = torch.isin(nearest, fam)
    near = in_family & (nearest_d <= threshold)
    # Nearest member within the family (the assignment used for the distribution and the agreement).
    fam_nearest = fam[dist[:, :, family_idx].argmin(2)]
    # Member-to-member RMSE within the family at each camera: (F, F, A).
    pair = renders[family_idx]
    sib = ((pair[:, None] - pair[None]) ** 2).flatten(3).mean(3).sqrt()
    sib = sib.masked_fill(torch.eye(len(family_idx), dtype=torch.bool)[:, :, None].expand_as(sib), float("inf"))
    sib_min = sib.amin((0, 1)) if len(family_idx) > 1 else torch.full((n_az,), float("nan"))
    # Decisive: nearer to its member than half the distance from that member to its closest sibling, so by
    # the triangle inequality nearer to it than to any other member of the family.
    local = {m: i for i, m in enumerate(family_idx)}
    own_sib = torch.stack([torch.stack([sib[local[int(fam_nearest[s, a])], :, a].min() for a in range(n_az)])
                           for s in range(n)]) if len(family_idx) > 1 else torch.full((n, n_az), float("inf"))
    decisive = in_family & (nearest_d < own_sib / 2)
    near_counts = Counter(names[i] for i in nearest[near].tolist())
    all_counts = Counter(names[i] for i in fam_nearest.flatten().tolist())
    agree = [bool((fam_nearest[s] == fam_nearest[s, 0]).all()) for s in range(n)]
    chance = sum((c / (n * n_az)) ** n_az for c in all_counts.values())
    short = {i: names[i].split("/", 1)[1] for i in family_idx}
    return {
        "in_family_share": float(in_family.float().mean()),
        "near_share": float(near.float().mean()),
        "decisive_share": float(decisive.float().mean()),
        "members_near": {short[i]: near_counts.get(names[i], 0) for i in family_idx},
        "members_nearest": {short[i]: all_counts.get(names[i], 0) for i in family_idx},
        "members_hit": sum(1 for i in family_idx if near_counts.get(names[i], 0) > 0),
        "agree_share": sum(agree) / n,
        "agree_chance": chance,
        "median_nearest_rmse": float(nearest_d.median()),
        "sibling_min_rmse_per_azimuth": [round(float(v), 4) for v in sib_min],
        "nearest_family_member": [[short[i] for i in row] for row in fam_nearest.tolist()],
        "nearest_rmse": [[round(float(v), 4) for v in row] for row in nearest_d],
    }


def save_grid(path: Path, columns: list[list[torch.Tensor]]) -> None:
    """One column per family: rows of (A, 3, S, S) images (member renders, a black bar, then samples)."""
    import numpy as np
    from PIL import Image

    cols = [torch.cat([torch.cat(list(r), dim=2) for r in rows], dim=1) for rows in columns]
    height = max(c.shape[1] for c in cols)
    cols = [torch.nn.functional.pad(c, (0, 8, 0, height - c.shape[1]), value=1.0) for c in cols]
    img = torch.cat(cols, dim=2).clamp(0, 1).permute(1, 2, 0).numpy()
    Image.fromarray((img * 255).round().astype(np.uint8)).resize((img.shape[1] * 2, img.shape[0] * 2),
                                                                 Image.NEAREST).save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="toy-zero123", help="zoo name or model folder (default toy-zero123)")
    parser.add_argument("--seeds", type=int, default=16, help="seeds per family (ε*_0 .. ε*_{n-1})")
    parser.add_argument("--azimuths", default="120,180,240", help="target azimuths in degrees")
    parser.add_argument("--elevation", type=float, default=0.0, help="target elevation in degrees")
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps")
    parser.add_argument("--guidance", default="3", help="CFG scale(s), comma-separated (recon's ε_u + s(ε_c − ε_u))")
    parser.add_argument("--threshold", type=float, default=0.10, help="'near a member': RMSE in [0, 1] units")
    parser.add_argument("--families", default=None, help="comma-separated families (default: all)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--grid", type=Path, default=None,
                        help="write PNGs (one per CFG scale, NAME-cfgS.png): per family, the member renders, then "
                             "one row of samples per seed, one column per azimuth")
    parser.add_argument("--json", type=Path, default=None, help="write every number to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from recon.priors.loading import load_prior
    from recon.priors.speed import SpeedConfig
    from recon.render.cameras import DEFAULT_DISTANCE
    from recon.train.toy_data import library_prior, render_member_views

    t0 = time.perf_counter()
    prior = load_prior(args.model, speed=SpeedConfig(device="cpu"))
    size = prior.image_size
    library = library_prior(128)
    names = library.names
    families = list(dict.fromkeys(s.family for s in library.shapes))
    if args.families:
        families = [f for f in args.families.split(",") if f]
    azimuths = parse_floats(args.azimuths)
    cameras = torch.tensor([[args.elevation, a, DEFAULT_DISTANCE] for a in azimuths], dtype=torch.float64)
    renders = render_member_views(library, cameras, size)  # (M, A, 3, S, S)
    results: dict = {"model": args.model, "seeds": args.seeds, "azimuths": azimuths, "elevation": args.elevation,
                     "steps": args.steps, "threshold": args.threshold, "image_size": size, "runs": {}}
    for guidance in parse_floats(args.guidance):
        per_family = {}
        columns = []
        for family in families:
            idx = [i for i, s in enumerate(library.shapes) if s.family == family]
            rgba = library.input_view(names[idx[0]], 256)
            front = (rgba[:3] * rgba[3:] + (1 - rgba[3:]))[None]  # on white, as recon's input photos are
            samples = sample_family(prior, front, cameras, args.seeds, args.steps, guidance)
            per_family[family] = score(samples, renders, names, idx, args.threshold)
            columns.append([renders[i] for i in idx] + [torch.zeros_like(renders[0])[:, :, :4]] + list(samples))
        results["runs"][str(guidance)] = per_family
        if args.grid is not None:  # one figure per CFG scale: NAME-cfgS.png
            save_grid(args.grid.with_name(f"{args.grid.stem}-cfg{guidance:g}{args.grid.suffix}"), columns)
    results["seconds"] = round(time.perf_counter() - t0, 1)

    az = "/".join(f"{a:g}" for a in azimuths)
    print(f"model {args.model}: {args.seeds} seeds x azimuths {az}° (elevation {args.elevation:g}°), DDIM {args.steps} "
          f"steps; RMSE in [0, 1] units against every library member's render at the same camera")
    print()
    print(f"| CFG | family | in family | near (≤ {args.threshold:g}) | decisive | nearest member, all samples "
          "| members hit (near) | same member at all azimuths (chance) | median nearest RMSE | min sibling RMSE |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for guidance, per_family in results["runs"].items():
        for family, r in per_family.items():
            members = ", ".join(f"{k} {v}" for k, v in r["members_nearest"].items())
            sib = "/".join(f"{v:.3f}" for v in r["sibling_min_rmse_per_azimuth"])
            print(f"| {guidance} | {family} | {r['in_family_share']:.0%} | {r['near_share']:.0%} "
                  f"| {r['decisive_share']:.0%} | {members} | {r['members_hit']}/{len(r['members_near'])} "
                  f"| {r['agree_share']:.0%} ({r['agree_chance']:.0%}) | {r['median_nearest_rmse']:.3f} | {sib} |")
    print(f"\n{results['seconds']:.0f} s")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
