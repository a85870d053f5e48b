"""Must show 3: Zero-1-to-3's pose vector and projection follow DESIGN.md (expected values by hand),
the unconditional branch zeros both inputs, Stable Zero123 differs only in the pose's 4th component;
the input image is encoded once per condition() call."""

from __future__ import annotations

import numpy as np
import torch
from safetensors.torch import load_file

from recon.priors.zero123 import Zero123Prior, zero123_pose


def test_pose_vector_by_hand():
    # Target (elev 30°, azim 90°, dist 4.0) seen from the input view (elev 10°, azim 20°, dist 3.8):
    # Δpolar = ((90-30) - (90-10))° = -20° = -0.3490659 rad; Δazim = 70°: sin 0.9396926, cos 0.3420201;
    # Δradius = 0.2.  Stable Zero123's 4th value: input polar 80° = 1.3962634 rad.
    cam = torch.tensor([[30.0, 90.0, 4.0], [10.0, 20.0, 3.8]])
    ref = torch.tensor([10.0, 20.0, 3.8])
    z = zero123_pose(cam, ref, "zero123")
    s = zero123_pose(cam, ref, "stable-zero123")
    torch.testing.assert_close(z[0], torch.tensor([-0.3490659, 0.9396926, 0.3420201, 0.2], dtype=torch.float64),
                               atol=1e-7, rtol=0)
    torch.testing.assert_close(z[1], torch.tensor([0.0, 0.0, 1.0, 0.0], dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(s[0], torch.tensor([-0.3490659, 0.9396926, 0.3420201, 1.3962634],
                                                  dtype=torch.float64), atol=1e-7, rtol=0)


def test_context_is_cc_projection_of_clip_embedding_and_pose(zero123_folder, zero123_prior, test_image):
    from transformers import CLIPVisionModelWithProjection

    cams = torch.tensor([[30.0, 90.0, 4.0], [0.0, -45.0, 3.8]])
    cond = zero123_prior.condition(image=test_image, camera=cams, reference=[10.0, 20.0, 3.8])
    # Oracles: the published projection weights read from the file; the CLIP encoder loaded on its own.
    state = load_file(str(zero123_folder / "clip_camera_projection" / "diffusion_pytorch_model.safetensors"))
    encoder = CLIPVisionModelWithProjection.from_pretrained(zero123_folder / "image_encoder").eval()
    with torch.no_grad():
        pixels = zero123_prior.clip_preprocess(zero123_prior.prepare_image(test_image))
        clip = encoder(pixel_values=pixels).image_embeds[0]
    poses = [[-0.3490659, 0.9396926, 0.3420201, 0.2], [0.1745329, -0.9063078, 0.4226183, 0.0]]
    for i, pose in enumerate(poses):  # (-45 - 20)° = -65°: sin -0.9063078, cos 0.4226183; Δpolar +10°
        token = torch.cat([clip, torch.tensor(pose)])
        expected = state["proj.weight"] @ token + state["proj.bias"]
        torch.testing.assert_close(cond.tensors["context"][i, 0], expected, atol=1e-5, rtol=0)
    assert cond.tensors["context"].shape == (2, 1, 32)


def test_clip_preprocessing_in_torch_matches_clip_image_processor(zero123_folder, zero123_prior, test_image):
    """The ``clip_input="hf"`` path (DreamGaussian's); the default, as trained, is tested in
    test_zero123_conventions.py."""
    from transformers import CLIPImageProcessor

    from recon.priors.components import ClipImagePreprocess

    processor = CLIPImageProcessor.from_pretrained(zero123_folder / "feature_extractor")
    img = zero123_prior.prepare_image(test_image)
    as_uint8 = (img[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    expected = processor(images=as_uint8, return_tensors="pt").pixel_values
    ours = ClipImagePreprocess.from_folder(zero123_folder / "feature_extractor")(img)
    assert ours.shape == expected.shape
    # PIL's bicubic and torch's antialiased bicubic differ slightly at edges; colours must agree.
    assert (ours - expected).abs().mean() < 0.03


def test_unconditional_branch_zeros_context_and_concat_latent(zero123_prior, test_image):
    seen = {}

    def hook(module, args, kwargs):
        seen["sample"] = args[0].detach().clone()
        seen["context"] = kwargs["encoder_hidden_states"].detach().clone()

    cond = zero123_prior.condition(image=test_image, camera=[[0, 30, 3.8], [10, 60, 3.8]])
    handle = zero123_prior.unet.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(8))
        zero123_prior.predict_noise(x, 500, cond, 3.0)
    finally:
        handle.remove()
    sample, context = seen["sample"], seen["context"]
    assert sample.shape == (4, 8, 8, 8)  # 2 conditional + 2 unconditional rows, 4 + 4 channels
    # Oracle for the conditional concat latent: the diffusers VAE's mode on the 16² input, unscaled.
    with torch.no_grad():
        img = zero123_prior.prepare_image(test_image)
        latent = zero123_prior.vae.encode(img * 2 - 1).latent_dist.mode()
    torch.testing.assert_close(sample[:2, 4:], latent.expand(2, -1, -1, -1), atol=1e-6, rtol=0)
    torch.testing.assert_close(sample[:, :4], torch.cat([x, x]), atol=0, rtol=0)
    assert torch.count_nonzero(sample[2:, 4:]) == 0
    assert torch.count_nonzero(context[2:]) == 0
    torch.testing.assert_close(context[:2], cond.tensors["context"], atol=0, rtol=0)


def test_stable_zero123_differs_only_in_the_fourth_pose_component(zero123_folder, zero123_prior, test_image):
    stable = Zero123Prior(zero123_prior.unet, zero123_prior.schedule, zero123_prior.vae,
                          zero123_prior.image_encoder, zero123_prior.projection, zero123_prior.clip_preprocess,
                          variant="stable-zero123")
    cams = [[30.0, 90.0, 4.5], [-10.0, 200.0, 3.0]]
    ref = [10.0, 20.0, 3.8]
    a = zero123_prior.condition(image=test_image, camera=cams, reference=ref)
    b = stable.condition(image=test_image, camera=cams, reference=ref)
    pa, pb = a.tensors["pose"], b.tensors["pose"]
    torch.testing.assert_close(pa[:, :3], pb[:, :3], atol=0, rtol=0)
    torch.testing.assert_close(pa[:, 3], torch.tensor([0.7, -0.8], dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(pb[:, 3], torch.full((2,), 1.3962634015954636, dtype=torch.float64),
                               atol=1e-12, rtol=0)  # radians(90 - 10)
    # The contexts differ by exactly the projection's last input column times the change in T[3].
    w_last = zero123_prior.projection.weight[:, -1]
    diff = b.tensors["context"][:, 0] - a.tensors["context"][:, 0]
    expected = (pb[:, 3] - pa[:, 3]).float().unsqueeze(1) * w_last.unsqueeze(0)
    torch.testing.assert_close(diff, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(a.tensors["image_latent"], b.tensors["image_latent"], atol=0, rtol=0)


def test_input_image_is_encoded_once_per_condition(zero123_prior, test_image):
    counts = {"clip": 0, "vae": 0}

    def count(name):
        def hook(*_):
            counts[name] += 1
        return hook

    handles = [zero123_prior.image_encoder.register_forward_hook(count("clip")),
               zero123_prior.vae.encoder.register_forward_hook(count("vae"))]
    try:
        cams = torch.stack([torch.zeros(12), torch.linspace(-180, 150, 12), torch.full((12,), 3.8)], dim=1)
        cond = zero123_prior.condition(image=test_image, camera=cams)
    finally:
        for h in handles:
            h.remove()
    assert counts == {"clip": 1, "vae": 1}
    assert len(cond) == 12 and cond.cameras.shape == (12, 3)
    assert cond.shared["image_latent"].shape == (1, 4, 8, 8)
    assert len(set(cond.tags)) == 1 and len(set(cond.cache_keys())) == 12


def test_rgba_input_is_composited_on_white(zero123_prior, test_image):
    rgba = torch.cat([test_image, torch.ones(1, 1, 40, 40)], dim=1)
    rgba[:, 3, :5, :5] = 0.0
    rgba[:, :3, :5, :5] = 0.2  # hidden colour under zero alpha
    white = test_image.clone()
    white[:, :, :5, :5] = 1.0
    torch.testing.assert_close(zero123_prior.prepare_image(rgba), zero123_prior.prepare_image(white))


def test_rebuild_at_other_cameras_reuses_the_encoded_image(zero123_prior, test_image):
    """Trajectory caches condition a camera bin on its centre via Condition.rebuild: same result as a
    fresh condition() at those cameras, with no encoder run."""
    cond = zero123_prior.condition(image=test_image, camera=[[12.0, 37.0, 3.8], [3.0, -100.0, 3.8]],
                                   reference=[5.0, 0.0, 3.8])
    centre = torch.tensor([[15.0, 30.0, 3.8]], dtype=torch.float64)
    calls = {"n": 0}

    def hook(*_):
        calls["n"] += 1

    handles = [zero123_prior.image_encoder.register_forward_hook(hook),
               zero123_prior.vae.encoder.register_forward_hook(hook)]
    try:
        rebuilt = cond.row_for_trajectory(0, camera_bin=15.0)
    finally:
        for h in handles:
            h.remove()
    assert calls["n"] == 0
    fresh = zero123_prior.condition(image=test_image, camera=centre, reference=[5.0, 0.0, 3.8])
    torch.testing.assert_close(rebuilt.tensors["context"], fresh.tensors["context"], atol=0, rtol=0)
    torch.testing.assert_close(rebuilt.cameras, centre, atol=0, rtol=0)
    assert rebuilt.tags == fresh.tags and rebuilt.cache_keys(15.0) == cond.cache_keys(15.0)[:1]


def test_load_zero123_prior_by_zoo_name_or_variant(zero123_folder, tmp_path, monkeypatch):
    from recon.priors.zero123 import load_zero123_prior

    (tmp_path / "stable-zero123").symlink_to(zero123_folder, target_is_directory=True)
    monkeypatch.setenv("RECON_MODELS", str(tmp_path))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    assert load_zero123_prior(None, variant="stable-zero123", device="cpu").variant == "stable-zero123"
    assert load_zero123_prior(str(zero123_folder), device="cpu").variant == "zero123"
