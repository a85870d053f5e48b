"""Diffusion priors behind one interface. Heavy (diffusers-backed) priors are imported from their
own modules so that ``import recon.priors`` stays light."""

from recon.priors.base import Condition, EvalCounter, Prior
from recon.priors.gaussian_mixture import GaussianMixturePrior

__all__ = ["Condition", "EvalCounter", "GaussianMixturePrior", "Prior"]
