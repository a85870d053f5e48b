"""Image loading: formats that must load correctly, and the input half of the bad-input corpus.

Every bad input is generated at test time. Each must raise exactly one InputError whose message is a
single line naming the file and saying what to do; nothing may be written anywhere.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from recon.io.errors import FileProblem, InputError, OutputError
from recon.io.images import load_image
from recon.io.output_dir import ensure_writable_dir
from recon.io.prepare import prepare_input


def smooth_rgb(h: int = 96, w: int = 128) -> np.ndarray:
    """(h, w, 3) uint8 smooth gradient (JPEG-friendly) with a dark disk in the middle (the 'object')."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack([x / w, y / h, 0.5 + 0.5 * np.sin(x / 17.0)], axis=-1)
    disk = (y - h / 2) ** 2 + (x - w / 2) ** 2 < (min(h, w) / 4) ** 2
    img[disk] *= 0.3
    return (img * 255).round().astype(np.uint8)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_huge_header_png(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims width x height (8-bit RGB) with a token IDAT: a few hundred bytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
                     + png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + png_chunk(b"IEND", b""))


def write_sparse_bilevel_png(path: Path, side: int) -> None:
    """A complete, valid side x side 1-bit black PNG, streamed row by row (~50 KB for 20000²)."""
    row = b"\0" + b"\0" * ((side + 7) // 8)  # filter byte + packed bits
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", body)
                     + png_chunk(b"IEND", b""))


def assert_one_line_error(exc: FileProblem, path: Path) -> str:
    text = str(exc)
    assert "\n" not in text and "\r" not in text
    assert str(path) in text, text
    assert exc.problem and exc.remedy, text
    return text


# ------------------------------------------------------------------------------------ must load
def test_rgb_png_round_trips_exactly(tmp_path):
    a = smooth_rgb()
    Image.fromarray(a).save(tmp_path / "a.png")
    im = load_image(tmp_path / "a.png")
    assert im.rgb.dtype == np.float32 and im.alpha is None and im.mode == "RGB"
    np.testing.assert_array_equal((im.rgb * 255).round().astype(np.uint8), a)


def test_cmyk_jpeg_loads_with_pillows_colours(tmp_path):
    a = smooth_rgb()
    cmyk = Image.fromarray(a).convert("CMYK")
    cmyk.save(tmp_path / "c.jpg", quality=95)
    im = load_image(tmp_path / "c.jpg")
    assert im.mode == "CMYK" and im.rgb.shape == (*a.shape[:2], 3)
    # Oracle: Pillow's own decode of the file, converted to RGB; and the source picture within JPEG loss.
    ref = np.asarray(Image.open(tmp_path / "c.jpg").convert("RGB"), np.float32) / 255
    np.testing.assert_allclose(im.rgb, ref, atol=1e-6)
    assert np.abs(im.rgb * 255 - a).mean() < 4.0


def test_sixteen_bit_grayscale_keeps_its_depth(tmp_path):
    g = (np.linspace(0, 65535, 64 * 80).reshape(64, 80)).round().astype(np.uint16)
    Image.fromarray(g).save(tmp_path / "g16.png")
    im = load_image(tmp_path / "g16.png")
    assert im.mode.startswith("I")
    np.testing.assert_allclose(im.rgb[..., 0], g / 65535.0, atol=1e-6)  # no 8-bit truncation
    np.testing.assert_array_equal(im.rgb[..., 0], im.rgb[..., 2])


def test_palette_with_transparency_gives_alpha(tmp_path):
    pal = Image.new("P", (64, 48), 1)
    pal.putpalette([255, 255, 255, 200, 30, 30] + [0, 0, 0] * 254)
    pal.paste(0, (10, 10, 30, 40))  # index 0 = transparent
    pal.save(tmp_path / "p.png", transparency=0)
    im = load_image(tmp_path / "p.png")
    assert im.alpha is not None
    assert im.alpha[20, 20] == 0.0 and im.alpha[5, 5] == 1.0
    np.testing.assert_allclose(im.rgb[5, 5], [200 / 255, 30 / 255, 30 / 255], atol=1e-6)


def test_palette_without_transparency_and_gray_and_la(tmp_path):
    a = smooth_rgb()
    Image.fromarray(a).convert("P").save(tmp_path / "p.png")
    Image.fromarray(a).convert("L").save(tmp_path / "l.png")
    la = Image.fromarray(a).convert("LA")
    la.putalpha(Image.fromarray(np.full(a.shape[:2], 128, np.uint8)))
    la.save(tmp_path / "la.png")
    p = load_image(tmp_path / "p.png")
    assert p.alpha is None and p.mode == "P"
    pal_ref = np.asarray(Image.open(tmp_path / "p.png").convert("RGB"), np.float32) / 255  # palette lookup
    np.testing.assert_allclose(p.rgb, pal_ref, atol=1e-6)
    g = load_image(tmp_path / "l.png")
    ref = np.asarray(Image.fromarray(a).convert("L"), np.float32) / 255
    np.testing.assert_allclose(g.rgb[..., 1], ref, atol=1e-6)
    la_im = load_image(tmp_path / "la.png")
    np.testing.assert_allclose(la_im.alpha, 128 / 255, atol=1e-6)
    np.testing.assert_allclose(la_im.rgb[..., 0], ref, atol=1e-6)


def test_exif_orientation_is_applied(tmp_path):
    a = smooth_rgb(40, 60)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° CW to display"
    Image.fromarray(a).save(tmp_path / "r.jpg", exif=exif, quality=98)
    im = load_image(tmp_path / "r.jpg")
    assert im.rgb.shape[:2] == (60, 40)
    ref = np.rot90(a, k=-1)  # Pillow's exif_transpose for orientation 6 = rotate 270° (CW 90°)
    assert np.abs(im.rgb * 255 - ref).mean() < 3.0


