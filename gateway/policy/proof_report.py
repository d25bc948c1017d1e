"""The compliance proof as text (a table per tenant) and as JSON. Pure: builds strings and dicts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from gateway.policy.policy_set import Deployment
from gateway.policy.proof import Cell
from gateway.policy.verify import Proof

COLUMNS = ("data class", "target", "tier", "need", "first choice", "reachable", "vendors", "origins", "jurisdictions")


def summary(deployments: Iterable[Deployment]) -> dict[str, list[str]]:
    deps = list(deployments)
    return {
        "deployments": sorted({d.id for d in deps}),
        "models": sorted({d.model_id for d in deps}),
        "vendors": sorted({d.model.vendor for d in deps}),
        "origins": sorted({d.model.origin for d in deps}),
        "jurisdictions": sorted({d.spec.jurisdiction for d in deps}),
        "operators": sorted({d.spec.operator for d in deps}),
    }


def cell_json(cell: Cell) -> dict[str, Any]:
    return {
        "data_class": cell.data_class,
        "target": cell.target,
        "tier": cell.tier,
        "need": cell.need.label,
        "first": cell.reachable[0].id if cell.reachable else None,
        "reachable": [d.id for d in cell.reachable],
        "refused": cell.refused or None,
    }


def to_json(proof: Proof) -> dict[str, Any]:
    tenants = {}
    for tenant in proof.tenants:
        cells = proof.of(tenant)
        tenants[tenant] = {
            "data_classes": list(dict.fromkeys(c.data_class for c in cells)),
            "reachable": summary(d for c in cells for d in c.reachable),
            "cells": [cell_json(c) for c in cells],
        }
    return {
        "policy_revision": proof.revision,
        "ok": proof.ok,
        "cells": len(proof.cells),
        "findings": [{"rule": f.rule, "tenant": f.tenant, "message": f.message} for f in proof.findings],
        "tenants": tenants,
    }


def render(proof: Proof) -> str:
    out: list[str] = []
    for tenant in proof.tenants:
        out.extend(_tenant_block(tenant, proof.of(tenant)))
    out.append(_verdict(proof))
    return "\n".join(out)


def _tenant_block(tenant: str, cells: Sequence[Cell]) -> list[str]:
    reach = summary(d for c in cells for d in c.reachable)
    lines = [
        f"tenant {tenant}: data classes {', '.join(dict.fromkeys(c.data_class for c in cells)) or '(none)'}",
        f"  reachable models:        {', '.join(reach['models']) or '(none)'}",
        f"  reachable vendors:       {', '.join(reach['vendors']) or '(none)'}",
        f"  reachable origins:       {', '.join(reach['origins']) or '(none)'}",
        f"  reachable jurisdictions: {', '.join(reach['jurisdictions']) or '(none)'}",
    ]
    rows = [_row(c) for c in cells if not (c.need.tools or c.need.vision or c.need.json)]
    lines.extend("  " + line for line in _table(rows))
    lines.append("")
    return lines


def _row(cell: Cell) -> tuple[str, ...]:
    deps = cell.reachable
    first = deps[0].id if deps else "refused: " + _rule_of(cell.refused)
    return (
        cell.data_class,
        cell.target,
        cell.tier or "-",
        cell.need.endpoint,
        first,
        str(len(deps)),
        ",".join(sorted({d.model.vendor for d in deps})) or "-",
        ",".join(sorted({d.model.origin for d in deps})) or "-",
        ",".join(sorted({d.spec.jurisdiction for d in deps})) or "-",
    )


def _rule_of(message: str) -> str:
    """The first rule a refusal names (``tenant.deny_origins``), or its first words."""
    for word in message.replace(":", " ").split():
        if word.startswith(("tenant.", "data_class.", "capability.")):
            return word
    return " ".join(message.split()[:4])


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    return ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in [COLUMNS, *rows]]


def _verdict(proof: Proof) -> str:
    head = f"policy revision {proof.revision}: {len(proof.cells)} cells over {len(proof.tenants)} tenants"
    if proof.ok:
        return f"ok: {head}; every declared guarantee holds, no contradictions"
    found = "\n".join(f"  {f.rule}: {f.message}" for f in proof.findings)
    return f"FAILED: {head}; {len(proof.findings)} finding(s):\n{found}"
