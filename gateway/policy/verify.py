"""``gateway policy verify``: each tenant's declared guarantees checked against every deployment it could reach.

Pure: no I/O. The reachable sets come from :mod:`gateway.policy.proof` (the routing decision run on every
cell); this module only reads them. A guarantee is checked against each deployment of each cell, so the
proof is exhaustive, not a sample. Contradictions are reported too: a tenant whose default data class can
reach nothing, and a route tier that no tenant can use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from gateway.policy.guarantees_schema import Guarantees
from gateway.policy.policy_set import Deployment, PolicySet, all_available
from gateway.policy.proof import Cell, enumerate_cells
from gateway.policy.schema import TIERS


@dataclass(frozen=True, slots=True)
class Finding:
    """A broken guarantee (``guarantees.*``) or a contradiction in the policy (``contradiction.*``)."""

    rule: str
    tenant: str | None
    message: str


@dataclass(frozen=True, slots=True)
class Proof:
    revision: str
    tenants: tuple[str, ...]
    cells: tuple[Cell, ...]
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return not self.findings

    def of(self, tenant: str) -> tuple[Cell, ...]:
        return tuple(cell for cell in self.cells if cell.tenant == tenant)


def prove(policy: PolicySet) -> Proof:
    """Enumerate every cell, then check every tenant's guarantees and the policy's consistency."""
    policy = all_available(policy)
    cells = tuple(enumerate_cells(policy))
    found = [*guarantee_findings(policy, cells), *contradictions(policy, cells)]
    return Proof(policy.revision, tuple(policy.tenants), cells, tuple(found))


# A deployment-level guarantee: its name, and what is wrong with a deployment (or None) for a cell.
DeploymentCheck = Callable[[Guarantees, Cell, Deployment], str | None]


def _never_origins(g: Guarantees, cell: Cell, dep: Deployment) -> str | None:
    origin = dep.model.origin
    return f"origin {origin!r} is in never_origins {list(g.never_origins)}" if origin in g.never_origins else None


def _only_origins(g: Guarantees, cell: Cell, dep: Deployment) -> str | None:
    allowed, origin = g.only_origins, dep.model.origin
    return None if allowed is None or origin in allowed else f"origin {origin!r} is not in only_origins {list(allowed)}"


def _only_jurisdictions(g: Guarantees, cell: Cell, dep: Deployment) -> str | None:
    allowed, where = g.only_jurisdictions, dep.spec.jurisdiction
    if allowed is None or where in allowed:
        return None
    return f"jurisdiction {where!r} is not in only_jurisdictions {list(allowed)}"


def _never_jurisdictions(g: Guarantees, cell: Cell, dep: Deployment) -> str | None:
    where = dep.spec.jurisdiction
    if where in g.never_jurisdictions:
        return f"jurisdiction {where!r} is in never_jurisdictions {list(g.never_jurisdictions)}"
    return None


def _only_operators(g: Guarantees, cell: Cell, dep: Deployment) -> str | None:
    allowed, who = g.only_operators, dep.spec.operator
    return None if allowed is None or who in allowed else f"operator {who!r} is not in only_operators {list(allowed)}"


def _never_vendors(g: Guarantees, cell: Cell, dep: Deployment) -> str | None:
    vendor = dep.model.vendor
    return f"vendor {vendor!r} is in never_vendors {list(g.never_vendors)}" if vendor in g.never_vendors else None


def _never_models(g: Guarantees, cell: Cell, dep: Deployment) -> str | None:
    return f"model {dep.model_id!r} is in never_models" if dep.model_id in g.never_models else None


def _self_hosted_only(g: Guarantees, cell: Cell, dep: Deployment) -> str | None:
    if g.self_hosted_only and not dep.spec.self_hosted:
        return f"operated by {dep.spec.operator!r}, not self-hosted (self_hosted_only)"
    return None


def _self_hosted_origins(g: Guarantees, cell: Cell, dep: Deployment) -> str | None:
    origin = dep.model.origin
    if origin in g.self_hosted_origins and not dep.spec.self_hosted:
        return (
            f"origin {origin!r} is in self_hosted_origins {list(g.self_hosted_origins)} but the deployment is "
            f"operated by {dep.spec.operator!r} in {dep.spec.jurisdiction!r}"
        )
    return None


def _self_hosted_data_classes(g: Guarantees, cell: Cell, dep: Deployment) -> str | None:
    if cell.data_class in g.self_hosted_data_classes and not dep.spec.self_hosted:
        return f"{cell.data_class!r} data must stay self-hosted; operated by {dep.spec.operator!r}"
    return None


DEPLOYMENT_CHECKS: dict[str, DeploymentCheck] = {
    "never_origins": _never_origins,
    "only_origins": _only_origins,
    "only_jurisdictions": _only_jurisdictions,
    "never_jurisdictions": _never_jurisdictions,
    "only_operators": _only_operators,
    "never_vendors": _never_vendors,
    "never_models": _never_models,
    "self_hosted_only": _self_hosted_only,
    "self_hosted_origins": _self_hosted_origins,
    "self_hosted_data_classes": _self_hosted_data_classes,
}


def guarantee_findings(policy: PolicySet, cells: Iterable[Cell]) -> Iterator[Finding]:
    by_tenant: dict[str, list[Cell]] = {}
    for cell in cells:
        by_tenant.setdefault(cell.tenant, []).append(cell)
    for tenant_id, tenant in policy.tenants.items():
        if tenant.guarantees is not None:
            mine = by_tenant.get(tenant_id, [])
            yield from _deployment_findings(tenant_id, tenant.guarantees, mine)
            yield from _vendor_findings(tenant_id, tenant.guarantees, mine)


def _deployment_findings(tenant_id: str, promised: Guarantees, cells: list[Cell]) -> Iterator[Finding]:
    """One finding per (guarantee, deployment), naming the first cell that reaches it and how many do."""
    broken: dict[tuple[str, str], tuple[str, Cell, int]] = {}
    for cell in cells:
        for dep in cell.reachable:
            for name, check in DEPLOYMENT_CHECKS.items():
                if (problem := check(promised, cell, dep)) is not None:
                    first = broken.get((name, dep.id))
                    broken[name, dep.id] = (problem, cell, 1) if first is None else (first[0], first[1], first[2] + 1)
    for (name, dep_id), (problem, cell, count) in broken.items():
        yield Finding(
            f"guarantees.{name}",
            tenant_id,
            f"tenant {tenant_id!r} can reach deployment {dep_id!r}: {problem}; e.g. {cell.where} ({count} cell(s))",
        )


def _vendor_findings(tenant_id: str, promised: Guarantees, cells: list[Cell]) -> Iterator[Finding]:
    wanted = promised.min_vendors_per_tier
    if wanted is None:
        return
    for cell in cells:
        if cell.tier is None or not cell.need.plain:
            continue
        vendors = sorted({dep.model.vendor for dep in cell.reachable})
        if len(vendors) < wanted:
            yield Finding(
                "guarantees.min_vendors_per_tier",
                tenant_id,
                f"tenant {tenant_id!r}, {cell.where}: {len(vendors)} vendor(s) {vendors}, "
                f"min_vendors_per_tier is {wanted} (deployments: {[d.id for d in cell.reachable]})",
            )


def contradictions(policy: PolicySet, cells: tuple[Cell, ...]) -> Iterator[Finding]:
    for tenant_id, tenant in policy.tenants.items():
        default = tenant.default_data_class
        if not any(c.reachable for c in cells if c.tenant == tenant_id and c.data_class == default):
            yield Finding(
                "contradiction.default_data_class",
                tenant_id,
                f"tenant {tenant_id!r}: its default data class {default!r} reaches no deployment through any "
                "route or model: every request of this tenant is refused",
            )
    served = {(c.target, c.tier) for c in cells if c.tier is not None and c.reachable}
    landed = {(c.target, c.tier) for c in cells if c.tier is not None}
    for route_id in policy.routes:
        for tier in TIERS:
            if (route_id, tier) not in served:
                why = "no tenant may use the route" if (route_id, tier) not in landed else "every candidate is denied"
                yield Finding(
                    "contradiction.route_tier",
                    None,
                    f"route {route_id!r} tier {tier!r}: no tenant may use any candidate for any data class ({why})",
                )
