"""Float32 bounds derived from the precision, not tuned to one CPU.

Two float32 evaluations of one network on different batch shapes (a CFG call batching both branches vs
two separate calls, a pipeline vs a prior) need not agree to the bit: CPU kernels pick their blocking, and
so their summation order, by shape and instruction set (AVX2 vs AVX-512). A reduction over n terms then
differs by ~√n·eps32 relative (rounding errors of random sign: the usual probabilistic bound, Higham
§3.5), and over the L layers of a path through the network these add to ~L·√n·eps32. The tiny test
networks have L ≤ 32 layers on a path (resnet convs, attention, norms, up/down sampling) and reductions
of n ≤ 1152 terms (128 channels × 3×3 after a skip concatenation): L·√n ≤ 32·34 ≈ 1100, so
:data:`NETWORK_ULPS` = 1024 ulps of the output's magnitude. Measured: ≤ 6 ulps (AVX-512, mvdream at
CFG 7.5: 1.24e-5), so the bound is not tight, but it is what float32 promises independent of the CPU, and
real mistakes (a wrong CFG form, a wrong row, a missing branch) move the output by the branch
difference, orders of magnitude more.
"""

from __future__ import annotations

import torch

EPS32 = torch.finfo(torch.float32).eps
NETWORK_ULPS = 1024


def size(t: torch.Tensor) -> float:
    return float(t.detach().abs().max())


def network_bound(*outputs: torch.Tensor) -> float:
    """|a − b| float32 allows between two evaluations of one network whose outputs are of this size."""
    return NETWORK_ULPS * EPS32 * max(size(o) for o in outputs)


def cfg_bound(eps_c: torch.Tensor, eps_u: torch.Tensor, scale: float) -> float:
    """|batched − separate| float32 allows for ε_u + s(ε_c − ε_u) = (1 − s)·ε_u + s·ε_c: each branch's
    network error enters multiplied by its weight, |1 − s| and |s|."""
    return NETWORK_ULPS * EPS32 * (abs(1 - scale) * size(eps_u) + abs(scale) * size(eps_c))
