"""A family nobody designed: a seeded random front body with random hidden parts per member.

For a held-out measurement (and the tests of ``recon bench --library``), :func:`random_family` draws a
front body (a box or a disc, random size and colour) and, per member, one or two random primitives
(box, sphere, cylinder, cone; each its own random colour) attached behind the body. Every part is
placed so that the input camera (on +Z at distance 3.8, fovy 20°) cannot see it: it lies behind the
body's front face and its footprint lies inside the front face with a margin, so its perspective
projection falls inside the body's silhouette. Member i's main part sits in its own sector of the
face, so members differ in where their bulk is; they are redrawn until each is at least
``min_separation`` from every other in the discriminative distance (random members differ less in
whole-surface Chamfer than designed ones: typically 0.02–0.05), and the result is verified by rendering: every
member's front view equals the body's (:func:`front_difference`).

The same seed gives the same family on every machine (numpy's PCG64). :func:`write_random_library`
writes it as a library folder (``library.yaml`` + ``<family>/<member>.ply``), the layout ``recon bench
--library`` reads; ``python -m recon.bench.random_family DIR --seed S`` does the same from a shell.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from recon.bench import metrics as M
from recon.bench.discriminative import DEFAULT_DELTA, discriminative_matrix, split_body
from recon.render.cameras import DEFAULT_DISTANCE, DEFAULT_FOVY, camera_batch
from recon.render.cpu import CpuRasterizer
from recon.render.mesh_render import render_mesh
from recon.scene.toy_world import Family, Part, build_parts, write_library

FRONT_Z = 0.4  # the body's front face; parts lie behind it
MARGIN = 0.04  # a part's footprint stays this far inside the front face
MIN_Z = -0.55  # parts end in front of this depth (the scene cube is [-1, 1]³ after normalisation)


@dataclass(frozen=True)
class RandomFamilyConfig:
    """members: members per family; parts: (min, max) hidden parts per member; min_separation: least
    discriminative distance (:mod:`recon.bench.discriminative`, at ``delta``) of one member to another
    (world units, before the prior's normalisation, which scales by ≈ 1.1; the designed families'
    least is 0.068, drum); points: samples per member for that check; max_tries: draws of the members
    before giving up."""

    members: int = 3
    parts: tuple[int, int] = (1, 2)
    min_separation: float = 0.06
    delta: float = DEFAULT_DELTA
    points: int = 8000
    max_tries: int = 50


def _colour(rng: np.random.Generator) -> tuple[float, float, float]:
    return tuple(float(c) for c in rng.uniform(0.1, 0.95, 3))  # type: ignore[return-value]


def _body(rng: np.random.Generator) -> tuple[Part, float, float, bool]:
    """(body, half-width a, half-height b, round): the front body and its front face's extent."""
    depth = float(rng.uniform(0.08, 0.35))
    centre = (0.0, 0.0, FRONT_Z - depth / 2)
    if rng.random() < 0.5:
        long, short = float(rng.uniform(0.85, 1.0)), float(rng.uniform(0.6, 1.0))
        w, h = (long, short) if rng.random() < 0.5 else (short, long)
        return Part("box", (w, h, depth), centre, _colour(rng)), w / 2, h / 2, False
    r = float(rng.uniform(0.42, 0.5))
    return Part("cylinder", (r, depth), centre, _colour(rng)), r, r, True


def _inside(x: float, y: float, hx: float, hy: float, a: float, b: float, round_: bool) -> bool:
    """Whether the footprint [x ± hx] × [y ± hy] lies inside the front face with the margin."""
    if round_:
        return float(np.hypot(abs(x) + hx, abs(y) + hy)) <= a - MARGIN
    return abs(x) + hx <= a - MARGIN and abs(y) + hy <= b - MARGIN


