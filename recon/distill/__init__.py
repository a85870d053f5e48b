"""Score distillation: SDS, ASD, SDI, Consistent3D-style, DSD and sampling-based, one module each."""

from recon.distill.asd import ASD
from recon.distill.base import DistillConfig, Distiller, DistillState, GradResult, Hypothesis, sd_loss
from recon.distill.consistent3d import Consistent3D
from recon.distill.dsd import DSD
from recon.distill.factory import METHODS, build_distiller
from recon.distill.optimize import ImageOptimization, optimize_image
from recon.distill.recipes import Recipe2D, recipe_2d
from recon.distill.sampling import SamplingSD
from recon.distill.sdi import SDI
from recon.distill.sds import SDS

__all__ = [
    "ASD",
    "DSD",
    "METHODS",
    "SDI",
    "SDS",
    "Consistent3D",
    "DistillConfig",
    "DistillState",
    "Distiller",
    "GradResult",
    "Hypothesis",
    "ImageOptimization",
    "Recipe2D",
    "SamplingSD",
    "build_distiller",
    "optimize_image",
    "recipe_2d",
    "sd_loss",
]
