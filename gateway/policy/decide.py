"""The routing decision: request + tenant + policy -> every candidate judged, the allowed ones ranked.

Pure: no I/O. Health comes in as a set of deployment ids to demote.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.classify.base import Classifier, Complexity
from gateway.errors import GatewayError, InvalidRequest, ModelNotFound, NotCapable, PolicyDenied, UpstreamUnavailable
from gateway.policy.detect import Detected
from gateway.policy.policy_set import Deployment, PolicySet, Violation
from gateway.policy.prompt_limit import PromptSize, check_prompt_size
from gateway.policy.rules import FIT_RULES, POLICY_RULES, Context, is_policy_rule
from gateway.policy.schema import RouteSpec, TenantSpec, Thresholds, Tier
from gateway.request import ChatRequest

DEFAULT_OUTPUT_TOKENS = 256


@dataclass(frozen=True, slots=True)
class Verdict:
    deployment: Deployment
    violations: tuple[Violation, ...]
    estimated_cost_usd: float
    unhealthy: bool
    fallback: bool = False  # from the route's fallback list, tried after the tier's candidates

    @property
    def allowed(self) -> bool:
        return not self.violations

    def to_json(self) -> dict[str, Any]:
        dep = self.deployment
        return {
            "deployment": dep.id,
            "model": dep.model_id,
            "vendor": dep.model.vendor,
            "origin": dep.model.origin,
            "operator": dep.spec.operator,
            "jurisdiction": dep.spec.jurisdiction,
            "self_hosted": dep.spec.self_hosted,
            "allowed": self.allowed,
            "violations": [{"rule": v.rule, "message": v.message} for v in self.violations],
            "estimated_cost_usd": round(self.estimated_cost_usd, 8),
            "healthy": not self.unhealthy,
            "fallback": self.fallback,
        }


@dataclass(frozen=True, slots=True)
class Decision:
    tenant: str
    requested_model: str  # the client's name for it
    route: str | None  # None when the client named a concrete model
    tier: str | None
    complexity: Complexity | None
    data_class: str
    revision: str
    verdicts: tuple[Verdict, ...]
    ranked: tuple[Deployment, ...]  # allowed deployments in the order they will be tried
    resolved_model: str = ""  # the route or catalog model that name is: itself, or an alias's target
    alias: str | None = None  # the policy's alias (exact name or pattern) that resolved it, if any
    detected: Detected | None = None  # personal data found that raised the data class (never the text)
    prompt: PromptSize | None = None  # the prompt's size, its limit, and how much of it the classifier read

    def to_json(self) -> dict[str, Any]:
        complexity = None
        if self.complexity is not None:
            complexity = {
                "classifier": self.complexity.classifier,
                "score": self.complexity.score,
                "features": dict(self.complexity.features),
                "top_features": [{"feature": n, "contribution": c} for n, c in self.complexity.top],
            }
        return {
            "tenant": self.tenant,
            "requested_model": self.requested_model,
            "alias": self.alias,
            "resolved_model": self.resolved_model,
            "route": self.route,
            "tier": self.tier,
            "data_class": self.data_class,
            "detected": self.detected.to_json() if self.detected else None,
            "prompt": self.prompt.to_json() if self.prompt else None,
            "policy_revision": self.revision,
            "complexity": complexity,
            "candidates": [v.to_json() for v in self.verdicts],
            "order": [d.id for d in self.ranked],
        }


def tier_for(score: float, thresholds: Thresholds) -> Tier:
    if score >= thresholds.complex:
        return "complex"
    if score >= thresholds.standard:
        return "standard"
    return "simple"


def decide(
    policy: PolicySet,
    tenant_id: str,
    request: ChatRequest,
    classifier: Classifier,
    unhealthy: frozenset[str] = frozenset(),
    downgrade: bool = False,
) -> Decision:
    """Judge every candidate and rank the allowed ones. ``downgrade``: the tenant's budget is nearly
    spent and its policy says downgrade, so a route uses its cheapest tier (``simple``)."""
    tenant = policy.tenants[tenant_id]
    prompt = check_prompt_size(policy, tenant_id, request)  # first: an over-sized prompt is read by nothing
    route = policy.routes.get(request.model)
    if route is None and request.model not in policy.models:
        raise ModelNotFound(f"The model {request.model!r} does not exist or is not served here.", param="model")
    detected = detect_data_class(policy, tenant, request)  # before classify: the class may change the candidates
    data_class = effective_data_class(policy, tenant_id, tenant, request.data_class, detected)
    complexity: Complexity | None = None
    tier: Tier | None = None
    candidates: tuple[str, ...] = (request.model,)
    fallback: tuple[str, ...] = ()
    if route is not None:
        _check_route_allowed(tenant_id, tenant, request.model)
        complexity = classifier.classify(request)
        tier = "simple" if downgrade else tier_for(complexity.score, route.thresholds)
        candidates = route.tiers[tier]
        fallback = tuple(m for m in route.fallback if m not in candidates)
    ctx = Context(
        tenant_id,
        tenant,
        data_class,
        policy.data_classes[data_class],
        request.endpoint,
        request.needs_tools,
        request.needs_json,
        request.needs_vision,
        request.prompt_tokens_estimate + (request.max_tokens or 0),
    )
    verdicts = (
        *_judge(ctx, policy, candidates, request, unhealthy, False),
        *_judge(ctx, policy, fallback, request, unhealthy, True),
    )
    ranked = _rank(verdicts, route)
    return Decision(
        tenant_id,
        request.requested_model or request.model,
        request.model if route else None,
        tier,
        complexity,
        data_class,
        policy.revision,
        verdicts,
        ranked,
        request.model,
        request.alias,
        detected,
        prompt,
    )


def detect_data_class(policy: PolicySet, tenant: TenantSpec, request: ChatRequest) -> Detected | None:
    """Personal data in the request's text that raises its class above what the tenant and header declare."""
    if not policy.detection.escalations:
        return None
    declared = declared_data_class(policy, tenant, request.data_class)
    return policy.detection.scan(request.scanned_text, declared, policy.data_class_rank)


