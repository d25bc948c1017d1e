"""``gateway audit summarize FILE``: traffic, cost and savings by tenant, tier, vendor and origin."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

DIMENSIONS = ("tenant", "tier", "vendor", "origin")


@dataclass
class Totals:
    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    counterfactual: float = 0.0

    def add(self, entry: dict[str, Any]) -> None:
        self.requests += 1
        self.errors += entry.get("status", 200) >= 400
        self.input_tokens += int(entry.get("input_tokens") or 0)
        self.output_tokens += int(entry.get("output_tokens") or 0)
        self.cost += float(entry.get("cost_usd") or 0.0)
        self.counterfactual += float(entry.get("counterfactual_cost_usd") or 0.0)


class Entries:
    """The entries of an audit file, read one line at a time; ``bad`` counts the lines that are not entries."""

    def __init__(self, path: Path) -> None:
        self.path, self.bad = path, 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        with self.path.open("rb") as lines:
            for line in lines:
                try:
                    entry = orjson.loads(line)
                except orjson.JSONDecodeError:
                    self.bad += 1
                    continue
                if isinstance(entry, dict):
                    yield entry
                else:
                    self.bad += 1


def summarize(entries: Iterable[dict[str, Any]]) -> dict[str, dict[str, Totals]]:
    tables: dict[str, dict[str, Totals]] = {d: defaultdict(Totals) for d in ("all", *DIMENSIONS)}
    for entry in entries:
        tables["all"]["all"].add(entry)
        for dimension in DIMENSIONS:
            tables[dimension][str(entry.get(dimension) or "none")].add(entry)
    return tables


def render(tables: dict[str, dict[str, Totals]]) -> str:
    lines: list[str] = []
    for dimension, rows in tables.items():
        lines.append(f"by {dimension}")
        lines.append(
            f"  {'':24} {'requests':>9} {'errors':>7} {'in tokens':>11} {'out tokens':>11} "
            f"{'cost $':>11} {'baseline $':>11} {'saved $':>11} {'saved %':>8}"
        )
        for key, t in sorted(rows.items(), key=lambda item: -item[1].requests):
            saved = t.counterfactual - t.cost
            share = f"{100 * saved / t.counterfactual:7.1f}%" if t.counterfactual else "      -"
            lines.append(
                f"  {key[:24]:24} {t.requests:9d} {t.errors:7d} {t.input_tokens:11d} {t.output_tokens:11d} "
                f"{t.cost:11.6f} {t.counterfactual:11.6f} {saved:11.6f} {share:>8}"
            )
        lines.append("")
    return "\n".join(lines)
