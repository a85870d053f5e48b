"""Comparing silhouettes: the one IoU the report (raw vs exported surface) and the bench (input view) use."""

from __future__ import annotations

import numpy as np
import torch


def mask_iou(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    """|a ∧ b| / |a ∨ b| of two boolean masks of one shape, every view of a stack pooled (1 when both are empty)."""
    x = torch.as_tensor(a).bool()
    y = torch.as_tensor(b).bool().to(x.device)
    union = int((x | y).sum())
    return 1.0 if union == 0 else int((x & y).sum()) / union
