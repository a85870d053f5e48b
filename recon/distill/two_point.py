"""The difference of two noise predictions at t and t₊ from one shared noise, in one network call.

ASD and DSD both compute  w(t) [ε̂(x̂(t), t; s) − ε̂(x̂(t₊), t₊; s₊)]  with
x̂(τ) = √ᾱ_τ x_π + √(1 − ᾱ_τ) e; they differ only in where the noise e comes from.
"""

from __future__ import annotations

import torch

from recon.priors.base import Condition, Prior


def two_point_difference(
    prior: Prior,
    x: torch.Tensor,
    noise: torch.Tensor,
    t: torch.Tensor,
    t_plus: torch.Tensor,
    cond: Condition,
    scale: float,
    scale_plus: float,
) -> torch.Tensor:
    """ε̂(x̂(t), t; scale) − ε̂(x̂(t₊), t₊; scale_plus) for (B, ...) x and noise; rows with t < 0
    (past the end of a grid) give 0 without a network row."""
    schedule = prior.schedule
    live = (t >= 0).nonzero().flatten()
    out = torch.zeros_like(x)
    if live.numel() == 0:
        return out
    xl, nl, tl, tpl = x[live], noise[live], t[live], t_plus[live]
    cl = cond.select(live.cpu())
    x_hat = schedule.add_noise(xl, nl, tl)
    x_hat_plus = schedule.add_noise(xl, nl, tpl)
    n = live.numel()
    scales = torch.tensor([scale] * n + [scale_plus] * n, dtype=torch.float64)
    eps = prior.predict_noise(
        torch.cat([x_hat, x_hat_plus]), torch.cat([tl, tpl]).to(x.device), Condition.cat([cl, cl]), scales
    )
    out[live] = eps[:n] - eps[n:]
    return out
