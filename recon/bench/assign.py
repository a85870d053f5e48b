"""Assigning hypotheses to family members with a margin, and the coverage that follows.

A hypothesis H is **assigned** to member m* only if it is nearer to m* than to every other member by
more than ``margin``:

    d(H, m*) + margin < d(H, m)   for every m ≠ m*

(d: the discriminative distance, :mod:`recon.bench.discriminative`; margin: the family's measured
noise floor, :mod:`recon.bench.noise_floor`). Otherwise H is **unassigned** (:data:`UNASSIGNED`): an
average of members, a torn shell or garbage, which no member can claim beyond the noise. In a
one-member family every hypothesis is assigned to that member.

Per run: **coverage** = number of distinct members that some assigned hypothesis matches; **unassigned
share** = unassigned hypotheses / K.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

UNASSIGNED = -1


def assign(dist: np.ndarray, margin: float) -> np.ndarray:
    """(K,) member index per hypothesis, or :data:`UNASSIGNED`, from a (K, M) distance matrix."""
    d = np.asarray(dist, np.float64)
    if d.ndim != 2 or d.shape[1] == 0:
        raise ValueError(f"need a (K, M) distance matrix with M ≥ 1, got shape {d.shape}")
    if margin < 0:
        raise ValueError(f"margin must be ≥ 0, got {margin}")
    out = np.full(d.shape[0], UNASSIGNED, dtype=np.int64)
    for k, row in enumerate(d):
        best = int(np.argmin(row))
        others = np.delete(row, best)
        if not len(others) or bool(np.all(row[best] + margin < others)):
            out[k] = best
    return out


def coverage(assignment: Sequence[int]) -> int:
    """Distinct members matched by assigned hypotheses (unassigned ones count for nothing)."""
    return len({int(i) for i in assignment if int(i) != UNASSIGNED})


def unassigned_share(assignment: Sequence[int]) -> float:
    """Share of the hypotheses that are unassigned (0 for no hypotheses)."""
    a = [int(i) for i in assignment]
    return sum(i == UNASSIGNED for i in a) / len(a) if a else 0.0


def gap(dist: np.ndarray) -> np.ndarray:
    """(K,) distance from each hypothesis's nearest member to its second nearest (inf for M = 1): the
    largest margin at which the hypothesis is still assigned."""
    d = np.sort(np.asarray(dist, np.float64), axis=1)
    return d[:, 1] - d[:, 0] if d.shape[1] > 1 else np.full(d.shape[0], np.inf)


def apply_assignment(result: dict[str, Any], margin: float) -> None:
    """Assign a run's hypotheses from its (K, M) ``discriminative`` matrix with ``margin``; adds to the
    result dict: ``margin``, ``assigned`` (member name or None per hypothesis), ``gap`` (per hypothesis,
    None for a one-member family), ``coverage`` and ``unassigned`` (share of K)."""
    d = np.asarray(result["discriminative"], np.float64)
    a = assign(d, margin)
    names = result["members"]
    result["margin"] = float(margin)
    result["assigned"] = [None if i == UNASSIGNED else names[i] for i in a]
    result["gap"] = [None if not np.isfinite(g) else float(g) for g in gap(d)]
    result["coverage"] = coverage(a)
    result["unassigned"] = unassigned_share(a)
