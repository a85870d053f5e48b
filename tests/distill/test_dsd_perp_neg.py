"""DSD with Perp-Neg (the authors' text recipe) against the authors' formula, the t₊ term included.

The DSD authors ship their text recipe with Perp-Neg on (BillyXYB/Diverse-Score-Distillation,
``configs/dsd.yaml``: ``prompt_processor.use_perp_neg: true``, ``guidance_scale: 7.5``). Their guidance
(``threestudio/models/guidance/stable_diffusion_dsd_guidance.py``) computes every noise prediction with
``predict_noise``, whose Perp-Neg branch is, at any ``guidance_scale`` s,

    e_pos = ε(pos) − ε(uncond);  accum = Σ_i w_i ⊥(ε(neg_i) − ε(uncond), e_pos)
    ε = ε(uncond) + s (e_pos + accum)

(``only_conditional`` is never set by ``compute_grad_dsd``), with ⊥ threestudio's ``perpendicular_component``
and the embeddings / weights of threestudio's ``get_text_embeddings_perp_neg``. ``compute_grad_dsd``: DDIM from
ε* over the grid points above t₊ and a last step to t₊ (``ddim_step_given_timesteps``, cfg 7.5), ε_ode =
predict_noise at t₊ (cfg 7.5), x̂(τ) = add_noise(x_π, ε_ode, τ), and
grad = (1 − ᾱ_t) [predict_noise(x̂(t), t; 7.5) − predict_noise(x̂(t₊), t₊; 1.0)] — so the t₊ term at s₊ = 1
keeps the Perp-Neg correction. The oracle below re-derives all of it with a raw float64 UNet.
"""

import inspect
import itertools
import math

import torch
from diffusers import DDIMScheduler

from recon import seeding
from recon.diffusion import NoiseSchedule, TimestepConfig
from recon.distill import DistillConfig, Hypothesis, build_distiller
from recon.priors.stable_diffusion import StableDiffusionPrior
from recon.priors.view_prompts import PerpNegConfig
from tests.tiny_unet import tiny_unet

S, S_PLUS, S_ODE = 7.5, 1.0, 7.5  # the authors' guidance_scale, t₊ term and ODE scales (with Perp-Neg: recon's too)
PROMPT = "a chair"
VIEWS = {"side": ", side view", "front": ", front view", "back": ", back view", "overhead": ", overhead view"}


def embeddings() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    names = [PROMPT + suffix for suffix in VIEWS.values()] + [""]
    return {name: torch.randn(5, 16, dtype=torch.float64, generator=g) for name in names}


class TablePrior(StableDiffusionPrior):
    """Stable Diffusion whose text encoder is a fixed table of embeddings (no tokenizer needed)."""

    table = embeddings()

    def encode_prompt(self, prompts: list[str]) -> torch.Tensor:
        return torch.stack([self.table[p] for p in prompts])


def perpendicular_component(x, y):
    """threestudio ``utils/ops.py``."""
    eps = torch.ones_like(x[:, 0, 0, 0]) * 1e-6
    return x - (torch.mul(x, y).sum(dim=[1, 2, 3]) / torch.maximum(torch.mul(y, y).sum(dim=[1, 2, 3]), eps)
                ).view(-1, 1, 1, 1) * y


def shifted_exponential_decay(a, b, c, r):
    return a * math.exp(-b * r) + c


def perp_neg_embeddings(elevation: float, azimuth: float):
    """threestudio's ``get_text_embeddings_perp_neg`` for one camera: positive, uncond, 2 negatives, 2 weights
    (front/side/back at ±45° of azimuth, overhead above 60° of elevation; default decay curves)."""
    e = TablePrior.table
    side, front, back, overhead = (e[PROMPT + VIEWS[k]] for k in ("side", "front", "back", "overhead"))
    uncond = e[""]
    azi = (azimuth + 180) % 360 - 180
    if elevation > 60:
        return overhead, uncond, [uncond, uncond], [0.0, 0.0]
    if abs(azi) < 90:
        r = 1 - abs(azi) / 90
        return (r * front + (1 - r) * side, uncond, [front, side],
                [-shifted_exponential_decay(4, 0.5, -2.426, r), -shifted_exponential_decay(4, 0.5, -2.426, 1 - r)])
    r = 2.0 - abs(azi) / 90
    return (r * side + (1 - r) * back, uncond, [side, front],
            [-shifted_exponential_decay(1, 0.5, -0.606, r), -shifted_exponential_decay(1, 0.5, 0.967, r)])


