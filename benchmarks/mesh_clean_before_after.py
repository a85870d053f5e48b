"""Before/after figures of docs/meshes.md on raw surfaces: a folder of ``hypothesis_k.ply`` files holding a
run's stage-2 surfaces with vertex colours (what ``recon bench`` writes in ``runs/*/meshes``).

    python benchmarks/mesh_clean_before_after.py RUN/meshes OLD_MESH_CLEAN.py OUT_DIR

"before": the export's geometry steps as they were (OLD_MESH_CLEAN.py, e.g. ``git show
5aa5f04:recon/io/mesh_clean.py``: clean, decimate to 5000 faces, clean); "after": ``recon.io.export.export_mesh``
as it is now, with the quick-start's export settings (5000 faces, 512² texture), the colour taken from the nearest
raw vertex; the files go to OUT_DIR for ``benchmarks/mesh_figures.py``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch
import trimesh
from scipy.spatial import cKDTree

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recon.io.export import ExportConfig, export_mesh  # noqa: E402
from recon.render.cpu import CpuRasterizer  # noqa: E402
from recon.scene.mesh import Mesh  # noqa: E402


def stats(v: np.ndarray, f: np.ndarray, raw_body: trimesh.Trimesh) -> str:
    m = trimesh.Trimesh(v, f, process=False)
    parts = m.split(only_watertight=False)
    _, counts = np.unique(m.edges_sorted, axis=0, return_counts=True)
    lo, hi = m.bounds
    blo, bhi = raw_body.bounds
    span = (bhi - blo).max() / (hi - lo).max()
    off = np.abs((blo + bhi) / 2 - (lo + hi) / 2).max() / (hi - lo).max()
    return (f"faces {len(f)}, components {len(parts)}, closed {m.is_watertight}, boundary edges "
            f"{int((counts == 1).sum())}, non-manifold edges {int((counts > 2).sum())}, body spans "
            f"{span:.2f} of the box, body centre off by {off:.2f}")


def main() -> None:
    folder, old_path, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    spec = importlib.util.spec_from_file_location("old_mesh_clean", old_path)
    old = importlib.util.module_from_spec(spec)
    sys.modules["old_mesh_clean"] = old
    spec.loader.exec_module(old)
    for ply in sorted(folder.glob("hypothesis_*.ply")):
        raw = trimesh.load(ply, process=False)
        colours = np.asarray(raw.visual.vertex_colors)[:, :3] / 255.0
        merged = trimesh.Trimesh(raw.vertices, raw.faces, process=True)
        body = max(merged.split(only_watertight=False), key=lambda c: c.area)
        v, f = old.clean_mesh(raw.vertices, raw.faces)
        v, f = old.decimate(v, f, 5000)
        v, f = old.clean_mesh(v, f)
        print(f"{ply.parent.parent.name}/{ply.name} before: {stats(v, f, body)}")
        tree = cKDTree(raw.vertices)

        def colour_fn(p: torch.Tensor, tree=tree, colours=colours) -> torch.Tensor:
            return torch.as_tensor(colours[tree.query(p.double().numpy())[1]], dtype=torch.float32)

        mesh = Mesh(torch.as_tensor(raw.vertices, dtype=torch.float32), torch.as_tensor(raw.faces))
        res = export_mesh(mesh, colour_fn, out, ply.stem, CpuRasterizer(),
                          ExportConfig(target_faces=5000, texture_size=512))
        c = res.clean
        print(f"{ply.parent.parent.name}/{ply.name} after: faces {res.num_faces}, floaters dropped {c.floaters} "
              f"({c.floater_faces} faces, {100 * c.floater_area_fraction:.1f} % of the area), non-manifold "
              f"edges split {c.nonmanifold_edges}, holes filled {c.holes_filled}, closed {c.closed}, boundary "
              f"edges {c.boundary_edges}, Euler {c.euler}")


if __name__ == "__main__":
    main()
