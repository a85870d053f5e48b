"""One tiny image run for the whole folder: ``recon run`` on a copy of the crate photo, which is then
deleted, so every export here proves that the input image is not needed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from recon.cli import main
from tests.pipeline.tiny_run import TINY

ROOT = Path(__file__).resolve().parents[2]
IMAGE = ROOT / "data" / "examples" / "crate.png"
# Eight turntable frames put one at 45° and one at 225°, the contact sheet's two views.
RUN_ARGS = [*TINY, "--set", "report.turntable_frames=8", "--quiet"]


@pytest.fixture(scope="session")
def image_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("export_cmd")
    image = root / "crate.png"
    shutil.copy(IMAGE, image)
    out = root / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small ops on a busy 2-core machine: one thread is faster and reproducible
    try:
        result = CliRunner().invoke(main, ["run", str(image), "--out", str(out), *RUN_ARGS])
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    image.unlink()
    return out
