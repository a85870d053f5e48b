"""Stable Diffusion prior: DDIM through recon equals diffusers' pipeline (Must show 2), view-dependent
prompts, Perp-Neg, and differentiable VAE encoding of renders."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from recon.diffusion import DDIMGrid, ddim_sample
from recon.priors.view_prompts import PerpNegConfig, ViewPromptConfig, view_direction
from tests.precision import cfg_bound, network_bound


def test_ddim_cfg_sampling_equals_diffusers_stable_diffusion_pipeline(sd_folder, sd_prior):
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(sd_folder, safety_checker=None, feature_extractor=None,
                                                   requires_safety_checker=False)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    expected = pipe(prompt="a red chair", negative_prompt="blurry", num_inference_steps=10, guidance_scale=7.5,
                    latents=latents.clone(), output_type="latent", height=16, width=16,
                    num_images_per_prompt=2).images
    cond = sd_prior.condition(prompt="a red chair", negative_prompt="blurry", batch=2)
    grid = DDIMGrid.make(sd_prior.schedule, 10)
    assert list(grid.timesteps) == pipe.scheduler.timesteps.tolist()
    ours, _ = ddim_sample(sd_prior, latents.clone(), cond, grid, 7.5)
    assert (ours - expected).abs().max() < 1e-4
    assert (ours - latents).abs().max() > 0.1  # sampling moved the latents


@pytest.mark.parametrize(("elevation", "azimuth", "expected"), [
    (0, 0, "front"), (0, 44, "front"), (0, -44, "front"), (0, 45, "side"), (0, 90, "side"), (0, -90, "side"),
    (0, 135, "side"), (0, 136, "back"), (0, 180, "back"), (0, -170, "back"), (0, 190, "back"), (0, 330, "front"),
    (60, 0, "front"), (61, 0, "overhead"), (80, 180, "overhead"), (-30, 180, "back"),
])
def test_view_direction_follows_threestudios_thresholds(elevation, azimuth, expected):
    names = ("side", "front", "back", "overhead")
    got = view_direction(torch.tensor([float(elevation)]), torch.tensor([float(azimuth)]), ViewPromptConfig())
    assert names[int(got)] == expected


def test_each_row_gets_its_views_prompt_embedding(sd_prior):
    cams = [[0, 10, 3.8], [0, 100, 3.8], [0, 200, 3.8], [75, 0, 3.8]]
    cond = sd_prior.condition(prompt="a red chair", negative_prompt="blurry", camera=cams)
    texts = ["a red chair, front view", "a red chair, side view", "a red chair, back view",
             "a red chair, overhead view"]
    # Oracle: the text encoder run directly on the suffixed prompts.
    tokens = sd_prior.tokenizer([*texts, "blurry"], padding="max_length", max_length=77, truncation=True,
                                return_tensors="pt")
    with torch.no_grad():
        direct = sd_prior.text_encoder(tokens.input_ids).last_hidden_state
    torch.testing.assert_close(cond.tensors["context"], direct[:4], atol=1e-6, rtol=0)
    torch.testing.assert_close(cond.tensors["negative"], direct[4:].expand(4, -1, -1), atol=1e-6, rtol=0)
    assert torch.equal(cond.cameras, torch.tensor(cams, dtype=torch.float64))
    assert len(set(cond.tags)) == 4


def test_without_camera_the_prompt_is_used_as_given(sd_prior):
    cond = sd_prior.condition(prompt="a red chair", batch=3)
    direct = sd_prior.encode_prompt(["a red chair"])
    torch.testing.assert_close(cond.tensors["context"], direct.expand(3, -1, -1), atol=1e-6, rtol=0)
    assert cond.cameras is None


def _perp(x, y):
    # The component of x orthogonal to y, per row (Perp-Neg paper / threestudio), written out here.
    dot = (x * y).flatten(1).sum(1)
    norm = (y * y).flatten(1).sum(1).clamp_min(1e-6)
    return x - (dot / norm).view(-1, 1, 1, 1) * y


def test_perp_neg_matches_a_hand_written_reference(sd_prior):
    from recon.priors.stable_diffusion import StableDiffusionPrior

    prior = StableDiffusionPrior(sd_prior.unet, sd_prior.schedule, sd_prior.vae, sd_prior.text_encoder,
                                 sd_prior.tokenizer, perp_neg=PerpNegConfig(enabled=True))
    cams = [[10, 30, 3.8], [10, 120, 3.8], [70, 0, 3.8]]
    cond = prior.condition(prompt="a red chair", negative_prompt="blurry", camera=cams)
    side, front, back, overhead, neg = prior.encode_prompt(
        ["a red chair, side view", "a red chair, front view", "a red chair, back view",
         "a red chair, overhead view", "blurry"])
    r0, r1 = 1 - 30 / 90, 2 - 120 / 90
    pos = torch.stack([r0 * front + (1 - r0) * side, r1 * side + (1 - r1) * back, overhead])
    torch.testing.assert_close(cond.tensors["context"], pos, atol=1e-6, rtol=0)

    def f(a, b, c, r):
        return a * math.exp(-b * r) + c

    weights = [(-f(4, 0.5, -2.426, r0), -f(4, 0.5, -2.426, 1 - r0)),  # front half: negatives front, side
               (-f(1, 0.5, -0.606, r1), -f(1, 0.5, 0.967, r1))]  # back half: negatives side, front
    negatives = [(front, side), (side, front)]
    x = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(6))
    t, s = torch.tensor([700, 400, 200]), 7.5
    calls, evals = prior.counter.snapshot()
    eps = prior.predict_noise(x, t, cond, s)
    # 3 positive + 3 unconditional + 2 negatives each for the two non-overhead rows, one call.
    assert prior.counter.snapshot() == (calls + 1, evals + 10)

    def unet(xi, ti, ctx):
        with torch.no_grad():
            return prior.unet(xi, ti, encoder_hidden_states=ctx).sample

    eps_pos = unet(x, t, pos)
    eps_u = unet(x, t, neg.expand(3, -1, -1))
    expected = eps_u + s * (eps_pos - eps_u)  # overhead row: plain CFG on the overhead prompt
    for i in range(2):
        e_pos = (eps_pos - eps_u)[i: i + 1]
        accum = torch.zeros_like(e_pos)
        for (w, n_emb) in zip(weights[i], negatives[i]):
            e_neg = unet(x[i: i + 1], t[i: i + 1], n_emb[None]) - eps_u[i: i + 1]
            accum += w * _perp(e_neg, e_pos)
        expected[i] = (eps_u[i: i + 1] + s * (e_pos + accum))[0]
    # float32 batching noise (tests/precision.py), amplified by s and by the perp-neg weights on the negatives
    bound = cfg_bound(eps_pos, eps_u, s) * (1 + sum(abs(float(w)) for ws in weights for w in ws))
    assert (eps - expected).abs().max() < bound
    assert (eps_pos - eps_u).abs().max() > 5 * bound  # not vacuous
    # With s = 1 the Perp-Neg correction stays (ε_pos + Σ w ⊥(e_i, e_pos), the DSD authors' t₊ term); only the
    # overhead row, whose negatives weigh 0, is its blended conditional prediction alone (no ε_u row for it).
    calls, evals = prior.counter.snapshot()
    eps1 = prior.predict_noise(x, t, cond, 1.0)
    assert prior.counter.snapshot() == (calls + 1, evals + 3 + 2 + 4)
    assert (eps1[2] - eps_pos[2]).abs().max() < network_bound(eps_pos)
    # float32 noise of each branch, the negatives' and ε_u's amplified by the weights (each enters e_i and e_pos)
    bound1 = network_bound(eps_pos, eps_u) * (1 + 2 * sum(abs(float(w)) for ws in weights for w in ws))
    for i in range(2):
        e_pos = (eps_pos - eps_u)[i: i + 1]
        accum = sum(w * _perp(unet(x[i: i + 1], t[i: i + 1], n_emb[None]) - eps_u[i: i + 1], e_pos)
                    for w, n_emb in zip(weights[i], negatives[i]))
        assert (eps1[i] - (eps_pos[i] + accum[0])).abs().max() < bound1
        assert accum.abs().max() > 5 * bound1  # the correction is really there


def test_encode_resizes_renders_and_keeps_gradients(sd_prior):
    renders = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(7), requires_grad=True)
    latents = sd_prior.encode(renders)
    assert latents.shape == (2, *sd_prior.sample_shape)
    with torch.no_grad():  # oracle: the diffusers VAE on the resized image
        resized = F.interpolate(renders, (16, 16), mode="bilinear", align_corners=False, antialias=True)
        expected = sd_prior.vae.encode(resized * 2 - 1).latent_dist.mean * 0.18215
    torch.testing.assert_close(latents, expected, atol=1e-6, rtol=0)
    latents.square().sum().backward()
    assert renders.grad is not None and renders.grad.abs().sum() > 0


def test_view_rows_rebuild_at_a_bin_centre_without_reencoding(sd_prior):
    cond = sd_prior.condition(prompt="a red chair", negative_prompt="blurry", camera=[[5, 52, 3.8], [5, 170, 3.8]])
    calls = {"n": 0}
    handle = sd_prior.text_encoder.register_forward_hook(lambda *_: calls.__setitem__("n", calls["n"] + 1))
    try:
        rebuilt = cond.row_for_trajectory(0, camera_bin=15.0)  # azimuth 52 -> bin centre 45: still "side"
    finally:
        handle.remove()
    assert calls["n"] == 0
    fresh = sd_prior.condition(prompt="a red chair", negative_prompt="blurry", camera=[[0, 45, 3.8]])
    torch.testing.assert_close(rebuilt.tensors["context"], fresh.tensors["context"], atol=0, rtol=0)
    assert rebuilt.tags == fresh.tags == (("sd", "a red chair", "side", "blurry"),)
