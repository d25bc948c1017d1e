"""Per-pair calibration: train the router with an operator's own outcomes (``gateway router train --outcomes``).

The shipped router learned from one model pair (Mixtral-8x7B vs GPT-4, RouteLLM's published evaluations). An
operator who routes between, say, Qwen3-32B and GPT-4.1 has another pair: what the weak model fails at, and
how often, differ. Their outcomes (the same JSON lines as the dev data: a prompt or messages, ``weak_score`` and
``strong_score`` in [0, 1], optionally ``bench`` and ``stratum``; see docs/router-evaluation.md for how to
collect them from the audit trail and a judge) are trained on together with the dev data, and:

- the calibration curve is made of the operator's requests only, so ``strong_share: 0.3`` in a route sends the
  top 30% of *their* traffic (as sampled) to the complex tier, not 30% of the benchmarks';
- the share worth sending is estimated out of fold (each operator request scored by a router trained without
  it): the share that reaches 95% of the strong model's quality (C95) and the one that gets 80% of the gain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gateway.classify.learned import RouterModel
from gateway.classify.metrics import RouterMetrics, evaluate
from gateway.training.params import Params
from gateway.training.train import Dataset, dataset, train

OPERATOR = "operator"  # the benchmark name of outcome rows that have none
ADVICE_FOLDS = 5


@dataclass(frozen=True, slots=True)
class Advice:
    metrics: RouterMetrics  # out of fold, on the operator's outcomes

    def lines(self) -> list[str]:
        m = self.metrics
        if math.isnan(m.apgr):
            return [f"on your {m.n} outcomes the strong model is not better on average: route everything weak"]
        return [
            f"on your {m.n} outcomes (out of fold): APGR {m.apgr:.3f}, weak {m.q_weak:.3f}, strong {m.q_strong:.3f}",
            f"strong_share {m.c95:.2f} reaches 95% of the strong model's quality (C95); "
            f"{m.cpt80:.2f} gets 80% of its gain (CPT80), {m.cpt50:.2f} half of it",
        ]


def combined(dev: Dataset, outcomes: Dataset) -> tuple[Dataset, list[int]]:
    """The dev data and the outcomes as one data set, and the indices of the outcomes in it."""
    data = dataset(
        [*dev.examples, *outcomes.examples], f"{dev.digest}+{outcomes.digest}", f"{dev.source}+{outcomes.source}"
    )
    return data, list(range(len(dev.examples), len(data.examples)))


def train_with_outcomes(dev: Dataset, outcomes: Dataset, params: Params) -> tuple[RouterModel, Advice | None]:
    """The router trained on both and calibrated on the outcomes; the advice needs 2 * ADVICE_FOLDS outcomes."""
    data, mine = combined(dev, outcomes)
    model = train(data, params, calibrate_on=mine)
    if len(mine) < 2 * ADVICE_FOLDS:
        return model, None
    return model, Advice(out_of_fold_metrics(data, mine, params))


def out_of_fold_metrics(data: Dataset, mine: list[int], params: Params) -> RouterMetrics:
    from gateway.training.evaluate import grouped_folds, out_of_fold

    own = Dataset(tuple(data.examples[i] for i in mine), tuple(data.analyses[i] for i in mine))
    own = Dataset(own.examples, own.analyses, benches=tuple(sorted({ex.bench for ex in own.examples})))
    folds = [-1] * len(data.examples)  # the dev data is always in training
    for i, fold in zip(mine, grouped_folds(own, ADVICE_FOLDS), strict=True):
        folds[i] = fold
    scores = out_of_fold(data, folds, params)
    examples = [data.examples[i] for i in mine]
    return evaluate([scores[i] for i in mine], [ex.weak for ex in examples], [ex.strong for ex in examples])
