"""The per-member fidelity split of bench.md: hypotheses counted and averaged per nearest member, per method."""

import pytest

from recon.bench.report import _fidelity_split_lines, fidelity_by_member

MEMBERS = ["crate/plain", "crate/knob", "crate/fin"]


def _run(label, nearest, chamfer):
    return {"family": "crate", "label": label, "members": MEMBERS,
            "nearest": [f"crate/{m}" for m in nearest], "nearest_chamfer": chamfer}


RUNS = [
    _run("a", ["plain", "knob", "knob", "plain"], [0.02, 0.05, 0.03, 0.04]),
    _run("a", ["knob"], [0.07]),  # a second seed: hypotheses pool across runs, not run means
    _run("b", ["plain", "plain"], [0.01, 0.03]),
]


def test_split_counts_and_averages_hypotheses_per_nearest_member():
    split = fidelity_by_member(RUNS)
    assert set(split) == {"a", "b"}
    assert split["a"]["plain"] == (2, pytest.approx(0.03))
    assert split["a"]["knob"] == (3, pytest.approx(0.05))  # (0.05 + 0.03 + 0.07) / 3, not the runs' mean 0.055
    assert split["b"] == {"plain": (2, pytest.approx(0.02))}
    assert "fin" not in split["a"]


def test_markdown_table_has_a_column_per_member_and_a_dash_where_none_landed():
    lines = _fidelity_split_lines(RUNS)
    assert "| method | plain | knob | fin |" in lines
    assert "| a | 2 × 0.0300 | 3 × 0.0500 | — |" in lines
    assert "| b | 2 × 0.0200 | — | — |" in lines


def test_a_one_member_family_has_nothing_to_split():
    one = [{"family": "x", "label": "a", "members": ["x/only"], "nearest": ["x/only"], "nearest_chamfer": [0.02]}]
    assert _fidelity_split_lines(one) == []
