"""The measured noise floor of the discriminative distance, per family.

A **floor pair** is two runs of the same (family, method, seed) — so the same ε*ₖ for every hypothesis
k — that differ only in stage 1's random streams: the second sets ``stage1.seed`` (cameras, ray
samples, background, field initialisation) and ``stage2.seed`` :data:`STREAM_OFFSET` higher. Whatever
the metric does differently between the two is noise, not a difference the method made.

**Floor statistic** (:func:`floor_statistic`): assignment compares distances of one hypothesis to two
members, so the floor measures how far such a comparison moves:

    floor = max over hypotheses k and member pairs i < j of
            | (d_A(k, i) − d_A(k, j)) − (d_B(k, i) − d_B(k, j)) |

with d_A, d_B the (K, M) discriminative matrices of the pair, hypothesis k of A paired with k of B.
The maximum (not a percentile) because one pair gives only K·M(M−1)/2 values (24 for K = 4, M = 4), too
few for a stable tail estimate, and a margin below the largest movement seen would let a single flip
count as coverage. A shift common to all members (e.g. a different error on the shared body) cancels,
as it does in the assignment. For a one-member family there is nothing to compare: the floor is 0.

The floor is measured on the first benchmarked method at the first seed and used as the assignment
margin for every run of the family (:mod:`recon.bench.assign`); ``noise_floor.json`` in the bench folder
records it, so ``--no-noise-floor`` can reuse it without the extra run.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recon.bench.assign import assign, coverage
from recon.io.atomic import atomic_write_text

STREAM_OFFSET = 1000  # the floor run's stage1.seed / stage2.seed are the recipe's plus this
FLOOR_FILE = "noise_floor.json"
FLOOR_SCHEMA = "recon.bench.noise_floor/1"


def floor_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """The floor (module docstring) of two (K, M) distance matrices; rows are paired by index (the first
    min(K_a, K_b) rows when a run lost a hypothesis)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"floor pair matrices must be (K, M) with the same M, got {a.shape} and {b.shape}")
    k, m = min(len(a), len(b)), a.shape[1]
    if k == 0 or m < 2:
        return 0.0
    i, j = np.triu_indices(m, 1)
    da = a[:k, i] - a[:k, j]  # (k, pairs)
    db = b[:k, i] - b[:k, j]
    return float(np.abs(da - db).max())


def stream_overrides(stage1_seed: int, stage2_seed: int) -> list[str]:
    """Overrides that turn a run into its floor partner (same top-level seed, so the same ε*)."""
    return [f"stage1.seed={stage1_seed + STREAM_OFFSET}", f"stage2.seed={stage2_seed + STREAM_OFFSET}"]


@dataclass
class NoiseFloor:
    """A family's floor and where it came from.

    value: the floor (world units), used as the assignment margin.
    source: ``measured`` (this bench's floor pair), ``recorded`` (``noise_floor.json`` of an earlier
        bench, with ``--no-noise-floor``) or ``none`` (no floor: 0, with a warning).
    label, seed, runs: the floor pair's method, seed and run folders (relative to the bench folder).
    delta, points: the metric settings it was measured with.
    entry_max: max |d_A − d_B| over the pair's entries (for reference).
    pair_coverage: coverage of run A and run B with margin = value; agreement: share of paired
        hypotheses assigned alike (same member or both unassigned).
    """

    family: str
    value: float
    source: str
    label: str | None = None
    seed: int | None = None
    runs: list[str] | None = None
    delta: float | None = None
    points: int | None = None
    entry_max: float | None = None
    pair_coverage: list[int] | None = None
    agreement: float | None = None


def measure(family: str, a: np.ndarray, b: np.ndarray, *, label: str, seed: int, runs: list[str], delta: float,
            points: int) -> NoiseFloor:
    """The floor of a family from its pair's (K, M) discriminative matrices."""
    value = floor_statistic(a, b)
    k = min(len(a), len(b))
    assign_a, assign_b = assign(np.asarray(a)[:k], value), assign(np.asarray(b)[:k], value)
    entry = float(np.abs(np.asarray(a)[:k] - np.asarray(b)[:k]).max()) if k else 0.0
    return NoiseFloor(family, value, "measured", label, seed, runs, delta, points, entry,
                      [coverage(assign_a), coverage(assign_b)],
                      float((assign_a == assign_b).mean()) if k else 1.0)


def read_recorded(out_dir: Path) -> dict[str, NoiseFloor]:
    """Floors recorded in ``out_dir/noise_floor.json`` (empty if there is none or it is unreadable)."""
    try:
        data = json.loads((Path(out_dir) / FLOOR_FILE).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("schema") != FLOOR_SCHEMA:
        return {}
    out = {}
    for fam, entry in (data.get("families") or {}).items():
        try:
            out[fam] = NoiseFloor(**{**entry, "family": fam})
        except TypeError:
            continue
    return out


def record(out_dir: Path, floors: dict[str, NoiseFloor]) -> Path:
    """Merge the measured ``floors`` into ``out_dir/noise_floor.json`` (other families are kept)."""
    kept = read_recorded(out_dir)
    kept.update({f: n for f, n in floors.items() if n.source == "measured"})
    data: dict[str, Any] = {"schema": FLOOR_SCHEMA,
                            "families": {f: {k: v for k, v in asdict(n).items() if k != "family"}
                                         for f, n in kept.items()}}
    return atomic_write_text(Path(out_dir) / FLOOR_FILE, json.dumps(data, indent=1))


def recorded_floor(recorded: dict[str, NoiseFloor], family: str, delta: float) -> NoiseFloor | None:
    """The recorded floor of ``family`` if it was measured with the same δ (else None)."""
    n = recorded.get(family)
    if n is None or n.delta is None or abs(n.delta - delta) > 1e-12:
        return None
    return NoiseFloor(**{**asdict(n), "source": "recorded"})
