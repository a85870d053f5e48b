"""Mask choice, the no-model error (real, no mock), and recentring to the prior's convention."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from recon.config import from_dict, to_dict
from recon.io.errors import InputError
from recon.io.images import load_image
from recon.io.prepare import InputConfig, prepare_input
from recon.io.recentre import RecentreConfig, recentre
from recon.io.segment import (
    SegmentConfig,
    alpha_is_informative,
    rembg_model_candidates,
    rembg_model_url,
    resolve_rembg_model,
    segment,
)


def rgba_object(h=120, w=160, box=(30, 50, 70, 130), colour=(200, 40, 20)) -> np.ndarray:
    """uint8 RGBA: opaque coloured rectangle rows box[0]:box[2], cols box[1]:box[3]; elsewhere transparent
    green (a colour that must not leak into the result)."""
    a = np.zeros((h, w, 4), np.uint8)
    a[..., 1] = 255
    y0, x0, y1, x1 = box
    a[y0:y1, x0:x1, :3] = colour
    a[y0:y1, x0:x1, 3] = 255
    return a


def test_informative_alpha_is_the_mask(tmp_path):
    Image.fromarray(rgba_object()).save(tmp_path / "o.png")
    seg = segment(load_image(tmp_path / "o.png"))
    assert seg.source == "alpha"
    assert seg.alpha[50, 90] == 1.0 and seg.alpha[5, 5] == 0.0


def test_alpha_rules():
    assert not alpha_is_informative(None)
    assert not alpha_is_informative(np.ones((8, 8), np.float32))  # fully opaque says nothing
    assert alpha_is_informative(np.zeros((8, 8), np.float32))  # fully transparent: recentre refuses it
    half = np.ones((8, 8), np.float32)
    half[0, 0] = 0.2
    assert alpha_is_informative(half)


# Looked up, not imported: rembg's first import compiles numba kernels (~35 s).
SEGMENT_EXTRA = all(importlib.util.find_spec(m) is not None for m in ("rembg", "onnxruntime"))


@pytest.mark.skipif(not SEGMENT_EXTRA, reason='needs the optional "segment" extra (rembg, onnxruntime): without it '
                    "the error is the not-installed one (test_photo_without_alpha_when_rembg_is_not_installed)")
def test_opaque_photo_without_model_says_how_to_get_one(tmp_path, monkeypatch):
    """The real lookup (no mock), offline: an empty REMBG_HOME, an RGB photo -> one line naming the image,
    the file to download, from where and where to put it, and the RGBA alternative. (Online, rembg fetches
    it on first use: tests/io/test_rembg_first_use.py.)"""
    home = tmp_path / "rembg-home"
    monkeypatch.setenv("REMBG_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("U2NET_HOME", raising=False)
    rgb = rgba_object()[..., :3].copy()
    Image.fromarray(rgb).save(tmp_path / "photo.jpg", quality=95)
    with pytest.raises(InputError) as info:
        prepare_input(tmp_path / "photo.jpg")
    text = str(info.value)
    assert "\n" not in text and str(tmp_path / "photo.jpg") in text
    assert "u2net.onnx" in text and str(home / "models" / "u2net") in text
    assert "--segmenter-model" in text and "RGBA" in text
    assert "HF_HUB_OFFLINE=1" in text and rembg_model_url("u2net") in text
    assert not home.exists()  # nothing downloaded, nothing created


def test_explicit_model_path_that_does_not_exist(tmp_path):
    cfg = SegmentConfig(model="u2netp", model_path=tmp_path / "nope.onnx")
    with pytest.raises(InputError) as info:
        resolve_rembg_model(tmp_path / "x.png", cfg.model, cfg.model_path)
    assert str(tmp_path / "nope.onnx") in str(info.value) and "\n" not in str(info.value)


def test_model_lookup_order(tmp_path):
    (tmp_path / "r" / "models" / "u2net").mkdir(parents=True)
    (tmp_path / "r" / "models" / "u2net" / "u2net.onnx").write_bytes(b"x")
    env = {"REMBG_HOME": str(tmp_path / "r")}
    assert resolve_rembg_model(Path("a.png"), "u2net", None, env) == tmp_path / "r/models/u2net/u2net.onnx"
    # U2NET_HOME (legacy) wins over REMBG_HOME, as in rembg.
    legacy = rembg_model_candidates("u2net", {"U2NET_HOME": str(tmp_path / "old"), **env})
    assert legacy[0] == tmp_path / "old/models/u2net/u2net.onnx" and legacy[1] == tmp_path / "old/u2net.onnx"


def test_recentre_follows_the_border_convention():
    """Object's longer side = size * (1 - border_ratio), centred, on white; colour kept, no background leak."""
    a = rgba_object().astype(np.float32) / 255
    r = recentre(a[..., :3], a[..., 3], "obj.png", RecentreConfig(size=256, border_ratio=0.2))
    mask = r.mask > 0.5
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    height, width = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    assert abs(width - 0.8 * 256) <= 1  # the box is 80 wide, 40 high: width is the longer side
    assert abs(height - 0.4 * 256) <= 1
    assert abs((rows[0] + rows[-1]) / 2 - 127.5) <= 1 and abs((cols[0] + cols[-1]) / 2 - 127.5) <= 1
    np.testing.assert_allclose(r.rgb_white[0, 0], 1.0)  # white background
    inner = r.rgb_white[128, 128]
    np.testing.assert_allclose(inner, np.array([200, 40, 20]) / 255, atol=1e-5)
    assert r.rgb_white[..., 1][mask].max() < 45 / 255  # transparent green never bleeds into the object
    assert r.rgba.shape == (256, 256, 4) and r.bbox == (30, 50, 70, 130)


