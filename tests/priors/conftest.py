"""Tiny model folders written once per test session, and the priors loaded from them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from tests.priors.tiny_models import write_mvdream, write_sd, write_zero123


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tiny_models")


@pytest.fixture(scope="session")
def sd_folder(tiny_root) -> Path:
    return write_sd(tiny_root / "sd")


@pytest.fixture(scope="session")
def zero123_folder(tiny_root) -> Path:
    return write_zero123(tiny_root / "zero123")


@pytest.fixture(scope="session")
def zero123_cc_folder(tiny_root) -> Path:
    return write_zero123(tiny_root / "zero123_cc", projection="cc_projection")


@pytest.fixture(scope="session")
def mvdream_folder(tiny_root) -> Path:
    return write_mvdream(tiny_root / "mvdream")


@pytest.fixture(scope="session")
def sd_prior(sd_folder):
    from recon.priors.stable_diffusion import StableDiffusionPrior

    return StableDiffusionPrior.from_pretrained(sd_folder)


@pytest.fixture(scope="session")
def zero123_prior(zero123_folder):
    from recon.priors.zero123 import Zero123Prior

    return Zero123Prior.from_pretrained(zero123_folder)


@pytest.fixture(scope="session")
def mvdream_prior(mvdream_folder):
    from recon.priors.mvdream import MVDreamPrior

    return MVDreamPrior.from_pretrained(mvdream_folder)


@pytest.fixture
def copy_folder(tmp_path):
    """Copy a session folder so a test may damage it."""

    def make(src: Path, name: str | None = None) -> Path:
        dst = tmp_path / (name or src.name)
        shutil.copytree(src, dst)
        return dst

    return make


@pytest.fixture
def test_image() -> torch.Tensor:
    """(1, 3, 40, 40) RGB in [0, 1]: a coloured disc on white."""
    c = (torch.arange(40, dtype=torch.float32) + 0.5) / 40 * 2 - 1
    y, x = torch.meshgrid(c, c, indexing="ij")
    disc = ((x**2 + y**2) < 0.5).float()
    colour = torch.tensor([0.9, 0.3, 0.1]).view(3, 1, 1)
    return (disc * colour + (1 - disc)).unsqueeze(0)
