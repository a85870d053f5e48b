"""Assignment with a margin, coverage and the unassigned share on hand-built distance matrices."""

from __future__ import annotations

import numpy as np
import pytest

from recon.bench.assign import UNASSIGNED, apply_assignment, assign, coverage, gap, unassigned_share

U = UNASSIGNED

D = np.array([
    [0.10, 0.20, 0.30],  # gap 0.10 to the second nearest
    [0.30, 0.05, 0.40],  # gap 0.25
    [0.20, 0.23, 0.90],  # gap 0.03
    [0.20, 0.20, 0.90],  # a tie: gap 0
    [0.50, 0.40, 0.35],  # gap 0.05
])


def test_margin_zero_is_the_nearest_member_except_on_ties():
    assert assign(D, 0.0).tolist() == [0, 1, 0, U, 2]


def test_a_hypothesis_is_assigned_only_beyond_the_margin():
    assert assign(D, 0.04).tolist() == [0, 1, U, U, 2]
    assert assign(D, 0.07).tolist() == [0, 1, U, U, U]
    assert assign(D, 0.2).tolist() == [U, 1, U, U, U]
    assert assign(D, 1.0).tolist() == [U, U, U, U, U]


def test_the_margin_test_is_strict():
    d = np.array([[0.25, 0.5]])  # gap exactly 0.25 (binary fractions: no rounding)
    assert assign(d, 0.25).tolist() == [U]
    assert assign(d, 0.125).tolist() == [0]


def test_the_nearest_rival_decides_not_the_farthest_or_the_next_column():
    d = np.array([[0.1, 0.3, 0.12]])  # member 1 is far, member 2 is within the margin
    assert assign(d, 0.05).tolist() == [U]


def test_one_member_families_always_assign():
    assert assign(np.array([[0.9], [0.1]]), 10.0).tolist() == [0, 0]
    assert gap(np.array([[0.9]])).tolist() == [np.inf]


def test_coverage_and_unassigned_share():
    assert coverage([0, 1, U, U, 2]) == 3
    assert coverage([U, U]) == 0
    assert coverage([2, 2, 2, 2]) == 1
    assert unassigned_share([0, 1, U, U, 2]) == pytest.approx(0.4)
    assert unassigned_share([U] * 4) == 1.0
    assert unassigned_share([]) == 0.0


def test_gap_is_second_minus_first():
    np.testing.assert_allclose(gap(D), [0.10, 0.25, 0.03, 0.0, 0.05])


def test_bad_inputs():
    with pytest.raises(ValueError):
        assign(D, -0.1)
    with pytest.raises(ValueError):
        assign(np.zeros((2, 0)), 0.0)


def test_apply_assignment_fills_the_run_fields():
    r = {"members": ["f/a", "f/b", "f/c"], "discriminative": D.tolist()}
    apply_assignment(r, 0.04)
    assert r["assigned"] == ["f/a", "f/b", None, None, "f/c"]
    assert r["coverage"] == 3 and r["unassigned"] == pytest.approx(0.4) and r["margin"] == 0.04
    np.testing.assert_allclose(r["gap"], [0.10, 0.25, 0.03, 0.0, 0.05])
    one = {"members": ["f/a"], "discriminative": [[0.3], [0.1]]}
    apply_assignment(one, 0.5)
    assert one["assigned"] == ["f/a", "f/a"] and one["gap"] == [None, None] and one["coverage"] == 1
