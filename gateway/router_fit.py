"""The numeric part of training: text features -> design matrix -> ridge weights (numpy, scipy).

Only training imports numpy and scipy (the ``router`` extra); scoring at request time is plain Python.
Ridge is solved in the dual, ``alpha = (X X^T + lambda I)^-1 y`` and ``w = X^T alpha``, which is exact
and fast while there are fewer requests than features (a few thousand against a few hundred thousand).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse  # type: ignore[import-untyped]

from gateway.classify.features import DENSE, Analysis, char_grams
from gateway.classify.learned import DENSE_CLIP
from gateway.router_train import Params, gram_counts


@dataclass(frozen=True, slots=True)
class Fitted:
    words: dict[str, float]
    grams: dict[str, float]
    bigrams: dict[str, float]
    dense_mean: dict[str, float]
    dense_scale: dict[str, float]
    dense_weight: dict[str, float]
    bias: float


def fit(analyses: Sequence[Analysis], y: Sequence[float], params: Params) -> Fitted:
    grams = [gram_counts(a) for a in analyses]
    words_vocab = _vocabulary((a.words for a in analyses), params.min_df_words)
    bigram_vocab = _vocabulary((a.bigrams for a in analyses), params.min_df_bigrams)
    gram_vocab = _vocabulary((g.keys() for g in grams), params.min_df_grams)
    dense = np.array([[a.dense[name] for name in DENSE] for a in analyses], dtype=np.float64)
    mean, scale = dense.mean(axis=0), dense.std(axis=0)
    scale[scale < 1e-9] = 1.0
    blocks = [
        _binary([a.words for a in analyses], words_vocab),
        _binary([a.bigrams for a in analyses], bigram_vocab),
        _counts(grams, gram_vocab) * params.gram_weight,
        sparse.csr_matrix(np.clip((dense - mean) / scale, -DENSE_CLIP, DENSE_CLIP) * params.dense_weight),
        sparse.csr_matrix(np.full((len(analyses), 1), params.intercept_scale)),
    ]
    x = sparse.hstack(blocks, format="csr")
    kernel = (x @ x.T).toarray()
    kernel[np.diag_indices_from(kernel)] += params.ridge
    alpha = np.linalg.solve(kernel, np.asarray(y, dtype=np.float64))
    w = np.asarray(x.T @ alpha).ravel()
    return _unpack(w, analyses, words_vocab, bigram_vocab, gram_vocab, mean, scale, params)


def _unpack(
    w: np.ndarray,
    analyses: Sequence[Analysis],
    words_vocab: dict[str, int],
    bigram_vocab: dict[str, int],
    gram_vocab: dict[str, int],
    mean: np.ndarray,
    scale: np.ndarray,
    params: Params,
) -> Fitted:
    digits = params.digits
    n_words, n_bigrams, n_grams = len(words_vocab), len(bigram_vocab), len(gram_vocab)
    word_w = w[:n_words]
    bigram_w = w[n_words : n_words + n_bigrams]
    gram_w = w[n_words + n_bigrams : n_words + n_bigrams + n_grams] * params.gram_weight
    dense_w = w[n_words + n_bigrams + n_grams : -1] * params.dense_weight
    bias = float(w[-1] * params.intercept_scale)
    grams = {g: _round(gram_w[i], digits) for g, i in gram_vocab.items()}
    seen = dict.fromkeys(word for a in analyses for word in a.words)
    words: dict[str, float] = {}
    for word in seen:
        own = float(word_w[words_vocab[word]]) if word in words_vocab else 0.0
        total = own + math.fsum(grams.get(g, 0.0) for g in char_grams(word))
        words[word] = _round(total, digits)
    return Fitted(
        words=words,
        grams={k: v for k, v in grams.items() if v},
        bigrams={b: v for b, i in bigram_vocab.items() if (v := _round(bigram_w[i], digits))},
        dense_mean={name: float(mean[j]) for j, name in enumerate(DENSE)},
        dense_scale={name: float(scale[j]) for j, name in enumerate(DENSE)},
        dense_weight={name: _round(dense_w[j], digits) for j, name in enumerate(DENSE)},
        bias=bias,
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
