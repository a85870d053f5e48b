"""The run's report (turntables, contact sheet) shows the exported mesh, not stage 2's raw surface (issue 11).

A raw surface made of a body and a floater far from it goes through the run's own export and report steps
(:func:`export_hypotheses`, :func:`write_report`). The floater rule (docs/meshes.md) drops the floater from
the export, so the report's frames must not show it where the raw surface would, and must show the body as
a render of the body alone does (same cameras, same colour function at world positions).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from recon.io.export import ExportConfig
from recon.io.report import SHEET_VIEWS
from recon.pipeline.image_to_3d import ImageTo3DConfig
from recon.pipeline.run_outputs import export_hypotheses, write_report
from recon.render.cameras import camera_batch
from recon.render.cpu import CpuRasterizer
from recon.render.masks import mask_iou
from recon.render.mesh_render import render_mesh
from recon.scene.mesh import Mesh

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE, FRAMES, PAD = 64, 4, 4  # render side, turntable frames; views_sheet's default padding
FLOATER_X = 0.45  # the colour function paints red beyond this x: only the floater lies there


def mesh_of(*parts: trimesh.Trimesh) -> Mesh:
    tm = trimesh.util.concatenate(parts)
    return Mesh(torch.as_tensor(tm.vertices, dtype=torch.float32), torch.as_tensor(tm.faces, dtype=torch.long))


def colour(p: torch.Tensor) -> torch.Tensor:
    """Blue body, red floater (by world position, as the field's colour function is)."""
    out = torch.empty_like(p)
    out[:] = torch.tensor([0.1, 0.2, 0.9])
    out[p[:, 0] > FLOATER_X] = torch.tensor([0.9, 0.1, 0.1])
    return out


def red(img: np.ndarray) -> np.ndarray:
    return (img[..., 0] > 150) & (img[..., 1:].max(-1) < 100)


def test_report_renders_the_exported_mesh_without_the_floater(tmp_path):
    body = trimesh.creation.icosphere(subdivisions=2, radius=0.4)
    body.apply_translation((-0.05, 0.05, 0.0))  # off the origin, so the export's centring has to be undone too
    floater = trimesh.creation.icosphere(subdivisions=1, radius=0.08)
    floater.apply_translation((0.55, 0.25, 0.0))  # 0.15 from the body: far beyond 1 % of its diagonal
    raw = mesh_of(body, floater)

    config = ImageTo3DConfig(device="cpu", backend="cpu")
    config.report.render_size, config.report.turntable_frames = SIZE, FRAMES
    backend = CpuRasterizer()
    results = export_hypotheses([0], [raw], {0: colour}, tmp_path / "meshes", backend,
                                ExportConfig(target_faces=20_000, texture_size=64, formats=("ply",)), seed=0,
                                progress=lambda *a: None)
    (res,) = results
    ious = write_report(tmp_path, config, results, {0: colour}, backend, ("floater", None, {}), [], "recon run")

    # The report's cameras: the turntable's frames, then the contact sheet's views.
    azim = torch.cat([torch.linspace(0, 360, FRAMES + 1)[:-1], torch.tensor(list(SHEET_VIEWS.values()))])
    cams = camera_batch(torch.full((len(azim),), config.report.elevation), azim, config.distance, config.fovy,
                        SIZE)
    with torch.no_grad():
        alone = render_mesh(mesh_of(body), cams, backend, color_fn=colour)
        floater_mask = render_mesh(mesh_of(floater), cams, backend).mask[:, 0].numpy()
    body_mask = alone.mask[:, 0].numpy()
    want = (alone.rgb.permute(0, 2, 3, 1).clamp(0, 1).numpy() * 255).round()
    seen = floater_mask & ~body_mask  # where the raw surface shows the floater in front of the background
    assert (seen[FRAMES:].sum((1, 2)) > 20).all() and seen[:FRAMES].sum() > 50  # in view: the test means something

    gif = Image.open(tmp_path / "turntable_0.gif")
    frames = []
    for i in range(FRAMES):
        gif.seek(i)
        frames.append(np.asarray(gif.convert("RGB")).astype(np.float64))
    sheet = np.asarray(Image.open(tmp_path / "contact_sheet.png").convert("RGB")).astype(np.float64)
    head = sheet.shape[1] - (SIZE + PAD) - PAD  # one hypothesis: the header column is the rest of the width
    tiles = [sheet[PAD + v * (SIZE + PAD):][:SIZE, PAD + head:][:, :SIZE] for v in range(len(SHEET_VIEWS))]

    inner = body_mask.copy()  # the body's pixels away from its antialiased outline
    inner[:, 1:-1, 1:-1] &= body_mask[:, :-2, 1:-1] & body_mask[:, 2:, 1:-1] & body_mask[:, 1:-1, :-2] & \
        body_mask[:, 1:-1, 2:]
    for i, img in enumerate(frames + tiles):
        assert not red(img).any(), f"view {i}: the floater is drawn"
        assert (img[seen[i]] > 230).all(), f"view {i}: not background where the floater was"
        # The body as a render of the body alone shows it (up to the GIF's palette).
        assert np.abs(img[inner[i]] - want[i][inner[i]]).mean() < 6.0, f"view {i}: the body differs"

    # The measurement: raw vs exported silhouettes over the sheet's views; here exactly what the floater adds.
    raw_sil = torch.as_tensor(body_mask[FRAMES:] | floater_mask[FRAMES:])
    assert ious[0] == res.silhouette_iou
    assert ious[0] == pytest.approx(mask_iou(torch.as_tensor(body_mask[FRAMES:]), raw_sil), abs=2e-3)
    assert ious[0] < 0.97
    assert "silhouette IoU" in (tmp_path / "index.html").read_text()

    # What the report drew: the exported surface in the world frame, the body where it was, the floater gone.
    np.testing.assert_allclose(res.mesh.vertices.numpy().min(0), body.bounds[0], atol=1e-5)
    np.testing.assert_allclose(res.mesh.vertices.numpy().max(0), body.bounds[1], atol=1e-5)
    assert res.raw_mesh is raw


def test_mask_iou_pools_the_views():
    a = torch.zeros(2, 4, 4, dtype=torch.bool)
    b = a.clone()
    assert mask_iou(a, b) == 1.0  # nothing in view either way
    a[0, :2] = True  # 8 pixels
    b[0, 1:3] = True  # 8 pixels, 4 shared
    b[1, 0, 0] = True
    assert mask_iou(a, b) == pytest.approx(4 / 13)
