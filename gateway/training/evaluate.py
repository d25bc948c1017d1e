"""Routing quality of the learned router on splits that do not flatter it (``gateway router eval``).

Three splits, each scored with the RouteLLM metrics per held-out part and their macro-average, the router beside
the hashed word-n-gram logistic regression (``baseline``), random, oracle and prompt length:

- *leave one benchmark out* (the headline): train on the other benchmarks, score the held-out one. Nothing of
  the held-out benchmark's shape (its answer format, its length, its topics) is seen in training, which is
  what a gateway meets: traffic unlike any benchmark. Modelling choices are judged on this split only.
- *leave one MMLU subject group out*: the MMLU subjects in four groups (STEM, humanities, social sciences,
  other, as in the MMLU paper); train on everything but one group, score that group.
- *grouped k-fold*: MMLU subjects and MT-Bench categories never straddle folds (so a subject's difficulty
  cannot leak from training to test); GSM8K has one stratum, so its items are the groups. Repeated over
  several seeds (different fold assignments) and averaged. Flattering: each benchmark's shape is in training.

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
from gateway.training.baseline import NgramBaseline
from gateway.training.params import Params
from gateway.training.train import Dataset, subset, train

NGRAM = "n-gram LR"
_SUBJECTS = {  # the MMLU paper's categories (hendrycks/test categories.py); every other subject is "other"
    "stem": (
        "abstract_algebra astronomy college_biology college_chemistry college_computer_science "
        "college_mathematics college_physics computer_security conceptual_physics electrical_engineering "
        "elementary_mathematics high_school_biology high_school_chemistry high_school_computer_science "
        "high_school_mathematics high_school_physics high_school_statistics machine_learning"
    ),
    "humanities": (
        "formal_logic high_school_european_history high_school_us_history high_school_world_history "
        "international_law jurisprudence logical_fallacies moral_disputes moral_scenarios philosophy "
        "prehistory professional_law world_religions"
    ),
    "social_sciences": (
        "econometrics high_school_geography high_school_government_and_politics high_school_macroeconomics "
        "high_school_microeconomics high_school_psychology human_sexuality professional_psychology "
        "public_relations security_studies sociology us_foreign_policy"
    ),
}
MMLU_GROUPS = {subject: group for group, subjects in _SUBJECTS.items() for subject in subjects.split()}
MMLU_GROUP_NAMES = ("stem", "humanities", "social_sciences", "other")


@dataclass(frozen=True, slots=True)
class Report:
    title: str
    rows: dict[str, dict[str, RouterMetrics]]  # router name -> held-out part -> metrics
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


def out_of_fold(data: Dataset, folds: Sequence[int], params: Params, kind: str = "learned") -> list[float]:
    """Each example's score from a router (``kind``: ``learned`` or the n-gram baseline) trained without its
    fold. Examples of a negative fold are never held out (they are always in training) and score nan."""
    scores = [math.nan] * len(data.examples)
    for fold in sorted(f for f in set(folds) if f >= 0):
        held = [i for i, f in enumerate(folds) if f == fold]
        kept = [i for i, f in enumerate(folds) if f != fold]
        requests = [data.examples[i].request for i in held]
        if kind == NGRAM:
            train_part = [data.examples[i] for i in kept]
            baseline = NgramBaseline([ex.request.text for ex in train_part], [ex.strong > ex.weak for ex in train_part])
            found = baseline.scores([r.text for r in requests])
        else:
            classifier = LearnedClassifier(train(subset(data, kept), params))
            found = [classifier.classify(r).score for r in requests]
        for i, score in zip(held, found, strict=True):
            scores[i] = score
    return scores


def by_part(data: Dataset, scores: Sequence[float], parts: Sequence[str | None]) -> dict[str, RouterMetrics]:
    """The metrics of each held-out part (``parts``: one name per example, None = not scored)."""
    out = {}
    for part in dict.fromkeys(p for p in parts if p is not None):
        idx = [i for i, p in enumerate(parts) if p == part]
        weak = [data.examples[i].weak for i in idx]
        strong = [data.examples[i].strong for i in idx]
        out[part] = evaluate([scores[i] for i in idx], weak, strong)
    return out


def by_bench(data: Dataset, scores: Sequence[float]) -> dict[str, RouterMetrics]:
    return by_part(data, scores, [ex.bench for ex in data.examples])


def baselines(data: Dataset, parts: Sequence[str | None] | None = None) -> dict[str, dict[str, RouterMetrics]]:
    parts = [ex.bench for ex in data.examples] if parts is None else parts
    weak = [ex.weak for ex in data.examples]
    strong = [ex.strong for ex in data.examples]
    return {
        "random": by_part(data, [0.0] * len(weak), parts),
        "oracle": by_part(data, oracle_scores(weak, strong), parts),
        "length": by_part(data, [float(len(ex.request.text)) for ex in data.examples], parts),
    }


def grouped_report(data: Dataset, params: Params, seeds: Sequence[int], k: int = 5) -> Report:
    rows: dict[str, dict[str, RouterMetrics]] = {}
    per_seed = []
    for kind in ("learned", NGRAM):
        runs = [by_bench(data, out_of_fold(data, grouped_folds(data, k, seed), params, kind)) for seed in seeds]
        rows[kind] = {bench: _mean([run[bench] for run in runs]) for bench in data.benches}
        apgrs = ", ".join(f"seed {s}: {macro(run.values())['apgr']:.3f}" for s, run in zip(seeds, runs, strict=True))
        per_seed.append(f"{kind} macro APGR per seed: {apgrs}")
    title = f"grouped {k}-fold CV (subjects/categories never split), mean of {len(seeds)} seed(s)"
    return Report(title, {**rows, **baselines(data)}, "\n".join(per_seed))


def held_out_report(
    title: str, data: Dataset, folds: Sequence[int], parts: Sequence[str | None], params: Params
) -> Report:
    rows = {kind: by_part(data, out_of_fold(data, folds, params, kind), parts) for kind in ("learned", NGRAM)}
    rows |= baselines(data, parts)
    return Report(title, rows, verdict(rows))


def leave_one_out_report(data: Dataset, params: Params) -> Report:
    parts = [ex.bench for ex in data.examples]
    return held_out_report("leave one benchmark out (headline)", data, bench_folds(data), parts, params)


def mmlu_group(subject: str) -> str:
    return MMLU_GROUPS.get(subject, "other")


def mmlu_group_report(data: Dataset, params: Params) -> Report | None:
    """Leave one MMLU subject group out; None without MMLU data."""
    parts = [mmlu_group(ex.stratum) if ex.bench == "mmlu" else None for ex in data.examples]
    present = [g for g in MMLU_GROUP_NAMES if g in parts]
    if len(present) < 2:
        return None
    folds = [present.index(p) if p is not None else -1 for p in parts]
    named = [f"mmlu:{p}" if p is not None else None for p in parts]
    return held_out_report(
        "leave one MMLU subject group out (the rest of the data stays in training)", data, folds, named, params
    )


def verdict(rows: dict[str, dict[str, RouterMetrics]]) -> str:
    """The targets of issue #15 on a held-out split, each with what was reached."""
    mine, ngram, rand = rows["learned"], rows[NGRAM], rows["random"]
    score = macro(mine.values())["apgr"]
    beaten = [p for p in mine if mine[p].apgr > ngram[p].apgr]
    below = [p for p in mine if mine[p].c95 < rand[p].c95]
    return "\n".join(
        [
            f"target macro APGR >= 0.66: {score:.3f} ({'met' if score >= 0.66 else 'not met'}); "
            f"n-gram LR {macro(ngram.values())['apgr']:.3f}",
            f"above the n-gram LR on {len(beaten)}/{len(mine)} held-out parts"
            + (f" (not on {', '.join(p for p in mine if p not in beaten)})" if len(beaten) < len(mine) else ""),
            f"C95 below random on {len(below)}/{len(mine)}"
            + (f" (not on {', '.join(p for p in mine if p not in below)})" if len(below) < len(mine) else ""),
        ]
    )


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