def effective_data_class(
    policy: PolicySet, tenant_id: str, tenant: TenantSpec, asked: str | None, detected: Detected | None = None
) -> str:
    """The request's class: the most sensitive of the tenant's default, every class the header names and
    the class the detectors raised it to (``detected``), checked against the tenant's allowed classes."""
    data_class = declared_data_class(policy, tenant, asked)
    if detected is not None and policy.data_class_rank[detected.data_class] > policy.data_class_rank[data_class]:
        data_class = detected.data_class
    allowed = tenant.allow_data_classes
    if allowed is not None and data_class not in allowed:
        why = f" (raised by the detector {', '.join(detected.detectors)})" if detected else ""
        raise PolicyDenied(
            f"Denied by tenant.allow_data_classes: tenant {tenant_id!r} may not send {data_class!r} data{why} "
            f"(allowed: {', '.join(allowed)}).",
            param="x-gateway-data-class",
        )
    return data_class


def declared_data_class(policy: PolicySet, tenant: TenantSpec, asked: str | None) -> str:
    """The most sensitive of the tenant's default and every class the header names.

    The header may be repeated or hold a comma-separated list (a proxy that appends ``confidential`` to
    what the client sent): the most sensitive wins, so a client can raise its class, never lower it."""
    data_class = tenant.default_data_class
    for part in (asked or "").split(","):
        named = part.strip()
        if not named:
            continue
        if named not in policy.data_classes:
            raise InvalidRequest(
                f"Unknown data class {named!r} in x-gateway-data-class; known: {', '.join(policy.data_classes)}.",
                param="x-gateway-data-class",
            )
        if policy.data_class_rank[named] > policy.data_class_rank[data_class]:
            data_class = named
    return data_class


