"""Per-method defaults for optimising an image directly (the paper's 2D setting)."""

from __future__ import annotations

from dataclasses import dataclass

from recon.diffusion.timesteps import TimestepConfig
from recon.distill.base import DistillConfig
from recon.distill.factory import METHODS


@dataclass
class Recipe2D:
    """How one method optimises an image: its distiller config, optimiser and learning rate."""

    distill: DistillConfig
    optimizer: str = "adam"
    lr: float = 0.05


def recipe_2d(method: str, steps: int) -> Recipe2D:
    """Defaults for the 2D comparison, one budget (``steps``) for all methods.

    All methods but the sampling form use Adam at 0.05, as the 3D engine does: DSD, SDI and the
    fixed-noise variant anneal t from 0.98 to 0.02; SDS and ASD draw t ~ U[0.02, 0.98]. The
    sampling form (Eq. 7–8) ignores x_π, so it only makes sense as Algorithm 2 writes it: plain SGD
    at lr = N_ddim / N with σ(t) weighting, t from T to 0 and δ = T / N_ddim.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    if method == "sampling":
        cfg = DistillConfig(method="sampling", weighting="sigma", delta_steps=100,
                            timesteps=TimestepConfig(kind="anneal", t_max=1.0, t_min=0.0, total_steps=steps))
        return Recipe2D(cfg, "sgd", cfg.ode_steps / steps)
    if method in ("dsd", "sdi", "consistent3d"):
        ts = TimestepConfig(kind="anneal", t_max=0.98, t_min=0.02, total_steps=steps)
    else:
        ts = TimestepConfig(kind="uniform", t_min=0.02, t_max=0.98, total_steps=steps)
    return Recipe2D(DistillConfig(method=method, timesteps=ts))  # type: ignore[arg-type]
