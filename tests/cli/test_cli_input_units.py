"""Issue 15, the parts below the CLI: EXIF orientation, the scheduler-size bound, batch names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from recon.diffusion.schedule import NoiseSchedule
from recon.io.images import load_image
from recon.pipeline.batch import output_names


def test_exif_orientation_is_applied(tmp_path):
    # A phone photo stored landscape with "rotate 90° clockwise to view" (orientation 6): left half white.
    pixels = np.zeros((40, 80, 3), np.uint8)
    pixels[:, :40] = 255
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6
    image.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    loaded = load_image(tmp_path / "phone.jpg")
    assert loaded.rgb.shape[:2] == (80, 40)  # upright: portrait
    top, bottom = loaded.rgb[:40].mean(), loaded.rgb[40:].mean()
    assert top > 0.9 and bottom < 0.1  # the white half is on top once rotated clockwise


def test_an_oversized_scheduler_config_is_refused_without_allocating():
    with pytest.raises(ValueError, match="num_train_timesteps 100000000000"):
        NoiseSchedule.from_config({"num_train_timesteps": 10**11})


def test_batch_output_names_are_unique_per_input_file():
    images = [Path(p) for p in ("a/crate.png", "a/crate.webp", "a/drum.png", "a/crate-png.jpg")]
    names = output_names(images)
    assert len(set(names.values())) == len(images)
    assert names[Path("a/drum.png")] == "drum"
