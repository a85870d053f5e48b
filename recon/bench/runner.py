"""One benchmark run: image-to-3D stage by stage into its own folder, then scored against the family.

Folder of a run (``OUT/runs/<family>__<variant>__s<seed>__<hash>``)::

    checkpoints/          the pipeline's stage checkpoints (an interrupted run resumes from them); the
                          stage states (tens of MB a run at the full budget) are deleted once result.json
                          is written, unless the bench keeps them (``recon bench --keep-checkpoints``)
    meshes/hypothesis_k.ply   stage-2 surface with the stage-1 colour at the vertices
    renders/hypothesis_k.png  the figure's views (colour from the stage-1 field at every pixel)
    result.json           timings, memory, prior evaluations, metrics (written last, atomically)

The folder name carries a hash of the pipeline's run hash (input + full config) and the shape
library's content (the prior mixes over every library shape, so a changed library changes every run),
so a changed setting is a new folder and never overwrites an old result. A run whose ``result.json``
exists is not run again; if only the metric settings changed (points, τ, δ), its metrics are
recomputed from the saved meshes.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import trimesh
from PIL import Image

from recon.bench import metrics as M
from recon.bench.cases import RunSpec
from recon.bench.discriminative import DEFAULT_DELTA, BodySplit, discriminative_matrix
from recon.bench.resources import PeakMemory, Stopwatch
from recon.config import to_dict
from recon.io.atomic import atomic_write_bytes, atomic_write_text
from recon.io.report import write_png
from recon.pipeline.determinism import reproducible_kernels
from recon.pipeline.image_to_3d import ImageTo3D, ImageTo3DConfig
from recon.pipeline.interrupt import graceful_interrupt
from recon.render.cameras import camera_batch
from recon.render.mesh_render import render_mesh
from recon.scene.mesh import Mesh

RESULT_SCHEMA = "recon.bench.run/2"  # /2: discriminative distances, library digest
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class MetricSettings:
    """points: surface samples per mesh; tau: F-score distance (world units; the objects are about
    1.07 units across, so τ = 0.05 is ≈ 5 % of their size); delta: δ of the discriminative distance
    (:mod:`recon.bench.discriminative`); views: (elevation°, azimuth°) of the figure's renders;
    render_size: their side in pixels."""

    points: int = 20000
    tau: float = 0.05
    delta: float = DEFAULT_DELTA
    views: tuple[tuple[float, float], ...] = ((20.0, 60.0), (20.0, 150.0), (20.0, 230.0))
    render_size: int = 96

    @property
    def key(self) -> dict[str, Any]:
        return {"points": self.points, "tau": self.tau, "delta": self.delta}


@dataclass
class GroundTruth:
    """A family's members in the reconstruction's world frame: names, meshes, outer-surface samples
    (M arrays (N_m, 3)) and their split into shared body and distinctive sets."""

    family: str
    names: list[str]
    meshes: list[Mesh]
    points: list[np.ndarray]
    split: BodySplit


def write_rgba_png(path: Path, rgba: torch.Tensor) -> Path:
    """(4, H, W) in [0, 1] -> an RGBA PNG, atomically."""
    arr = (rgba.permute(1, 2, 0).clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr, "RGBA").save(buf, format="PNG")
    return atomic_write_bytes(path, buf.getvalue())


@torch.no_grad()
def render_views(mesh: Mesh, views: Sequence[tuple[float, float]], size: int, backend, distance: float,
                 fovy: float, color_fn=None) -> np.ndarray:
    """The mesh from each (elevation°, azimuth°), side by side: (size, len(views) · size, 3) in [0, 1]."""
    elev = torch.tensor([v[0] for v in views])
    azim = torch.tensor([v[1] for v in views])
    cams = camera_batch(elev, azim, distance, fovy, size)
    rgb = render_mesh(mesh, cams, backend, color_fn=color_fn).rgb  # (V, 3, S, S)
    return rgb.clamp(0, 1).permute(2, 0, 3, 1).reshape(size, len(views) * size, 3).cpu().numpy()


def save_mesh_ply(path: Path, mesh: Mesh) -> Path:
    return atomic_write_bytes(path, trimesh.exchange.ply.export_ply(mesh.to_trimesh(), encoding="binary"))


def load_mesh_ply(path: Path) -> Mesh:
    return Mesh.from_trimesh(trimesh.load(path, process=False, force="mesh"))


def geometry_metrics(hyp_points: list[np.ndarray], gt: GroundTruth, tau: float) -> dict[str, Any]:
    """Every geometric score of one run from its K hypotheses' surface samples that does not depend on
    the noise floor (assignment with a margin and coverage are made when the report is built:
    :func:`recon.bench.bench.assign_runs`). ``nearest`` / ``nearest_coverage`` are the old
    whole-surface nearest member (no margin), kept for continuity."""
    dist = M.chamfer_matrix(hyp_points, gt.points)  # (K, M)
    fs = np.array([[M.fscore(h, g, tau) for g in gt.points] for h in hyp_points])
    pair = M.chamfer_matrix(hyp_points, hyp_points)
    nearest = M.nearest_members(dist)
    return {
        "chamfer": dist.tolist(),
        "fscore": fs.tolist(),
        "discriminative": discriminative_matrix(hyp_points, gt.split).tolist(),
        "pairwise_chamfer": pair.tolist(),
        "nearest": [gt.names[i] for i in nearest],
        "nearest_chamfer": dist.min(axis=1).tolist(),
        "fidelity": float(dist.min(axis=1).mean()),
        "diversity": M.mean_pairwise(pair),
        "nearest_coverage": M.coverage(nearest),
        "cases": {
            name: {"best_chamfer": float(dist[:, m].min()), "best_index": int(dist[:, m].argmin()),
                   "best_fscore": float(fs[:, m].max())}
            for m, name in enumerate(gt.names)
        },
    }


def _read_result(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if data.get("schema") == RESULT_SCHEMA else None


def run_folder(root: Path, spec: RunSpec, run_hash: str, library: str = "") -> Path:
    """``root/runs/<spec key>__<8 hex of sha256(run hash, library digest)>``."""
    digest = hashlib.sha256(f"{run_hash}:{library}".encode()).hexdigest() if library else run_hash
    return root / "runs" / f"{spec.key}__{digest[:8]}"


class BenchRun:
    """One run of the benchmark (see the module docstring)."""

    def __init__(self, spec: RunSpec, config: ImageTo3DConfig, image: Path, root: Path, gt: GroundTruth,
                 settings: MetricSettings, extra: dict[str, Any] | None = None,
                 progress: Progress | None = None, library: str = "", keep_checkpoints: bool = False) -> None:
        self.spec = spec
        self.keep_checkpoints = keep_checkpoints
        self.library = library
        self.config = config
        self.image = image
        self.gt = gt
        self.settings = settings
        self.extra = extra or {}
        self.progress = progress
        # The folder name needs the run hash, which ``prepare`` computes (it touches no folder).
        probe = ImageTo3D(image, config, root / "runs", progress)
        probe.prepare()
        self.dir = run_folder(root, spec, probe.hash, library)
        self.pipeline = ImageTo3D(image, config, self.dir, progress)
        self.pipeline.prepare()

    @property
    def result_path(self) -> Path:
        return self.dir / "result.json"

    def cached(self) -> dict[str, Any] | None:
        """The finished result if there is one for this run (re-scored if the metric settings changed)."""
        result = _read_result(self.result_path)
        if result is None or result.get("run_hash") != self.pipeline.hash or result.get("library", "") != self.library:
            return None
        if result.get("metrics_key") != self.settings.key:
            self.rescore(result)
        return result

    def rescore(self, result: dict[str, Any]) -> None:
        hyp = [M.surface_points(load_mesh_ply(self.dir / h["mesh"]), self.settings.points)
               for h in result["hypotheses"]]
        for stale in ("coverage", "unassigned", "assigned"):  # assignment is made at report time
            result.pop(stale, None)
        result.update(geometry_metrics(hyp, self.gt, self.settings.tau))
        result["metrics_key"] = self.settings.key
        atomic_write_text(self.result_path, json.dumps(result, indent=1))

    def run(self) -> dict[str, Any]:
        """Run (or resume) the reconstruction, score it and write ``result.json``; returns the result."""
        p = self.pipeline
        watch = Stopwatch()
        p.resumed = False
        # Same kernels as ``recon run`` (staged_run.execute), so a bench run is bit-reproducible on CPU.
        with PeakMemory() as memory, graceful_interrupt() as stop, reproducible_kernels(p.device):
            p.check_folder()
            with watch("stage1"):
                stage1 = p.stage1(stop)
            with watch("stage2"):
                stage2 = p.stage2(stage1, stop)
            with watch("evaluate"):
                hypotheses, hyp_points = self._save_and_score(stage2.meshes)
        geo = geometry_metrics(hyp_points, self.gt, self.settings.tau)
        g1, g2 = stage1.guidance.stats, stage2.guidance.stats
        result: dict[str, Any] = {
            "schema": RESULT_SCHEMA,
            "run_hash": p.hash,
            "library": self.library,
            "metrics_key": self.settings.key,
            "floor": self.spec.floor,
            "stream_seeds": {"stage1": self.config.stage1.seed, "stage2": self.config.stage2.seed},
            "family": self.spec.family,
            "method": self.spec.variant.method,
            "weighting": self.spec.variant.weighting,
            "label": self.spec.variant.label,
            "seed": self.spec.seed,
            "input": {"path": str(self.image), "sha256": p.input_sha},
            "members": self.gt.names,
            "seconds": {k: round(v, 2) for k, v in watch.seconds.items()}
            | {"total": round(sum(watch.seconds.values()), 2)},
            "resumed": bool(p.resumed),
            "peak_rss_mib": round(memory.peak_mib, 1),
            "baseline_rss_mib": round(memory.baseline_mib, 1),
            "cuda_peak_mib": None if memory.cuda_peak_mib is None else round(memory.cuda_peak_mib, 1),
            "prior_evals": {"stage1": g1.evals, "stage2": g2.evals, "total": g1.evals + g2.evals},
            "prior_calls": {"stage1": g1.calls, "stage2": g2.calls, "total": g1.calls + g2.calls},
            "threads": torch.get_num_threads(),
            "levels": [float(v) for v in p.levels],
            "hypotheses": hypotheses,
            "config": to_dict(self.config),
            **self.extra,
            **geo,
        }
        atomic_write_text(self.result_path, json.dumps(result, indent=1))
        if not self.keep_checkpoints:
            # A finished run is reused from result.json and its meshes; the states only serve a resume, and a
            # full bench of ~100 runs would otherwise leave gigabytes behind.
            for state in p.ckpt_dir.glob("stage*.pt"):
                state.unlink()
        return result

    @torch.no_grad()
    def _save_and_score(self, meshes: list[Mesh]) -> tuple[list[dict[str, Any]], list[np.ndarray]]:
        p, s = self.pipeline, self.settings
        c = self.config
        rgba = p.rgba  # (4, S, S): the recentred input the reconstruction was fitted to
        size = rgba.shape[-1]
        cam = camera_batch(c.elevation, 0.0, c.distance, c.fovy, size)
        target_rgb = rgba[:3] * rgba[3:] + (1 - rgba[3:])
        target_mask = rgba[3] > 0.5
        out, points = [], []
        for k, mesh in enumerate(meshes):
            color_fn = p.color_fns[k]
            if mesh.num_faces == 0:
                raise RuntimeError(f"{self.spec.key}: hypothesis {k} has an empty surface")
            front = render_mesh(mesh, cam, p.backend, color_fn=color_fn)
            coloured = Mesh(mesh.vertices.detach(), mesh.faces, vertex_colors=color_fn(mesh.vertices.detach()).clamp(0, 1))
            mesh_path = save_mesh_ply(self.dir / "meshes" / f"hypothesis_{k}.ply", coloured)
            views = render_views(coloured, s.views, s.render_size, p.backend, c.distance, c.fovy, color_fn)
            render_path = write_png(self.dir / "renders" / f"hypothesis_{k}.png", views)
            points.append(M.surface_points(coloured, s.points))
            out.append({
                "index": k,
                "mesh": str(mesh_path.relative_to(self.dir)),
                "render": str(render_path.relative_to(self.dir)),
                "faces": mesh.num_faces,
                "input_psnr": M.psnr(front.rgb[0], target_rgb),
                "input_iou": M.mask_iou(front.mask[0, 0], target_mask),
            })
        return out, points
