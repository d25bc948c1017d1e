"""Train the learned router from prompts scored by a weak and a strong model (``gateway router train``).

Data: JSON lines with ``uid, bench, stratum, prompt, weak_score, strong_score`` (RouteLLM's published
evaluations; MT-Bench scores are 1..10 and are divided by 10). Each prompt becomes a chat request
through the same ``normalize`` the gateway runs, so training sees exactly what ``auto`` sees.

What is learned: a ridge regression over the text features of ``gateway.classify.features``, with
weights shared by all requests plus each form's own (multiple choice, arithmetic, open), and with
the ordinal target ``1 + strong - 2 * weak``: the strong model wins (2) > both fail (1) >
both succeed (0) > only the weak model succeeds (-1). The target is centred within each benchmark,
so that the router learns what makes a request hard *within* a kind of work, not which benchmark
it came from. Solved exactly in the dual (n x n), so training is deterministic: no seed involved.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import orjson

from gateway.classify.features import DENSE, Analysis, analyze
from gateway.classify.learned import Calibration, FormWeights, RouterModel, quantile_knots
from gateway.classify.task import scored
from gateway.errors import GatewayError
from gateway.request import ChatRequest
from gateway.routing.normalize import normalize
from gateway.training import transfer
from gateway.training.fit import Fitted, FormFit, fit
from gateway.training.params import DEFAULTS, Params

SCORE_SCALE = {"mtbench": 10.0}  # per-benchmark divisor that puts scores in [0, 1]


@dataclass(frozen=True, slots=True)
class Example:
    uid: str
    bench: str
    stratum: str
    request: ChatRequest
    weak: float
    strong: float

    @property
    def group(self) -> str:
        """What must not be split across folds: the subject (MMLU, MT-Bench category) or the item."""
        return f"{self.bench}:{self.stratum}" if self.stratum != self.bench else self.uid


@dataclass(frozen=True)
class Dataset:
    examples: tuple[Example, ...]
    analyses: tuple[Analysis, ...]
    digest: str = ""
    source: str = ""
    benches: tuple[str, ...] = field(default=())


def chat_request(prompt: str | None = None, messages: Any = None) -> ChatRequest:
    """The request ``auto`` would see for a prompt (one user message) or a list of chat messages."""
    if messages is None:
        messages = [{"role": "user", "content": prompt or ""}]
    return normalize("chat", orjson.dumps({"model": "auto", "messages": messages}), {})


def read_dataset(path: Path | str, limit_per_bench: int | None = None, default_bench: str | None = None) -> Dataset:
    """JSON lines of outcomes; ``default_bench`` names the benchmark of rows without one (operator outcomes)."""
    raw = Path(path).read_bytes()
    examples: list[Example] = []
    seen: Counter[str] = Counter()
    for number, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
            bench = str(row["bench"] if default_bench is None else row.get("bench") or default_bench)
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: {exc!r}") from None
        if limit_per_bench is not None and seen[bench] >= limit_per_bench:
            continue
        seen[bench] += 1
        try:
            examples.append(_example(row, bench))
        except (KeyError, TypeError, ValueError, GatewayError) as exc:
            raise ValueError(f"{path}:{number}: {exc!r}") from None
    return dataset(examples, hashlib.sha256(raw).hexdigest()[:16], str(path))


SCORES = ("weak_score", "strong_score")  # what a judge adds to an outcome line (``gateway router grade``)


def missing_scores(row: Mapping[str, Any]) -> list[str]:
    """The scores an outcome line lacks: it is graded when there are none."""
    return [name for name in SCORES if row.get(name) is None]


def _example(row: dict[str, Any], bench: str) -> Example:
    if missing := missing_scores(row):
        raise ValueError(f"no {' and no '.join(missing)}: grade both models' answers first (docs/router-evaluation.md)")
    scale = SCORE_SCALE.get(bench, 1.0)
    return Example(
        uid=str(row["uid"]),
        bench=bench,
        stratum=str(row.get("stratum") or bench),
        request=chat_request(str(row["prompt"])) if "messages" not in row else chat_request(messages=row["messages"]),
        weak=float(row["weak_score"]) / scale,
        strong=float(row["strong_score"]) / scale,
    )


def dataset(examples: Sequence[Example], digest: str = "", source: str = "") -> Dataset:
    analyses = tuple(analyze(scored(ex.request).text) for ex in examples)  # an agent's request: its task
    benches = tuple(sorted({ex.bench for ex in examples}))
    return Dataset(tuple(examples), analyses, digest, source, benches)


def subset(data: Dataset, indices: Iterable[int]) -> Dataset:
    keep = list(indices)
    return Dataset(
        tuple(data.examples[i] for i in keep),
        tuple(data.analyses[i] for i in keep),
        data.digest,
        data.source,
        data.benches,
    )


def targets(examples: Sequence[Example]) -> list[float]:
    """The ordinal target, centred within each benchmark."""
    y = [1.0 + ex.strong - 2.0 * ex.weak for ex in examples]
    by_bench: dict[str, list[float]] = {}
    for ex, value in zip(examples, y, strict=True):
        by_bench.setdefault(ex.bench, []).append(value)
    means = {bench: math.fsum(values) / len(values) for bench, values in by_bench.items()}
    return [value - means[ex.bench] for ex, value in zip(examples, y, strict=True)]


def calibration_weights(examples: Sequence[Example]) -> list[float]:
    """Each benchmark counts equally in the calibration curve, whatever its size."""
    counts = Counter(ex.bench for ex in examples)
    return [1.0 / counts[ex.bench] for ex in examples]


def train(data: Dataset, params: Params = DEFAULTS, calibrate_on: Sequence[int] | None = None) -> RouterModel:
    """Fit the router on ``data``; deterministic for the same data and parameters. ``calibrate_on``: the examples
    whose scores make the calibration curve (default all; an operator's own outcomes, see ``outcomes``)."""
    fitted = fit(data.analyses, targets(data.examples), params)
    provisional = _model(fitted, fitted.forms, params)
    fitted = _with_transfer(provisional, fitted, data, params)
    provisional = _model(fitted, fitted.forms, params)
    calibrated = range(len(data.examples)) if calibrate_on is None else calibrate_on
    examples = [data.examples[i] for i in calibrated]
    raw = [provisional.raw(data.analyses[i], scored(data.examples[i].request)) for i in calibrated]
    knots = quantile_knots(raw, calibration_weights(examples))
    if any(ex.request is not scored(ex.request) for ex in examples):  # agent requests: their bounded context too
        first = dataclasses.replace(provisional, calibration=Calibration(knots))
        raw = [first.raw(data.analyses[i], *first.view(data.examples[i].request)) for i in calibrated]
        knots = quantile_knots(raw, calibration_weights(examples))
    training = {
        "data": data.source,
        "data_sha256_16": data.digest,
        "examples": len(data.examples),
        "benches": dict(Counter(ex.bench for ex in data.examples)),
        "forms": dict(Counter(a.form for a in data.analyses)),
        "target": "1 + strong - 2 * weak, centred per benchmark",
        "calibration": "raw-score quantiles, each benchmark weighted equally"
        + (
            ""
            if calibrate_on is None
            else f", of {len(examples)} requests: {dict(Counter(ex.bench for ex in examples))}"
        ),
        "params": params.as_dict(),
        "transfer": {
            "features": list(transfer.FEATURES),
            "blend": transfer.form_blends([a.form for a in data.analyses], params.transfer_k),
        },
        "features": {
            name: {"words": len(f.words), "bigrams": len(f.bigrams), "grams": len(f.grams)}
            for name, f in fitted.forms.items()
        },
        "dense": list(DENSE),
    }
    return dataclasses.replace(
        provisional, calibration=Calibration(tuple(round(k, 6) for k in knots)), training=MappingProxyType(training)
    )


def _model(fitted: Fitted, forms: Mapping[str, FormFit], params: Params) -> RouterModel:
    """The model of ``fitted`` with ``forms``' weights, uncalibrated."""
    return RouterModel(
        forms=MappingProxyType(
            {
                name: FormWeights(
                    words=MappingProxyType(f.words),
                    grams=MappingProxyType(f.grams),
                    bigrams=MappingProxyType(f.bigrams),
                    dense=MappingProxyType(f.dense),
                )
                for name, f in forms.items()
            }
        ),
        dense_mean=MappingProxyType(fitted.dense_mean),
        dense_scale=MappingProxyType(fitted.dense_scale),
        bias=fitted.bias,
        calibration=Calibration((0.0, 1.0)),
        prior_weight=params.prior_weight,
    )


def _with_transfer(model: RouterModel, fitted: Fitted, data: Dataset, params: Params) -> Fitted:
    """``fitted`` with the transfer term (``transfer``) folded into each form's dense weights."""
    blends = transfer.form_blends([a.form for a in data.analyses], params.transfer_k)
    if not any(blends.values()):
        return fitted
    benches = [ex.bench for ex in data.examples]
    gains = [ex.strong - ex.weak for ex in data.examples]
    head = transfer.fit_head(
        data.analyses, benches, gains, fitted.dense_mean, fitted.dense_scale, params.transfer_ridge
    )
    head_raw = transfer.standardized(data.analyses, fitted.dense_mean, fitted.dense_scale) @ [
        head[name] for name in transfer.FEATURES
    ]
    learned_raw = [model.raw(a, scored(ex.request)) for a, ex in zip(data.analyses, data.examples, strict=True)]
    added = transfer.dense_additions(head, blends, _spread(learned_raw, benches), _spread(list(head_raw), benches))
    forms = {
        name: dataclasses.replace(f, dense={d: _round(w + added[name][d], params.digits) for d, w in f.dense.items()})
        for name, f in fitted.forms.items()
    }
    return dataclasses.replace(fitted, forms=forms)


def _spread(values: Sequence[float], benches: Sequence[str]) -> float:
    """The pooled standard deviation of ``values`` within each benchmark."""
    groups: dict[str, list[float]] = {}
    for bench, value in zip(benches, values, strict=True):
        groups.setdefault(bench, []).append(float(value))
    squares = 0.0
    for vs in groups.values():
        mean = math.fsum(vs) / len(vs)
        squares += math.fsum((v - mean) ** 2 for v in vs)
    return math.sqrt(squares / max(len(values), 1))


def _round(value: float, digits: int) -> float:
    return float(f"{float(value):.{digits}g}")
