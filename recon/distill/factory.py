"""Build a distiller from its config, and the 2D recipes (the paper's Algorithm 2 setting)."""

from __future__ import annotations

from typing import get_args

from recon.distill.asd import ASD
from recon.distill.base import DistillConfig, Distiller, Method
from recon.distill.committed import CommittedDSD
from recon.distill.consistent3d import Consistent3D
from recon.distill.dsd import DSD
from recon.distill.sampling import SamplingSD
from recon.distill.sdi import SDI
from recon.distill.sds import SDS
from recon.priors.base import Prior

METHODS: tuple[str, ...] = get_args(Method)


def build_distiller(prior: Prior, config: DistillConfig) -> Distiller:
    """The distiller ``config.method`` names, over ``prior``."""
    method = config.method
    if method == "sds":
        return SDS(prior, config)
    if method == "asd":
        return ASD(prior, config)
    if method == "sdi":
        return SDI(prior, config)
    if method == "consistent3d":
        return Consistent3D(prior, config)
    if method == "dsd":
        return DSD(prior, config)
    if method == "dsd-commit":
        return CommittedDSD(prior, config)
    if method == "sampling":
        return SamplingSD(prior, config)
    raise ValueError(f"unknown distillation method {method!r}; choose one of {', '.join(METHODS)}")

