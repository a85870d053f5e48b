"""The contact sheet shows each hypothesis from the front three-quarter view and the back
three-quarter view, labelled, on white (issue 5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from recon.io.report import SHEET_VIEWS, views_sheet, write_contact_sheet
from recon.pipeline.image_to_3d import ImageTo3DConfig
from recon.pipeline.run_outputs import HypothesisResult
from recon.pipeline.staged_run import StagedRun
from recon.scene.mesh import Mesh

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PAD, LABEL = 4, 22  # views_sheet's defaults


def layout(sheet: np.ndarray, hypotheses: int, size: int) -> tuple[int, int]:
    """(header width, band height) of a one-band sheet of ``hypotheses`` × 2 views of ``size``²,
    from the geometry views_sheet documents; the header width is whatever is left of the width."""
    band = 2 * size + PAD + LABEL + PAD
    assert sheet.shape[0] == band + PAD
    head = sheet.shape[1] - hypotheses * (size + PAD) - PAD
    return head, band


def tile(sheet: np.ndarray, k: int, v: int, size: int, head: int) -> np.ndarray:
    y, x = PAD + v * (size + PAD), PAD + head + k * (size + PAD)
    return sheet[y:y + size, x:x + size].astype(np.int32)


def test_views_sheet_places_views_in_rows_and_hypotheses_in_columns():
    rng = np.random.default_rng(0)
    views = [[rng.integers(0, 255, (30, 40, 3), dtype=np.uint8) for _ in range(2)] for _ in range(3)]
    sheet = views_sheet(views, ["#0", "#1", "#2"], ["front 3/4", "back 3/4"], columns=2)
    band = 2 * 30 + PAD + LABEL + PAD
    head = sheet.shape[1] - 2 * (40 + PAD) - PAD
    assert sheet.shape == (2 * band + PAD, head + 2 * (40 + PAD) + PAD, 3) and head > 20
    for k in range(3):
        for v in range(2):
            y = PAD + (k // 2) * band + v * (30 + PAD)
            x = PAD + head + (k % 2) * (40 + PAD)
            np.testing.assert_array_equal(sheet[y:y + 30, x:x + 40], views[k][v])
        label = sheet[PAD + (k // 2) * band + 2 * 30 + PAD:][:LABEL, PAD + head + (k % 2) * (40 + PAD):][:, :40]
        assert (label < 128).any()  # the hypothesis's label is written under its column
    for band_y in (PAD, PAD + band):  # the view names, in the header column, in both bands
        assert (sheet[band_y:band_y + 30, PAD:head] < 128).any()
        assert (sheet[band_y + 30 + PAD:band_y + 60 + PAD, PAD:head] < 128).any()
    assert (sheet[PAD + band:, PAD + head + 40 + PAD:] == 255).all()  # the empty fourth cell stays white
    with pytest.raises(ValueError, match="same number of views"):
        views_sheet([views[0], views[1][:1]], ["a", "b"])
    with pytest.raises(ValueError, match="one name per view"):
        views_sheet(views, ["a", "b", "c"], ["front"])


def test_write_contact_sheet_labels_index_and_seed(tmp_path):
    front, back = np.zeros((20, 20, 3), np.uint8), np.full((20, 20, 3), 128, np.uint8)
    path = write_contact_sheet(tmp_path / "sheet.png", [np.stack([front, back])] * 2, seeds=[7, 7],
                               indices=[0, 3], view_names=list(SHEET_VIEWS))
    sheet = np.asarray(Image.open(path))
    head, _ = layout(sheet, 2, 20)
    labels = [sheet[PAD + 40 + PAD:][:LABEL, PAD + head + k * 24:][:, :20] for k in range(2)]
    assert not np.array_equal(labels[0], labels[1])  # "#0  seed 7" and "#3  seed 7"
    with pytest.raises(ValueError, match="one index per seed"):
        write_contact_sheet(tmp_path / "bad.png", [front], seeds=[0], indices=[0, 1])


class Bare(StagedRun):
    """The shared report step of a run, with nothing but a mesh to show."""

    def page(self):
        return "cube", None, {}


def test_report_sheet_shows_the_front_and_the_back_of_an_asymmetric_object(tmp_path):
    """A cube whose front (+Z, facing the input camera) is red and back (−Z) blue: the front
    three-quarter view shows red (blue at most along the far edge of the side face), the back one blue."""
    box = trimesh.creation.box(extents=(0.7, 0.7, 0.7))
    mesh = Mesh(torch.as_tensor(box.vertices, dtype=torch.float32), torch.as_tensor(box.faces, dtype=torch.long))

    def color(p: torch.Tensor) -> torch.Tensor:
        out = torch.full_like(p, 0.5)
        out[p[:, 2] > 0.34] = torch.tensor([1.0, 0.0, 0.0])
        out[p[:, 2] < -0.34] = torch.tensor([0.0, 0.0, 1.0])
        return out

    config = ImageTo3DConfig(device="cpu", backend="cpu")
    config.report.render_size, config.report.turntable_frames = 48, 4
    run = Bare(config, tmp_path, None)
    run.color_fns = {0: color}
    run.report([HypothesisResult(0, 0, mesh, {})])
    sheet = np.asarray(Image.open(tmp_path / "contact_sheet.png").convert("RGB"))
    head, _ = layout(sheet, 1, 48)
    front, back = tile(sheet, 0, 0, 48, head), tile(sheet, 0, 1, 48, head)

    def count(img: np.ndarray, channel: int) -> int:  # strongly red (0) or strongly blue (2) pixels
        others = [c for c in range(3) if c != channel]
        return int(((img[..., channel] > 150) & (img[..., others].max(-1) < 80)).sum())

    assert count(front, 0) > 100 and count(front, 2) < count(front, 0) / 20
    assert count(back, 2) > 100 and count(back, 0) < count(back, 2) / 20
    corner = sheet[:PAD, :]
    assert (corner == 255).all()  # white background


def test_run_contact_sheet_has_both_views_of_every_hypothesis(image_run):
    """The tiny run's sheet: 2 hypotheses × (front 3/4, back 3/4); each view matches the turntable
    frame at the same azimuth (45° and 225° are frames 1 and 5 of 8) and front differs from back."""
    size = 64  # report.render_size of tests/pipeline/tiny_run.py
    sheet = np.asarray(Image.open(image_run / "contact_sheet.png").convert("RGB"))
    head, _ = layout(sheet, 2, size)
    assert head > 20 and (sheet[PAD:PAD + size, PAD:head] < 128).any()  # the row names
    for k in range(2):
        gif = Image.open(image_run / f"turntable_{k}.gif")
        frames = []
        for i in (1, 5):
            gif.seek(i)
            frames.append(np.asarray(gif.convert("RGB")).astype(np.int32))
        front, back = tile(sheet, k, 0, size, head), tile(sheet, k, 1, size, head)
        assert (front < 250).any(axis=-1).mean() > 0.1  # the object is in view
        d_front = [np.abs(front - f).mean() for f in frames]
        d_back = [np.abs(back - f).mean() for f in frames]
        assert d_front[0] < 2.0 and d_back[1] < 2.0  # the same renders (up to the GIF palette)
        assert np.abs(front - back).mean() > 2 * max(d_front[0], d_back[1], 0.1)  # front and back differ
