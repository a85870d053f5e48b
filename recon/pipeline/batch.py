"""Reconstruct every image of a folder: finished images are skipped, failures are isolated and
reported at the end, and an interrupted batch resumes where it stopped (per-image checkpoints).

For many GPUs: ``recon batch --ray`` hands the images to Ray (``recon.pipeline.ray_batch``), which
places one image per GPU across a cluster and retries lost workers; or run several batches over
disjoint shards (``shard=(i, n)``), one per GPU or machine.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from recon.io.errors import FileProblem
from recon.pipeline.image_to_3d import ImageTo3DConfig, RunConflict, config_hash, reconstruct

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}


@dataclass
class BatchItem:
    image: Path
    out_dir: Path
    status: str  # done | skipped | failed
    seconds: float = 0.0
    error: str | None = None


@dataclass
class BatchSummary:
    items: list[BatchItem] = field(default_factory=list)

    @property
    def failed(self) -> list[BatchItem]:
        return [i for i in self.items if i.status == "failed"]


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder; pass a folder of images")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def output_names(images: list[Path]) -> dict[Path, str]:
    """Each image's output folder name: its stem (``crate``), or stem and extension (``crate.webp`` ->
    ``crate-webp``) when another image of the folder has the same stem, so no two inputs share one."""
    stems: dict[str, int] = {}
    for image in images:
        stems[image.stem.lower()] = stems.get(image.stem.lower(), 0) + 1
    names: dict[Path, str] = {}
    for image in images:
        unique = stems[image.stem.lower()] == 1
        names[image] = image.stem if unique else f"{image.stem}-{image.suffix.lstrip('.').lower()}"
    taken = [n.lower() for n in names.values()]
    for image, name in names.items():  # crate-png.jpg beside crate.png and crate.webp: keep the full name
        if taken.count(name.lower()) > 1:
            names[image] = image.name
    return names


def is_finished(out_dir: Path, config: ImageTo3DConfig, image: Path) -> bool:
    """True when ``out_dir/run.json`` records this image and config as complete."""
    try:
        record = json.loads((out_dir / "run.json").read_text())
        from recon.io.images import file_sha256

        return record.get("outputs", {}).get("run_hash") == config_hash(config, file_sha256(image))
    except (OSError, ValueError):
        return False


def reconstruct_batch(
    folder: str | Path,
    config: ImageTo3DConfig,
    out_root: str | Path,
    progress: Callable[[str, int, int], None] | None = None,
    on_item: Callable[[BatchItem], None] | None = None,
    shard: tuple[int, int] = (0, 1),
) -> BatchSummary:
    """Reconstruct each image into ``out_root/<image stem>``; never stops at a bad image."""
    images = list_images(folder)
    names = output_names(images)  # over the whole folder, so every shard gives an image the same name
    index, count = shard
    images = images[index::count]
    summary = BatchSummary()
    for image in images:
        item = process_image(image, config, Path(out_root) / names[image], progress)
        summary.items.append(item)
        if on_item is not None:
            on_item(item)
    return summary


def process_image(image: Path, config: ImageTo3DConfig, out_dir: Path,
                  progress: Callable[[str, int, int], None] | None = None) -> BatchItem:
    """One image of a batch: skipped when finished, its failure captured instead of raised."""
    if is_finished(out_dir, config, image):
        return BatchItem(image, out_dir, "skipped")
    try:
        result = reconstruct(image, config, out_dir, progress, command="recon batch")
        return BatchItem(image, out_dir, "done", result.seconds)
    except (FileProblem, RunConflict, ValueError, RuntimeError, OSError) as exc:
        return BatchItem(image, out_dir, "failed", error=str(exc).splitlines()[0] if str(exc) else repr(exc))
