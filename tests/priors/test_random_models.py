"""Random-weight model folders (recon.priors.random_models): the published configs imply the published
parameter counts, and the folders hold what the configs say (issue 10, item 1)."""

from __future__ import annotations

import pytest
import torch

from recon.priors import architectures as arch
from recon.priors import random_models as rm
from recon.priors.verify_folder import verify_folder

# name -> component -> parameters of the published networks. The UNet / VAE / image-encoder figures are
# the published fp32 file sizes / 4 (bennyguo/zero123-xl-diffusers: unet 3.44 GB, image_encoder 1.22 GB,
# vae 335 MB); the rest are the counts diffusers / transformers give for the released config.json files.
EXPECTED = {
    "zero123-xl": {"unet": 859_532_484, "vae": 83_653_863, "image_encoder": 303_966_208,
                   "clip_camera_projection": 772 * 768 + 768},
    "stable-zero123": {"unet": 859_532_484, "vae": 83_653_863, "image_encoder": 303_966_208,
                       "clip_camera_projection": 772 * 768 + 768},
    "sd-1.5": {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480},
    "sd-2.1-base": {"unet": 865_910_724, "vae": 83_653_863, "text_encoder": 340_387_840},
    "mvdream": {"unet": 867_572_164, "vae": 83_653_863, "text_encoder": 340_387_840},
}


@pytest.mark.parametrize("name", rm.PUBLISHED)
def test_published_configs_imply_the_published_parameter_counts(name):
    assert rm.published_parameters(name) == EXPECTED[name]


def test_mvdream_unet_is_sd21_unet_plus_the_camera_mlp():
    # Counted with diffusers' own UNet class: MVDream = SD 2.1's UNet + Linear(16, 1280), Linear(1280, 1280).
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        sd21 = sum(p.numel() for p in UNet2DConditionModel(**arch.SD21_BASE_UNET).parameters())
    camera_mlp = (16 * 1280 + 1280) + (1280 * 1280 + 1280)
    assert rm.published_parameters("mvdream")["unet"] == sd21 + camera_mlp == arch.PUBLISHED_PARAMETERS["mvdream_unet"]


@pytest.mark.parametrize("name", rm.PUBLISHED)
def test_tiny_folders_hold_what_their_configs_say(name, tmp_path):
    folder = rm.write_model(name, tmp_path / name, "tiny")
    report = verify_folder(folder)
    assert report.kind == {"zero123-xl": "zero123", "stable-zero123": "zero123", "mvdream": "mvdream"}.get(
        name, "stable-diffusion")
    assert rm.folder_parameters(folder) == rm.published_parameters(name, "tiny")
