"""Checks of a shape-library folder for ``recon bench --library DIR``: one clear error per problem.

The layout is that of ``data/library/``: ``library.yaml`` (``families: {family: [member, ...]}``) and
one ``<family>/<member>.ply`` per member, each a union of closed (watertight) parts with per-vertex
RGB colours, +Y up, the input camera on +Z looking at the origin. Every problem raises
:class:`~recon.io.errors.InputError` naming the file, what is wrong and what to do; the check that all
members of a family look the same from the input camera needs the prior's renders and is made by
:func:`recon.bench.bench.family_input`.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import trimesh
import yaml

from recon.io.errors import InputError
from recon.scene.mesh import Mesh
from recon.scene.toy_world import LibraryShape

LAYOUT = ("a library folder holds library.yaml (families: {family: [member, ...]}) and <family>/<member>.ply "
          "per member, as data/library/ does")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def boundary_edges(faces: np.ndarray) -> int:
    """Edges used by an odd number of faces (after vertices are merged): 0 for a union of closed parts."""
    f = np.asarray(faces, np.int64)
    if not len(f):
        return 0
    edges = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    return int((counts % 2 == 1).sum())


def read_index(folder: Path) -> dict[str, list[str]]:
    """``library.yaml`` of ``folder`` as {family: [member, ...]} (InputError for a missing or bad index)."""
    if not folder.is_dir():
        raise InputError(folder, "no such library folder", f"pass an existing folder: {LAYOUT}")
    index_path = folder / "library.yaml"
    if not index_path.is_file():
        raise InputError(index_path, "missing", f"write it next to the family folders: {LAYOUT}")
    try:
        data = yaml.safe_load(index_path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(index_path, f"cannot be read as YAML ({type(exc).__name__})",
                         "fix the file: it should read families: {family: [member, ...]}") from exc
    families = data.get("families") if isinstance(data, dict) else None
    if not isinstance(families, dict) or not families:
        raise InputError(index_path, "lists no families",
                         "list them as families: {family: [member, ...]} (see data/library/library.yaml)")
    out: dict[str, list[str]] = {}
    for family, members in families.items():
        if not isinstance(family, str) or not _NAME.match(family):
            raise InputError(index_path, f"family name {family!r} is not a plain name",
                             "use letters, digits, '_', '-' or '.' (it names a folder)")
        if not members:
            raise InputError(index_path, f"family {family!r} lists no members",
                             f"list its members' names (each a {family}/<member>.ply file) or remove the family")
        if not isinstance(members, list) or not all(isinstance(m, str) and _NAME.match(m) for m in members):
            raise InputError(index_path, f"family {family!r} must list member names",
                             "write its members as a list of plain names (letters, digits, '_', '-', '.')")
        if len(set(members)) != len(members):
            raise InputError(index_path, f"family {family!r} lists a member twice", "list every member once")
        out[family] = list(members)
    return out


def read_member(path: Path, family: str, member: str) -> LibraryShape:
    """One member's PLY, checked: readable, triangles, closed, vertex colours (InputError otherwise)."""
    if not path.is_file():
        raise InputError(path, "listed in library.yaml but missing",
                         "add the PLY file or remove the member from library.yaml")
    try:
        tm = trimesh.load(path, process=False, force="mesh")
        faces = np.asarray(tm.faces)
        vertices = np.asarray(tm.vertices)
    except Exception as exc:  # trimesh raises many types for a damaged file
        raise InputError(path, f"cannot be read as a PLY mesh ({type(exc).__name__})",
                         "export it again as a triangle mesh in PLY format") from exc
    if faces.ndim != 2 or len(faces) == 0 or faces.shape[1] != 3:
        raise InputError(path, "holds no triangles", "export the member as a triangle mesh (PLY with faces)")
    if not np.isfinite(vertices).all():
        raise InputError(path, "has non-finite vertex coordinates", "export the mesh again")
    merged = trimesh.Trimesh(vertices, faces, process=False)
    merged.merge_vertices(digits_vertex=6)
    holes = boundary_edges(np.asarray(merged.faces))
    if holes:
        raise InputError(path, f"is not a closed mesh ({holes} boundary edges)",
                         "close its holes: every member must be a union of closed (watertight) parts")
    if getattr(tm.visual, "kind", None) != "vertex":
        raise InputError(path, "has no vertex colours",
                         "export it with per-vertex RGB colours (the prior compares coloured renders)")
    return LibraryShape(family, member, Mesh.from_trimesh(tm))


def check_library(folder: str | Path) -> tuple[list[LibraryShape], dict[str, Path]]:
    """Every member of the library in ``folder``, checked, and {``family/member``: its PLY path}."""
    root = Path(folder)
    shapes, files = [], {}
    for family, members in read_index(root).items():
        for member in members:
            path = root / family / f"{member}.ply"
            shapes.append(read_member(path, family, member))
            files[f"{family}/{member}"] = path
    return shapes, files
