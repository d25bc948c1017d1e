"""The quick exploration behind the router's transfer term (``gateway/training/transfer.py``), leave-one-benchmark-out.

Prints APGR per held-out benchmark (C95 after) for: each dense statistic alone (a diagnostic read on the held-out
benchmarks themselves, so it says which cues carry signal, not what a router would reach); transfer heads fitted
on the two other benchmarks (target, benchmark weights, feature sets, unit weights); and blends of each head with
the shipped learned router's out-of-fold scores. A blend here is of within-benchmark ranks, an approximation of
what training does (it adds the head to the dense weights, ``train._with_transfer``); the rows that were kept
were confirmed with ``python -m gateway.training.experiment``, which runs the real thing.

    PYTHONPATH=. .venv/bin/python -m bench.router_transfer [--data ../shared/routing/dev.jsonl]

Needs the learned router's cached out-of-fold scores without the transfer term: run
``python -m gateway.training.experiment --set transfer_k=0`` first (it writes them to /tmp/switchyard-router).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from scipy import optimize, stats  # type: ignore[import-untyped]

from gateway.classify.features import DENSE
from gateway.classify.metrics import evaluate
from gateway.classify.task import scored
from gateway.training import transfer
from gateway.training.experiment import CACHE, cache_key, variant
from gateway.training.train import Dataset, read_dataset

BENCHES = ("mmlu", "gsm8k", "mtbench")
_OPTION = re.compile(r"\n[ \t]*\(?[A-Ha-h][.)][ \t]")
_TOKEN = re.compile(r"[a-z]+|[0-9]+(?:[.,][0-9]+)*|[^\sa-z0-9]")
_CONDITIONS = frozenset(["if", "when", "given", "suppose", "assume", "assuming", "provided", "whenever", "unless"])
Fit = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (train mask, test mask) -> scores of the test rows


def stem_features(text: str) -> list[float]:
    """Tried and dropped: statistics of the question without its answer options."""
    cuts = list(_OPTION.finditer("\n" + text))
    stem = ("\n" + text)[: cuts[0].start()] if len(cuts) >= 3 else text
    tokens = _TOKEN.findall(stem.lower())
    words = [t for t in tokens if t[0].isalpha()]
    sentences = [s for s in re.split(r"[.!?\n]+", stem) if s.strip()]
    last = _TOKEN.findall(sentences[-1].lower()) if sentences else []
    return [
        math.log1p(len(words)),
        math.log1p(sum(t[0].isdigit() for t in tokens)),
        math.log1p(len(set(words))),
        math.log1p(sum(w in _CONDITIONS for w in words)),
        math.log1p(len(last)),
        math.log1p(len(sentences)),
        math.log1p(stem.count(",")),
    ]


STEM = ("stem_words", "stem_numbers", "stem_distinct_words", "conditions", "last_sentence_words", "stem_sentences")


class Lab:
    def __init__(self, data: Dataset, learned: Sequence[float]) -> None:
        self.bench = np.array([ex.bench for ex in data.examples])
        self.weak = np.array([ex.weak for ex in data.examples])
        self.strong = np.array([ex.strong for ex in data.examples])
        self.form = np.array([a.form for a in data.analyses])
        stems = [stem_features(scored(ex.request).text) for ex in data.examples]
        self.names = [*DENSE, *STEM, "commas"]
        self.x = np.hstack([np.array([[a.dense[n] for n in DENSE] for a in data.analyses]), np.array(stems)])
        self.learned = np.asarray(learned)

    def row(self, name: str, scores: np.ndarray) -> None:
        found = [self._metrics(scores, b) for b in BENCHES]
        cells = " | ".join(f"{m.apgr:.3f}" for m in found)
        c95 = " ".join(f"{m.c95:.3f}" for m in found)
        print(f"| {name} | {cells} | {np.mean([m.apgr for m in found]):.3f} | {c95} |")

    def _metrics(self, scores: np.ndarray, bench: str):  # type: ignore[no-untyped-def]
        m = self.bench == bench
        return evaluate(list(scores[m]), list(self.weak[m]), list(self.strong[m]))

    def lobo(self, fit: Fit) -> np.ndarray:
        out = np.full(len(self.bench), np.nan)
        for bench in BENCHES:
            test = self.bench == bench
            out[test] = fit(~test, test)
        return out

    def ranks(self, scores: np.ndarray) -> np.ndarray:
        out = np.zeros(len(scores))
        for bench in BENCHES:
            m = self.bench == bench
            out[m] = (stats.rankdata(scores[m]) - 0.5) / m.sum()
        return out

    def target(self, kind: str) -> np.ndarray:
        y = self.strong - self.weak if kind.endswith("gain") else 1 + self.strong - 2 * self.weak
        return self.ranks(y) if kind.startswith("rank") else y

    def head(
        self, features: Sequence[str], kind: str, weights: str, *, monotone: bool = True, ridge: float = 1.0
    ) -> Fit:
        cols = [self.names.index(f) for f in features]
        y_all = self.target(kind)

        def fit(train: np.ndarray, test: np.ndarray) -> np.ndarray:
            x = self.x[:, cols]
            mu, sd = x[train].mean(0), x[train].std(0)
            z = np.clip((x - mu) / np.where(sd < 1e-9, 1.0, sd), -2, 2)
            zc, y, w = z[train].copy(), y_all[train].copy(), np.ones(train.sum())
            benches = self.bench[train]
            for bench in set(benches):
                m = benches == bench
                zc[m] -= zc[m].mean(0)
                y[m] -= y[m].mean()
                w[m] = {"n": 1.0, "sqrt": 1 / math.sqrt(m.sum()), "eq": 1 / m.sum()}[weights]
            w = np.sqrt(w / w.mean())
            a = np.vstack([zc * w[:, None], math.sqrt(ridge) * np.eye(len(cols))])
            b = np.concatenate([y * w, np.zeros(len(cols))])
            coef = optimize.nnls(a, b)[0] if monotone else np.linalg.lstsq(a, b, rcond=None)[0]
            return np.asarray(z[test] @ coef)

        return fit

    def unit(self, features: Sequence[str]) -> Fit:
        cols = [self.names.index(f) for f in features]

        def fit(train: np.ndarray, test: np.ndarray) -> np.ndarray:
            x = self.x[:, cols]
            return np.asarray(((x[test] - x[train].mean(0)) / np.maximum(x[train].std(0), 1e-9)).sum(1))

        return fit

    def form_blend(self, k: float) -> np.ndarray:
        """``transfer.form_blends`` per held-out request, from the forms of its fold's training requests."""
        out = np.zeros(len(self.bench))
        for bench in BENCHES:
            test = self.bench == bench
            blends = transfer.form_blends(list(self.form[~test]), k)
            for form, blend in blends.items():
                out[test & (self.form == form)] = blend
        return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.router_transfer", description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("../shared/routing/dev.jsonl"))
    args = parser.parse_args(argv)
    data = read_dataset(args.data)
    cached = CACHE / f"{data.digest}-lobo-learned-{cache_key(variant(['transfer_k=0']))}.json"
    if not cached.exists():
        print(f"no {cached}: run `python -m gateway.training.experiment --set transfer_k=0` first", file=sys.stderr)
        return 1
    lab = Lab(data, json.loads(cached.read_text()))
    prior = list(transfer.FEATURES)
    print("| variant | " + " | ".join(BENCHES) + " | macro | C95 |")
    print("|---|---|---|---|---|---|")
    lab.row("learned, no transfer (cached)", lab.learned)
    for j, name in enumerate(lab.names):
        lab.row(f"diagnostic: {name} alone, read on the held-out data", lab.x[:, j])
    heads: dict[str, Fit] = {}
    for kind in ("ordinal", "rank-ordinal", "gain", "rank-gain"):
        for weights in ("n", "sqrt", "eq"):
            heads[f"head: 12 cues, monotone, {kind} target, benchmarks weigh {weights}"] = lab.head(
                prior, kind, weights
            )
    for ridge in (10.0, 100.0):
        heads[f"head: 12 cues, monotone, gain, sqrt, ridge {ridge:g}"] = lab.head(prior, "gain", "sqrt", ridge=ridge)
    heads["head: 12 cues, unconstrained, rank-ordinal, sqrt"] = lab.head(prior, "rank-ordinal", "sqrt", monotone=False)
    everything = [n for j, n in enumerate(lab.names) if n not in STEM and n != "commas" and lab.x[:, j].std() > 0]
    heads["head: all dense, unconstrained, rank-ordinal, sqrt"] = lab.head(
        everything, "rank-ordinal", "sqrt", monotone=False
    )
    heads["head: 12 cues + stem statistics, monotone, gain, sqrt"] = lab.head([*prior, *STEM, "commas"], "gain", "sqrt")
    heads["head: words alone"] = lab.head(["words"], "gain", "sqrt")
    heads["unit weights: 12 cues"] = lab.unit(prior)
    learned = lab.ranks(lab.learned)
    for name, fit in heads.items():
        head = lab.lobo(fit)
        lab.row(name, head)
        for k in (10.0, 50.0, 200.0):
            blend = lab.form_blend(k)
            lab.row(f"  blend per form, k={k:g}", (1 - blend) * learned + blend * lab.ranks(head))
        for share in (0.3, 0.5, 0.7):
            lab.row(f"  blend {share:g} everywhere", (1 - share) * learned + share * lab.ranks(head))
    return 0


if __name__ == "__main__":
    sys.exit(main())
