"""Stage-1 losses, each a small function over renders (threestudio's zero123 system, term by term).

Every function returns the mean over all its elements. Stage 1 batches K hypotheses with equally
many elements each, so ``K · mean`` is the sum over hypotheses of each hypothesis's own mean: the
gradient every field receives does not depend on how many hypotheses share the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rgb_loss(rgb: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """MSE between a render and the target composited onto the render's own background.

    rgb, target, background: (..., 3); mask: (..., 1) in [0, 1]. Outside the mask the target is the
    background, so a learned or random background is never penalised for being what it is.
    """
    target = target * mask + background * (1.0 - mask)
    return F.mse_loss(rgb, target)


def mask_loss(opacity: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MSE between rendered opacity and the target mask (same shape, values in [0, 1])."""
    return F.mse_loss(opacity, mask)


def normal_smoothness(normal: torch.Tensor) -> torch.Tensor:
    """2D smoothness of a composited normal image (B, 3, H, W): squared differences of neighbours.

    threestudio's ``lambda_normal_smooth`` term: mean over vertical plus mean over horizontal pairs.
    """
    dy = (normal[:, :, 1:, :] - normal[:, :, :-1, :]).square().mean()
    dx = (normal[:, :, :, 1:] - normal[:, :, :, :-1]).square().mean()
    return dy + dx


def sparsity(opacity: torch.Tensor) -> torch.Tensor:
    """Smooth L1 of opacity, mean of sqrt(opacity² + 0.01): pushes empty pixels to zero."""
    return (opacity.square() + 0.01).sqrt().mean()


def opacity_entropy(opacity: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Binary entropy of opacity clamped to [eps, 1 − eps]: pushes every pixel to 0 or 1 (opaque)."""
    o = opacity.clamp(eps, 1.0 - eps)
    return -(o * torch.log(o) + (1.0 - o) * torch.log(1.0 - o)).mean()
