"""Must show 1: each prior loads a tiny random-weight folder written in the published layout, through
the real loading path, predicts noise of the right shape, and follows recon's CFG semantics."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from recon.priors.base import Condition
from tests.precision import cfg_bound, network_bound


def _conditions(name, prior, image):
    if name == "sd":
        return prior.condition(prompt="a red chair", negative_prompt="blurry",
                               camera=[[0, 0, 3.8], [10, 90, 3.8], [20, 180, 3.8], [70, 30, 3.8]])
    if name == "zero123":
        return prior.condition(image=image, camera=[[0, 0, 3.8], [10, 90, 3.8], [20, 180, 4.0], [-5, 30, 3.8]])
    return prior.condition(prompt="a red chair", negative_prompt="blurry",
                           camera=[[15, 0, 1], [15, 90, 1], [15, 180, 1], [15, 270, 1]])


@pytest.fixture(params=["sd", "zero123", "mvdream"])
def prior_and_cond(request, test_image):
    prior = request.getfixturevalue(f"{request.param}_prior")
    return request.param, prior, _conditions(request.param, prior, test_image)


def test_loaded_priors_predict_noise_of_one_views_latent_shape(prior_and_cond):
    _, prior, cond = prior_and_cond
    assert prior.sample_shape == (4, 8, 8)
    x = torch.randn(4, *prior.sample_shape, generator=torch.Generator().manual_seed(0))
    eps = prior.predict_noise(x, torch.tensor([900, 500, 100, 10]), cond, 5.0)
    assert eps.shape == x.shape and eps.dtype == x.dtype
    assert torch.isfinite(eps).all() and eps.abs().mean() > 1e-3


def test_guidance_one_is_a_single_conditional_call(prior_and_cond):
    _, prior, cond = prior_and_cond
    x = torch.randn(4, *prior.sample_shape, generator=torch.Generator().manual_seed(1))
    t = torch.full((4,), 400)
    calls, evals = prior.counter.snapshot()
    eps = prior.predict_noise(x, t, cond, 1.0)
    assert prior.counter.snapshot() == (calls + 1, evals + 4)
    direct = prior._model_eps(x, t, cond, torch.zeros(4, dtype=torch.bool))
    # Same rows, same batch shape: the same kernels, so equal to float32's rounding of the output.
    assert (eps - direct.to(eps.dtype)).abs().max() <= network_bound(direct)


def test_batched_cfg_equals_two_separate_calls(prior_and_cond):
    _, prior, cond = prior_and_cond
    x = torch.randn(4, *prior.sample_shape, generator=torch.Generator().manual_seed(2))
    t = torch.tensor([800, 600, 300, 50])
    s = 7.5
    calls, evals = prior.counter.snapshot()
    eps = prior.predict_noise(x, t, cond, s)
    assert prior.counter.snapshot() == (calls + 1, evals + 8)  # both branches of 4 rows in one call
    eps_c = prior._model_eps(x, t, cond, torch.zeros(4, dtype=torch.bool))
    eps_u = prior._model_eps(x, t, cond, torch.ones(4, dtype=torch.bool))
    expected = eps_u + s * (eps_c - eps_u)
    # 8 rows against 4 + 4: float32 may round each branch differently (tests/precision.py), and CFG 7.5
    # amplifies that; measured up to 1.24e-5 on an AVX-512 CPU, bound ~2e-3.
    bound = cfg_bound(eps_c, eps_u, s)
    assert (eps - expected).abs().max() < bound
    # Not vacuous: the other CFG form (ε_c + s(ε_c − ε_u)) or a lost branch moves ε by ≥ |ε_c − ε_u|.
    assert (eps_c - eps_u).abs().max() > 5 * bound


def test_zero123_loads_both_projection_layouts(zero123_folder, zero123_cc_folder):
    from recon.priors.zero123 import Zero123Prior

    for folder, sub, prefix in ((zero123_folder, "clip_camera_projection", "proj"),
                                (zero123_cc_folder, "cc_projection", "projection")):
        prior = Zero123Prior.from_pretrained(folder)
        state = load_file(str(folder / sub / "diffusion_pytorch_model.safetensors"))
        assert torch.equal(prior.projection.weight, state[f"{prefix}.weight"])
        assert torch.equal(prior.projection.bias, state[f"{prefix}.bias"])


def test_load_prior_by_zoo_name_uses_recon_models_and_the_entrys_variant(tiny_root, zero123_folder, monkeypatch,
                                                                        tmp_path):
    from recon.priors.loading import load_prior
    from recon.priors.mvdream import MVDreamPrior
    from recon.priors.stable_diffusion import StableDiffusionPrior
    from recon.priors.zero123 import Zero123Prior

    root = tmp_path / "models"
    root.mkdir()
    for name in ("zero123-xl", "stable-zero123"):
        (root / name).symlink_to(zero123_folder, target_is_directory=True)
    (root / "mvdream").symlink_to(tiny_root / "mvdream", target_is_directory=True)
    (root / "sd-1.5").symlink_to(tiny_root / "sd", target_is_directory=True)
    monkeypatch.setenv("RECON_MODELS", str(root))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    xl = load_prior("zero123-xl")
    stable = load_prior("stable-zero123")
    assert isinstance(xl, Zero123Prior) and xl.variant == "zero123"
    assert isinstance(stable, Zero123Prior) and stable.variant == "stable-zero123"
    assert isinstance(load_prior("mvdream"), MVDreamPrior)
    assert isinstance(load_prior("sd-1.5"), StableDiffusionPrior)
    # A bare folder is typed by its layout.
    assert isinstance(load_prior(tiny_root / "mvdream"), MVDreamPrior)


def test_condition_rows_select_and_concatenate(zero123_prior, test_image):
    cond = zero123_prior.condition(image=test_image, camera=[[0, 0, 3.8], [0, 90, 3.8]])
    both = Condition.cat([cond, cond.select([1])])
    assert len(both) == 3 and both.cameras.shape == (3, 3)
    assert torch.equal(both.tensors["context"][2], cond.tensors["context"][1])
    assert both.cache_keys()[1] == both.cache_keys()[2]


def test_speed_config_bfloat16_and_channels_last_on_cpu(sd_folder):
    from recon.priors.speed import SpeedConfig
    from recon.priors.stable_diffusion import StableDiffusionPrior

    fast = StableDiffusionPrior.from_pretrained(sd_folder, speed=SpeedConfig(device="cpu", dtype="bfloat16",
                                                                           channels_last=True))
    ref = StableDiffusionPrior.from_pretrained(sd_folder)
    assert fast.dtype == torch.bfloat16
    assert fast.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(2, *ref.sample_shape, generator=torch.Generator().manual_seed(3))
    cond_f, cond_r = fast.condition(prompt="a cat", batch=2), ref.condition(prompt="a cat", batch=2)
    a, b = fast.predict_noise(x, 500, cond_f, 7.5), ref.predict_noise(x, 500, cond_r, 7.5)
    assert a.dtype == torch.float32
    assert (a - b).abs().max() < 0.1 * b.abs().max()  # bf16 keeps ~3 significant digits


@pytest.mark.slow
def test_torch_compile_gives_the_eager_result(sd_folder):
    from recon.priors.speed import SpeedConfig
    from recon.priors.stable_diffusion import StableDiffusionPrior

    compiled = StableDiffusionPrior.from_pretrained(sd_folder, speed=SpeedConfig(device="cpu", dtype="float32",
                                                                               compile=True))
    eager = StableDiffusionPrior.from_pretrained(sd_folder)
    x = torch.randn(2, *eager.sample_shape, generator=torch.Generator().manual_seed(4))
    cond = eager.condition(prompt="a cat", batch=2)
    torch.testing.assert_close(compiled.predict_noise(x, 500, cond, 7.5), eager.predict_noise(x, 500, cond, 7.5),
                               atol=1e-4, rtol=1e-4)


@pytest.mark.gpu
def test_cuda_fp16_sdpa_channels_last_matches_fp32(sd_folder, zero123_folder, test_image):
    from recon.priors.speed import SpeedConfig
    from recon.priors.stable_diffusion import StableDiffusionPrior
    from recon.priors.zero123 import Zero123Prior

    for cls, folder in ((StableDiffusionPrior, sd_folder), (Zero123Prior, zero123_folder)):
        fast = cls.from_pretrained(folder, speed=SpeedConfig.fast_cuda("float16"))
        ref = cls.from_pretrained(folder, speed=SpeedConfig(device="cuda", dtype="float32"))
        x = torch.randn(4, *ref.sample_shape, generator=torch.Generator().manual_seed(5)).cuda()
        if cls is StableDiffusionPrior:
            cf, cr = fast.condition(prompt="a cat", batch=4), ref.condition(prompt="a cat", batch=4)
        else:
            cams = [[0, 0, 3.8], [0, 90, 3.8], [10, 180, 3.8], [20, 270, 3.8]]
            cf, cr = fast.condition(image=test_image, camera=cams), ref.condition(image=test_image, camera=cams)
        a, b = fast.predict_noise(x, 500, cf, 3.0), ref.predict_noise(x, 500, cr, 3.0)
        assert (a - b).abs().max() < 0.02 * b.abs().max()
