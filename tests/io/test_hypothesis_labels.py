"""Hypotheses are labelled by their own identity (seed, k) — in run.json, on the contact sheet and in
index.html — so four hypotheses of one run (one seed) no longer all read "seed 0"."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from recon.io.manifest import RunRecord, write_run_json
from recon.io.report import (
    HypothesisEntry,
    _label_strip,
    index_html,
    write_contact_sheet,
)


def test_contact_sheet_labels_read_seed_and_index(tmp_path):
    h = w = 40
    views = [np.full((h, w, 3), 0.5, np.float32)] * 3
    path = write_contact_sheet(tmp_path / "sheet.png", views, seeds=[0, 0, 0], indices=[0, 1, 3])
    sheet = np.asarray(Image.open(path).convert("RGB"))
    pad, label_h = 4, 22
    for col, k in enumerate([0, 1, 3]):
        x = pad + col * (w + pad)
        strip = sheet[pad + h:pad + h + label_h, x:x + w]
        np.testing.assert_array_equal(strip, _label_strip(f"#{k}  seed (0, {k})", w, label_h))


def test_index_html_captions_carry_seed_and_index():
    page = index_html("run", [HypothesisEntry(0, 5), HypothesisEntry(2, 5)], None)
    assert "<figcaption>#0  seed (5, 0)</figcaption>" in page
    assert "<figcaption>#2  seed (5, 2)</figcaption>" in page


def test_run_json_hypotheses_carry_their_identity(tmp_path):
    rec = RunRecord(command="run", config={"seed": 3}, seeds=[3, 3, 3],
                    outputs={"hypotheses": [{"index": 0, "seed": 3}, {"index": 2, "seed": 3}],
                             "empty_hypotheses": [{"index": 1, "reason": "no surface"}]})
    data = json.loads(write_run_json(tmp_path / "run.json", rec).read_text())
    hs = data["outputs"]["hypotheses"]
    assert [h["id"] for h in hs] == [[3, 0], [3, 2]]
    assert [h["label"] for h in hs] == ["#0  seed (3, 0)", "#2  seed (3, 2)"]
    assert data["outputs"]["empty_hypotheses"][0]["id"] == [3, 1]
