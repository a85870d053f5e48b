"""The noise-floor statistic on hand-built pairs of distance matrices (flips apart), and its record in the bench folder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recon.bench import noise_floor as NF


def test_floor_is_the_largest_movement_of_a_member_to_member_comparison():
    a = np.array([[0.10, 0.30],
                  [0.20, 0.20]])
    b = np.array([[0.12, 0.29],   # d0 − d1: −0.20 -> −0.17, moved 0.03
                  [0.20, 0.25]])  # 0.00 -> −0.05, moved 0.05
    assert NF.floor_statistic([(a, b)]) == pytest.approx(0.05)
    assert NF.floor_statistic([(b, a)]) == pytest.approx(0.05)


def test_a_shift_common_to_all_members_is_not_noise():
    a = np.array([[0.1, 0.3, 0.2], [0.4, 0.2, 0.3]])
    assert NF.floor_statistic([(a, a + 0.07)]) == pytest.approx(0.0, abs=1e-12)
    assert NF.floor_statistic([(a, a)]) == 0.0


def test_every_member_pair_counts():
    a = np.array([[0.10, 0.20, 0.30]])
    b = np.array([[0.10, 0.20, 0.38]])  # only member 2 moved by 0.08: pairs (0,2) and (1,2) moved 0.08
    assert NF.floor_statistic([(a, b)]) == pytest.approx(0.08)
    c = np.array([[0.14, 0.16, 0.30]])  # 0 up, 1 down by 0.04: pair (0,1) moved 0.08, the others 0.04
    assert NF.floor_statistic([(a, c)]) == pytest.approx(0.08)


def test_one_member_and_mismatched_hypotheses():
    assert NF.floor_statistic([(np.array([[0.1], [0.3]]), np.array([[0.5], [0.0]]))]) == 0.0
    a = np.array([[0.1, 0.2], [0.1, 0.9]])
    b = np.array([[0.1, 0.25]])  # run B lost its second hypothesis: only row 0 pairs
    assert NF.floor_statistic([(a, b)]) == pytest.approx(0.05)
    with pytest.raises(ValueError):
        NF.floor_statistic([(np.zeros((2, 2)), np.zeros((2, 3)))])


def test_measure_reports_the_pair_under_its_own_margin():
    a = np.array([[0.10, 0.30], [0.20, 0.26], [0.3, 0.1]])
    b = np.array([[0.12, 0.29], [0.20, 0.25], [0.3, 0.1]])
    f = NF.measure("fam", [(a, b)], label="dsd", seeds=[0], runs=[["r/a", "r/b"]], delta=0.03, points=100)
    assert f.value == pytest.approx(0.03) and f.source == "measured"
    assert f.entry_max == pytest.approx(0.02)
    # margin 0.03: row 0 (gaps 0.20, 0.17) -> member 0; row 1 (0.06, 0.05) -> member 0; row 2 -> member 1
    assert f.pair_coverage == [[2, 2]] and f.agreement == 1.0
    assert f.stability == 1.0 and f.flips == 0 and f.hypotheses == 3 and f.with_flips == pytest.approx(0.03)


def test_a_flip_is_instability_of_the_answer_not_noise_of_the_metric():
    # Row 1 is nearest member 0 in run A (gap 0.30) and member 1 in run B (gap 0.20): the answer changed, and
    # the comparison of members 0 and 1 moved by 0.50. Row 0 kept member 0 and moved by 0.02.
    a = np.array([[0.10, 0.40], [0.10, 0.40]])
    b = np.array([[0.12, 0.40], [0.40, 0.20]])
    assert list(NF.kept_answers(a, b)) == [True, False]
    assert NF.floor_statistic([(a, b)]) == pytest.approx(0.02)
    assert NF.floor_with_flips([(a, b)]) == pytest.approx(0.50)
    f = NF.measure("fam", [(a, b)], label="dsd", seeds=[0], runs=[["a", "b"]], delta=0.03, points=100)
    assert f.value == pytest.approx(0.02) and f.with_flips == pytest.approx(0.50)
    assert f.stability == 0.5 and f.flips == 1 and f.hypotheses == 2
    # Under margin 0.02 both runs assign both rows (gaps ≥ 0.20), row 1 to different members.
    assert f.pair_coverage == [[1, 2]] and f.agreement == 0.5 and f.pair_coverage_change == 1
    # When every hypothesis flipped there is no kept answer to measure the metric on: the floor is the
    # movement with flips (conservative), not 0.
    assert NF.floor_statistic([(a[1:], b[1:])]) == pytest.approx(0.50)


def test_the_floor_is_the_largest_over_every_pair():
    a1, b1 = np.array([[0.1, 0.3, 0.5]]), np.array([[0.1, 0.32, 0.5]])    # kept, moved 0.02
    a2, b2 = np.array([[0.2, 0.6, 0.9], [0.1, 0.2, 0.4]]), np.array([[0.25, 0.6, 0.9], [0.1, 0.2, 0.4]])  # 0.05, 0
    assert NF.floor_statistic([(a1, b1), (a2, b2)]) == pytest.approx(0.05)
    f = NF.measure("fam", [(a1, b1), (a2, b2)], label="dsd", seeds=[0, 1], runs=[["a", "b"], ["c", "d"]],
                   delta=0.03, points=100)
    assert f.hypotheses == 3 and f.flips == 0 and len(f.pair_coverage) == 2 and f.seeds == [0, 1]


def test_stream_overrides_keep_the_top_level_seed():
    assert NF.stream_overrides(0, 7) == [f"stage1.seed={NF.STREAM_OFFSET}", f"stage2.seed={7 + NF.STREAM_OFFSET}"]


def test_record_and_read_back(tmp_path):
    f = NF.measure("crate", [(np.array([[0.1, 0.3]]), np.array([[0.1, 0.32]]))], label="dsd", seeds=[0],
                   runs=[["a", "b"]], delta=0.03, points=100)
    NF.record(tmp_path, {"crate": f, "drum": NF.NoiseFloor("drum", 0.0, "none")})
    data = json.loads((tmp_path / NF.FLOOR_FILE).read_text())
    assert set(data["families"]) == {"crate"}  # only measured floors are recorded
    back = NF.read_recorded(tmp_path)["crate"]
    assert back.value == pytest.approx(0.02) and back.runs == [["a", "b"]] and back.stability == 1.0
    assert NF.recorded_floor(NF.read_recorded(tmp_path), "crate", 0.03).source == "recorded"
    assert NF.recorded_floor(NF.read_recorded(tmp_path), "crate", 0.05) is None  # another δ: not this floor
    assert NF.recorded_floor(NF.read_recorded(tmp_path), "drum", 0.03) is None
    # a later bench adds a family and keeps the old one
    g = NF.measure("drum", [(np.array([[0.1, 0.3]]), np.array([[0.1, 0.31]]))], label="dsd", seeds=[0],
                   runs=[["c", "d"]], delta=0.03, points=100)
    NF.record(tmp_path, {"drum": g})
    assert set(NF.read_recorded(tmp_path)) == {"crate", "drum"}
    (tmp_path / NF.FLOOR_FILE).write_text("not json")
    assert NF.read_recorded(tmp_path) == {}
