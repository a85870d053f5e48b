"""``recon bench --library DIR``: every bad folder is one ``error:`` line naming the file, non-zero exit, no
traceback; a good folder (the shipped library, a random family) passes the checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh
from click.testing import CliRunner

from recon.bench.library_check import boundary_edges, check_library
from recon.cli import main
from recon.scene.toy_world import Part, default_library_path, write_library

BODY = Part("box", (0.8, 0.6, 0.1), (0.0, 0.0, 0.3), (0.8, 0.3, 0.2))
GOOD = {"thing": (BODY, {"plain": (), "bump": (Part("sphere", (0.2,), (0.0, 0.0, 0.1), (0.2, 0.4, 0.9)),)})}


def good_library(root: Path) -> Path:
    write_library(root, GOOD)
    return root


def _bad_yaml(root: Path, text: str) -> None:
    (root / "library.yaml").write_text(text)


def _drop_face(path: Path) -> None:
    tm = trimesh.load(path, process=False, force="mesh")
    tm.update_faces(np.arange(len(tm.faces) - 1))
    path.write_bytes(trimesh.exchange.ply.export_ply(tm, encoding="ascii"))


def _drop_colours(path: Path) -> None:
    tm = trimesh.load(path, process=False, force="mesh")
    path.write_bytes(trimesh.exchange.ply.export_ply(trimesh.Trimesh(tm.vertices, tm.faces, process=False),
                                                     encoding="ascii"))


def _visible_member(root: Path) -> None:
    # a part beside the body: the input camera sees it
    side = {"thing": (BODY, {"plain": (), "bump": (Part("box", (0.3, 0.3, 0.3), (0.7, 0.0, 0.0), (0.2, 0.4, 0.9)),)})}
    write_library(root, side)


# (name, how to break a good library, the file the line must name (relative), words it must contain)
BREAKAGES = [
    ("no folder", None, "", "no such library folder"),
    ("no index", lambda r: (r / "library.yaml").unlink(), "library.yaml", "missing"),
    ("bad yaml", lambda r: _bad_yaml(r, "families: [unclosed"), "library.yaml", "cannot be read as YAML"),
    ("no families", lambda r: _bad_yaml(r, "families: {}\n"), "library.yaml", "lists no families"),
    ("empty family", lambda r: _bad_yaml(r, "families:\n  thing: []\n"), "library.yaml", "lists no members"),
    ("missing ply", lambda r: (r / "thing" / "bump.ply").unlink(), "thing/bump.ply", "listed in library.yaml but missing"),
    ("unreadable ply", lambda r: (r / "thing" / "bump.ply").write_bytes(b"ply\nformat nonsense\n\x00\x01"),
     "thing/bump.ply", "PLY"),
    ("open mesh", lambda r: _drop_face(r / "thing" / "bump.ply"), "thing/bump.ply", "not a closed mesh"),
    ("no colours", lambda r: _drop_colours(r / "thing" / "bump.ply"), "thing/bump.ply", "no vertex colours"),
    ("differs from the front", _visible_member, "thing/bump.ply", "differs from thing/plain in the front view"),
]


@pytest.mark.parametrize("name, breakage, file, words", BREAKAGES, ids=[b[0] for b in BREAKAGES])
def test_bad_library_is_one_line_naming_the_file(tmp_path, name, breakage, file, words):
    root = tmp_path / "lib"
    if breakage is not None:
        good_library(root)
        breakage(root)
    # a tiny budget, so that a check that lets a bad folder through fails in seconds, not after a whole bench
    tiny = ["--set", "stage1.steps=2", "--set", "stage2.steps=1", "--set", "stage2.tet_resolution=16",
            "--set", "prior.library.image_size=16", "--points", "500", "--no-noise-floor", "-k", "1"]
    res = CliRunner().invoke(main, ["bench", "--library", str(root), "--out", str(tmp_path / "out"), "--quiet", *tiny])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.output
    assert str(root / file).rstrip("/") in lines[0] and words in lines[0], lines[0]
    assert "Traceback" not in res.output


def test_the_good_library_and_the_shipped_one_pass():
    shapes, files = check_library(default_library_path())
    assert len(shapes) == len(files) >= 17
    assert {s.family for s in shapes} >= {"crate", "drum", "panel", "board", "lantern"}


def test_boundary_edges_counts_holes():
    tm = trimesh.creation.box()
    assert boundary_edges(np.asarray(tm.faces)) == 0
    assert boundary_edges(np.asarray(tm.faces)[1:]) == 3  # one triangle removed: its 3 edges are open
    two = np.concatenate([tm.faces, tm.faces + 8])  # two closed boxes
    assert boundary_edges(two) == 0
