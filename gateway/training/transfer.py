"""The transfer term: a few format-independent cues of reasoning depth, for forms the training data barely has.

The learned router's word pairs and character grams learn what makes a request hard *in the benchmarks it was
trained on*; on a kind of request it has hardly seen (leave-one-benchmark-out: MMLU questions for a router
trained on GSM8K and MT-Bench) they are noise, and it is no better than random. What transfers is coarser:
how much there is to read and to track (length, sentences, quantities, operators, enumerated parts) and the
words that make a question a trap or a chain (negations, relational words, math and reasoning cues).

So training fits, beside the learned model, a small linear head on ``FEATURES`` (the standardized, clipped
dense statistics the learned model reads, so it folds into its dense weights exactly):

- weights constrained to be non-negative (monotone: more of a cue never makes a request easier);
- the target is the strong model's gain (strong - weak), centred within each benchmark, and the features
  centred within each benchmark too: it learns an ordering within a kind of work, not which benchmark is
  harder; each benchmark weighs ``sqrt(n)`` (a 17-prompt benchmark still counts, a 4k one does not drown it);
- scaled to the spread of the learned raw score, and added to each form's dense weights with the weight
  ``k / (k + n_form)`` of a blend (``n_form``: the form's training requests; ``Params.transfer_k``), so a
  form with thousands of training requests keeps its learned weights and one with a handful leans on the cues.

Deterministic (non-negative least squares, no seed). Judged on leave-one-benchmark-out only
(docs/router-evaluation.md).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import optimize  # type: ignore[import-untyped]

from gateway.classify.features import DENSE, FORMS, Analysis
from gateway.classify.learned import DENSE_CLIP

# Chosen before any fit, as "more of this is more work"; not selected by their held-out results.
FEATURES = (
    "chars",
    "words",
    "sentences",
    "numbers",
    "distinct_numbers",
    "big_numbers",
    "operators",
    "parts",
    "negation",
    "relational",
    "math",
    "reasoning",
)
MAX_BLEND = 0.95  # a form with no training request at all still keeps a twentieth of the learned score


def fit_head(
    analyses: Sequence[Analysis],
    benches: Sequence[str],
    gains: Sequence[float],
    mean: Mapping[str, float],
    scale: Mapping[str, float],
    ridge: float,
) -> dict[str, float]:
    """Non-negative weights per name in ``FEATURES`` on the standardized (``mean``, ``scale``), clipped statistics."""
    z = standardized(analyses, mean, scale)
    y = np.asarray(gains, dtype=np.float64)
    names = np.asarray(benches)
    rows = np.ones(len(y))
    for bench in dict.fromkeys(benches):
        mine = names == bench
        z[mine] -= z[mine].mean(axis=0)
        y[mine] -= y[mine].mean()
        rows[mine] = 1.0 / math.sqrt(mine.sum())
    rows = np.sqrt(rows / rows.mean())
    k = len(FEATURES)
    a = np.vstack([z * rows[:, None], math.sqrt(ridge) * np.eye(k)])
    coef, _ = optimize.nnls(a, np.concatenate([y * rows, np.zeros(k)]))
    return {name: float(c) for name, c in zip(FEATURES, coef, strict=True)}


def standardized(analyses: Sequence[Analysis], mean: Mapping[str, float], scale: Mapping[str, float]) -> np.ndarray:
    raw = np.array([[a.dense[name] for name in FEATURES] for a in analyses], dtype=np.float64)
    mu = np.array([mean[name] for name in FEATURES])
    sd = np.array([scale[name] for name in FEATURES])
    clipped: np.ndarray = np.clip((raw - mu) / sd, -DENSE_CLIP, DENSE_CLIP)
    return clipped


def form_blends(forms: Sequence[str], k: float) -> dict[str, float]:
    """The blend weight of the transfer term per form: ``k / (k + n_form)``, at most ``MAX_BLEND``."""
    counts = Counter(forms)
    return {form: min(k / (k + counts[form]), MAX_BLEND) if k > 0 else 0.0 for form in FORMS}


def dense_additions(
    head: Mapping[str, float], blends: Mapping[str, float], learned_spread: float, head_spread: float
) -> dict[str, dict[str, float]]:
    """What to add to each form's dense weights: the head scaled to the learned score's spread, times
    ``blend / (1 - blend)`` (a blend of the two scores, up to a per-form scale the ranking does not see)."""
    if head_spread <= 0:
        return {form: dict.fromkeys(DENSE, 0.0) for form in FORMS}
    unit = learned_spread / head_spread
    return {
        form: {name: unit * blend / (1.0 - blend) * head.get(name, 0.0) for name in DENSE}
        for form, blend in blends.items()
    }
