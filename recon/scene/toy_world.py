"""The toy world: families of shapes that look the same from the front and differ at the back.

Each family has one front body and several members that add a different part behind it (or none).
Back parts stay inside the body's silhouette and behind it, so from the input view (azimuth 0,
elevation 0, looking from +Z) every member of a family renders to the same image: the input view
cannot tell them apart, which is exactly the ambiguity that diverse hypotheses should cover.

``crate``, ``drum`` and ``panel`` hide small parts (members differ by whole-surface Chamfer-L1
0.024–0.078); ``board`` and ``lantern`` hide large ones (a deep block behind one half of a board; a
vertical fin, a horizontal wing or a slab behind a disc), so their members differ by 0.08–0.14, more
than a coarse reconstruction's error on the shared body (``docs/toy-world-benchmark.md`` has the
measured matrices).

Shading is baked into vertex colours (half-Lambert under a fixed light from the front-top-right)
with unshared vertices per face, so the renders carry shape cues while the prior stays view-
independent albedo. Everything is generated in code; ``data/library/`` holds the written files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import trimesh
import yaml

from recon.scene.mesh import Mesh

LIGHT = np.array([0.3, 0.6, 1.0]) / np.linalg.norm([0.3, 0.6, 1.0])


@dataclass(frozen=True)
class Part:
    """A primitive: ``kind`` box (size = extents), sphere (size[0] = radius), cylinder or cone
    (size = (radius, length), axis along +Z; a cone's apex points to -Z); centre in world units;
    colour RGB in [0, 1]."""

    kind: str
    size: tuple[float, ...]
    centre: tuple[float, float, float]
    colour: tuple[float, float, float]


Family = tuple[Part, dict[str, tuple[Part, ...]]]  # (front body, {member -> back parts})

# family -> (front body, {member -> back parts}). Bodies span z up to +0.35 (board, lantern: +0.40);
# backs lie behind them and inside their silhouette from the input camera (on +Z at distance 3.8).
FAMILIES: dict[str, Family] = {
    "crate": (
        Part("box", (0.8, 0.8, 0.5), (0.0, 0.0, 0.1), (0.9, 0.45, 0.1)),
        {
            "plain": (),
            "knob": (Part("sphere", (0.28,), (0.0, 0.0, -0.3), (0.15, 0.35, 0.9)),),
            "fin": (Part("box", (0.12, 0.7, 0.45), (0.0, 0.0, -0.37), (0.1, 0.7, 0.2)),),
            "ledge": (Part("box", (0.8, 0.3, 0.4), (0.0, -0.25, -0.35), (0.6, 0.2, 0.7)),),
        },
    ),
    "drum": (
        Part("cylinder", (0.4, 0.4), (0.0, 0.0, 0.15), (0.85, 0.15, 0.15)),
        {
            "flat": (),
            "cone": (Part("cone", (0.36, 0.55), (0.0, 0.0, -0.05), (0.95, 0.8, 0.1)),),
            "stub": (Part("cylinder", (0.2, 0.45), (0.0, 0.0, -0.27), (0.1, 0.75, 0.8)),),
        },
    ),
    "panel": (
        Part("box", (0.9, 0.6, 0.08), (0.0, 0.0, 0.31), (0.1, 0.55, 0.55)),
        {
            "stand": (Part("box", (0.15, 0.5, 0.5), (0.0, 0.0, 0.02), (0.5, 0.35, 0.2)),),
            "legs": (
                Part("box", (0.1, 0.55, 0.4), (-0.3, 0.0, 0.07), (0.3, 0.3, 0.3)),
                Part("box", (0.1, 0.55, 0.4), (0.3, 0.0, 0.07), (0.3, 0.3, 0.3)),
            ),
            "ball": (Part("sphere", (0.25,), (0.0, 0.0, 0.0), (0.9, 0.9, 0.2)),),
        },
    ),
    # Large hidden parts: a portrait board (0.7 x 1.0) with a deep block behind one half of it. The four
    # members are equally far apart; a hypothesis that averages them is a slab behind the middle.
    "board": (
        Part("box", (0.7, 1.0, 0.08), (0.0, 0.0, 0.36), (0.92, 0.88, 0.72)),
        {
            "top": (Part("box", (0.62, 0.44, 0.9), (0.0, 0.25, -0.12), (0.15, 0.3, 0.85)),),
            "bottom": (Part("box", (0.62, 0.44, 0.9), (0.0, -0.25, -0.12), (0.15, 0.65, 0.2)),),
            "left": (Part("box", (0.3, 0.92, 0.9), (-0.18, 0.0, -0.12), (0.8, 0.15, 0.6)),),
            "right": (Part("box", (0.3, 0.92, 0.9), (0.18, 0.0, -0.12), (0.95, 0.5, 0.05)),),
        },
    ),
    # A disc (radius 0.5) with a large plate or block behind it: a vertical fin, a horizontal wing or a
    # flat slab (0.85, 0.85 and 0.3 deep).
    "lantern": (
        Part("cylinder", (0.5, 0.08), (0.0, 0.0, 0.36), (0.62, 0.55, 0.9)),
        {
            "fin": (Part("box", (0.12, 0.9, 0.85), (0.0, 0.0, -0.1), (0.2, 0.6, 0.3)),),
            "wing": (Part("box", (0.9, 0.12, 0.85), (0.0, 0.0, -0.1), (0.85, 0.2, 0.25)),),
            "slab": (Part("box", (0.6, 0.6, 0.3), (0.0, 0.0, 0.18), (0.95, 0.75, 0.2)),),
        },
    ),
}


def _primitive(part: Part) -> trimesh.Trimesh:
    if part.kind == "box":
        mesh = trimesh.creation.box(extents=part.size)
    elif part.kind == "sphere":
        mesh = trimesh.creation.icosphere(subdivisions=2, radius=part.size[0])
    elif part.kind == "cylinder":
        mesh = trimesh.creation.cylinder(radius=part.size[0], height=part.size[1], sections=24)
    elif part.kind == "cone":
        mesh = trimesh.creation.cone(radius=part.size[0], height=part.size[1], sections=24)
        # trimesh's cone has its base at z = 0 and apex at +z; point the apex to -Z, base at the centre.
        mesh.apply_transform(trimesh.transformations.rotation_matrix(math.pi, [1, 0, 0]))
    else:
        raise ValueError(f"unknown primitive {part.kind!r}")
    mesh.apply_translation(part.centre)
    return mesh


def _shaded(mesh: trimesh.Trimesh, colour: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unshared vertices per face with half-Lambert shading baked in: (verts, faces, colours)."""
    tri = mesh.triangles.reshape(-1, 3)
    normals = np.repeat(mesh.face_normals, 3, axis=0)
    shade = 0.55 + 0.45 * (0.5 + 0.5 * normals @ LIGHT)
    colours = np.clip(np.asarray(colour)[None, :] * shade[:, None], 0, 1)
    faces = np.arange(len(tri)).reshape(-1, 3)
    return tri, faces, colours


def build_member(family: str, member: str, families: Mapping[str, Family] | None = None) -> Mesh:
    """The mesh of one family member (vertex-coloured, float32) from ``families`` (default :data:`FAMILIES`)."""
    body, members = (FAMILIES if families is None else families)[family]
    return build_parts((body, *members[member]))


def build_parts(parts: Sequence[Part]) -> Mesh:
    """A union of primitives as one vertex-coloured mesh (float32; each part stays a closed piece)."""
    verts, faces, cols = [], [], []
    offset = 0
    for part in parts:
        v, f, c = _shaded(_primitive(part), part.colour)
        verts.append(v)
        faces.append(f + offset)
        cols.append(c)
        offset += len(v)
    return Mesh(
        vertices=torch.as_tensor(np.concatenate(verts), dtype=torch.float32),
        faces=torch.as_tensor(np.concatenate(faces), dtype=torch.long),
        vertex_colors=torch.as_tensor(np.concatenate(cols), dtype=torch.float32),
    )


@dataclass
class LibraryShape:
    family: str
    member: str
    mesh: Mesh

    @property
    def name(self) -> str:
        return f"{self.family}/{self.member}"


def build_library(families: Mapping[str, Family] | None = None) -> list[LibraryShape]:
    """Every member of ``families`` (default :data:`FAMILIES`), family by family in insertion order."""
    fams = FAMILIES if families is None else families
    return [LibraryShape(f, m, build_member(f, m, fams)) for f, (_, members) in fams.items() for m in members]


def write_library(folder: str | Path, families: Mapping[str, Family] | None = None) -> list[Path]:
    """Write every member of ``families`` (default :data:`FAMILIES`) as ``<family>/<member>.ply`` (ASCII,
    vertex colours) plus ``library.yaml`` — the layout :func:`load_library` and ``recon bench --library`` read."""
    from recon.io.atomic import atomic_write_bytes, atomic_write_text

    root = Path(folder)
    written = []
    index: dict[str, list[str]] = {}
    for shape in build_library(families):
        tm = shape.mesh.to_trimesh()
        path = root / shape.family / f"{shape.member}.ply"
        atomic_write_bytes(path, trimesh.exchange.ply.export_ply(tm, encoding="ascii", vertex_normal=False))
        written.append(path)
        index.setdefault(shape.family, []).append(shape.member)
    atomic_write_text(root / "library.yaml", yaml.safe_dump({"families": index}, sort_keys=False))
    return written


def load_library(folder: str | Path) -> list[LibraryShape]:
    """Read a library folder: ``library.yaml`` listing families and members, one PLY per member."""
    root = Path(folder)
    index_path = root / "library.yaml"
    if not index_path.is_file():
        raise FileNotFoundError(f"{root}: no library.yaml; a shape library is a folder of <family>/<member>.ply "
                                "files with a library.yaml index")
    index = yaml.safe_load(index_path.read_text()) or {}
    shapes = []
    for family, members in (index.get("families") or {}).items():
        for member in members:
            path = root / family / f"{member}.ply"
            if not path.is_file():
                raise FileNotFoundError(f"{path}: listed in {index_path} but missing")
            tm = trimesh.load(path, process=False, force="mesh")
            shapes.append(LibraryShape(family, member, Mesh.from_trimesh(tm)))
    if not shapes:
        raise ValueError(f"{index_path}: lists no shapes")
    return shapes


def default_library_path() -> Path:
    """``data/library`` of the source tree (the embedded default library)."""
    return Path(__file__).resolve().parents[2] / "data" / "library"
