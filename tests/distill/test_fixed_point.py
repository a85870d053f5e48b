"""Must-show 3: on a single Gaussian N(μ, s² I) the fixed point of SDS and of DSD is the mean.

For a Gaussian, ε̂(x_t, t) = c_t (x_t − √ᾱ_t μ) with c_t = √(1−ᾱ_t) / (ᾱ_t s² + 1 − ᾱ_t) (closed form).
- SDS: E_ε[grad](x) = w_t c_t √ᾱ_t (x − μ), zero exactly at x = μ.
- DSD with noise e: grad(x) = w_t [c_t √ᾱ_t − c₊ √ᾱ₊] (x − μ) + w_t [c_t √(1−ᾱ_t) − c₊ √(1−ᾱ₊)] e, zero
  at x* = μ − k e, k = [c_t √(1−ᾱ_t) − c₊ √(1−ᾱ₊)] / [c_t √ᾱ_t − c₊ √ᾱ₊]. So x* = μ for every e when the
  Gaussian is a point mass (s = 0, then c_t √(1−ᾱ_t) = 1 for all t), and E_{ε*}[x*] = μ when s > 0 — the
  spread around μ is DSD drawing a sample from the seed, not a bias.
"""

import torch

from recon.diffusion import TimestepConfig
from recon.distill import DistillConfig, Hypothesis, build_distiller, optimize_image, recipe_2d
from recon.priors import GaussianMixturePrior

SHAPE = (3, 4, 4)


def gaussian(std):
    mu = torch.linspace(-0.8, 0.9, 48, dtype=torch.float64).reshape(1, *SHAPE)
    return GaussianMixturePrior(mu, std)


def c(prior, t, std):
    a = prior.schedule.alpha(t)
    return (1 - a).sqrt() / (a * std**2 + 1 - a), a


def test_sds_expected_gradient_is_closed_form_and_vanishes_at_mean():
    std = 0.3
    prior = gaussian(std)
    mu = prior.means[0]
    t = 400
    config = DistillConfig(method="sds", weighting="1-alpha",
                           timesteps=TimestepConfig(kind="uniform", t_min=t / 999, t_max=t / 999))
    distiller = build_distiller(prior, config)
    x = mu + 0.5
    n = 4000
    state = distiller.init_state([Hypothesis(s, 0) for s in range(n)])
    grads = distiller.grad(x.expand(n, *SHAPE).clone(), 0, prior.condition(batch=n), state).grad
    assert int(distiller.timesteps.sample(0, state.times[:1])[0]) == t
    ct, a = c(prior, t, std)
    expected = (1 - a) * ct * a.sqrt() * (x - mu)  # closed form E_ε[grad]
    mc = grads.mean(0)
    stderr = grads.std(0) / n**0.5
    assert float(((mc - expected).abs() / stderr).max()) < 5.0
    # At the mean the expected gradient is 0: SDS's fixed point is μ.
    g_mu = distiller.grad(mu.expand(n, *SHAPE).clone(), 0, prior.condition(batch=n), state).grad
    assert float((g_mu.mean(0).abs() / (g_mu.std(0) / n**0.5)).max()) < 5.0


def test_sds_optimisation_converges_to_mean():
    prior = gaussian(0.3)
    mu = prior.means[0]
    recipe = recipe_2d("sds", 400)
    x = optimize_image(prior, build_distiller(prior, recipe.distill), mu + 1.0, 400, list(range(16)),
                       lr=recipe.lr, optimizer=recipe.optimizer).images
    print("SDS: mean |x − μ| per seed", (x - mu).abs().mean(dim=(1, 2, 3)).tolist())
    assert float((x.mean(0) - mu).abs().max()) < 0.05


def dsd_fixed_point_k(prior, t, tp, std):
    ct, a = c(prior, t, std)
    cp, ap = c(prior, tp, std)
    return (ct * (1 - a).sqrt() - cp * (1 - ap).sqrt()) / (ct * a.sqrt() - cp * ap.sqrt())


def test_dsd_fixed_point_closed_form():
    for std in (0.0, 0.3):
        prior = gaussian(std)
        mu = prior.means[0]
        config = DistillConfig(method="dsd", weighting="1-alpha", delta_steps=60,
                               timesteps=TimestepConfig(kind="anneal", t_max=0.5, t_min=0.5, total_steps=10))
        distiller = build_distiller(prior, config)
        state = distiller.init_state([Hypothesis(3, 0)])
        cond = prior.condition()
        t = int(distiller.timesteps.sample(0, state.times)[0])
        tp = t + 60
        e = distiller.ode_noise(torch.tensor([tp]), cond, state, torch.tensor([0]))[0]
        x_star = mu - dsd_fixed_point_k(prior, t, tp, std) * e
        g_star = distiller.grad(x_star.unsqueeze(0), 0, cond, state).grad
        g_mu = distiller.grad(mu.unsqueeze(0), 0, cond, state).grad
        print(f"std {std}: |grad(x*)| {float(g_star.abs().max()):.2e}  |grad(μ)| {float(g_mu.abs().max()):.2e}")
        assert float(g_star.abs().max()) < 1e-12  # x* is the fixed point
        # ... and an attracting one, by the closed form's own sign: grad(x* + d) = w_t [c_t √ᾱ_t − c₊ √ᾱ₊] d
        # with a positive bracket (t < t₊), so a descent step moves x back towards x*. A flipped DSD
        # gradient has the same zero and fails here.
        ct, a = c(prior, t, std)
        cp, ap = c(prior, tp, std)
        slope = (1 - a) * (ct * a.sqrt() - cp * ap.sqrt())
        assert float(slope) > 0
        d = torch.linspace(-0.2, 0.3, mu.numel(), dtype=torch.float64).reshape(mu.shape)
        g_d = distiller.grad((x_star + d).unsqueeze(0), 0, cond, state).grad[0]
        # float64: a few roundings of values of size |slope · d| (the network is closed form)
        assert float((g_d - slope * d).abs().max()) < 1e-12 * max(1.0, float((slope * d).abs().max()))
        if std == 0.0:
            assert float((x_star - mu).abs().max()) < 1e-12  # point mass: the fixed point is μ for any ε*
        else:
            assert float(g_mu.abs().max()) > 1e-3  # with spread, a single seed's fixed point is not μ ...


def test_dsd_endpoints_average_to_mean():
    std = 0.3
    prior = gaussian(std)
    mu = prior.means[0]
    seeds = list(range(64))
    recipe = recipe_2d("dsd", 200)
    x = optimize_image(prior, build_distiller(prior, recipe.distill), mu + 1.0, 200, seeds, lr=recipe.lr,
                       optimizer=recipe.optimizer).images
    # ... but over seeds DSD's endpoints are samples around μ: their mean is μ within sampling error.
    spread = (x - mu).std(0)
    print("DSD: max |mean_seeds(x) − μ| =", float((x.mean(0) - mu).abs().max()), " spread per pixel ≈", float(spread.mean()))
    assert float(((x.mean(0) - mu).abs() / (spread / len(seeds) ** 0.5)).max()) < 5.0
    assert float(spread.mean()) > 0.1  # and they really are spread (diverse), not all at μ
