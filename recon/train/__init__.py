"""Training recon's own small priors: ``recon train toy-zero123`` (a tiny Zero-1-to-3 on the toy world)."""

from recon.train.toy_zero123 import ToyZero123Config, TrainError, TrainResult, train_toy_zero123

__all__ = ["ToyZero123Config", "TrainError", "TrainResult", "train_toy_zero123"]