@torch.no_grad()
def authors_grad(unet, ac, eps_star, camera, x_pi, t, t_plus, keep_correction_at_one=True):
    """``compute_grad_dsd`` of the authors for one row (module docstring)."""
    pos, uncond, negs, weights = perp_neg_embeddings(float(camera[0]), float(camera[1]))

    def predict_noise(x, tau, scale):
        tt = torch.tensor([tau])
        e_text = unet(x, tt, encoder_hidden_states=pos[None]).sample
        if scale == 1 and not keep_correction_at_one:  # what recon did before: the conditional branch only
            return e_text
        e_u = unet(x, tt, encoder_hidden_states=uncond[None]).sample
        e_pos = e_text - e_u
        accum = 0
        for w, neg in zip(weights, negs):
            accum += w * perpendicular_component(unet(x, tt, encoder_hidden_states=neg[None]).sample - e_u, e_pos)
        return e_u + scale * (e_pos + accum)

    grid = [int(v) for v in torch.linspace(999, 0, 11).to(torch.int64)]  # get_ddim_steps(999, 0, 10)
    steps = [g for g in grid if g > t_plus] + [t_plus]
    x = eps_star
    for a, b in itertools.pairwise(steps):  # ddim_step_given_timesteps
        eps = predict_noise(x, a, S_ODE)
        x0 = (x - (1 - ac[a]).sqrt() * eps) / ac[a].sqrt()
        x = ac[b].sqrt() * x0 + (1 - ac[b]).sqrt() * eps
    eps_ode = predict_noise(x, t_plus, S_ODE)
    x_plus = ac[t_plus].sqrt() * x_pi + (1 - ac[t_plus]).sqrt() * eps_ode
    x_t = ac[t].sqrt() * x_pi + (1 - ac[t]).sqrt() * eps_ode
    return (1 - ac[t]) * (predict_noise(x_t, t, S) - predict_noise(x_plus, t_plus, S_PLUS))


def test_dsd_with_perp_neg_equals_the_authors_formula_and_keeps_the_correction_on_the_t_plus_term():
    unet = tiny_unet(dtype=torch.float64)
    scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                              timestep_spacing="trailing", clip_sample=False, set_alpha_to_one=False)
    ac = scheduler.alphas_cumprod.to(torch.float64)
    prior = TablePrior(unet, NoiseSchedule.from_config(scheduler.config), None, None, None,
                       perp_neg=PerpNegConfig(enabled=True))
    # A front-half, a back-half and an overhead camera; rows → hypotheses 0, 1, 0.
    cams = torch.tensor([[10.0, 30.0, 3.8], [20.0, -130.0, 3.8], [70.0, 15.0, 3.8]], dtype=torch.float64)
    cond = prior.condition(prompt=PROMPT, negative_prompt="", camera=cams)
    rows = torch.tensor([0, 1, 0])
    config = DistillConfig(method="dsd", guidance_scale=S, plus_guidance_scale=S_PLUS, ode_guidance_scale=S_ODE,
                           ode_steps=10, ode_target="t_plus", camera_bin=0.0,
                           timesteps=TimestepConfig(kind="uniform", t_min=0.2, t_max=0.9, total_steps=10))
    distiller = build_distiller(prior, config)
    state = distiller.init_state([Hypothesis(3, 0), Hypothesis(3, 1)]).for_rows(rows)
    x_pi = torch.randn(3, 4, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    gap = 0.0
    for step in range(2):  # the second step reads the trajectories the first one cached
        result = distiller.grad(x_pi, step, cond, state)
        for i, k in enumerate(rows.tolist()):
            t, tp = int(result.t[i]), int(result.t_plus[i])
            eps_star = seeding.eps_star(3, k, (4, 8, 8), torch.float64)[None]
            want = authors_grad(unet, ac, eps_star, cams[i], x_pi[i: i + 1], t, tp)[0]
            got = result.grad[i]
            assert float((got - want).abs().max()) < 1e-10 * max(1.0, float(want.abs().max())), (step, i, t, tp)
            if step == 0 and i < 2:  # the overhead row has no correction to drop
                dropped = authors_grad(unet, ac, eps_star, cams[i], x_pi[i: i + 1], t, tp, False)[0]
                gap = max(gap, float((dropped - want).abs().max()))
    assert gap > 1e-4  # dropping the correction on the t₊ term (recon before) is far outside the tolerance


def test_the_text_recipe_runs_dsd_with_perp_neg_at_the_authors_scales():
    """configs/text-to-3d-sd.yaml: Perp-Neg on (the authors' ``use_perp_neg: true``), main and ODE scale the SD
    prior's 7.5 and the t₊ term 1 — with Perp-Neg, CFG is ε_u + s(…) in both codes, so these are their values."""
    from recon.pipeline.recipes import text_config

    c = text_config(None, [], "sd")
    assert c.prior.perp_neg is True and c.distill.method == "dsd"
    assert c.prior.guidance_scale is None and c.distill.guidance_scale is None  # the SD prior's default, 7.5
    assert c.distill.ode_guidance_scale is None and c.distill.plus_guidance_scale == S_PLUS
    default = inspect.signature(StableDiffusionPrior).parameters["default_guidance_scale"].default
    assert default == S == S_ODE
