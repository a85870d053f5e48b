"""Bit-reproducible CPU kernels for the length of a run.

Gradients of indexed reads (``v[faces]``, ``index_put`` with accumulation) are summed by several
threads in whatever order they finish on CPU, so two runs of the same steps can differ in the last
bit, and a resumed run then drifts from an uninterrupted one. PyTorch's deterministic mode sorts
those sums instead; it costs little here and is what lets ``recon run`` resume bit-identically.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def reproducible_kernels(device: str | torch.device) -> Iterator[None]:
    """Inside the block, CPU work uses deterministic kernels (restored on exit). On CUDA nothing
    changes: bit-identical resume is promised on CPU only (cuBLAS would need a fixed workspace)."""
    if torch.device(device).type != "cpu":
        yield
        return
    mode = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    fill = torch.utils.deterministic.fill_uninitialized_memory
    torch.use_deterministic_algorithms(True)
    torch.utils.deterministic.fill_uninitialized_memory = False  # NaN-filling torch.empty costs time, buys nothing here
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(mode, warn_only=warn_only)
        torch.utils.deterministic.fill_uninitialized_memory = fill
