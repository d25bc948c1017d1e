"""The numeric part of training: text features -> design matrix -> ridge weights (numpy, scipy).

Only training imports numpy and scipy (the ``router`` extra); scoring at request time is plain Python.
Ridge is solved in the dual, ``alpha = (X X^T + lambda I)^-1 y`` and ``w = X^T alpha``, which is exact
and fast while there are fewer requests than features (a few thousand against a few hundred thousand).
Words enter only through their character grams (which share weight between related words); a word's
own column fitted topics, not difficulty, and was dropped (grouped CV, see docs/router.md).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse  # type: ignore[import-untyped]

from gateway.classify.features import DENSE, FORMS, Analysis, char_grams, gram_counts
from gateway.classify.learned import DENSE_CLIP
from gateway.training.params import Params


@dataclass(frozen=True, slots=True)
class FormFit:
    words: dict[str, float]
    grams: dict[str, float]
    bigrams: dict[str, float]
    dense: dict[str, float]


@dataclass(frozen=True, slots=True)
class Fitted:
    forms: dict[str, FormFit]
    dense_mean: dict[str, float]
    dense_scale: dict[str, float]
    bias: float


def fit(analyses: Sequence[Analysis], y: Sequence[float], params: Params) -> Fitted:
    """Ridge with shared columns and, per form, a copy of them that only that form's requests fill
    (``params.form_sparse`` and ``form_dense`` scale the copies' squared norm: how far a form may move
    from the shared weights). Solved in the dual on kernels: shared + form copies = ``K + c * K * same``."""
    grams = [gram_counts(a) for a in analyses]
    bigram_vocab = _vocabulary((a.bigrams for a in analyses), params.min_df_bigrams)
    gram_vocab = _vocabulary((g.keys() for g in grams), params.min_df_grams)
    dense = np.array([[a.dense[name] for name in DENSE] for a in analyses], dtype=np.float64)
    mean, scale = dense.mean(axis=0), dense.std(axis=0)
    scale[scale < 1e-9] = 1.0
    x_bigrams = _binary([a.bigrams for a in analyses], bigram_vocab)
    x_grams = _counts(grams, gram_vocab)
    x_sparse = sparse.hstack([x_bigrams, x_grams * params.gram_weight], format="csr")
    x_dense = np.clip((dense - mean) / scale, -DENSE_CLIP, DENSE_CLIP) * params.dense_weight
    form = np.array([FORMS.index(a.form) for a in analyses])
    same = np.equal.outer(form, form)
    k_sparse, k_dense = (x_sparse @ x_sparse.T).toarray(), x_dense @ x_dense.T
    kernel = k_sparse + k_dense + params.intercept_scale**2
    kernel += same * (params.form_sparse * k_sparse + params.form_dense * k_dense)
    kernel[np.diag_indices_from(kernel)] += params.ridge
    alpha = np.linalg.solve(kernel, np.asarray(y, dtype=np.float64))
    forms = {}
    for i, name in enumerate(FORMS):
        mine = alpha * (form == i)
        sparse_dual, dense_dual = alpha + params.form_sparse * mine, alpha + params.form_dense * mine
        forms[name] = _form_fit(
            np.asarray(x_bigrams.T @ sparse_dual).ravel(),
            np.asarray(x_grams.T @ sparse_dual).ravel() * params.gram_weight**2,
            x_dense.T @ dense_dual * params.dense_weight,
            analyses,
            bigram_vocab,
            gram_vocab,
            params.digits,
        )
    return Fitted(
        forms=forms,
        dense_mean={name: float(mean[j]) for j, name in enumerate(DENSE)},
        dense_scale={name: float(scale[j]) for j, name in enumerate(DENSE)},
        bias=float(alpha.sum() * params.intercept_scale**2),
    )


def _form_fit(
    bigram_w: np.ndarray,
    gram_w: np.ndarray,
    dense_w: np.ndarray,
    analyses: Sequence[Analysis],
    bigram_vocab: dict[str, int],
    gram_vocab: dict[str, int],
    digits: int,
) -> FormFit:
    """One form's weights in artifact form: rounded, zeros dropped, and every training word's
    character-gram sum precomputed (``words``), so that scoring a known word is one look-up."""
    grams = {g: v for g, i in gram_vocab.items() if (v := _round(gram_w[i], digits))}
    words = {
        word: _round(math.fsum(grams.get(g, 0.0) for g in char_grams(word)), digits)
        for word in dict.fromkeys(word for a in analyses for word in a.words)
    }
    return FormFit(
        words=words,
        grams=grams,
        bigrams={b: v for b, i in bigram_vocab.items() if (v := _round(bigram_w[i], digits))},
        dense={name: _round(dense_w[j], digits) for j, name in enumerate(DENSE)},
    )


def _round(value: float, digits: int) -> float:
    return float(f"{float(value):.{digits}g}")


def _vocabulary(documents: Iterable[Iterable[str]], min_df: int) -> dict[str, int]:
    df: Counter[str] = Counter()
    for keys in documents:
        df.update(keys)
    return {key: i for i, key in enumerate(sorted(k for k, n in df.items() if n >= min_df))}


def _binary(documents: Sequence[Sequence[str]], vocab: dict[str, int]) -> sparse.csr_matrix:
    rows, cols = [], []
    for i, keys in enumerate(documents):
        for key in keys:
            j = vocab.get(key)
            if j is not None:
                rows.append(i)
                cols.append(j)
    data = np.ones(len(rows), dtype=np.float64)
    return sparse.csr_matrix((data, (rows, cols)), shape=(len(documents), len(vocab)))


def _counts(documents: Sequence[Counter[str]], vocab: dict[str, int]) -> sparse.csr_matrix:
    rows, cols, data = [], [], []
    for i, counts in enumerate(documents):
        for key, n in counts.items():
            j = vocab.get(key)
            if j is not None:
                rows.append(i)
                cols.append(j)
                data.append(float(n))
    return sparse.csr_matrix((data, (rows, cols)), shape=(len(documents), len(vocab)))
