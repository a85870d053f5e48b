"""Must-show 4: the same seed gives bit-identical results on CPU; hypothesis indices give different ε*."""

import pytest
import torch

from recon import seeding
from recon.distill import METHODS, Hypothesis, build_distiller, optimize_image, recipe_2d
from recon.priors import GaussianMixturePrior


@pytest.mark.parametrize("method", METHODS)
def test_same_seed_bit_identical(method):
    prior = GaussianMixturePrior.pictures(4, 8)
    init = 0.5 * prior.means[0]

    def once():
        recipe = recipe_2d(method, 30)
        return optimize_image(prior, build_distiller(prior, recipe.distill), init, 30, [3, 4, 3],
                              lr=recipe.lr, optimizer=recipe.optimizer).images

    a, b = once(), once()
    assert torch.equal(a, b)
    assert torch.equal(a[0], a[2])  # equal seeds in one batch give equal images


def test_hypothesis_indices_give_different_eps_star():
    shape = (4, 32, 32)
    eps = [seeding.eps_star(0, k, shape) for k in range(4)]
    for i in range(4):
        for j in range(i + 1, 4):
            assert not torch.equal(eps[i], eps[j])
            # independent draws: correlation near 0, not merely a tiny perturbation
            corr = torch.corrcoef(torch.stack([eps[i].flatten(), eps[j].flatten()]))[0, 1]
            assert abs(float(corr)) < 0.05
    assert torch.equal(eps[0], seeding.eps_star(0, 0, shape))
    assert not torch.equal(eps[0], seeding.eps_star(1, 0, shape))


def test_streams_are_independent_of_purpose_and_batch():
    # ε* and the per-step noise of a hypothesis are separate streams ...
    g1 = seeding.generator(5, 2, seeding.EPS_STAR)
    g2 = seeding.generator(5, 2, seeding.NOISE)
    assert not torch.equal(torch.randn(16, generator=g1), torch.randn(16, generator=g2))
    # ... and a hypothesis's result does not depend on which other hypotheses share the batch.
    prior = GaussianMixturePrior.pictures(4, 8)
    recipe = recipe_2d("sds", 20)
    distiller = build_distiller(prior, recipe.distill)
    state_a = distiller.init_state([Hypothesis(9, 1)])
    state_b = distiller.init_state([Hypothesis(9, 0), Hypothesis(9, 1)])
    x = prior.means[1:2]
    ga = distiller.grad(x, 0, prior.condition(), state_a).grad
    gb = distiller.grad(x.repeat(2, 1, 1, 1), 0, prior.condition(batch=2), state_b).grad
    assert torch.equal(ga[0], gb[1])


def test_eps_star_is_drawn_from_its_own_stream():
    """ε*_k of seed s is the first float64 normals of a torch generator seeded as ``recon.seeding`` documents
    it — NumPy's SeedSequence([s mod 2³², s >> 32, k, the first 4 bytes of sha256("eps_star") read
    little-endian]), one uint64 state shifted right by 1 — written out here from that description; no other
    purpose's stream of the same hypothesis (per-step noise, timesteps, cameras, init) gives it; and the
    distiller's ε* of hypothesis (s, k) is it."""
    import hashlib

    import numpy as np

    seed, k, shape = 7, 2, (4, 8, 8)
    tag = int.from_bytes(hashlib.sha256(b"eps_star").digest()[:4], "little")
    word = np.random.SeedSequence([seed & 0xFFFFFFFF, seed >> 32, k, tag]).generate_state(1, dtype=np.uint64)[0]
    want = torch.randn(shape, generator=torch.Generator().manual_seed(int(word) >> 1), dtype=torch.float64)
    assert torch.equal(seeding.eps_star(seed, k, shape, torch.float64), want)
    for purpose in (seeding.NOISE, seeding.TIMESTEPS, seeding.CAMERAS, seeding.INIT):
        other = torch.randn(shape, generator=seeding.generator(seed, k, purpose), dtype=torch.float64)
        assert abs(float(torch.corrcoef(torch.stack([want.flatten(), other.flatten()]))[0, 1])) < 0.2, purpose
    prior = GaussianMixturePrior.pictures(4, 8)
    state = build_distiller(prior, recipe_2d("dsd", 10).distill).init_state([Hypothesis(seed, 0), Hypothesis(seed, k)])
    assert torch.equal(state.eps_star[1, 0], seeding.eps_star(seed, k, prior.sample_shape, prior.dtype))
    assert not torch.equal(state.eps_star[0, 0], state.eps_star[1, 0])


def test_antithetic_seed_noise_pairs_hypotheses():
    """``distill.seed_noise: antithetic``: hypothesis 2j + 1 starts from −ε* of hypothesis 2j (the stream
    ``seeding.eps_star`` draws, checked above against its SeedSequence description), even ones keep their
    own draw, and a hypothesis's ε* does not depend on which others share the run."""
    from dataclasses import replace

    prior = GaussianMixturePrior.pictures(4, 8)
    cfg = replace(recipe_2d("dsd", 10).distill, seed_noise="antithetic")
    distiller = build_distiller(prior, cfg)
    seed = 11
    state = distiller.init_state([Hypothesis(seed, k) for k in range(5)])
    own = [seeding.eps_star(seed, k, prior.sample_shape, prior.dtype) for k in range(5)]
    for k in (0, 2, 4):
        assert torch.equal(state.eps_star[k, 0], own[k])
    for k in (1, 3):
        assert torch.equal(state.eps_star[k, 0], -own[k - 1])
    alone = distiller.init_state([Hypothesis(seed, 3)])
    assert torch.equal(alone.eps_star[0, 0], state.eps_star[3, 0])
    independent = build_distiller(prior, recipe_2d("dsd", 10).distill).init_state([Hypothesis(seed, 3)])
    assert torch.equal(independent.eps_star[0, 0], own[3])
