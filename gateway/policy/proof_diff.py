"""What a policy change would reroute: the cells of two proofs compared. Pure: reads cells, builds values."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gateway.policy.proof import Cell

CellKey = tuple[str, str, str, str, str]  # tenant, data class, target, tier ("-" for a named model), need


@dataclass(frozen=True, slots=True)
class CellChange:
    """One cell whose reachable set or first choice differs. ``None``: the cell exists on one side only
    (a tenant, data class, route or model added or removed)."""

    tenant: str
    data_class: str
    target: str
    tier: str
    need: str
    before: tuple[str, ...] | None
    after: tuple[str, ...] | None

    @property
    def first_before(self) -> str | None:
        return self.before[0] if self.before else None

    @property
    def first_after(self) -> str | None:
        return self.after[0] if self.after else None

    @property
    def plain(self) -> bool:
        return "+" not in self.need

    def describe(self) -> str:
        where = f"{self.data_class} {self.target}" + ("" if self.tier == "-" else f" tier {self.tier}")
        if self.before is None or self.after is None:
            return f"{where} ({self.need}): {'new' if self.before is None else 'gone'} cell"
        parts = []
        if self.first_before != self.first_after:
            parts.append(f"first {self.first_before or 'refused'} -> {self.first_after or 'refused'}")
        added = sorted(set(self.after) - set(self.before))
        removed = sorted(set(self.before) - set(self.after))
        if added:
            parts.append("now reachable " + ", ".join(added))
        if removed:
            parts.append("no longer reachable " + ", ".join(removed))
        return f"{where} ({self.need}): " + "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "data_class": self.data_class,
            "target": self.target,
            "tier": None if self.tier == "-" else self.tier,
            "need": self.need,
            "before": None if self.before is None else list(self.before),
            "after": None if self.after is None else list(self.after),
            "first_before": self.first_before,
            "first_after": self.first_after,
        }


def _key(cell: Cell) -> CellKey:
    return cell.tenant, cell.data_class, cell.target, cell.tier or "-", cell.need.label


def diff_cells(old: Iterable[Cell], new: Iterable[Cell]) -> list[CellChange]:
    """Every cell whose reachable set or first choice changed (a change of order further down is not one:
    the fallbacks are still the same deployments)."""
    before = {_key(c): tuple(d.id for d in c.reachable) for c in old}
    after = {_key(c): tuple(d.id for d in c.reachable) for c in new}
    changes = []
    for key in [*before, *(k for k in after if k not in before)]:
        was, now = before.get(key), after.get(key)
        if was is not None and now is not None and was[:1] == now[:1] and set(was) == set(now):
            continue
        changes.append(CellChange(*key, was, now))
    return changes