def _check_route_allowed(tenant_id: str, tenant: TenantSpec, route: str) -> None:
    if tenant.allow_routes is not None and route not in tenant.allow_routes:
        raise PolicyDenied(
            f"Denied by tenant.allow_routes: tenant {tenant_id!r} may not use route {route!r} "
            f"(allowed: {', '.join(tenant.allow_routes)}).",
            param="model",
        )


def _judge(
    ctx: Context,
    policy: PolicySet,
    models: Iterable[str],
    request: ChatRequest,
    unhealthy: frozenset[str],
    fallback: bool,
) -> list[Verdict]:
    output_tokens = request.max_tokens or DEFAULT_OUTPUT_TOKENS
    prompt_tokens = request.prompt_tokens_estimate
    by_policy = policy_verdicts(ctx, policy)
    verdicts = []
    for model in models:
        for dep_id in policy.deployments_by_model.get(model, ()):
            dep = policy.deployments[dep_id]
            violations = by_policy[dep_id]
            for rule in FIT_RULES:
                if (v := rule(ctx, dep)) is not None:
                    violations += (v,)
            cost = (dep.price.input * prompt_tokens + dep.price.output * output_tokens) / 1e6
            verdicts.append(Verdict(dep, violations, cost, dep_id in unhealthy, fallback))
    return verdicts


def policy_verdicts(ctx: Context, policy: PolicySet) -> Mapping[str, tuple[Violation, ...]]:
    """What the tenant and data-class rules say of each deployment: the same for every request of
    this tenant and data class, so worked out on first use and kept with the policy revision."""
    key = (ctx.tenant_id, ctx.data_class_id)
    verdicts = policy.policy_verdicts.get(key)
    if verdicts is None:
        verdicts = {
            dep_id: tuple(v for rule in POLICY_RULES if (v := rule(ctx, dep)) is not None)
            for dep_id, dep in policy.deployments.items()
        }
        policy.policy_verdicts[key] = verdicts
    return verdicts


def _rank(verdicts: tuple[Verdict, ...], route: RouteSpec | None) -> tuple[Deployment, ...]:
    """Allowed deployments: the tier's before the fallback list, healthy before unhealthy, then by
    estimated cost (routes ranked by price) and the order they are listed in."""
    by_price = route is None or route.rank == "price"
    order = sorted(
        (v.fallback, v.unhealthy, v.estimated_cost_usd if by_price else 0.0, i, v.deployment)
        for i, v in enumerate(verdicts)
        if not v.violations  # allowed
    )
    return tuple(item[4] for item in order)  # the index is unique, so deployments are never compared


def refusal(decision: Decision) -> GatewayError | None:
    """The error a client gets when no deployment may serve the request, or None when one may."""
    return None if decision.ranked else _nothing_allowed(decision)


def _no_deployment(decision: Decision) -> str:
    if decision.route:
        return f"No model of route {decision.route!r}, tier {decision.tier!r} has a deployment"
    return f"The model {decision.resolved_model!r} is in the catalog but has no deployment (no entry in deployments)"


def _nothing_allowed(decision: Decision) -> GatewayError:
    where = (
        f"route {decision.route!r}, tier {decision.tier!r}" if decision.route else f"model {decision.resolved_model!r}"
    )
    reasons = "; ".join(
        f"{v.deployment.id}: {v.violations[0].rule}: {v.violations[0].message}" for v in decision.verdicts
    ) or _no_deployment(decision)
    rules = {v.rule for verdict in decision.verdicts for v in verdict.violations}
    message = f"No deployment may serve this request for tenant {decision.tenant!r} ({where}). {reasons}."
    if any(is_policy_rule(rule) for rule in rules):
        return PolicyDenied("Denied by policy. " + message, param="model")
    if rules and all(rule == "deployment.unavailable" for rule in rules):
        return UpstreamUnavailable(message)
    return NotCapable(message, param="model")
