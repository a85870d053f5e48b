"""Shared test setup: offline model hubs, deterministic threads, the GPU marker."""

from __future__ import annotations

import os

import pytest
import torch

# No model hub is reachable here; make any accidental download fail fast instead of hanging.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (no GPU on this machine)")


def pytest_collection_modifyitems(config, items):
    # Tests marked gpu are skipped with a stated reason where CUDA is absent, never silently.
    if torch.cuda.is_available():
        return
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(requires_cuda)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module of many small ops: on a busy 2-core machine the intra-op pool's
    hand-offs cost more than the work, and one thread keeps results bit-reproducible."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
