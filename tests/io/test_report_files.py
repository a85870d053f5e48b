"""Report files: contact sheet, turntable GIF, offline index.html, run.json round trip."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from recon.io.errors import InputError
from recon.io.manifest import RUN_SCHEMA, new_run_record, read_run_json, write_run_json
from recon.io.prepare import InputConfig
from recon.io.report import (
    HypothesisEntry,
    contact_sheet,
    seed_labels,
    write_contact_sheet,
    write_index_html,
    write_turntable,
)
from recon.priors.base import EvalCounter


def tiles(k=4, h=40, w=48):
    rng = np.random.default_rng(0)
    return [(rng.random((h, w, 3)) * 255).astype(np.uint8) for _ in range(k)]


def test_contact_sheet_places_every_tile_and_labels_it():
    ims = tiles(5)
    sheet = contact_sheet(ims, seed_labels([3, 4, 5, 6, 7]), label_height=22, pad=4)
    cols, cell_h, cell_w = 3, 40 + 22 + 4, 48 + 4
    assert sheet.shape == (2 * cell_h + 4, 3 * cell_w + 4, 3)
    for k, im in enumerate(ims):
        y, x = 4 + (k // cols) * cell_h, 4 + (k % cols) * cell_w
        np.testing.assert_array_equal(sheet[y:y + 40, x:x + 48], im)
        strip = sheet[y + 40:y + 62, x:x + 48]
        assert (strip < 128).any()  # label text drawn
    strips = [sheet[4 + 40:4 + 62, 4 + k * cell_w:4 + k * cell_w + 48] for k in range(3)]
    assert not np.array_equal(strips[0], strips[1])  # different seeds, different labels
    assert (sheet[4 + cell_h:, 4 + 2 * cell_w:] == 255).all()  # the empty sixth cell stays white


def test_contact_sheet_png_written(tmp_path):
    write_contact_sheet(tmp_path / "sheet.png", tiles(2), seeds=[0, 1])
    assert Image.open(tmp_path / "sheet.png").size[0] > 96
    with pytest.raises(ValueError, match="one label per image"):
        contact_sheet(tiles(2), ["a"])


def test_turntable_gif_reloads_with_all_frames(tmp_path):
    frames = []
    for i in range(8):
        f = np.full((32, 32, 3), 255, np.uint8)
        f[8:24, 4 * i:4 * i + 8] = (200, 30, 30)
        frames.append(f)
    write_turntable(tmp_path / "t.gif", frames, fps=10)
    with Image.open(tmp_path / "t.gif") as gif:
        assert gif.n_frames == 8 and gif.info["duration"] == 100 and gif.info.get("loop") == 0
        for i in range(8):
            gif.seek(i)
            got = np.asarray(gif.convert("RGB")).astype(int)
            assert np.abs(got - frames[i]).max() <= 2
    with pytest.raises(ValueError, match=r"\.gif"):
        write_turntable(tmp_path / "t.mp4", frames)


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs, self.tags = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.refs += [v for k, v in attrs if k in ("src", "href")]


def test_index_html_is_offline_and_links_resolve(tmp_path):
    (tmp_path / "meshes").mkdir()
    for name in ("contact_sheet.png", "turntable_0.gif", "meshes/h0.glb", "meshes/h0.obj", "run.json",
                 "input.png"):
        (tmp_path / name).write_bytes(b"x")
    hyps = [HypothesisEntry(0, 11, "turntable_0.gif", {"glb": "meshes/h0.glb", "obj": "meshes/h0.obj"})]
    write_index_html(tmp_path / "index.html", "recon <run>", hyps, "contact_sheet.png",
                     input_image="input.png", summary={"seeds": "11", "time": "3 s"})
    text = (tmp_path / "index.html").read_text()
    assert "recon &lt;run&gt;" in text
    assert not re.search(r"https?:|//|@import|url\(", text.replace("<!doctype html>", ""))
    parser = _Refs()
    parser.feed(text)
    assert "script" not in parser.tags and "link" not in parser.tags
    assert len(parser.refs) == 6 and all((tmp_path / r).exists() for r in parser.refs)
    for bad in ("https://cdn.example/x.js", "/etc/passwd", "../up.png"):
        with pytest.raises(ValueError, match="relative"):
            write_index_html(tmp_path / "bad.html", "t", [], bad)
    assert not (tmp_path / "bad.html").exists()


def test_run_json_round_trip_with_stage_costs(tmp_path):
    img = tmp_path / "in.png"
    Image.new("RGB", (40, 40), (1, 2, 3)).save(img)
    rec = new_run_record("run", InputConfig(), seeds=[0, 1, 2], input_path=img)

    class FakePrior:  # only the counter is read; EvalCounter is the real one priors carry
        counter = EvalCounter()

    prior = FakePrior()
    with rec.stage("coarse", prior):
        prior.counter.add(8)
        prior.counter.add(4)
    with rec.stage("export"):
        pass
    rec.outputs = {"meshes": ["meshes/h0.glb"]}
    write_run_json(tmp_path / "run.json", rec)
    data = json.loads((tmp_path / "run.json").read_text())
    assert data["schema"] == RUN_SCHEMA and next(iter(data)) == "schema"
    import hashlib

    assert data["input"]["sha256"] == hashlib.sha256(img.read_bytes()).hexdigest()
    assert data["packages"]["numpy"] == np.__version__ and "python" in data["packages"]
    assert data["stages"][0] == {"name": "coarse", "seconds": data["stages"][0]["seconds"],
                                 "prior_calls": 2, "prior_evals": 12}
    back = read_run_json(tmp_path / "run.json")
    assert back.seeds == [0, 1, 2] and back.config == data["config"] and back.stages[0].prior_evals == 12
    from recon.config import from_dict

    assert from_dict(InputConfig, back.config) == InputConfig()  # the config reproduces


@pytest.mark.parametrize("content,words", [
    ("{not json", "not a readable JSON"),
    ("[1, 2]", "top level"),
    ('{"schema": "recon.run/1", "command": "run", "config": {}, "seeds": "0"}', "'seeds'"),
    ('{"schema": "other/9", "command": "run", "config": {}, "seeds": [0], "input": {}}', "schema"),
])
def test_bad_run_json_is_one_line(tmp_path, content, words):
    (tmp_path / "run.json").write_text(content)
    with pytest.raises(InputError) as info:
        read_run_json(tmp_path / "run.json")
    assert words in str(info.value) and "\n" not in str(info.value)
    assert str(tmp_path / "run.json") in str(info.value)
