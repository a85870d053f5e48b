"""The one interface every diffusion prior implements.

A prior predicts noise for a batch of noisy samples: ``predict_noise(x_t, t, cond, guidance_scale)``.
Classifier-free guidance is pinned to ``ε = ε_u + s (ε_c − ε_u)`` everywhere in recon (threestudio's
SD guidance uses ``ε_c + s (ε_c − ε_u)``, i.e. scale s + 1; recon does not). Rows whose scale is 1
evaluate the conditional branch only, so ``s = 1`` costs one network row, not two. All rows of one
call — several hypotheses, views, timesteps and both CFG branches — go through the network in one
batched call; :class:`EvalCounter` counts calls and rows so distillers can report their cost.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from recon.diffusion.schedule import NoiseSchedule


@dataclass
class EvalCounter:
    """Network cost so far: ``calls`` batched forward passes, ``evals`` rows (one row = one
    noise prediction of one sample on one CFG branch)."""

    calls: int = 0
    evals: int = 0

    def add(self, rows: int) -> None:
        self.calls += 1
        self.evals += int(rows)

    def snapshot(self) -> tuple[int, int]:
        return self.calls, self.evals


@dataclass
class Condition:
    """Batched conditioning built by a prior (``prior.condition(...)``); row i conditions x_t[i].

    Attributes:
        tensors: per-row tensors, each (B, ...), in the layout the prior's network wants.
        tags: per-row identity of everything except the camera (prompt, input image), used as part
            of trajectory-cache keys.
        cameras: (B, P) continuous pose parameters, or None: (elevation°, azimuth°, distance) for the
            camera-conditioned priors. Trajectory caches bin the two angles (see :meth:`cache_keys`).
        shared: un-batched extras (e.g. an encoded input image shared by every row).
        rebuild: for camera-conditioned priors, ``rebuild(cameras (N, P)) -> Condition`` gives the same
            condition at other cameras; trajectory caches use it to condition a camera bin's ODE on the
            bin centre, so cached trajectories never depend on which camera reached a bin first.
    """

    tensors: dict[str, torch.Tensor]
    tags: tuple[Hashable, ...]
    cameras: torch.Tensor | None = None
    shared: dict[str, Any] = field(default_factory=dict)
    rebuild: Callable[[torch.Tensor], Condition] | None = None

    def __post_init__(self) -> None:
        for name, value in self.tensors.items():
            if value.shape[0] != len(self.tags):
                raise ValueError(f"condition tensor {name!r} has {value.shape[0]} rows, expected {len(self.tags)}")
        if self.cameras is not None and self.cameras.shape[0] != len(self.tags):
            raise ValueError("condition cameras must have one row per tag")

    def __len__(self) -> int:
        return len(self.tags)

    def select(self, index: Sequence[int] | torch.Tensor) -> Condition:
        """Rows ``index`` (in that order; repeats allowed)."""
        idx = torch.as_tensor(index, dtype=torch.long).reshape(-1)
        rows = idx.tolist()
        return Condition(
            tensors={k: v[idx.to(v.device)] for k, v in self.tensors.items()},
            tags=tuple(self.tags[i] for i in rows),
            cameras=None if self.cameras is None else self.cameras[idx.to(self.cameras.device)],
            shared=self.shared,
            rebuild=self.rebuild,
        )

    def repeat(self, n: int) -> Condition:
        """The whole batch repeated n times (tile, not interleave)."""
        return self.select(list(range(len(self))) * n)

    @staticmethod
    def cat(conditions: Sequence[Condition]) -> Condition:
        first = conditions[0]
        cams = None
        if first.cameras is not None:
            cams = torch.cat([c.cameras for c in conditions])  # type: ignore[misc]
        return Condition(
            tensors={k: torch.cat([c.tensors[k] for c in conditions]) for k in first.tensors},
            tags=tuple(tag for c in conditions for tag in c.tags),
            cameras=cams,
            shared=first.shared,
            rebuild=first.rebuild,
        )

    def binned_cameras(self, camera_bin: float) -> torch.Tensor | None:
        """(B, P) cameras with the two angle columns rounded to multiples of ``camera_bin`` degrees
        (unchanged when 0); other columns (distance) are kept."""
        if self.cameras is None:
            return None
        cams = self.cameras.detach().to("cpu", torch.float64).clone()
        if camera_bin > 0:
            cams[:, :2] = torch.round(cams[:, :2] / camera_bin) * camera_bin
        return cams

    def cache_keys(self, camera_bin: float = 0.0) -> list[Hashable]:
        """Per-row trajectory-cache key: (tag, camera rounded to ``camera_bin``; exact when 0)."""
        cams = self.binned_cameras(camera_bin)
        if cams is None:
            return [(tag,) for tag in self.tags]
        return [(tag, tuple(round(float(v), 9) for v in row)) for tag, row in zip(self.tags, cams)]

    def row_for_trajectory(self, i: int, camera_bin: float) -> Condition:
        """Row i as the condition of its trajectory: at the bin centre when binned and rebuildable."""
        if camera_bin > 0 and self.cameras is not None and self.rebuild is not None:
            centre = self.binned_cameras(camera_bin)[i : i + 1].to(self.cameras.dtype)
            return self.rebuild(centre)
        return self.select([i])


class Prior(ABC):
    """A diffusion model seen as a noise predictor ε̂(x_t, t; cond, s).

    Subclasses implement :meth:`_model_eps` (one batched network call where a boolean mask picks
    the unconditional branch per row) and :meth:`condition`; this base class does CFG batching and
    counting. ``schedule`` carries ᾱ_t; ``sample_shape`` is one view's shape in model space.
    """

    schedule: NoiseSchedule
    default_guidance_scale: float = 1.0
    latent: bool = False
    # Rows the network must see together (MVDream: the 4 views of one sample); batches are laid
    # out in whole, aligned groups of this many rows.
    views_per_sample: int = 1

    def __init__(self) -> None:
        self.counter = EvalCounter()

    # -- properties every prior has
    @property
    def alphas_cumprod(self) -> torch.Tensor:
        """(T,) ᾱ_t in float64."""
        return self.schedule.alphas_cumprod

    @property
    @abstractmethod
    def sample_shape(self) -> tuple[int, ...]:
        """One view's shape in model space, e.g. (4, 32, 32) for Zero-1-to-3."""

    @property
    def image_size(self) -> int:
        """Side of the square RGB image the prior's model space corresponds to."""
        return int(self.sample_shape[-1])

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    # -- conditioning and model-space conversion
    @abstractmethod
    def condition(self, **kwargs: Any) -> Condition:
        """Build a batched condition (``image=``, ``prompt=``, ``camera=`` ... as the prior takes)."""

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> (B, *sample_shape) model space. Pixel priors map to [-1, 1]."""
        return images * 2 - 1

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, *sample_shape) model space -> (B, 3, H, W) RGB in [0, 1]."""
        return ((x + 1) / 2).clamp(0, 1)

    # -- noise prediction
    @abstractmethod
    def _model_eps(self, x_t: torch.Tensor, t: torch.Tensor, cond: Condition, uncond: torch.Tensor) -> torch.Tensor:
        """One network call: x_t (N, ...), t (N,) long, cond with N rows, uncond (N,) bool -> ε (N, ...)."""

    def predict_noise(
        self,
        x_t: torch.Tensor,
        t: int | torch.Tensor,
        cond: Condition,
        guidance_scale: float | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """CFG noise prediction ε_u + s (ε_c − ε_u), in one network call.

        Args:
            x_t: (B, *sample_shape) noisy samples.
            t: int, or (B,) integer timesteps.
            cond: condition with B rows.
            guidance_scale: float or (B,) tensor s; None uses ``default_guidance_scale``. Rows with
                s == 1 get the conditional branch only.
        Returns:
            (B, *sample_shape) noise prediction in x_t's dtype.
        """
        batch = x_t.shape[0]
        if len(cond) != batch:
            raise ValueError(f"condition has {len(cond)} rows for a batch of {batch}")
        t_vec = torch.as_tensor(t, dtype=torch.long, device=x_t.device)
        if t_vec.ndim == 0:
            t_vec = t_vec.expand(batch)
        s = self.default_guidance_scale if guidance_scale is None else guidance_scale
        s_vec = torch.as_tensor(s, dtype=torch.float64).to(x_t.device)
        if s_vec.ndim == 0:
            s_vec = s_vec.expand(batch)
        needs_uncond = (s_vec != 1).nonzero().flatten()
        x_all, t_all = x_t, t_vec
        cond_all = cond
        uncond = torch.zeros(batch, dtype=torch.bool, device=x_t.device)
        if needs_uncond.numel():
            x_all = torch.cat([x_t, x_t[needs_uncond]])
            t_all = torch.cat([t_vec, t_vec[needs_uncond]])
            cond_all = Condition.cat([cond, cond.select(needs_uncond.cpu())])
            uncond = torch.cat([uncond, torch.ones(needs_uncond.numel(), dtype=torch.bool, device=x_t.device)])
        self.counter.add(x_all.shape[0])
        eps_all = self._model_eps(x_all, t_all, cond_all, uncond).to(x_t.dtype)
        eps = eps_all[:batch]
        if needs_uncond.numel():
            eps_c = eps[needs_uncond]
            eps_u = eps_all[batch:]
            scale = s_vec[needs_uncond].to(x_t.dtype).view(-1, *([1] * (x_t.ndim - 1)))
            eps = eps.clone()
            eps[needs_uncond] = eps_u + scale * (eps_c - eps_u)
        return eps