def _part(rng: np.random.Generator, a: float, b: float, round_: bool, back: float,
          anchor: tuple[float, float] | None = None, scale: tuple[float, float] = (0.5, 1.0),
          min_depth: float = 0.3) -> Part:
    """One hidden primitive attached to the body's back face at z = ``back``.

    anchor: where its footprint's centre is wanted (as a fraction of the face's half-extents; None =
    anywhere); it is moved toward the centre until the footprint fits. scale: the footprint's
    half-size as a fraction of (a, b) minus the margin; min_depth: its least extent along -Z.
    """
    kind = str(rng.choice(["box", "sphere", "cylinder", "cone"]))
    front = back + 0.01  # overlaps the body a little, so it is attached
    colour = _colour(rng)
    room_x, room_y = a - MARGIN, b - MARGIN
    for _ in range(1000):
        f = rng.uniform(*scale)
        if kind == "box":
            hx, hy = f * room_x * rng.uniform(0.6, 1.0), f * room_y * rng.uniform(0.6, 1.0)
            depth = rng.uniform(min_depth, front - MIN_Z)
            size: tuple[float, ...] = (2 * hx, 2 * hy, depth)
            z = front - depth / 2
        elif kind == "sphere":
            hx = hy = min(f * min(room_x, room_y), (front - MIN_Z) / 2)
            size, z = (hx,), front - hx
        else:
            hx = hy = f * min(room_x, room_y)
            depth = rng.uniform(min_depth, front - MIN_Z)
            size = (hx, depth)
            # trimesh's cylinder is centred on its centre; the cone (apex to -Z) has its base there
            z = front - depth / 2 if kind == "cylinder" else front
        if anchor is None:
            ux, uy = rng.uniform(-1, 1, 2)
        else:
            ux, uy = anchor
        # shrink the offset toward the centre until the footprint fits
        for t in np.linspace(1.0, 0.0, 21):
            x, y = t * ux * room_x, t * uy * room_y
            if _inside(x, y, hx, hy, a, b, round_):
                return Part(kind, tuple(float(v) for v in size), (float(x), float(y), float(z)), colour)
    raise RuntimeError("could not place a hidden part inside the body's silhouette")  # pragma: no cover


@torch.no_grad()
def front_difference(family: Family, size: int = 128) -> float:
    """Largest colour difference (0–1) between any member's and the bare body's input-camera render."""
    body, members = family
    cam = camera_batch(torch.tensor([0.0]), torch.tensor([0.0]), DEFAULT_DISTANCE, DEFAULT_FOVY, size)
    backend = CpuRasterizer()
    ref = render_mesh(build_parts((body,)), cam, backend).rgb
    worst = 0.0
    for parts in members.values():
        img = render_mesh(build_parts((body, *parts)), cam, backend).rgb
        worst = max(worst, float((img - ref).abs().max()))
    return worst


def random_family(seed: int, config: RandomFamilyConfig | None = None) -> Family:
    """(front body, {``m0``, ``m1``, ...: hidden parts}) drawn from ``seed`` (module docstring)."""
    cfg = config or RandomFamilyConfig()
    if cfg.members < 2:
        raise ValueError("a benchmark family needs at least two members")
    rng = np.random.default_rng([int(seed), 0x7A3D])
    body, a, b, round_ = _body(rng)
    back = float(body.centre[2] - body.size[-1] / 2)  # box (w, h, depth) and cylinder (r, length) alike
    # Member i's main part sits in its own sector of the face (angle φ₀ + 2πi/n), so members differ in
    # where their bulk is, not only in shape; an optional second part goes anywhere. Redrawn until all
    # members are min_separation apart.
    for _ in range(cfg.max_tries):
        phase = rng.uniform(0, 2 * np.pi)
        members: dict[str, tuple[Part, ...]] = {}
        for i in range(cfg.members):
            angle = phase + 2 * np.pi * i / cfg.members
            main = _part(rng, a, b, round_, back, anchor=(0.55 * np.cos(angle), 0.55 * np.sin(angle)),
                         scale=(0.45, 0.7), min_depth=0.5)
            extra = int(rng.integers(cfg.parts[0], cfg.parts[1] + 1)) - 1
            members[f"m{i}"] = (main, *(_part(rng, a, b, round_, back, scale=(0.2, 0.4)) for _ in range(extra)))
        pts = [M.outer_surface_points(build_parts((body, *parts)), cfg.points) for parts in members.values()]
        dist = discriminative_matrix(pts, split_body(pts, cfg.delta))
        if dist[~np.eye(len(pts), dtype=bool)].min() >= cfg.min_separation:
            family: Family = (body, members)
            diff = front_difference(family)
            if diff > 1 / 255:  # pragma: no cover - the placement rules make this impossible
                raise RuntimeError(f"random family {seed}: a member differs from the front by {diff:.3g}")
            return family
    raise RuntimeError(f"random family {seed}: no {cfg.members} members {cfg.min_separation} apart in "
                       f"{cfg.max_tries} draws; lower min_separation")  # pragma: no cover


def write_random_library(folder: str | Path, seed: int, config: RandomFamilyConfig | None = None,
                         name: str | None = None) -> Path:
    """Write the random family of ``seed`` as a one-family library folder; returns the folder."""
    root = Path(folder)
    write_library(root, {name or f"random{seed}": random_family(seed, config)})
    return root


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write a random hidden-back family as a library folder.")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--name", default=None, help="family name (default random<seed>)")
    args = parser.parse_args(argv)
    root = write_random_library(args.folder, args.seed, RandomFamilyConfig(members=args.members), args.name)
    print(f"wrote {root / 'library.yaml'}")


if __name__ == "__main__":
    main()
