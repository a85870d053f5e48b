"""Building test meshes from trimesh parts, and splitting them back: shared by the mesh clean-up tests."""

from __future__ import annotations

import numpy as np
import trimesh


def join(*parts: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray]:
    """(vertices, faces) of the parts concatenated into one mesh."""
    m = trimesh.util.concatenate(parts)
    return np.asarray(m.vertices), np.asarray(m.faces)


def pieces(v: np.ndarray, f: np.ndarray) -> list[trimesh.Trimesh]:
    """The connected components of a (vertices, faces) mesh."""
    return trimesh.Trimesh(v, f, process=True).split(only_watertight=False)
