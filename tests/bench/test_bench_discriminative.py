"""The discriminative distance against closed forms on hand-built point sets.

The family: a body sphere S (radius r at the origin); member ``plain`` = S, member ``ball`` = S plus a small
sphere P (radius ρ, centre at distance L ≫ r + δ). Every point of S is within δ of both members, so the
shared body C is S, D_plain is empty and D_ball is P. The distance from a point p of P to S is |p| − r, and
by Archimedes' theorem the mean of |p| over a sphere of radius ρ centred at distance L is L + ρ²/(3L), so

    E = mean_{p ∈ P} dist(p, S) = L + ρ²/(3L) − r

and every discriminative distance below is 0, E/2 or E (or shifted by a known radius change).
"""

from __future__ import annotations

import numpy as np
import pytest

from recon.bench.assign import assign
from recon.bench.discriminative import discriminative_distances, discriminative_matrix, split_body

R, RHO, L, DELTA = 0.5, 0.2, 1.5, 0.03
E = L + RHO**2 / (3 * L) - R


def fibonacci_sphere(n: int, radius: float, centre=(0.0, 0.0, 0.0)) -> np.ndarray:
    """n nearly uniform points on a sphere (a golden-angle spiral): dense, deterministic, exact radius."""
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    phi = np.pi * (1 + 5**0.5) * i
    s = np.sqrt(1 - z * z)
    return np.stack([s * np.cos(phi), s * np.sin(phi), z], 1) * radius + np.asarray(centre)


BODY = fibonacci_sphere(20000, R)
PART = fibonacci_sphere(8000, RHO, (L, 0, 0))
OTHER_PART = fibonacci_sphere(8000, RHO, (-L, 0, 0))


@pytest.fixture(scope="module")
def split():
    return split_body([BODY, np.concatenate([BODY, PART])], DELTA)


def test_the_split_is_the_body_and_the_far_part(split):
    assert len(split.body) == 2 * len(BODY)  # each member's copy of S
    assert len(split.distinctive[0]) == 0  # plain has nothing the other lacks
    np.testing.assert_array_equal(split.distinctive[1], PART)


def test_a_point_is_body_only_when_it_is_near_every_other_member():
    # Three members: plain, ball, ball again. P is near one other member (the twin) but not plain: distinctive.
    three = split_body([BODY, np.concatenate([BODY, PART]), np.concatenate([BODY, PART])], DELTA)
    assert len(three.distinctive[1]) == len(three.distinctive[2]) == len(PART)
    # Without plain, the twins share P: it is body, and nothing is distinctive.
    twins = split_body([np.concatenate([BODY, PART]), np.concatenate([BODY, PART])], DELTA)
    assert len(twins.body) == 2 * (len(BODY) + len(PART)) and all(len(d) == 0 for d in twins.distinctive)
    # One member: all of it is body.
    assert len(split_body([BODY], DELTA).body) == len(BODY)


def test_archimedes_mean_distance():
    assert np.linalg.norm(PART, axis=1).mean() - R == pytest.approx(E, abs=1e-4)


def test_bare_body_is_plain_and_half_the_part_from_ball(split):
    # H = S: H_D is empty (second term 0); D_plain is empty (first term 0); D_ball = P lies E from H.
    d = discriminative_distances(fibonacci_sphere(15000, R), split)
    assert d[0] == 0.0
    assert d[1] == pytest.approx(E / 2, abs=2e-3)


def test_member_with_the_part_is_ball_and_its_part_counts_against_plain(split):
    # H = S ∪ P: P is within 0 of D_ball (d = 0); against plain, P is H_D and is E from C = S.
    h = np.concatenate([fibonacci_sphere(15000, R), PART])
    d = discriminative_distances(h, split)
    assert d[1] == pytest.approx(0.0, abs=2e-3)
    assert d[0] == pytest.approx(E / 2, abs=2e-3)


def test_a_part_in_the_wrong_place_is_far_from_both_and_nearer_plain(split):
    # H = S ∪ P' (P' mirrored to -L): ball's P is E from H (nearest: the body); P' is E from D_ball ∪ C.
    h = np.concatenate([BODY, OTHER_PART])
    d = discriminative_distances(h, split)
    assert d[1] == pytest.approx(E, abs=2e-3)
    assert d[0] == pytest.approx(E / 2, abs=2e-3)


def test_a_body_error_below_delta_changes_only_the_part_distance(split):
    # H = S grown by ε < δ: still within δ of C everywhere (H_D empty); ball's part is ε nearer.
    eps = 0.02
    d = discriminative_distances(fibonacci_sphere(15000, R + eps), split)
    assert d[0] == 0.0
    assert d[1] == pytest.approx((E - eps) / 2, abs=2e-3)


def test_a_body_error_above_delta_adds_the_same_to_every_member(split):
    # H = S grown by ε > δ: all of H is H_D and ε from C ∪ D_m for both members (C is nearer than P), so both
    # distances gain ε / 2 and their difference, which decides the assignment, stays E / 2.
    eps = 0.06
    d = discriminative_distances(fibonacci_sphere(15000, R + eps), split)
    assert d[0] == pytest.approx(eps / 2, abs=2e-3)
    assert d[1] == pytest.approx((E - eps) / 2 + eps / 2, abs=2e-3)
    assert d[1] - d[0] == pytest.approx(E / 2 - eps / 2, abs=3e-3)


def test_matrix_rows_are_hypotheses_and_assignment_follows(split):
    hyps = [BODY, np.concatenate([BODY, PART]), np.concatenate([BODY, OTHER_PART])]
    d = discriminative_matrix(hyps, split)
    assert d.shape == (3, 2)
    assert assign(d, margin=0.05).tolist() == [0, 1, 0]
    assert assign(d, margin=E).tolist() == [-1, -1, -1]  # every gap is E / 2 < E: all unassigned


def test_bad_inputs():
    with pytest.raises(ValueError):
        split_body([], DELTA)
    with pytest.raises(ValueError):
        split_body([BODY], 0.0)
    with pytest.raises(ValueError):
        discriminative_distances(np.zeros((0, 3)), split_body([BODY], DELTA))
