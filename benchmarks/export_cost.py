"""Wall time of each export step (clean, decimate, unwrap, bake, write) on the CPU rasteriser.

Run: python benchmarks/export_cost.py   (prints a markdown table; figures go in docs/benchmarks.md)
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import trimesh

from recon.io.export import write_glb, write_obj, write_ply
from recon.io.mesh_clean import clean_mesh, decimate
from recon.io.uv_bake import bake_albedo, unwrap, vertex_colors
from recon.render.cpu import CpuRasterizer
from recon.scene.mesh import Mesh


def colour_fn(p: torch.Tensor) -> torch.Tensor:
    return torch.stack([0.5 + 0.4 * torch.sin(3 * p[:, 0]), 0.5 + 0.4 * torch.cos(2 * p[:, 1]),
                        0.5 + 0.4 * torch.sin(2.5 * p[:, 2])], dim=1)


def run(subdiv: int, target: int, tex: int) -> dict[str, float]:
    s = trimesh.creation.icosphere(subdivisions=subdiv)
    t: dict[str, float] = {"faces in": len(s.faces)}
    t0 = time.perf_counter()
    v, f = clean_mesh(s.vertices, s.faces)
    t["clean"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    v, f = decimate(v, f, target)
    t["decimate"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    layout = unwrap(v, f, tex)
    t["unwrap"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    texture = bake_albedo(CpuRasterizer(), v, layout, colour_fn, tex)
    t["bake"] = time.perf_counter() - t0
    mesh = Mesh(torch.as_tensor(v, dtype=torch.float32), torch.as_tensor(f),
                vertex_colors=torch.as_tensor(vertex_colors(v, colour_fn)),
                uv=torch.as_tensor(layout.uv), uv_faces=torch.as_tensor(layout.uv_faces),
                texture=torch.as_tensor(texture))
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        write_glb(mesh, Path(d) / "m.glb")
        write_obj(mesh, Path(d) / "m.obj")
        write_ply(mesh, Path(d) / "m.ply")
        t["write"] = time.perf_counter() - t0
    t["faces out"] = len(f)
    return t


def main() -> None:
    torch.manual_seed(0)
    np.random.seed(0)
    rows = [(5, 5000, 1024), (6, 20000, 1024), (6, 20000, 2048), (7, 50000, 2048)]
    cols = ["faces in", "faces out", "clean", "decimate", "unwrap", "bake", "write"]
    print("| texture | " + " | ".join(cols) + " | total s |")
    print("|---" * (len(cols) + 2) + "|")
    for subdiv, target, tex in rows:
        t = run(subdiv, target, tex)
        total = sum(t[k] for k in cols[2:])
        cells = [f"{int(t[c])}" if c.startswith("faces") else f"{t[c]:.2f}" for c in cols]
        print(f"| {tex}² | " + " | ".join(cells) + f" | {total:.1f} |")


if __name__ == "__main__":
    main()
