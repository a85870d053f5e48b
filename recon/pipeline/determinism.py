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


def _set_deterministic(mode: bool, warn_only: bool = False) -> None:
    # torch.use_deterministic_algorithms also sets an Inductor option, importing torch._dynamo and
    # torch._inductor (1.3 s, a quick start's whole report stage) for a compiler recon does not use on the
    # CPU; the kernel flag underneath is all eager CPU kernels read.
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    if setter is None:
        torch.use_deterministic_algorithms(mode, warn_only=warn_only)
    else:
        setter(mode, warn_only=warn_only)


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
    _set_deterministic(True)
    torch.utils.deterministic.fill_uninitialized_memory = False  # NaN-filling torch.empty costs time, buys nothing here
    try:
        yield
    finally:
        _set_deterministic(mode, warn_only=warn_only)
        torch.utils.deterministic.fill_uninitialized_memory = fill