@pytest.mark.parametrize("border", [0.0, 0.1, 0.3])
def test_recentre_border_ratio_scales(border):
    a = rgba_object(box=(10, 10, 110, 60)).astype(np.float32) / 255  # taller than wide
    r = recentre(a[..., :3], a[..., 3], "o.png", RecentreConfig(size=128, border_ratio=border))
    rows = np.flatnonzero((r.mask > 0.5).any(1))
    assert abs((rows[-1] - rows[0] + 1) - 128 * (1 - border)) <= 1


def test_degenerate_and_full_frame_masks():
    rgb = np.full((100, 100, 3), 0.5, np.float32)
    few = np.zeros((100, 100), np.float32)
    few[50:52, 50:52] = 1
    with pytest.raises(InputError, match="only 4 pixels"):
        recentre(rgb, few, "few.png")
    full = np.ones((100, 100), np.float32)
    full[0, 0] = 0
    with pytest.raises(InputError, match="covers 100% of the image"):
        recentre(rgb, full, "full.png")
    with pytest.raises(InputError, match="mask is empty"):
        recentre(rgb, np.zeros((100, 100), np.float32), "empty.png")


def test_input_config_goes_through_the_config_system(tmp_path):
    cfg = from_dict(InputConfig, {"segment": {"model": "isnet-general-use", "model_path": "/m.onnx"},
                                  "recentre": {"size": 512}})
    assert cfg.segment.model_path == Path("/m.onnx") and cfg.recentre.size == 512
    assert to_dict(cfg)["segment"]["model_path"] == "/m.onnx"
    with pytest.raises(Exception, match="not one of"):
        from_dict(InputConfig, {"segment": {"model": "no-such-model"}})


def test_prepare_input_with_alpha_end_to_end(tmp_path):
    Image.fromarray(rgba_object()).save(tmp_path / "o.png")
    out = prepare_input(tmp_path / "o.png")
    assert out.segmented.source == "alpha" and out.recentred.rgb_white.shape == (256, 256, 3)


def test_flat_photo_rule_ignores_noise_but_not_small_objects():
    from recon.io.segment import is_flat

    rng = np.random.default_rng(0)
    noisy_white = np.clip(1.0 - np.abs(rng.normal(0, 3 / 255, (300, 400, 3))), 0, 1).astype(np.float32)
    assert is_flat(noisy_white)
    small = noisy_white.copy()
    small[100:110, 100:112] = 0.3  # 120 px = 0.1 % of the image
    assert not is_flat(small)


def test_noisy_blank_photo_is_refused_before_any_model(tmp_path, monkeypatch):
    monkeypatch.setenv("REMBG_HOME", str(tmp_path / "none"))
    rng = np.random.default_rng(1)
    img = np.clip(250 + rng.normal(0, 2, (90, 120, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "wall.jpg", quality=90)
    with pytest.raises(InputError, match="single flat colour"):
        prepare_input(tmp_path / "wall.jpg")


def test_photo_without_alpha_when_rembg_is_not_installed(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "rembg", None)  # how Python marks a module as not importable
    Image.fromarray(rgba_object()[..., :3].copy()).save(tmp_path / "photo.png")
    with pytest.raises(InputError) as info:
        prepare_input(tmp_path / "photo.png")
    text = str(info.value)
    assert 'pip install "recon[segment]"' in text and "RGBA" in text and "\n" not in text
    assert str(tmp_path / "photo.png") in text
