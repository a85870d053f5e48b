"""The measured noise floor of the discriminative distance, per family.

A **floor pair** is two runs of the same (family, method, seed) — so the same ε*ₖ for every hypothesis
k — that differ only in stage 1's random streams: the second sets ``stage1.seed`` (cameras, ray
samples, background, field initialisation) and ``stage2.seed`` :data:`STREAM_OFFSET` higher. Whatever
the metric does differently between the two is noise, not a difference the method made. A family gets a
floor pair at each of the bench's first ``floor_seeds`` seeds (its first method).

Two things can differ between the runs of a pair, and they are measured apart:

- **the metric's noise**: hypothesis k ends on the same nearest member in both runs (argmin over members
  of its discriminative row, no margin), yet its distances moved;
- **a flip**: hypothesis k ends nearer another member in run B than in run A — the 3D answer itself
  changed with the streams. That is not noise of the metric but instability of the method, reported as
  the family's **answer stability** (share of the pairs' hypotheses that keep their nearest member).

**Floor statistic** (:func:`floor_statistic`): assignment compares distances of one hypothesis to two
members, so the floor measures how far such a comparison moves for hypotheses that kept their answer:

    floor = max over pairs, over hypotheses k that kept their nearest member, over member pairs i < j of
            | (d_A(k, i) − d_A(k, j)) − (d_B(k, i) − d_B(k, j)) |

with d_A, d_B the (K, M) discriminative matrices of a pair, hypothesis k of A paired with k of B. A flip
moves the comparison of its two members by the whole distance between them: counted as noise, one flip
set drum's margin above every hypothesis's gap (0.233 against gaps of 0.02-0.11; docs/toy-world-benchmark.md),
so every hypothesis of both methods was scored unassigned — the margin then measured the method's
stability, not the metric's precision. The floor including flips is kept beside it (``with_flips``), and
when no hypothesis kept its answer the floor is that value. The maximum (not a percentile) because a few
pairs give only K·M(M−1)/2 values each (24 for K = 4, M = 4). A shift common to all members (e.g. a
different error on the shared body) cancels, as it does in the assignment. For a one-member family there
is nothing to compare: the floor is 0.

The floor is the assignment margin for every run of the family (:mod:`recon.bench.assign`);
``noise_floor.json`` in the bench folder records it, so ``--no-noise-floor`` can reuse it without the
extra runs.
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
FLOOR_SCHEMA = "recon.bench.noise_floor/2"  # /2: floor pairs per seed, flips apart


Pair = tuple[np.ndarray, np.ndarray]


def _paired(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pair's (k, M) matrices, rows paired by index (the first min(K_a, K_b) when a run lost a hypothesis)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"floor pair matrices must be (K, M) with the same M, got {a.shape} and {b.shape}")
    k = min(len(a), len(b))
    return a[:k], b[:k]


def movements(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(k, M(M−1)/2) |(d_A(k, i) − d_A(k, j)) − (d_B(k, i) − d_B(k, j))| over member pairs i < j."""
    a, b = _paired(a, b)
    i, j = np.triu_indices(a.shape[1], 1)
    return np.abs((a[:, i] - a[:, j]) - (b[:, i] - b[:, j]))


def kept_answers(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(k,) bool: hypothesis k's nearest member (argmin of its row) is the same in both runs."""
    a, b = _paired(a, b)
    return a.argmin(axis=1) == b.argmin(axis=1)


def floor_statistic(pairs: list[Pair]) -> float:
    """The floor (module docstring) of floor pairs of (K, M) distance matrices: the largest movement of a
    hypothesis that kept its nearest member; the largest of all when none did (0 with fewer than 2 members)."""
    kept = [m for m in (movements(a, b)[kept_answers(a, b)] for a, b in pairs) if m.size]
    return float(max(m.max() for m in kept)) if kept else floor_with_flips(pairs)


def floor_with_flips(pairs: list[Pair]) -> float:
    """The largest movement over every hypothesis, flips included (the floor's earlier definition)."""
    moves = [movements(a, b) for a, b in pairs]
    return float(max((m.max() for m in moves if m.size), default=0.0))


def stream_overrides(stage1_seed: int, stage2_seed: int) -> list[str]:
    """Overrides that turn a run into its floor partner (same top-level seed, so the same ε*)."""
    return [f"stage1.seed={stage1_seed + STREAM_OFFSET}", f"stage2.seed={stage2_seed + STREAM_OFFSET}"]


@dataclass
class NoiseFloor:
    """A family's floor and where it came from.

    value: the floor (world units), used as the assignment margin.
    source: ``measured`` (this bench's floor pairs), ``recorded`` (``noise_floor.json`` of an earlier
        bench, with ``--no-noise-floor``) or ``none`` (no floor: 0, with a warning).
    label, seeds, runs: the floor pairs' method, seeds and run folders (one [A, B] per seed, relative to
        the bench folder).
    delta, points: the metric settings it was measured with.
    with_flips: the floor had flipped hypotheses counted as noise (:func:`floor_with_flips`).
    stability: share of the pairs' hypotheses that kept their nearest member; flips: how many did not, of
        ``hypotheses``.
    entry_max: max |d_A − d_B| over the pairs' entries (for reference).
    pair_coverage: [coverage of run A, of run B] per pair with margin = value; agreement: share of paired
        hypotheses assigned alike (same member or both unassigned).
    """

    family: str
    value: float
    source: str
    label: str | None = None
    seeds: list[int] | None = None
    runs: list[list[str]] | None = None
    delta: float | None = None
    points: int | None = None
    with_flips: float | None = None
    stability: float | None = None
    flips: int | None = None
    hypotheses: int | None = None
    entry_max: float | None = None
    pair_coverage: list[list[int]] | None = None
    agreement: float | None = None

    @property
    def pair_coverage_change(self) -> int | None:
        """The largest coverage change within one floor pair: the count-scale noise of coverage."""
        return max(abs(a - b) for a, b in self.pair_coverage) if self.pair_coverage else None


def measure(family: str, pairs: list[Pair], *, label: str, seeds: list[int], runs: list[list[str]], delta: float,
            points: int) -> NoiseFloor:
    """The floor of a family from its floor pairs' (K, M) discriminative matrices (one pair per seed)."""
    pairs = [_paired(a, b) for a, b in pairs]
    value = floor_statistic(pairs)
    kept = [kept_answers(a, b) for a, b in pairs]
    n = sum(len(k) for k in kept)
    coverages, alike = [], []
    for a, b in pairs:
        assign_a, assign_b = assign(a, value), assign(b, value)
        coverages.append([coverage(assign_a), coverage(assign_b)])
        alike.append(assign_a == assign_b)
    entry = max((float(np.abs(a - b).max()) for a, b in pairs if a.size), default=0.0)
    return NoiseFloor(family, value, "measured", label, list(seeds), [list(r) for r in runs], delta, points,
                      floor_with_flips(pairs), float(np.concatenate(kept).mean()) if n else 1.0,
                      int(n - sum(int(k.sum()) for k in kept)), n, entry, coverages,
                      float(np.concatenate(alike).mean()) if n else 1.0)


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
