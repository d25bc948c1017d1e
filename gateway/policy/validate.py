"""Cross-references between sections, checked after each file validated on its own."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from gateway.policy.aliases import alias_problems
from gateway.policy.detect import BUILTIN
from gateway.policy.schema import PolicyFile

Problem = tuple[str, str, str]  # (section, id, "section.id.path: message")


def cross_check(policy: PolicyFile) -> list[Problem]:
    problems: list[Problem] = []
    for dep_id in policy.deployments:
        problems.extend(_tag("deployments", dep_id, _deployment(policy, dep_id)))
    for route_id in policy.routes:
        problems.extend(_tag("routes", route_id, _route(policy, route_id)))
    for name in policy.tenants:
        problems.extend(_tag("tenants", name, _tenant(policy, name)))
    problems.extend(_shared_keys(policy))
    problems.extend(_detectors(policy))
    problems.extend(
        ("aliases", name, message) for name, message in alias_problems(policy.aliases, policy.routes, policy.models)
    )
    return problems


def _tag(section: str, key: str, messages: Iterable[str]) -> Iterator[Problem]:
    for message in messages:
        yield section, key, message


def _unknown(path: str, values: Iterable[str], known: Iterable[str], what: str) -> Iterator[str]:
    known_set = set(known)
    for index, value in enumerate(values):
        if value not in known_set:
            yield f"{path}[{index}]: unknown {what} {value!r}"


def _deployment(policy: PolicyFile, dep_id: str) -> Iterator[str]:
    dep = policy.deployments[dep_id]
    if dep.model not in policy.models:
        yield f"deployments.{dep_id}.model: unknown model {dep.model!r}"


def _route(policy: PolicyFile, route_id: str) -> Iterator[str]:
    served = {dep.model for dep in policy.deployments.values()}
    route = policy.routes[route_id]
    if route_id in policy.models:
        yield f"routes.{route_id}: a route may not share its name with a model"
    for tier, candidates in route.tiers.items():
        yield from _unknown(f"routes.{route_id}.tiers.{tier}", candidates, policy.models, "model")
        if not any(c in served for c in candidates):
            yield f"routes.{route_id}.tiers.{tier}: no candidate model has a deployment"
    yield from _unknown(f"routes.{route_id}.fallback", route.fallback, policy.models, "model")
    if route.baseline_model and route.baseline_model not in policy.models:
        yield f"routes.{route_id}.baseline_model: unknown model {route.baseline_model!r}"


def _tenant(policy: PolicyFile, name: str) -> Iterator[str]:
    classes = set(policy.data_classes) or {"public"}
    tenant = policy.tenants[name]
    path = f"tenants.{name}"
    if tenant.default_data_class not in classes:
        yield f"{path}.default_data_class: unknown data class {tenant.default_data_class!r}"
    yield from _unknown(f"{path}.allow_data_classes", tenant.allow_data_classes or (), classes, "data class")
    yield from _unknown(f"{path}.allow_models", tenant.allow_models or (), policy.models, "model")
    yield from _unknown(f"{path}.deny_models", tenant.deny_models, policy.models, "model")
    yield from _unknown(f"{path}.allow_routes", tenant.allow_routes or (), policy.routes, "route")
    allowed = tenant.allow_data_classes
    if allowed is not None and tenant.default_data_class not in allowed:
        yield f"{path}.default_data_class: {tenant.default_data_class!r} is not in allow_data_classes"


def _shared_keys(policy: PolicyFile) -> Iterator[Problem]:
    seen: dict[str, str] = {}
    admin = {k.sha256 for k in policy.admin.keys} if policy.admin else set()
    for name, tenant in policy.tenants.items():
        for index, key in enumerate(tenant.keys):
            if key.sha256 in seen:
                yield (
                    "tenants",
                    name,
                    f"tenants.{name}.keys[{index}]: the same key already belongs to tenant {seen[key.sha256]!r}",
                )
            if key.sha256 in admin:
                yield "tenants", name, f"tenants.{name}.keys[{index}]: an admin key may not also be a tenant key"
            seen[key.sha256] = name


def _detectors(policy: PolicyFile) -> Iterator[Problem]:
    for name in policy.detectors:
        if name in BUILTIN:
            yield "detectors", name, f"detectors.{name}: {name!r} is a built-in detector; give yours another name"
    known = [*BUILTIN, *policy.detectors]
    for name, spec in policy.data_classes.items():
        for message in _unknown(f"data_classes.{name}.detect", spec.detect, known, "detector"):
            yield "data_classes", name, f"{message} (built-in: {', '.join(BUILTIN)}; or define it under detectors)"
