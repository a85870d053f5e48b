"""Per-run report files for people: contact sheet, turntables and an offline ``index.html``, and the
hypothesis labels they share with the manifest (:mod:`recon.io.manifest` writes ``run.json``).

This module takes already rendered frames (arrays); rendering them is the mesh renderer's job. Every
file goes through :mod:`recon.io.atomic`.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from recon.io.atomic import atomic_path, atomic_write_text


def to_uint8(image: np.ndarray) -> np.ndarray:
    """(H, W, 3|4) float in [0, 1] or uint8 -> uint8 RGB (alpha composited on white)."""
    a = np.asarray(image)
    if a.dtype != np.uint8:
        a = (np.clip(a, 0, 1) * 255).round().astype(np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=-1)
    if a.shape[-1] == 4:
        alpha = a[..., 3:].astype(np.float32) / 255
        a = (a[..., :3] * alpha + 255 * (1 - alpha)).round().astype(np.uint8)
    return np.ascontiguousarray(a[..., :3])


# ----------------------------------------------------------------------------- contact sheet
# The contact sheet's two views per hypothesis: azimuth 0 is the front (the input photo's camera).
# A front three-quarter view and the back three-quarter view from the opposite side see all four
# sides between them; the back is what differs between hypotheses.
SHEET_VIEWS = {"front 3/4": 45.0, "back 3/4": 225.0}


def contact_sheet(images: Sequence[np.ndarray], labels: Sequence[str], columns: int | None = None,
                  label_height: int = 22, pad: int = 4) -> np.ndarray:
    """K images (H, W, 3) of equal size -> one (rows*(H+label_height+pad)+pad, ...) uint8 RGB sheet.

    Tile k sits at row k // columns, column k % columns (``columns`` defaults to ceil(sqrt(K))), with
    ``labels[k]`` written in the strip under it; background white.
    """
    if not images or len(images) != len(labels):
        raise ValueError(f"need one label per image, got {len(images)} images and {len(labels)} labels")
    cols = columns or int(np.ceil(np.sqrt(len(images))))
    return views_sheet([[im] for im in images], labels, columns=cols, label_height=label_height, pad=pad)


def views_sheet(views: Sequence[Sequence[np.ndarray]], labels: Sequence[str],
                view_names: Sequence[str] | None = None, columns: int | None = None,
                label_height: int = 22, pad: int = 4) -> np.ndarray:
    """V views of each of K hypotheses -> one uint8 RGB sheet on white.

    ``views[k][v]`` is view v of hypothesis k (H, W, 3|4), all the same size. Hypotheses are columns
    (at most ``columns`` per band, default 8, then the next band below); in a band, view v of every
    hypothesis sits on row v, so one view of all hypotheses compares side by side, and ``labels[k]`` is
    written in a strip under hypothesis k's column. With ``view_names`` (V names) a header column on the
    left names each row. Cell geometry: band height V·H + (V−1)·pad + label_height + pad, column
    width W + pad, plus ``pad`` around the sheet (and the header column's width when named).
    """
    if not views or len(views) != len(labels):
        raise ValueError(f"need one label per image, got {len(views)} images and {len(labels)} labels")
    tiles = [[to_uint8(im) for im in hyp] for hyp in views]
    n_views = len(tiles[0])
    if n_views == 0 or any(len(t) != n_views for t in tiles):
        raise ValueError("every hypothesis of a contact sheet needs the same number of views (at least one)")
    h, w = tiles[0][0].shape[:2]
    if any(t.shape[:2] != (h, w) for hyp in tiles for t in hyp):
        raise ValueError("all images of a contact sheet must have the same size")
    if view_names is not None and len(view_names) != n_views:
        raise ValueError(f"need one name per view, got {len(view_names)} names for {n_views} views")
    k = len(tiles)
    cols = min(columns or 8, k)
    bands = int(np.ceil(k / cols))
    head_w = _header_width(view_names, label_height) + pad if view_names else 0
    band_h = n_views * h + (n_views - 1) * pad + label_height + pad
    sheet = np.full((bands * band_h + pad, head_w + cols * (w + pad) + pad, 3), 255, np.uint8)
    for i, (hyp, label) in enumerate(zip(tiles, labels)):
        y0, x = pad + (i // cols) * band_h, pad + head_w + (i % cols) * (w + pad)
        for v, tile in enumerate(hyp):
            y = y0 + v * (h + pad)
            sheet[y:y + h, x:x + w] = tile
        y = y0 + n_views * h + (n_views - 1) * pad
        sheet[y:y + label_height, x:x + w] = _label_strip(str(label), w, label_height)
    for b in range(bands if view_names else 0):
        for v, name in enumerate(view_names):
            y = pad + b * band_h + v * (h + pad) + max(0, (h - label_height) // 2)
            sheet[y:y + label_height, pad:pad + head_w - pad] = _label_strip(str(name), head_w - pad, label_height)
    return sheet


def _header_width(names: Sequence[str], label_height: int) -> int:
    """Pixels that the widest of ``names`` needs in a label strip of ``label_height``."""
    font = _font(max(6, label_height - 8))
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    return int(np.ceil(max(draw.textlength(str(n), font=font) for n in names))) + 6


def _label_strip(text: str, width: int, height: int) -> np.ndarray:
    """(height, width, 3) uint8: black text on white, shrunk to fit and clipped to its own cell."""
    strip = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(strip)
    size = max(6, height - 8)
    font = _font(size)
    while size > 6 and draw.textlength(text, font=font) > width - 4:
        size -= 1
        font = _font(size)
    draw.text((2, max(0, (height - size) // 2 - 1)), text, fill=(0, 0, 0), font=font)
    return np.asarray(strip)


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)  # scalable when Pillow has FreeType
    except TypeError:  # pragma: no cover - Pillow without size support
        return ImageFont.load_default()


def hypothesis_label(seed: int, index: int) -> str:
    """A hypothesis's own identity: its random streams (ε*, noise, cameras) are drawn from
    (run seed, hypothesis index) (:mod:`recon.seeding`), so it is labelled ``#k  seed (s, k)``."""
    return f"#{int(index)}  seed ({int(seed)}, {int(index)})"


def seed_labels(seeds: Sequence[int], indices: Sequence[int] | None = None) -> list[str]:
    """:func:`hypothesis_label` of each hypothesis: ``seeds[i]`` is hypothesis ``indices[i]``'s run seed
    (``indices`` default 0..K-1)."""
    indices = range(len(seeds)) if indices is None else indices
    if len(indices) != len(seeds):
        raise ValueError(f"need one index per seed, got {len(indices)} indices and {len(seeds)} seeds")
    return [hypothesis_label(s, k) for k, s in zip(indices, seeds)]


def write_png(path: str | Path, image: np.ndarray) -> Path:
    buf = Image.fromarray(to_uint8(image))
    with atomic_path(path, suffix=".png") as tmp:
        buf.save(tmp, format="PNG")
    return Path(path)


def write_contact_sheet(path: str | Path, views: Sequence[np.ndarray | Sequence[np.ndarray]], seeds: Sequence[int],
                        columns: int | None = None, indices: Sequence[int] | None = None,
                        view_names: Sequence[str] | None = None) -> Path:
    """PNG contact sheet of K hypotheses (:func:`views_sheet`), each labelled with its identity
    ``#k  seed (s, k)`` (:func:`hypothesis_label`).

    ``views[k]`` is hypothesis k's render (H, W, 3|4), or its V renders — for a run, the
    :data:`SHEET_VIEWS` pair, named by ``view_names``. ``indices`` are the hypotheses' indices (default
    0..K-1), for runs in which some hypothesis has no mesh.
    """
    per_hyp = [[v] if np.asarray(v).ndim == 3 else list(v) for v in views]
    return write_png(path, views_sheet(per_hyp, seed_labels(seeds, indices), view_names, columns))


# ----------------------------------------------------------------------------- turntable
def write_turntable(path: str | Path, frames: Sequence[np.ndarray], fps: float = 12.0) -> Path:
    """Looping GIF of ``frames`` (each (H, W, 3|4), float [0, 1] or uint8, equal sizes).

    Each frame gets its own adaptive 256-colour palette. (MP4 would need imageio-ffmpeg; GIF plays in
    every browser and needs nothing.)
    """
    if not frames:
        raise ValueError("a turntable needs at least one frame")
    if Path(path).suffix.lower() != ".gif":
        raise ValueError(f"turntables are written as .gif, got {path}")
    ims = [Image.fromarray(to_uint8(f)) for f in frames]
    if any(im.size != ims[0].size for im in ims):
        raise ValueError("all turntable frames must have the same size")
    pal = [im.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE) for im in ims]
    with atomic_path(path, suffix=".gif") as tmp:
        pal[0].save(tmp, format="GIF", save_all=True, append_images=pal[1:], loop=0,
                    duration=round(1000 / fps), disposal=1, optimize=False)
    return Path(path)


