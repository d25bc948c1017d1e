"""Which routes and models a tenant may ask for, as listed by ``GET /v1/models``."""

from __future__ import annotations

from typing import Any

from gateway.policy.policy_set import PolicySet
from gateway.policy.rules import POLICY_RULES, Context, available
from gateway.policy.schema import RouteSpec


def visible_models(policy: PolicySet, tenant_id: str, created: int) -> list[dict[str, Any]]:
    tenant = policy.tenants[tenant_id]
    data_class = tenant.default_data_class
    ctx = Context(tenant_id, tenant, data_class, policy.data_classes[data_class], "chat", False, False, False, 0)
    callable_models = {
        dep.model_id
        for dep in policy.deployments.values()
        if all(rule(ctx, dep) is None for rule in (*POLICY_RULES, available))
    }
    routes = [
        name
        for name, route in policy.routes.items()
        if (tenant.allow_routes is None or name in tenant.allow_routes) and _reaches(route, callable_models)
    ]
    listed = [{"id": r, "object": "model", "created": created, "owned_by": "switchyard"} for r in routes]
    listed += [
        {"id": m, "object": "model", "created": created, "owned_by": policy.models[m].vendor}
        for m in policy.models
        if m in callable_models
    ]
    return listed


def _reaches(route: RouteSpec, callable_models: set[str]) -> bool:
    """Whether a route has a model the tenant may call (in a tier or its fallback); else it can never answer."""
    return any(m in callable_models for m in (*route.fallback, *(m for tier in route.tiers.values() for m in tier)))
