"""How far apart a library's family members are: whole-surface Chamfer-L1 and discriminative distance.

``python -m recon.bench.members [--library DIR] [--families a,b] [--points N] [--delta D]`` prints, per
family, the member-to-member matrices on the prior's normalised meshes (the frame the benchmark scores
in). In the discriminative matrix, row i is member i *as a hypothesis* (its own outer-surface samples,
drawn with another seed than the ground truth's) and column j is member j, so the diagonal shows the
sampling noise and the off-diagonal entries how far apart the members are where they differ.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np
import torch

from recon.bench import metrics as M
from recon.bench.discriminative import DEFAULT_DELTA, discriminative_matrix, split_body


@dataclass
class MemberDistances:
    """names: M members; chamfer, discriminative: (M, M) matrices (module docstring)."""

    family: str
    names: list[str]
    chamfer: np.ndarray
    discriminative: np.ndarray

    def table(self) -> str:
        short = [n.split("/")[-1] for n in self.names]
        lines = [f"{self.family}: members {', '.join(short)}"]
        for title, mat in (("whole-surface Chamfer-L1", self.chamfer),
                           ("discriminative d(row as hypothesis, column)", self.discriminative)):
            lines += [f"  {title}", f"    {'':<8}" + "".join(f"{n:>9}" for n in short)]
            lines += [f"    {n:<8}" + "".join(f"{v:>9.4f}" for v in row) for n, row in zip(short, mat)]
        return "\n".join(lines)


def member_distances(shapes, points: int = 20000, delta: float = DEFAULT_DELTA) -> MemberDistances:
    """The matrices of one family's shapes (``LibraryShape`` list, same family, normalised meshes)."""
    gt = [M.outer_surface_points(s.mesh, points, seed=0) for s in shapes]
    hyp = [M.outer_surface_points(s.mesh, points, seed=1) for s in shapes]
    return MemberDistances(shapes[0].family, [s.name for s in shapes], M.chamfer_matrix(gt, gt),
                           discriminative_matrix(hyp, split_body(gt, delta)))


def main(argv: list[str] | None = None) -> None:
    from recon.priors.library import LibraryPrior, LibraryPriorConfig
    from recon.render.cpu import CpuRasterizer

    parser = argparse.ArgumentParser(description="Member-to-member distances of a shape library's families.")
    parser.add_argument("--library", default=None, help="library folder (default: the shipped data/library)")
    parser.add_argument("--families", default=None, help="comma-separated (default: all)")
    parser.add_argument("--points", type=int, default=20000)
    parser.add_argument("--delta", type=float, default=DEFAULT_DELTA)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    prior = LibraryPrior.from_folder(args.library, CpuRasterizer(), LibraryPriorConfig(image_size=16))
    families = list(dict.fromkeys(s.family for s in prior.shapes))
    wanted = args.families.split(",") if args.families else families
    for fam in wanted:
        shapes = [s for s in prior.shapes if s.family == fam]
        if not shapes:
            raise SystemExit(f"error: no family {fam!r} (families: {', '.join(families)})")
        print(member_distances(shapes, args.points, args.delta).table())


if __name__ == "__main__":
    main()
