"""Measure the figures of docs/meshes.md on a run folder's meshes: floaters under the documented rule,
inner shells (components enclosed by the others), closedness, non-manifold edges and vertices
and the Euler characteristic after merging UV seams, where the kept part sits in the unit box, the glTF Validator's
verdict and what Blender's default importers make of each file; optionally a before/after picture.

    python benchmarks/mesh_figures.py out/crate-issue11/meshes [--figure OUT.png --after DIR]

The validator and Blender are found as the tests find them (tests/clients/clients.py); without them
those columns read "absent".
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import trimesh

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RECON_REQUIRE_CLIENTS", "0")

from recon.io.mesh_clean import (  # noqa: E402
    CleanConfig,
    CleanReport,
    component_labels,
    inner_shells,
    keep_attached,
    nonmanifold_vertices,
)


def surface(path: Path) -> trimesh.Trimesh:
    m = trimesh.load(path, force="mesh", process=False)
    out = trimesh.Trimesh(m.vertices, m.faces, process=False)
    out.merge_vertices(merge_tex=True, merge_norm=True)
    return out


def geometry_row(glb: Path) -> dict:
    m = surface(glb)
    rep = CleanReport()
    labels = component_labels(m)
    keep = keep_attached(m, CleanConfig(), rep, labels)
    inner = inner_shells(m, keep, labels)
    _, counts = np.unique(m.edges_sorted, axis=0, return_counts=True)
    kept_pts = m.vertices[np.unique(m.faces[keep])]
    klo, khi = kept_pts.min(0), kept_pts.max(0)
    return {
        "faces": len(m.faces), "components": rep.components, "floaters": rep.floaters,
        "floater_faces": rep.floater_faces, "floater_area_%": round(100 * rep.floater_area_fraction, 1),
        "inner_shells": len(np.unique(labels[inner])), "inner_shell_faces": int(inner.sum()),
        "kept_longest_side": round(float((khi - klo).max()), 3),
        "kept_centre": [round(float(x), 3) for x in (klo + khi) / 2],
        "closed": bool(m.is_watertight), "boundary_edges": int((counts == 1).sum()),
        "nonmanifold_edges": int((counts > 2).sum()), "nonmanifold_vertices": len(nonmanifold_vertices(m.faces)),
        "euler": int(m.euler_number),
    }


def client_rows(folder: Path, ks: list[int]) -> dict[int, dict]:
    out: dict[int, dict] = {k: {} for k in ks}
    try:
        from tests.clients.clients import blender_frame, blender_import, validate
    except Exception:  # pragma: no cover
        return out
    glbs = [folder / f"hypothesis_{k}.glb" for k in ks]
    try:
        for k, rep in zip(ks, validate(glbs)):
            i = rep["issues"]
            out[k]["validator (E/W/I/H)"] = f"{i['numErrors']}/{i['numWarnings']}/{i['numInfos']}/{i['numHints']}"
    except BaseException as exc:  # skip() raises a BaseException subclass
        for k in ks:
            out[k]["validator (E/W/I/H)"] = f"absent ({exc})"
    paths = [folder / f"hypothesis_{k}.{fmt}" for k in ks for fmt in ("glb", "obj", "ply")]
    try:
        found, _ = blender_import(paths)
    except BaseException as exc:
        for k in ks:
            out[k]["blender"] = f"absent ({exc})"
        return out
    for path, info in zip(paths, found):
        k = int(path.stem.rsplit("_", 1)[1])
        (obj,) = info["objects"]
        ref = np.sort(blender_frame(trimesh.load(path.with_suffix(".glb"), force="mesh").bounds), axis=0)
        upright = bool(np.allclose(np.asarray(info["bounds"]), ref, atol=1e-3))
        textured = bool(obj["color_attributes"]) if path.suffix == ".ply" else any(
            t["images"] for t in obj["textures"])
        smooth = obj["smooth_faces"] / max(obj["faces"], 1)
        out[k][f"blender {path.suffix[1:]}"] = (f"{'textured' if textured else 'UNTEXTURED'}, "
                                               f"{'upright' if upright else 'NOT UPRIGHT'}, "
                                               f"smooth {100 * smooth:.0f} %")
    return out


def figure(before: Path, after: Path, ks: list[int], out: Path) -> None:
    import torch

    from recon.io.report import views_sheet, write_png
    from recon.render.cameras import camera_batch
    from recon.render.cpu import CpuRasterizer
    from recon.render.mesh_render import render_mesh
    from recon.scene.mesh import Mesh

    def load(path: Path) -> Mesh:
        m = trimesh.load(path, process=False)  # PLY: vertex colours
        v = np.asarray(m.vertices, np.float64)
        if _ply_is_z_up(path):
            v = np.stack([v[:, 0], v[:, 2], -v[:, 1]], axis=1)
        c = np.asarray(m.visual.vertex_colors)[:, :3] / 255.0
        return Mesh(torch.as_tensor(v, dtype=torch.float32), torch.as_tensor(np.asarray(m.faces)),
                    vertex_colors=torch.as_tensor(c, dtype=torch.float32))

    azim = torch.tensor([45.0, 225.0])
    cams = camera_batch(torch.full((2,), 15.0), azim, 2.2, 40.0, 192)
    views, labels = [], []
    for tag, folder in (("before", before), ("after", after)):
        for k in ks:
            with torch.no_grad():
                rgb = render_mesh(load(folder / f"hypothesis_{k}.ply"), cams, CpuRasterizer()).rgb
            views.append(list(rgb.permute(0, 2, 3, 1).clamp(0, 1).numpy()))
            labels.append(f"{tag} #{k}")
    write_png(out, views_sheet(views, labels, ["front 3/4", "back 3/4"], columns=len(ks)))


def _ply_is_z_up(path: Path) -> bool:
    """recon writes PLY +Z up, with normals, since issue 11; older runs wrote +Y up without normals."""
    header = path.read_bytes()[:1000].split(b"end_header")[0]
    return b" nx" in header


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--after", type=Path, help="a second meshes folder for the before/after figure")
    ap.add_argument("--figure", type=Path)
    ap.add_argument("--no-clients", action="store_true")
    a = ap.parse_args()
    ks = sorted(int(p.stem.rsplit("_", 1)[1]) for p in a.folder.glob("hypothesis_*.ply"))
    clients = {k: {} for k in ks} if a.no_clients else client_rows(a.folder, ks)
    for k in ks:
        glb = a.folder / f"hypothesis_{k}.glb"  # a bench run's raw surfaces have only the PLY
        row = {"hypothesis": k, **geometry_row(glb if glb.exists() else glb.with_suffix(".ply")), **clients[k]}
        print(" | ".join(f"{key}={val}" for key, val in row.items()))
    if a.figure and a.after:
        figure(a.folder, a.after, ks, a.figure)
        print("figure:", a.figure)


if __name__ == "__main__":
    main()
