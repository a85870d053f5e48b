"""Which side of the Chamfer distance a method's fidelity loses on: extra surface or missing surface.

``recon bench``'s fidelity is each hypothesis's Chamfer-L1 to its nearest member, ½ (accuracy + completeness):
accuracy = mean distance from the hypothesis's surface to the member's (high with floaters, thick or fuzzy
fronts, leftover parts), completeness = mean distance from the member's surface to the hypothesis's (high with
missing parts). Printed per family, method and nearest member over the runs of a finished bench folder:
hypotheses, both means and both 95th percentiles (the tail is where floaters show).

    python benchmarks/fidelity_sides.py OUT_DIR [--families crate,lantern] [--json FILE]

The points are the bench's own (the same samplers, counts and seeds, and the shape library recorded in
``bench.json``), so ½ (accuracy + completeness) is the Chamfer distance in ``bench.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from recon.bench import metrics as M
from recon.bench.runner import load_mesh_ply
from recon.pipeline.prior_setup import build_image_prior
from recon.pipeline.recipes import image_config
from recon.render.select import select_backend


def member_points(library: str | None, families: set[str], points: int) -> dict[str, np.ndarray]:
    """``family/member`` -> (points, 3) outer-surface samples, as the bench's ground truth (``library``: the
    folder the bench recorded, None = the shipped one)."""
    base = image_config(None)
    prior_config = base.prior if library is None else dataclasses.replace(base.prior, path=library)
    prior = build_image_prior(prior_config, select_backend(base.backend, "cpu"), "cpu",
                              (base.elevation, 0.0, base.distance))
    return {f"{s.family}/{s.member}": M.outer_surface_points(s.mesh, points)
            for s in prior.shapes if s.family in families}


def sides(out: Path, families: list[str] | None = None) -> list[dict]:
    """One row per (family, method, nearest member): n, accuracy, completeness, their 95th percentiles and the
    mean Chamfer that bench.json holds for the same hypotheses."""
    bench = json.loads((out / "bench.json").read_text())
    runs = [r for r in bench["runs"] if families is None or r["family"] in families]
    points = int(runs[0]["metrics_key"]["points"]) if runs else 20000
    truth = member_points(bench["meta"]["library"], {r["family"] for r in runs}, points)
    acc: dict[tuple[str, str, str], list[tuple[float, float, float, float, float]]] = defaultdict(list)
    for r in runs:
        for k, h in enumerate(r["hypotheses"]):
            name = r["nearest"][k]
            pts = M.surface_points(load_mesh_ply(out / r["dir"] / h["mesh"]), points)
            a, c = M.nn_distances(pts, truth[name]), M.nn_distances(truth[name], pts)
            acc[(r["family"], r["label"], name)].append(
                (a.mean(), c.mean(), np.percentile(a, 95), np.percentile(c, 95), r["nearest_chamfer"][k]))
    rows = []
    for (family, label, member), values in sorted(acc.items()):
        v = np.array(values).mean(axis=0)
        rows.append({"family": family, "method": label, "member": member, "n": len(values),
                     "accuracy": float(v[0]), "completeness": float(v[1]), "accuracy_p95": float(v[2]),
                     "completeness_p95": float(v[3]), "chamfer": float(v[4])})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="a finished `recon bench --out` folder")
    parser.add_argument("--families", default=None, help="comma-separated families (default: all in the folder)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    families = args.families.split(",") if args.families else None
    rows = sides(args.out, families)
    print("| family | method | nearest member | hypotheses | accuracy | completeness | accuracy p95 | completeness p95 "
          "| Chamfer |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['family']} | {r['method']} | {r['member']} | {r['n']} | {r['accuracy']:.4f} | "
              f"{r['completeness']:.4f} | {r['accuracy_p95']:.4f} | {r['completeness_p95']:.4f} | {r['chamfer']:.4f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
