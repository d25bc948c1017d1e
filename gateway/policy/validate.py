"""Cross-references between sections, checked after each file validated on its own."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from gateway.policy.aliases import alias_problems
from gateway.policy.detect import BUILTIN
from gateway.policy.hints import did_you_mean
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
        yield from _unknown_name(f"{path}[{index}]", value, known_set, what)


def _unknown_name(path: str, value: str, known: Iterable[str], what: str) -> Iterator[str]:
    """``path: unknown <what> 'x' (did you mean 'y'?)`` when ``value`` is not one of ``known``."""
    if value not in known:
        yield f"{path}: unknown {what} {value!r}{did_you_mean(value, known)}"


def _deployment(policy: PolicyFile, dep_id: str) -> Iterator[str]:
    dep = policy.deployments[dep_id]
    yield from _unknown_name(f"deployments.{dep_id}.model", dep.model, policy.models, "model")


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
    if route.baseline_model:
        yield from _unknown_name(f"routes.{route_id}.baseline_model", route.baseline_model, policy.models, "model")


def _tenant(policy: PolicyFile, name: str) -> Iterator[str]:
    classes = set(policy.data_classes) or {"public"}
    tenant = policy.tenants[name]
    path = f"tenants.{name}"
    yield from _unknown_name(f"{path}.default_data_class", tenant.default_data_class, classes, "data class")
    yield from _unknown(f"{path}.allow_data_classes", tenant.allow_data_classes or (), classes, "data class")
    yield from _unknown(f"{path}.allow_models", tenant.allow_models or (), policy.models, "model")
    yield from _unknown(f"{path}.deny_models", tenant.deny_models, policy.models, "model")
    yield from _unknown(f"{path}.allow_routes", tenant.allow_routes or (), policy.routes, "route")
    if tenant.guarantees is not None:
        promised = tenant.guarantees
        yield from _unknown(f"{path}.guarantees.never_models", promised.never_models, policy.models, "model")
        yield from _unknown(
            f"{path}.guarantees.self_hosted_data_classes", promised.self_hosted_data_classes, classes, "data class"
        )
    allowed = tenant.allow_data_classes
    if allowed is not None and tenant.default_data_class not in allowed:
        yield f"{path}.default_data_class: {tenant.default_data_class!r} is not in allow_data_classes"


def _shared_keys(policy: PolicyFile) -> Iterator[Problem]:
    seen: dict[str, tuple[str, str]] = {}  # sha256 -> (tenant, path) where it is written first
    admin = {k.sha256 for k in policy.admin.keys} if policy.admin else set()
    for name, tenant in policy.tenants.items():
        for index, key in enumerate(tenant.keys):
            here = f"tenants.{name}.keys[{index}]"
            if key.sha256 in seen:
                owner, first = seen[key.sha256]
                yield (
                    "tenants",
                    name,
                    f"{here}.sha256: duplicate key hash: the same sha256 is already {first} "
                    f"(the same key already belongs to tenant {owner!r}); give each key its own secret",
                )
            if key.sha256 in admin:
                yield "tenants", name, f"{here}: an admin key may not also be a tenant key"
            seen.setdefault(key.sha256, (name, here))


def _detectors(policy: PolicyFile) -> Iterator[Problem]:
    for name in policy.detectors:
        if name in BUILTIN:
            yield "detectors", name, f"detectors.{name}: {name!r} is a built-in detector; give yours another name"
    known = [*BUILTIN, *policy.detectors]
    for name, spec in policy.data_classes.items():
        for message in _unknown(f"data_classes.{name}.detect", spec.detect, known, "detector"):
            yield "data_classes", name, f"{message} (built-in: {', '.join(BUILTIN)}; or define it under detectors)"
