"""The paper's 2D setting (Algorithm 2): optimise K images directly, one ε* each."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from recon.distill.base import Distiller, GradResult, Hypothesis
from recon.priors.base import Condition


@dataclass
class ImageOptimization:
    """Result of :func:`optimize_image`.

    images: (K, *sample_shape) final x_π in model space; history: x_π after each step (if kept),
    each (K, ...); calls/evals: network cost; seconds: wall time.
    """

    images: torch.Tensor
    history: list[torch.Tensor] = field(default_factory=list)
    calls: int = 0
    evals: int = 0
    seconds: float = 0.0


def optimize_image(
    prior,
    distiller: Distiller,
    init: torch.Tensor,
    steps: int,
    seeds: Sequence[int],
    cond: Condition | None = None,
    lr: float = 0.1,
    optimizer: str = "sgd",
    keep_history: bool = False,
    callback: Callable[[int, torch.Tensor, GradResult], None] | None = None,
) -> ImageOptimization:
    """Optimise K = len(seeds) images from ``init`` with ``distiller``; hypothesis k = (seeds[k], 0).

    Args:
        prior: the prior the distiller uses (its ``condition()`` is used when ``cond`` is None).
        init: (*sample_shape) shared start, or (K, *sample_shape) one per image.
        steps: optimisation steps.
        seeds: one seed per image; equal seeds give identical images.
        cond: condition with one row (broadcast to K) or K rows.
        lr: learning rate; ``sgd`` applies x ← x − lr · grad, ``adam`` feeds grad to Adam.
    Returns:
        :class:`ImageOptimization` with the K images.
    """
    k = len(seeds)
    if k == 0:
        raise ValueError("give at least one seed")
    shape = tuple(prior.sample_shape)
    init = init.to(device=prior.device, dtype=prior.dtype)
    if tuple(init.shape) == shape:
        x = init.unsqueeze(0).repeat(k, *([1] * len(shape)))
    elif tuple(init.shape) == (k, *shape):
        x = init.clone()
    else:
        raise ValueError(f"init must be {shape} or {(k, *shape)}, got {tuple(init.shape)}")
    if cond is None:
        cond = prior.condition()
    if len(cond) == 1 and k > 1:
        cond = cond.repeat(k)
    state = distiller.init_state([Hypothesis(seed, 0) for seed in seeds])
    opt = None
    if optimizer == "adam":
        x.requires_grad_(True)
        opt = torch.optim.Adam([x], lr=lr)
    elif optimizer != "sgd":
        raise ValueError(f"optimizer must be sgd or adam, not {optimizer!r}")
    out = ImageOptimization(images=x)
    start = time.perf_counter()
    for step in range(steps):
        result = distiller.grad(x, step, cond, state)
        if opt is None:
            x = x - lr * result.grad
        else:
            opt.zero_grad()
            x.grad = result.grad.to(x)
            opt.step()
        out.calls += result.calls
        out.evals += result.evals
        if keep_history:
            out.history.append(x.detach().clone())
        if callback is not None:
            callback(step, x.detach(), result)
    out.images = x.detach()
    out.seconds = time.perf_counter() - start
    return out
