"""Must show 4: MVDream's views of a sample attend to each other and not to other samples; the camera
embedding changes the output; the network equals diffusers' SD UNet when views are alone; cameras are
built as MVDream's get_camera builds them (expected matrices derived by hand)."""

from __future__ import annotations

import pytest
import torch

from recon.priors.mvdream import mvdream_camera, orbit_views
from recon.priors.mvdream_unet import MultiViewUNet, MultiViewUNetConfig, ldm_state_dict
from tests.precision import network_bound


def _inputs(prior, samples=2, seed=9):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(4 * samples, *prior.sample_shape, generator=g)
    cond = prior.condition(prompt="a red chair", negative_prompt="blurry", camera=orbit_views(samples, 15.0))
    return x, cond


def test_one_views_input_changes_its_samples_other_views_only(mvdream_prior):
    x, cond = _inputs(mvdream_prior)
    t = torch.full((8,), 500)
    base = mvdream_prior.predict_noise(x, t, cond, 1.0)
    x2 = x.clone()
    x2[1] += torch.randn(x2[1].shape, generator=torch.Generator().manual_seed(10))  # view 1 of sample 0
    moved = mvdream_prior.predict_noise(x2, t, cond, 1.0)
    change = (moved - base).flatten(1).abs().max(dim=1).values
    assert all(change[i] > 1e-3 for i in (0, 2, 3)), change  # the same sample's other views react
    assert torch.equal(moved[4:], base[4:])  # the other sample is untouched, bit for bit


def test_camera_embedding_changes_the_output(mvdream_prior):
    x, cond = _inputs(mvdream_prior, samples=1)
    t = torch.full((4,), 500)
    base = mvdream_prior.predict_noise(x, t, cond, 1.0)
    other = mvdream_prior.condition(prompt="a red chair", negative_prompt="blurry",
                                    camera=orbit_views(1, 15.0, azimuth_start=45.0))
    turned = mvdream_prior.predict_noise(x, t, other, 1.0)
    assert (turned - base).abs().max() > 1e-3
    assert not torch.equal(other.tensors["camera"], cond.tensors["camera"])


def test_cfg_keeps_samples_whole_and_rejects_split_samples(mvdream_prior):
    x, cond = _inputs(mvdream_prior)
    with pytest.raises(ValueError, match=r"multiple of 4|whole samples"):
        mvdream_prior.predict_noise(x[:6], 500, cond.select(range(6)), 7.0)
    with pytest.raises(ValueError, match="one guidance scale per sample"):
        mvdream_prior.predict_noise(x, 500, cond, torch.tensor([7.0, 7.0, 1.0, 7.0, 7.0, 7.0, 7.0, 7.0]))
    with pytest.raises(ValueError, match="groups of 4"):
        mvdream_prior.condition(prompt="a", camera=[[0, 0, 1]] * 3)
    # A per-sample scale is fine: sample 0 guided, sample 1 conditional only.
    s = torch.tensor([7.0] * 4 + [1.0] * 4)
    eps = mvdream_prior.predict_noise(x, 500, cond, s)
    cond_only = mvdream_prior.predict_noise(x, 500, cond, 1.0)
    assert (eps[4:] - cond_only[4:]).abs().max() < network_bound(cond_only)  # other batch shape (tests/precision.py)
    assert (eps[:4] - cond_only[:4]).abs().max() > 1e-3


@pytest.mark.parametrize(("camera", "expected"), [
    # (elev, azim): eye on the unit sphere at (cos e sin a, sin e, cos e cos a) in MVDream's OpenGL world,
    # columns (right, up, back, eye), then rows (x, y, z) -> (x, -z, y) into Blender's Z-up world.
    ((0.0, 0.0), [[1, 0, 0, 0], [0, 0, -1, -1], [0, 1, 0, 0], [0, 0, 0, 1]]),
    ((0.0, 90.0), [[0, 0, 1, 1], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]]),
    ((30.0, 0.0), [[1, 0, 0, 0], [0, 0.5, -0.8660254, -0.8660254], [0, 0.8660254, 0.5, 0.5], [0, 0, 0, 1]]),
])
def test_camera_matrix_matches_mvdreams_construction(camera, expected):
    got = mvdream_camera(torch.tensor([[camera[0], camera[1], 3.8]])).reshape(4, 4)
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64), atol=1e-7, rtol=0)


def test_multiview_unet_equals_diffusers_unet_when_each_view_is_alone():
    """Oracle: with one view per sample, MVDream's UNet is SD's UNet. Converting the published
    (latent-diffusion) names with diffusers' own converter and loading them into diffusers'
    UNet2DConditionModel (camera MLP as its 'projection' class embedding) must give the same output."""
    from diffusers import UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    config = MultiViewUNetConfig(image_size=8, model_channels=32, channel_mult=(1, 2), num_res_blocks=1,
                                 attention_resolutions=(1,), num_head_channels=16, context_dim=24, camera_dim=16,
                                 num_frames=1)
    torch.manual_seed(0)
    ours = MultiViewUNet(config).eval()
    state = ldm_state_dict(ours)
    reference = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=24, attention_head_dim=(2, 4), use_linear_projection=True, norm_num_groups=32,
        class_embed_type="projection", projection_class_embeddings_input_dim=16).eval()
    # The camera MLP plays latent diffusion's 'sequential' label embedding (label_emb.0.{0,2}), which
    # diffusers' converter maps to its projection class embedding.
    renamed = {k.replace("camera_embed.", "label_emb.0."): v for k, v in state.items()}
    converted = convert_ldm_unet_checkpoint({"model.diffusion_model." + k: v for k, v in renamed.items()},
                                            dict(reference.config))
    missing, unexpected = reference.load_state_dict(converted, strict=False)
    assert not missing and not unexpected
    g = torch.Generator().manual_seed(1)
    x, ctx = torch.randn(3, 4, 8, 8, generator=g), torch.randn(3, 5, 24, generator=g)
    cam, t = torch.randn(3, 16, generator=g), torch.tensor([10, 500, 999])
    with torch.no_grad():
        a = ours(x, t, ctx, camera=cam, num_frames=1)
        b = reference(x, t, encoder_hidden_states=ctx, class_labels=cam).sample
    assert (a - b).abs().max() < network_bound(b)  # two implementations: other kernels (tests/precision.py)


def test_published_parameter_names(mvdream_folder):
    from safetensors import safe_open

    with safe_open(str(mvdream_folder / "unet" / "diffusion_pytorch_model.safetensors"), "pt") as f:
        keys = set(f.keys())
    # Names of the latent-diffusion MultiViewUNetModel that the published checkpoint uses.
    for key in ("time_embed.0.weight", "time_embed.2.bias", "camera_embed.0.weight", "camera_embed.2.weight",
                "input_blocks.0.0.weight", "input_blocks.1.0.in_layers.0.weight", "input_blocks.1.0.in_layers.2.weight",
                "input_blocks.1.0.emb_layers.1.weight", "input_blocks.1.0.out_layers.3.weight",
                "input_blocks.1.1.proj_in.weight", "input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight",
                "input_blocks.1.1.transformer_blocks.0.ff.net.0.proj.weight", "input_blocks.2.0.op.weight",
                "input_blocks.3.0.skip_connection.weight", "middle_block.1.transformer_blocks.0.attn2.to_k.weight",
                "output_blocks.0.0.skip_connection.weight", "out.0.weight", "out.2.weight"):
        assert key in keys, key
