"""What a run leaves behind: per-hypothesis results, the exported meshes, and the report (turntables, contact
sheet, ``index.html``)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recon.io.export import ExportConfig, export_mesh
from recon.io.report import (
    SHEET_VIEWS,
    HypothesisEntry,
    write_contact_sheet,
    write_index_html,
    write_turntable,
)
from recon.pipeline.hypothesis_threads import HypothesisThreads
from recon.render.backend import RasterBackend
from recon.render.cameras import camera_batch
from recon.render.masks import mask_iou
from recon.render.mesh_render import render_mesh
from recon.scene.mesh import Mesh

Progress = Callable[[str, int, int], None]
"""progress(label, done, total) of a run's stages ("stage 1 NeRF", "stage 2 DMTet", "export")."""


@dataclass
class ReportConfig:
    """turntable_frames: frames per turntable; render_size: turntable / contact-sheet render side."""

    turntable_frames: int = 24
    render_size: int = 192
    elevation: float = 15.0


@dataclass
class HypothesisResult:
    """One exported hypothesis. ``mesh``: what the user gets — the exported surface (cleaned, decimated,
    closed; :attr:`recon.io.export.ExportResult.mesh`) in the run's world frame, on the raw surface's device;
    the report renders it. ``raw_mesh``: stage 2's surface it was made from (None when not kept).
    ``silhouette_iou``: set by :func:`write_report` when ``raw_mesh`` is there
    (:func:`~recon.render.masks.mask_iou`, raw vs exported over the contact sheet's views)."""

    index: int
    seed: int
    mesh: Mesh
    paths: dict[str, Path]
    raw_mesh: Mesh | None = None
    silhouette_iou: float | None = None


@dataclass
class Reconstruction:
    out_dir: Path
    hypotheses: list[HypothesisResult]
    run_json: Path
    seconds: float
    resumed: bool = False


@dataclass
class EmptyHypothesis:
    """A hypothesis whose stage-1 field holds no surface, so it has no mesh (recorded in run.json)."""

    index: int
    reason: str


def export_hypotheses(indices: list[int], meshes: list[Mesh], color_fns: dict[int, Callable], folder: Path,
                      backend: RasterBackend, config: ExportConfig, seed: int,
                      progress: Progress, workers: int = 1) -> list[HypothesisResult]:
    """Export step of a run (and of ``recon export``): hypothesis ``indices[i]``'s raw surface
    ``meshes[i]``, coloured by ``color_fns[indices[i]]``, to ``folder/hypothesis_<k>.<format>``, on
    ``workers`` threads (:mod:`recon.pipeline.hypothesis_threads`; each hypothesis's export is independent).
    Each result holds the exported surface in the world frame (what the report shows) and the raw one."""
    lock, done = threading.Lock(), [0]
    progress("export", 0, len(meshes))

    def one(item: tuple[int, Mesh]) -> HypothesisResult:
        k, mesh = item
        res = export_mesh(mesh, color_fns[k], folder, f"hypothesis_{k}", backend, config)
        with lock:  # progress bars are not thread-safe
            done[0] += 1
            progress("export", done[0], len(meshes))
        return HypothesisResult(k, seed, res.mesh.to(mesh.vertices.device), dict(res.paths), raw_mesh=mesh)

    threads = HypothesisThreads(min(workers, len(meshes)), "recon-export")
    try:
        return threads.map(one, list(zip(indices, meshes)))
    finally:
        threads.close()


def write_report(out: Path, config: Any, results: list[HypothesisResult], color_fns: dict[int, Callable],
                 backend: RasterBackend, page: tuple[str, str | None, dict[str, Any]],
                 empty: list[EmptyHypothesis], reproduce: str) -> dict[int, float]:
    """Turntables, the contact sheet and index.html of a run's exported hypotheses in ``out``, rendered from
    each result's ``mesh`` (the exported surface) coloured by ``color_fns``. Returns, per hypothesis index
    with a ``raw_mesh``, the silhouette IoU of the raw against the exported surface over the contact sheet's
    views (also set as ``silhouette_iou`` and listed on the page): near 1 when the clean-up lost nothing
    visible.

    ``config`` is the run's (report, distance, fovy, distill.method, seed); ``page`` is (title, input image
    file inside ``out`` or None, extra summary rows); ``reproduce`` the command named on the page."""
    c = config
    rc = c.report
    n = rc.turntable_frames
    sheet, entries, ious = [], [], {}
    for res in results:
        # The turntable's n frames, then the contact sheet's views, in one render call.
        azim = torch.cat([torch.linspace(0, 360, n + 1)[:-1], torch.tensor(list(SHEET_VIEWS.values()))])
        cams = camera_batch(torch.full((len(azim),), rc.elevation), azim, c.distance, c.fovy, rc.render_size)
        with torch.no_grad():
            render = render_mesh(res.mesh, cams, backend, color_fn=color_fns[res.index])
            if res.raw_mesh is not None:  # one more call: the raw surface's silhouettes at the sheet's cameras
                raw = render_mesh(res.raw_mesh, cams[n:], backend, antialias=False, smooth_normals=False)
                res.silhouette_iou = ious[res.index] = mask_iou(raw.mask, render.mask[n:])
        frames = (render.rgb.permute(0, 2, 3, 1).clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
        gif = out / f"turntable_{res.index}.gif"
        write_turntable(gif, list(frames[:n]))
        sheet.append(frames[n:])
        entries.append(HypothesisEntry(res.index, res.seed, gif.name,
                                       {fmt: str(p.relative_to(out)) for fmt, p in res.paths.items()}))
    write_contact_sheet(out / "contact_sheet.png", sheet, [r.seed for r in results],
                        indices=[r.index for r in results], view_names=list(SHEET_VIEWS))
    title, input_image, extra = page
    summary = {"method": c.distill.method, "hypotheses": len(results), "seed": c.seed, **extra}
    if empty:
        summary["without a surface"] = ", ".join(f"#{e.index}" for e in empty)
    if ious:
        summary["silhouette IoU, raw vs exported surface"] = ", ".join(f"#{k} {v:.4f}" for k, v in ious.items())
    write_index_html(out / "index.html", title, entries, "contact_sheet.png", input_image=input_image,
                     summary=summary, reproduce=reproduce)
    return ious
