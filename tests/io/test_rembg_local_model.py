"""rembg for real, offline: a tiny ONNX model saved at test time in rembg's folder layout.

The model is not u2net: it maps the normalised image to "darkness" (minus the channel sum), which is
what a u2net-shaped network outputs in shape (1, 1, 320, 320). That exercises recon's lookup, rembg's
own session class (pre-processing, min-max normalisation, resize back) and the mask plumbing.
Marked slow: rembg's first import compiles numba kernels (~35 s on 2 cores; cached afterwards).
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from recon.io.errors import InputError
from recon.io.prepare import prepare_input
from recon.io.segment import SegmentConfig, rembg_model_candidates

pytestmark = pytest.mark.slow


def save_darkness_model(path) -> None:
    onnx = pytest.importorskip("onnx", reason="onnx (dev extra) builds the tiny test model")
    from onnx import TensorProto, helper

    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    node = helper.make_node("ReduceSum", ["input.1", "axes"], ["s"], keepdims=1)
    neg = helper.make_node("Neg", ["s"], ["out"])
    graph = helper.make_graph(
        [node, neg], "darkness",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, 320, 320])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 1, 320, 320])],
        initializer=[axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def photo(tmp_path):
    h, w = 200, 240
    y, x = np.mgrid[0:h, 0:w]
    img = np.full((h, w, 3), 245, np.uint8)
    disk = (y - 90) ** 2 + (x - 140) ** 2 < 50 ** 2
    img[disk] = (40, 60, 30)
    Image.fromarray(img).save(tmp_path / "photo.png")
    return tmp_path / "photo.png", disk


def test_rembg_segments_with_a_local_model_and_our_lookup_matches_rembgs(tmp_path, monkeypatch):
    pytest.importorskip("rembg", reason='rembg is the optional "segment" extra')
    home = tmp_path / "rembg-home"
    monkeypatch.setenv("REMBG_HOME", str(home))
    monkeypatch.delenv("U2NET_HOME", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    model_file = rembg_model_candidates("u2netp")[0]
    save_darkness_model(model_file)

    from rembg.sessions import sessions  # oracle for the lookup: rembg's own resolution

    assert sessions["u2netp"].resolve_existing("u2netp.onnx") == str(model_file)

    path, disk = photo(tmp_path)
    out = prepare_input(path, _config("u2netp"))
    assert out.segmented.source == "rembg:u2netp"
    mask = out.segmented.alpha > 0.5
    iou = (mask & disk).sum() / (mask | disk).sum()
    assert iou > 0.9, iou
    # Recentred: the disk spans 80 % of the 256² frame.
    rows = np.flatnonzero((out.recentred.mask > 0.5).any(1))
    assert abs((rows[-1] - rows[0] + 1) - 0.8 * 256) <= 3


def test_explicit_model_path_outside_rembg_home_and_a_broken_model(tmp_path, monkeypatch):
    pytest.importorskip("rembg", reason='rembg is the optional "segment" extra')
    monkeypatch.setenv("REMBG_HOME", str(tmp_path / "empty-home"))
    monkeypatch.delenv("U2NET_HOME", raising=False)
    model_file = tmp_path / "elsewhere" / "my-model.onnx"  # rembg's custom session would refuse this place
    save_darkness_model(model_file)
    path, disk = photo(tmp_path)
    out = prepare_input(path, _config("u2net", model_file))
    assert ((out.segmented.alpha > 0.5) == disk).mean() > 0.97

    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(InputError) as info:
        prepare_input(path, _config("u2net", broken))
    assert str(broken) in str(info.value) and "\n" not in str(info.value)


def _config(model, model_path=None):
    from recon.io.prepare import InputConfig

    return InputConfig(segment=SegmentConfig(model=model, model_path=model_path))
