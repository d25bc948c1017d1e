from __future__ import annotations

import math

import pytest

from gateway.classify.metrics import curve, evaluate, first_reach, macro, oracle_scores

WEAK = [0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0]
STRONG = [1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0]


def test_a_constant_score_is_exactly_the_random_router() -> None:
    m = evaluate([0.5] * len(WEAK), WEAK, STRONG)
    assert m.apgr == 0.5
    assert m.cpt50 == pytest.approx(0.5) and m.cpt80 == pytest.approx(0.8)
    assert m.q_weak == 0.5 and m.q_strong == 0.75
    # Q(c) = 0.5 + 0.25 c reaches 0.95 * 0.75 at c = 0.85
    assert m.c95 == pytest.approx(0.85)


def test_the_oracle_sends_the_gains_first() -> None:
    m = evaluate(oracle_scores(WEAK, STRONG), WEAK, STRONG)
    # gains sorted: +1 +1 +1, then 0 0 0 0, then -1; the whole gap (total gain) is 2
    assert m.cpt50 == pytest.approx(1 / 8)
    assert m.apgr > 1.0
    # Q(c) >= 0.95 * 0.75 needs a cumulative gain of 8 * (0.7125 - 0.5) = 1.7, reached 0.7 into the 2nd item
    assert m.c95 == pytest.approx(1.7 / 8)


def test_ties_are_broken_evenly() -> None:
    # the two tied items (one gain, one loss) are sent together: the curve is flat across them
    points = curve([1.0, 0.5, 0.5, 0.0], [0.0, 0.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0])
    assert points == [(0.0, 0.0), (0.25, 1.0), (0.75, 1.0), (1.0, 1.0)]
    assert first_reach(points, 0.5) == pytest.approx(0.125)


def test_a_worse_than_random_ranking_scores_below_half() -> None:
    reverse = [-s for s in oracle_scores(WEAK, STRONG)]
    assert evaluate(reverse, WEAK, STRONG).apgr < 0.5


def test_no_gap_gives_no_apgr() -> None:
    m = evaluate([1.0, 0.0], [1.0, 1.0], [1.0, 1.0])
    assert math.isnan(m.apgr) and m.c95 == 0.0


def test_macro_averages_benchmarks() -> None:
    a = evaluate([0.0] * 8, WEAK, STRONG)
    b = evaluate(oracle_scores(WEAK, STRONG), WEAK, STRONG)
    assert macro([a, b])["apgr"] == pytest.approx((a.apgr + b.apgr) / 2)


def test_lengths_must_match() -> None:
    with pytest.raises(ValueError):
        evaluate([1.0], [1.0, 0.0], [1.0, 0.0])
