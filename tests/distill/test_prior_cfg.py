"""CFG semantics of the Prior interface: ε_u + s(ε_c − ε_u); s = 1 makes one network row per sample;
batching the two branches equals two separate calls."""

import torch

from recon.diffusion import NoiseSchedule
from recon.priors import GaussianMixturePrior
from recon.priors.diffusers_unet import DiffusersUNetPrior
from tests.precision import cfg_bound, network_bound
from tests.tiny_unet import tiny_unet


def test_gmm_conditional_branch_and_cfg():
    prior = GaussianMixturePrior.pictures(4, 8)
    cond = prior.condition(weights=[0.7, 0.1, 0.1, 0.1], batch=3)
    uncond = prior.condition(batch=3)
    x = torch.randn(3, *prior.sample_shape, dtype=torch.float64)
    t = torch.tensor([100, 500, 900])
    e_c = prior.predict_noise(x, t, cond, 1.0)
    e_u = prior.predict_noise(x, t, uncond, 1.0)
    assert not torch.allclose(e_c, e_u)
    calls0, evals0 = prior.counter.snapshot()
    e = prior.predict_noise(x, t, cond, 4.0)
    calls1, evals1 = prior.counter.snapshot()
    assert (calls1 - calls0, evals1 - evals0) == (1, 6)  # one call, both branches batched
    assert torch.allclose(e, e_u + 4.0 * (e_c - e_u), atol=1e-12)


def test_unet_prior_s1_is_one_row_and_batched_branches_equal_separate_calls():
    unet = tiny_unet(dtype=torch.float32)
    prior = DiffusersUNetPrior(unet, NoiseSchedule.scaled_linear())
    emb = torch.randn(1, 5, 16)
    cond = prior.condition(embeddings=emb, batch=2)
    x = torch.randn(2, *prior.sample_shape)
    c0 = prior.counter.snapshot()
    e1 = prior.predict_noise(x, 300, cond, 1.0)
    c1 = prior.counter.snapshot()
    assert (c1[0] - c0[0], c1[1] - c0[1]) == (1, 2)
    with torch.no_grad():
        e_c = unet(x, 300, encoder_hidden_states=emb.expand(2, -1, -1)).sample
        e_u = unet(x, 300, encoder_hidden_states=torch.zeros(2, 5, 16)).sample
    # float32 bounds from tests/precision.py: another batch shape may round the network differently.
    assert (e1 - e_c).abs().max() < network_bound(e_c)
    e = prior.predict_noise(x, 300, cond, 7.5)
    assert (e - (e_u + 7.5 * (e_c - e_u))).abs().max() < cfg_bound(e_c, e_u, 7.5)
    assert (e_c - e_u).abs().max() > 5 * cfg_bound(e_c, e_u, 7.5)  # a wrong CFG form would show
    # per-row scales: row 0 guided, row 1 conditional only — still one call, 3 rows
    c2 = prior.counter.snapshot()
    e_mix = prior.predict_noise(x, 300, cond, torch.tensor([7.5, 1.0]))
    c3 = prior.counter.snapshot()
    assert (c3[0] - c2[0], c3[1] - c2[1]) == (1, 3)
    assert (e_mix[0] - e[0]).abs().max() < 2 * cfg_bound(e_c, e_u, 7.5)  # both sides carry a CFG error
    assert (e_mix[1] - e_c[1]).abs().max() < network_bound(e_c)
