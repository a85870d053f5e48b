"""Rasteriser tests run on one torch thread (see the fixture)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    # The rasteriser runs many small ops; on a busy 2-core machine the intra-op thread pool's hand-offs cost
    # more than the ops. One thread keeps these tests fast and bit-reproducible.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

