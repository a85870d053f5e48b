"""reproducible_kernels switches torch's deterministic CPU kernels on for the block and back off after."""

import torch

from recon.pipeline.determinism import reproducible_kernels


def test_deterministic_kernels_inside_the_block_only():
    assert not torch.are_deterministic_algorithms_enabled()
    with reproducible_kernels("cpu"):
        assert torch.are_deterministic_algorithms_enabled()
        # What the flag buys: accumulating index_put sums in a fixed order, bit for bit between calls.
        g = torch.Generator().manual_seed(0)
        idx = torch.randint(0, 7, (200_000,), generator=g)
        vals = torch.randn(200_000, generator=g, dtype=torch.float32)
        sums = [torch.zeros(7).index_put_((idx,), vals, accumulate=True) for _ in range(3)]
        assert all(torch.equal(sums[0], s) for s in sums)
    assert not torch.are_deterministic_algorithms_enabled()
