"""An exact diffusion prior: a mixture of isotropic Gaussians under the VP forward process.

If x_0 ~ Σ_k w_k N(μ_k, s_k² I) then x_t ~ Σ_k w_k N(√ᾱ μ_k, (ᾱ s_k² + 1 − ᾱ) I), so the optimal
noise prediction is closed form:

    ε̂(x_t, t) = −√(1 − ᾱ) ∇ log p_t(x_t) = √(1 − ᾱ) Σ_k r_k(x_t) (x_t − √ᾱ μ_k) / (ᾱ s_k² + 1 − ᾱ)

with responsibilities r_k ∝ w_k N(x_t; √ᾱ μ_k, (ᾱ s_k² + 1 − ᾱ) I). DDIM on this prior is the true
probability-flow ODE of the mixture (up to discretisation), which makes it an oracle for diversity:
every seed's ODE ends in one of the modes, and which one depends on the seed.

Conditioning re-weights the components: ``condition(weights=...)`` gives a conditional branch whose
mixture weights differ from the prior's, so classifier-free guidance has a real effect.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from recon.diffusion.schedule import NoiseSchedule
from recon.priors.base import Condition, Prior
from recon.priors.pictures import pictures


def mixture_eps(x: torch.Tensor, alpha: torch.Tensor, means: torch.Tensor, stds: torch.Tensor,
                log_weights: torch.Tensor) -> torch.Tensor:
    """Exact ε̂ of a Gaussian mixture under the VP forward process, per row.

    Args:
        x: (N, D) noisy samples x_t.
        alpha: (N,) ᾱ_t of each row.
        means: (N, K, D) component means μ_k seen by each row.
        stds: (K,) component standard deviations s_k.
        log_weights: (N, K) log mixture weights (normalised or not).
    Returns:
        (N, D) ε̂ = √(1 − ᾱ) Σ_k r_k (x − √ᾱ μ_k) / (ᾱ s_k² + 1 − ᾱ).
    """
    a = alpha.reshape(-1, 1)  # (N, 1)
    var = a * stds.unsqueeze(0) ** 2 + (1 - a)  # (N, K)
    diff = x.unsqueeze(1) - a.sqrt().unsqueeze(2) * means  # (N, K, D)
    sq = diff.pow(2).sum(-1)  # (N, K)
    logits = log_weights - 0.5 * sq / var - 0.5 * x.shape[1] * var.log()
    resp = torch.softmax(logits, dim=1)  # (N, K)
    return (1 - a).sqrt() * (resp.unsqueeze(2) * diff / var.unsqueeze(2)).sum(1)


class GaussianMixturePrior(Prior):
    """Closed-form ε̂ of Σ_k w_k N(μ_k, s_k² I), batched, any sample shape.

    Args:
        means: (K, *shape) component means μ_k.
        stds: scalar or (K,) per-component standard deviation s_k (isotropic).
        weights: (K,) mixture weights (normalised here); uniform by default.
        schedule: ᾱ_t; Stable Diffusion's scaled-linear schedule by default.
        names: optional component names (for reports).
    """

    latent = False

    def __init__(
        self,
        means: torch.Tensor,
        stds: float | torch.Tensor = 0.05,
        weights: torch.Tensor | Sequence[float] | None = None,
        schedule: NoiseSchedule | None = None,
        names: Sequence[str] | None = None,
        default_guidance_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.means = means.to(torch.float64)
        k = self.means.shape[0]
        self.stds = torch.as_tensor(stds, dtype=torch.float64).expand(k).clone()
        w = torch.ones(k, dtype=torch.float64) if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        if w.shape != (k,) or (w < 0).any() or w.sum() <= 0:
            raise ValueError("weights must be K non-negative numbers with a positive sum")
        self.log_weights = (w / w.sum()).log()
        self.schedule = schedule or NoiseSchedule.scaled_linear()
        self.names = list(names) if names is not None else [f"mode{i}" for i in range(k)]
        self.default_guidance_scale = default_guidance_scale

    @classmethod
    def pictures(cls, n_modes: int = 4, size: int = 16, std: float = 0.05, **kwargs) -> GaussianMixturePrior:
        """The built-in mixture: means are the first ``n_modes`` small pictures of ``size``²."""
        names, means = pictures(n_modes, size)
        return cls(means, std, names=names, **kwargs)

    @property
    def num_modes(self) -> int:
        return int(self.means.shape[0])

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.means.shape[1:])

    @property
    def dtype(self) -> torch.dtype:
        return torch.float64

    def condition(self, weights: torch.Tensor | Sequence[float] | None = None, batch: int = 1,
                  tag: str | None = None, **_: object) -> Condition:
        """Conditional branch = the mixture re-weighted by ``weights`` (default: the prior's own).

        Returns a condition with ``batch`` identical rows.
        """
        if weights is None:
            log_w = self.log_weights
            tag = tag or "prior"
        else:
            w = torch.as_tensor(weights, dtype=torch.float64)
            if w.shape != (self.num_modes,) or (w < 0).any() or w.sum() <= 0:
                raise ValueError(f"weights must be {self.num_modes} non-negative numbers with a positive sum")
            log_w = (w / w.sum()).log()
            tag = tag or "w:" + ",".join(f"{v:.6g}" for v in (w / w.sum()).tolist())
        return Condition(tensors={"log_weights": log_w.expand(batch, -1).clone()}, tags=(tag,) * batch)

    def _model_eps(self, x_t: torch.Tensor, t: torch.Tensor, cond: Condition, uncond: torch.Tensor) -> torch.Tensor:
        x = x_t.reshape(x_t.shape[0], -1).to(torch.float64)
        a = self.schedule.alpha(t.cpu()).to(x.device)
        log_w = torch.where(uncond.unsqueeze(1).to(x.device), self.log_weights.to(x.device),
                            cond.tensors["log_weights"].to(x.device))
        means = self.means.reshape(1, self.num_modes, -1).to(x.device).expand(x.shape[0], -1, -1)
        return mixture_eps(x, a, means, self.stds.to(x.device), log_w).reshape(x_t.shape).to(x_t.dtype)

    # -- analysis helpers for tests and reports
    def nearest_mode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For (B, *shape) samples: index of the nearest mean and the distance to it."""
        flat = x.reshape(x.shape[0], -1).to(torch.float64)
        dist = torch.cdist(flat, self.means.reshape(self.num_modes, -1))
        d, idx = dist.min(dim=1)
        return idx, d

    def mode_radius(self) -> float:
        """A radius that separates modes: a quarter of the smallest distance between two means."""
        flat = self.means.reshape(self.num_modes, -1)
        dist = torch.cdist(flat, flat)
        dist.fill_diagonal_(float("inf"))
        return float(dist.min()) / 4
