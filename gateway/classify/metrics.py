"""Routing quality, measured as in the RouteLLM paper: APGR, CPT(50%), CPT(80%) and C95.

Pure: scores and the two models' per-request quality in, numbers out.

A router gives each request a score. Sending the top fraction ``c`` of requests by score to the
strong model (the rest to the weak one) gives a mean quality ``Q(c)``. Ties are broken evenly:
every request of a tie group is sent with the same fraction, so ``Q`` is piecewise linear with
corners only between tie groups, and a constant score is exactly the random router
(``Q(c) = Q_weak + c * (Q_strong - Q_weak)``, APGR exactly 0.5).

- APGR: (integral of Q over [0, 1] - Q_weak) / (Q_strong - Q_weak)
- CPT(p): the smallest c with Q(c) - Q_weak >= p * (Q_strong - Q_weak)
- C95: the smallest c with Q(c) >= 0.95 * Q_strong

Everything is computed from cumulative gains ``G(c) = n * (Q(c) - Q_weak)`` so that the
random router's APGR is exactly 0.5 in floating point.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise


@dataclass(frozen=True, slots=True)
class RouterMetrics:
    n: int
    q_weak: float
    q_strong: float
    apgr: float  # nan when the strong model is not better on average
    cpt50: float
    cpt80: float
    c95: float

    def as_row(self) -> dict[str, float]:
        return {
            "apgr": self.apgr,
            "cpt50": self.cpt50,
            "cpt80": self.cpt80,
            "c95": self.c95,
            "q_weak": self.q_weak,
            "q_strong": self.q_strong,
        }


def curve(scores: Sequence[float], weak: Sequence[float], strong: Sequence[float]) -> list[tuple[float, float]]:
    """The corners of ``(c, G(c))``: cumulative gain (strong - weak, summed) when the top c go to strong."""
    n = len(scores)
    if not n or len(weak) != n or len(strong) != n:
        raise ValueError("scores, weak and strong must be non-empty and of the same length")
    order = sorted(range(n), key=lambda i: -scores[i])
    points = [(0.0, 0.0)]
    gain, start = 0.0, 0
    while start < n:
        end = start
        while end < n and scores[order[end]] == scores[order[start]]:
            gain += strong[order[end]] - weak[order[end]]
            end += 1
        points.append((end / n, gain))
        start = end
    return points


def first_reach(points: Sequence[tuple[float, float]], target: float) -> float:
    """The smallest c at which the piecewise-linear curve through ``points`` reaches ``target``."""
    c0, g0 = points[0]
    if g0 >= target:
        return c0
    for c1, g1 in points[1:]:
        if g1 >= target:
            return c0 + (c1 - c0) * (target - g0) / (g1 - g0)
        c0, g0 = c1, g1
    return math.nan


def evaluate(scores: Sequence[float], weak: Sequence[float], strong: Sequence[float]) -> RouterMetrics:
    """The four RouteLLM metrics of one router on one benchmark."""
    points = curve(scores, weak, strong)
    n = len(scores)
    q_weak, q_strong = math.fsum(weak) / n, math.fsum(strong) / n
    total = points[-1][1]
    if total <= 0:
        nan = math.nan
        return RouterMetrics(n, q_weak, q_strong, nan, nan, nan, first_reach(points, n * (0.95 * q_strong - q_weak)))
    area = math.fsum((c1 - c0) * (g0 + g1) / 2 for (c0, g0), (c1, g1) in pairwise(points))
    return RouterMetrics(
        n=n,
        q_weak=q_weak,
        q_strong=q_strong,
        apgr=area / total,
        cpt50=first_reach(points, 0.5 * total),
        cpt80=first_reach(points, 0.8 * total),
        c95=first_reach(points, n * (0.95 * q_strong - q_weak)),
    )


def macro(rows: Iterable[RouterMetrics]) -> dict[str, float]:
    """The unweighted mean of each metric over benchmarks."""
    table = [row.as_row() for row in rows]
    if not table:
        return {}
    return {key: math.fsum(row[key] for row in table) / len(table) for key in table[0]}


def oracle_scores(weak: Sequence[float], strong: Sequence[float]) -> list[float]:
    """The oracle router: the requests where the strong model gains most go first."""
    return [s - w for w, s in zip(weak, strong, strict=True)]
