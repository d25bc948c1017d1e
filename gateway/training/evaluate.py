"""Cross-validated routing quality of the learned router (``gateway router eval``).

Two honest splits, each scored with the RouteLLM metrics per benchmark and their macro-average:

- *grouped k-fold*: MMLU subjects and MT-Bench categories never straddle folds (so a subject's
  difficulty cannot leak from training to test); GSM8K has one stratum, so its items are the groups.
  Repeated over several seeds (different fold assignments) and averaged.
- *leave one benchmark out*: train on the other benchmarks, score the held-out one.

Held-out requests are scored by ``LearnedClassifier.classify``, the code the gateway runs for ``auto``.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gateway.classify.learned import LearnedClassifier
from gateway.classify.metrics import RouterMetrics, evaluate, macro, oracle_scores
from gateway.training.params import Params
from gateway.training.train import Dataset, subset, train


@dataclass(frozen=True, slots=True)
class Report:
    title: str
    rows: dict[str, dict[str, RouterMetrics]]  # router name -> bench -> metrics
    detail: str = ""


def grouped_folds(data: Dataset, k: int = 5, seed: int = 0) -> list[int]:
    """A fold per example; whole groups go to the least-filled fold, per benchmark, in a seeded order."""
    rng = random.Random(seed)
    fold_of: dict[str, int] = {}
    for bench in data.benches:
        sizes = Counter(ex.group for ex in data.examples if ex.bench == bench)
        groups = sorted(sizes)
        rng.shuffle(groups)
        load = [0] * k
        for group in sorted(groups, key=lambda g: -sizes[g]):  # stable: ties keep the shuffled order
            target = min(range(k), key=lambda f: (load[f], f))
            fold_of[group] = target
            load[target] += sizes[group]
    return [fold_of[ex.group] for ex in data.examples]


def bench_folds(data: Dataset) -> list[int]:
    return [data.benches.index(ex.bench) for ex in data.examples]


def out_of_fold(data: Dataset, folds: Sequence[int], params: Params) -> list[float]:
    """Each example's score from a router trained without its fold."""
    scores = [math.nan] * len(data.examples)
    for fold in sorted(set(folds)):
        held = [i for i, f in enumerate(folds) if f == fold]
        kept = [i for i, f in enumerate(folds) if f != fold]
        classifier = LearnedClassifier(train(subset(data, kept), params))
        for i in held:
            scores[i] = classifier.classify(data.examples[i].request).score
    return scores


def by_bench(data: Dataset, scores: Sequence[float]) -> dict[str, RouterMetrics]:
    out = {}
    for bench in data.benches:
        idx = [i for i, ex in enumerate(data.examples) if ex.bench == bench]
        weak = [data.examples[i].weak for i in idx]
        strong = [data.examples[i].strong for i in idx]
        out[bench] = evaluate([scores[i] for i in idx], weak, strong)
    return out


def baselines(data: Dataset) -> dict[str, dict[str, RouterMetrics]]:
    weak = [ex.weak for ex in data.examples]
    strong = [ex.strong for ex in data.examples]
    return {
        "random": by_bench(data, [0.0] * len(weak)),
        "oracle": by_bench(data, oracle_scores(weak, strong)),
        "length": by_bench(data, [float(len(ex.request.text)) for ex in data.examples]),
    }


def grouped_report(data: Dataset, params: Params, seeds: Sequence[int], k: int = 5) -> Report:
    runs = [by_bench(data, out_of_fold(data, grouped_folds(data, k, seed), params)) for seed in seeds]
    mean = {bench: _mean([run[bench] for run in runs]) for bench in data.benches}
    per_seed = ", ".join(f"seed {s}: {macro(run.values())['apgr']:.3f}" for s, run in zip(seeds, runs, strict=True))
    title = f"grouped {k}-fold CV (subjects/categories never split), mean of {len(seeds)} seed(s)"
    return Report(title, {"learned": mean, **baselines(data)}, f"macro APGR per seed: {per_seed}")


def leave_one_out_report(data: Dataset, params: Params) -> Report:
    scores = out_of_fold(data, bench_folds(data), params)
    return Report("leave one benchmark out", {"learned": by_bench(data, scores), **baselines(data)})


def _mean(items: Sequence[RouterMetrics]) -> RouterMetrics:
    def avg(get: Callable[[RouterMetrics], float]) -> float:
        return math.fsum(get(m) for m in items) / len(items)

    first = items[0]
    return RouterMetrics(
        first.n,
        first.q_weak,
        first.q_strong,
        avg(lambda m: m.apgr),
        avg(lambda m: m.cpt50),
        avg(lambda m: m.cpt80),
        avg(lambda m: m.c95),
    )


def format_report(report: Report) -> str:
    lines = [f"## {report.title}", ""]
    lines.append("| bench | n | router | APGR | CPT50 | CPT80 | C95 | Q_weak | Q_strong |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    benches = list(next(iter(report.rows.values())))
    for bench in [*benches, "macro"]:
        for name, table in report.rows.items():
            if bench == "macro":
                m = macro(table.values())
                n = sum(row.n for row in table.values())
            else:
                m, n = table[bench].as_row(), table[bench].n
            cells = [f"{m[key]:.3f}" for key in ("apgr", "cpt50", "cpt80", "c95", "q_weak", "q_strong")]
            lines.append(f"| {bench} | {n} | {name} | " + " | ".join(cells) + " |")
    if report.detail:
        lines += ["", report.detail]
    return "\n".join(lines)