# ----------------------------------------------------------------------------- index.html
@dataclass
class HypothesisEntry:
    """One hypothesis in the report; paths relative to the run folder."""

    index: int
    seed: int
    turntable: str | None = None
    meshes: dict[str, str] = field(default_factory=dict)


def _relative(ref: str) -> str:
    """Refuse anything that would make the page reach outside the run folder or the network."""
    p = Path(ref)
    if "://" in ref or ref.startswith("//") or p.is_absolute() or ".." in p.parts:
        raise ValueError(f"report links must be relative paths inside the run folder, got {ref!r}")
    return html.escape(p.as_posix(), quote=True)


def index_html(title: str, hypotheses: Sequence[HypothesisEntry], contact_sheet_path: str | None,
               run_json: str = "run.json", input_image: str | None = None,
               summary: dict[str, Any] | None = None, reproduce: str = "recon run") -> str:
    """A self-contained page (inline CSS, no scripts, no network) showing the run's pictures and files;
    ``reproduce`` is the command whose ``--from run.json`` repeats the run."""
    t = html.escape(title)
    parts = [
        "<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{t}</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
        "figure{display:inline-block;margin:0 1em 1em 0;vertical-align:top}"
        "img{max-width:100%;image-rendering:auto;border:1px solid #ddd}"
        "table{border-collapse:collapse}td,th{padding:.2em .8em;text-align:left}"
        "code{background:#f3f3f3;padding:0 .2em}</style></head><body>",
        f"<h1>{t}</h1>",
    ]
    if summary:
        rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                       for k, v in summary.items())
        parts.append(f"<table>{rows}</table>")
    if input_image:
        parts.append(f'<h2>Input</h2><img src="{_relative(input_image)}" alt="input image" width="256">')
    if contact_sheet_path:
        parts.append(f'<h2>All hypotheses</h2><img src="{_relative(contact_sheet_path)}" '
                     'alt="contact sheet of all hypotheses">')
    parts.append("<h2>Hypotheses</h2>")
    for h in hypotheses:
        parts.append(f"<figure><figcaption>{html.escape(hypothesis_label(h.seed, h.index))}</figcaption>")
        if h.turntable:
            parts.append(f'<img src="{_relative(h.turntable)}" alt="turntable of hypothesis {h.index}" '
                         'width="256">')
        links = " ".join(f'<a href="{_relative(p)}">{html.escape(fmt.upper())}</a>'
                         for fmt, p in h.meshes.items())
        if links:
            parts.append(f"<div>{links}</div>")
        parts.append("</figure>")
    parts.append(f'<p>Manifest: <a href="{_relative(run_json)}">{html.escape(run_json)}</a> '
                 f"(reproduce with <code>{html.escape(reproduce)} --from {html.escape(run_json)}</code>)</p>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_index_html(path: str | Path, title: str, hypotheses: Sequence[HypothesisEntry],
                     contact_sheet_path: str | None, run_json: str = "run.json",
                     input_image: str | None = None, summary: dict[str, Any] | None = None,
                     reproduce: str = "recon run") -> Path:
    return atomic_write_text(path, index_html(title, hypotheses, contact_sheet_path, run_json,
                                              input_image, summary, reproduce))