def test_sha256_matches_hashlib(tmp_path):
    import hashlib

    Image.fromarray(smooth_rgb()).save(tmp_path / "a.png")
    assert load_image(tmp_path / "a.png").sha256 == hashlib.sha256((tmp_path / "a.png").read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------ must fail
def make_truncated_png(d: Path) -> Path:
    Image.fromarray(smooth_rgb()).save(d / "ok.png")
    data = (d / "ok.png").read_bytes()
    (d / "ok.png").unlink()
    (d / "truncated.png").write_bytes(data[: len(data) // 2])
    return d / "truncated.png"


def make_text_png(d: Path) -> Path:
    (d / "notes.png").write_text("this is not an image\n")
    return d / "notes.png"


def make_one_pixel(d: Path) -> Path:
    Image.new("RGB", (1, 1), (10, 20, 30)).save(d / "one.png")
    return d / "one.png"


def make_huge(d: Path) -> Path:
    write_huge_header_png(d / "huge.png", 20000, 20000)
    return d / "huge.png"


def make_transparent(d: Path) -> Path:
    Image.new("RGBA", (64, 64), (120, 30, 30, 0)).save(d / "transparent.png")
    return d / "transparent.png"


def make_all_white(d: Path) -> Path:
    Image.new("RGB", (120, 90), (255, 255, 255)).save(d / "white.jpg", quality=95)
    return d / "white.jpg"


def make_missing(d: Path) -> Path:
    return d / "does-not-exist.png"


def make_empty(d: Path) -> Path:
    (d / "empty.png").write_bytes(b"")
    return d / "empty.png"


def make_folder(d: Path) -> Path:
    (d / "a-folder.png").mkdir()
    return d / "a-folder.png"


BAD = {
    "truncated png": (make_truncated_png, "truncated or corrupt"),
    "text file named .png": (make_text_png, "not an image"),
    "1x1 image": (make_one_pixel, "1x1"),
    "20000x20000 image": (make_huge, "400 Mpx, above the 64 Mpx limit"),
    "fully transparent rgba": (make_transparent, "mask is empty"),
    "all-white photo": (make_all_white, "single flat colour"),
    "missing path": (make_missing, "no such file"),
    "empty file": (make_empty, "empty"),
    "folder": (make_folder, "folder"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_gives_one_clear_line(tmp_path, case, monkeypatch):
    make, words = BAD[case]
    # No rembg model anywhere: the errors must come from the input itself, before any model is needed.
    monkeypatch.setenv("REMBG_HOME", str(tmp_path / "no-models"))
    monkeypatch.delenv("U2NET_HOME", raising=False)
    inputs = tmp_path / "in"
    inputs.mkdir()
    path = make(inputs)
    before = sorted(p.name for p in inputs.iterdir())
    with pytest.raises(InputError) as info:
        prepare_input(path)
    text = assert_one_line_error(info.value, path)
    assert words in text, text
    assert sorted(p.name for p in inputs.iterdir()) == before  # nothing written beside the input
    assert not (tmp_path / "no-models").exists()


def test_huge_real_png_is_refused_without_decoding(tmp_path, monkeypatch):
    """A real, valid 20000x20000 PNG (1-bit, ~50 KB): refused from the header; peak memory stays small.

    Measured in a fresh interpreter (ru_maxrss of this pytest process is already high); decoding would
    allocate 400 MB (Pillow stores 1-bit images one byte per pixel).
    """
    path = tmp_path / "huge-real.png"
    write_sparse_bilevel_png(path, 20000)
    assert path.stat().st_size < 1_000_000
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # only for this check, in this process
    with Image.open(path) as im:  # Pillow agrees: a 20000² PNG whose chunks all check out
        assert im.size == (20000, 20000)
        im.verify()
    code = (
        "import resource, sys\n"
        "from recon.io.images import load_image\n"
        "from recon.io.errors import InputError\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        f"    load_image({str(path)!r})\n"
        "except InputError as exc:\n"
        "    print(exc)\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print((after - before) // 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    message, grew_mb = out.strip().splitlines()
    assert "above the 64 Mpx limit" in message and str(path) in message
    assert int(grew_mb) < 50, f"loader grew peak memory by {grew_mb} MB"


def test_max_pixels_between_pillow_warning_and_error(tmp_path):
    """9500² = 90 Mpx is past Pillow's warning threshold but below its error: our own limit decides."""
    write_huge_header_png(tmp_path / "big.png", 9500, 9500)
    with pytest.raises(InputError, match=r"9500x9500 \(90 Mpx\), above the 64 Mpx limit"):
        load_image(tmp_path / "big.png")


# ------------------------------------------------------------------------------------ output folder
def test_output_folder_whose_parent_is_a_file(tmp_path):
    """Tests run as root, where chmod does not stop writes; a path under a regular file fails for root too."""
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(OutputError) as info:
        ensure_writable_dir(blocker / "out")
    assert_one_line_error(info.value, blocker / "out")
    with pytest.raises(OutputError, match="not a folder") as info:
        ensure_writable_dir(blocker)
    assert_one_line_error(info.value, blocker)
    assert blocker.read_text() == "x"


def test_output_folder_where_files_cannot_be_created():
    """/proc/self is a folder nobody (root included) can create files in: the write probe must catch it."""
    with pytest.raises(OutputError, match="cannot write in the output folder") as info:
        ensure_writable_dir("/proc/self")
    assert_one_line_error(info.value, Path("/proc/self"))


def test_output_folder_is_created_and_left_clean(tmp_path):
    out = ensure_writable_dir(tmp_path / "a" / "b")
    assert out.is_dir() and list(out.iterdir()) == []
