"""Before/after figures of docs/meshes.md: export raw surfaces with the export as it is now, next to the
export as it was.

    python benchmarks/mesh_clean_before_after.py RUN/meshes OLD_MESH_CLEAN.py OUT_DIR
    python benchmarks/mesh_clean_before_after.py --run RUN_DIR OUT_DIR

First form: a folder of ``hypothesis_k.ply`` files holding a run's stage-2 surfaces with vertex colours (what
``recon bench`` writes in ``runs/*/meshes``). "before": the export's geometry steps as they were
(OLD_MESH_CLEAN.py, e.g. ``git show 5aa5f04:recon/io/mesh_clean.py``: clean, decimate to 5000 faces, clean);
"after": ``recon.io.export.export_mesh`` as it is now, with the quick-start's export settings (5000 faces, 512²
texture), the colour taken from the nearest raw vertex.

Second form: a finished ``recon run`` folder (the quick-start run). Its raw surfaces and colour fields are
rebuilt from ``checkpoints/`` (as ``recon export`` does, but reading only the few recorded settings the surface
needs, so a run made before a config key was renamed still loads) and exported with the run's recorded
``export`` settings into OUT_DIR; the run's own ``meshes/`` are the "before". Either way the files go to OUT_DIR
for ``benchmarks/mesh_figures.py``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import trimesh
from scipy.spatial import cKDTree

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recon.config import from_dict  # noqa: E402
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


def after_line(name: str, res) -> str:
    c = res.clean
    return (f"{name} after: faces {res.num_faces}, floaters dropped {c.floaters} ({c.floater_faces} faces, "
            f"{100 * c.floater_area_fraction:.1f} % of the area) + {c.late_floaters} after decimation ({c.cut_off} cut off by decimation and kept), inner "
            f"shells dropped {c.inner_shells} ({c.inner_shell_faces} faces), non-manifold edges / vertices "
            f"mended {c.nonmanifold_edges} / {c.nonmanifold_vertices}, holes filled {c.holes_filled}, components "
            f"{c.kept_components}, closed {c.closed}, boundary edges {c.boundary_edges}, Euler {c.euler}")


def bench_folder(folder: Path, old_path: Path, out: Path) -> None:
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
        print(after_line(f"{ply.parent.parent.name}/{ply.name}", res))


def bench_run(run_dir: Path, out: Path) -> None:
    from recon.pipeline.checkpoint import load_checkpoint
    from recon.pipeline.stage1_nerf import field_from_state
    from recon.scene.dmtet import DMTet

    record = json.loads((run_dir / "run.json").read_text())
    config, tag = record["config"], "image_to_3d"
    if isinstance(record.get("input", {}).get("prompt"), str):
        tag = "text_to_3d"
    s2cfg = config["stage2"]
    export = from_dict(ExportConfig, config["export"], "export")
    indices = [int(h["index"]) for h in record["outputs"]["hypotheses"]]
    stage1 = load_checkpoint(run_dir / "checkpoints" / "stage1.pt", f"{tag}_stage1")
    stage2 = load_checkpoint(run_dir / "checkpoints" / "stage2.pt", f"{tag}_stage2")
    field = field_from_state(stage1["stage"])
    for k, state in zip(indices, stage2["stages"]):
        geometry = DMTet(s2cfg["tet_resolution"], s2cfg["grid_radius"], s2cfg["deform_fraction"])
        geometry.load_state_dict(state["geometry"])
        with torch.no_grad():
            raw = geometry.extract()
        mesh = Mesh(raw.vertices.detach(), raw.faces)
        start = time.perf_counter()
        res = export_mesh(mesh, field.color_fn(k), out, f"hypothesis_{k}", CpuRasterizer(), export)
        print(after_line(f"{run_dir.name}/hypothesis_{k}", res) + f" ({time.perf_counter() - start:.1f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("args", nargs="+", type=Path, help="RUN/meshes OLD_MESH_CLEAN.py OUT_DIR, or with --run: OUT_DIR")
    ap.add_argument("--run", type=Path, help="a finished recon run folder (its checkpoints)")
    a = ap.parse_args()
    with torch.no_grad():
        if a.run is not None:
            bench_run(a.run, a.args[0])
        else:
            bench_folder(*a.args)


if __name__ == "__main__":
    main()
