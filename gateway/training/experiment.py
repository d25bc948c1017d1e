"""Leave-one-benchmark-out experiments for the router (``python -m gateway.training.experiment``).

``gateway router eval`` retrains everything on every split, the baselines and the grouped CV too (~25 minutes on a
loaded machine). This script runs only the held-out splits, for the learned router with the parameters given
(``--set name=value``, repeatable; each a field of ``Params``) beside the cached n-gram LR, and prints one table row
per variant. Out-of-fold scores are cached in a directory (default ``/tmp/switchyard-router``) by data digest,
split and parameters, so a variant already run costs nothing. The dev data is never copied anywhere but that cache.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gateway.classify.metrics import macro
from gateway.training import evaluate
from gateway.training.params import DEFAULTS, Params
from gateway.training.train import Dataset, read_dataset

CACHE = Path("/tmp/switchyard-router")


def split_folds(data: Dataset, split: str) -> tuple[list[int], list[str | None]]:
    """Fold per example and held-out part name for ``lobo`` or ``mmlu-groups``."""
    if split == "lobo":
        return evaluate.bench_folds(data), [ex.bench for ex in data.examples]
    parts = [evaluate.mmlu_group(ex.stratum) if ex.bench == "mmlu" else None for ex in data.examples]
    present = [g for g in evaluate.MMLU_GROUP_NAMES if g in parts]
    folds = [present.index(p) if p is not None else -1 for p in parts]
    return folds, [f"mmlu:{p}" if p is not None else None for p in parts]


def cached(path: Path, make: Callable[[], Any]) -> Any:
    if path.exists():
        return json.loads(path.read_text())
    value = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))
    return value


def variant(changes: Sequence[str]) -> Params:
    """``DEFAULTS`` with each ``name=value`` applied (the value converted to the field's type)."""
    params = DEFAULTS
    for change in changes:
        name, _, value = change.partition("=")
        if name not in Params.__slots__ or not value:
            raise SystemExit(f"--set {change!r}: expected name=value with a name in {', '.join(Params.__slots__)}")
        params = dataclasses.replace(params, **{name: type(getattr(DEFAULTS, name))(value)})
    return params


def cache_key(params: Params) -> str:
    return hashlib.sha256(json.dumps(params.as_dict(), sort_keys=True).encode()).hexdigest()[:12]


def row(data: Dataset, name: str, scores: Sequence[float], parts: Sequence[str | None]) -> str:
    table = evaluate.by_part(data, scores, parts)
    cells = [f"{m.apgr:.3f} ({m.c95:.3f})" for m in table.values()]
    return f"| {name} | " + " | ".join(cells) + f" | {macro(table.values())['apgr']:.3f} |"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.training.experiment", description=__doc__)
    parser.add_argument("--data", type=Path, default=Path("../shared/routing/dev.jsonl"))
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--split", choices=("lobo", "mmlu-groups"), default="lobo")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a Params field to change")
    args = parser.parse_args(argv)
    params = variant(args.set)
    data = read_dataset(args.data)
    folds, parts = split_folds(data, args.split)
    base = args.cache / f"{data.digest}-{args.split}"
    key = hashlib.sha256(json.dumps(params.as_dict(), sort_keys=True).encode()).hexdigest()[:12]
    learned = cached(
        base.with_name(f"{base.name}-learned-{key}.json"), lambda: evaluate.out_of_fold(data, folds, params)
    )
    ngram = cached(
        base.with_name(base.name + "-ngram.json"), lambda: evaluate.out_of_fold(data, folds, params, evaluate.NGRAM)
    )
    names = list(dict.fromkeys(p for p in parts if p is not None))
    print(f"split {args.split}; data sha256 {data.digest}; APGR (C95)")
    print("| variant | " + " | ".join(names) + " | macro |")
    print("|---|" + "---|" * (len(names) + 1))
    print(row(data, "learned " + (" ".join(args.set) or "(defaults)"), learned, parts))
    print(row(data, evaluate.NGRAM, ngram, parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
