"""The simple baseline the router must beat (issue #15): a hashed word-n-gram logistic regression.

Words and word pairs of the prompt, hashed into ``BUCKETS`` columns (CRC-32: the same on every run, unlike
``hash``), rows scaled to unit length; L2-regularised logistic regression on "the strong model does better
than the weak one", fitted with L-BFGS. ``gateway router eval`` trains it on the same folds as the router and
prints it beside it: a router that does not beat this does not know more than which words occur.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from itertools import pairwise

import numpy as np
from scipy import optimize, sparse  # type: ignore[import-untyped]

BUCKETS = 1 << 18
C = 1.0  # inverse L2 strength, scikit-learn's default
_WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")


def hashed(text: str) -> list[int]:
    words = _WORD.findall(text.lower())
    grams = words + [f"{a} {b}" for a, b in pairwise(words)]
    return sorted({zlib.crc32(gram.encode()) % BUCKETS for gram in grams})


def design(texts: Sequence[str]) -> sparse.csr_matrix:
    rows = [hashed(text) for text in texts]
    indptr = np.cumsum([0] + [len(r) for r in rows])
    data = np.concatenate([np.full(len(r), 1.0 / max(len(r), 1) ** 0.5) for r in rows] + [np.zeros(0)])
    cols = np.concatenate([np.asarray(r, dtype=np.int64) for r in rows] + [np.zeros(0, dtype=np.int64)])
    return sparse.csr_matrix((data, cols, indptr), shape=(len(texts), BUCKETS))


class NgramBaseline:
    def __init__(self, texts: Sequence[str], strong_wins: Sequence[bool], c: float = C) -> None:
        x, y = design(texts), np.where(np.asarray(strong_wins), 1.0, -1.0)

        def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
            margin = y * (x @ w[:-1] + w[-1])
            p = np.exp(-np.logaddexp(0.0, margin))  # sigmoid(-margin), stable
            grad = np.append(x.T @ (-y * p), np.sum(-y * p))
            grad[:-1] += w[:-1] / c
            return float(np.logaddexp(0.0, -margin).sum() + w[:-1] @ w[:-1] / (2 * c)), grad

        fitted = optimize.minimize(loss, np.zeros(BUCKETS + 1), jac=True, method="L-BFGS-B", options={"maxiter": 500})
        self.weights, self.bias = fitted.x[:-1], float(fitted.x[-1])

    def scores(self, texts: Sequence[str]) -> list[float]:
        return [float(v) for v in design(texts) @ self.weights + self.bias]
