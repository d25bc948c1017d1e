"""Policy rules. Each returns a :class:`Violation` naming the rule, the bad value and the allowed set, or None.

A rule reads the request context and one candidate deployment; it never does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gateway.policy.policy_set import Deployment, Violation
from gateway.policy.schema import DataClassSpec, TenantSpec
from gateway.request import Endpoint


@dataclass(frozen=True, slots=True)
class Context:
    tenant_id: str
    tenant: TenantSpec
    data_class_id: str
    data_class: DataClassSpec
    endpoint: Endpoint
    needs_tools: bool
    needs_json: bool
    needs_vision: bool
    tokens_needed: int


Rule = Callable[[Context, Deployment], Violation | None]


def _listed(values: Sequence[str]) -> str:
    return "[" + ", ".join(values) + "]"


def allow_models(ctx: Context, dep: Deployment) -> Violation | None:
    allowed = ctx.tenant.allow_models
    if allowed is not None and dep.model_id not in allowed:
        return Violation("tenant.allow_models", f"model {dep.model_id!r} is not in allow_models {_listed(allowed)}")
    return None


def deny_models(ctx: Context, dep: Deployment) -> Violation | None:
    if dep.model_id in ctx.tenant.deny_models:
        return Violation("tenant.deny_models", f"model {dep.model_id!r} is in deny_models")
    return None


def allow_quality_tiers(ctx: Context, dep: Deployment) -> Violation | None:
    allowed = ctx.tenant.allow_quality_tiers
    if allowed is not None and dep.model.quality_tier not in allowed:
        return Violation(
            "tenant.allow_quality_tiers",
            f"quality tier {dep.model.quality_tier!r} of {dep.model_id!r} "
            f"is not in allow_quality_tiers {_listed(allowed)}",
        )
    return None


def deny_origins(ctx: Context, dep: Deployment) -> Violation | None:
    denied = ctx.tenant.deny_origins
    if dep.model.origin in denied:
        return Violation(
            "tenant.deny_origins",
            f"origin {dep.model.origin!r} of {dep.model_id!r} ({dep.model.vendor}) "
            f"is in deny_origins {_listed(denied)}",
        )
    return None


def allow_origins(ctx: Context, dep: Deployment) -> Violation | None:
    allowed = ctx.tenant.allow_origins
    if allowed is not None and dep.model.origin not in allowed:
        return Violation(
            "tenant.allow_origins",
            f"origin {dep.model.origin!r} of {dep.model_id!r} ({dep.model.vendor}) "
            f"is not in allow_origins {_listed(allowed)}",
        )
    return None


def tenant_jurisdictions(ctx: Context, dep: Deployment) -> Violation | None:
    allowed = ctx.tenant.allow_jurisdictions
    if allowed is not None and dep.spec.jurisdiction not in allowed:
        return Violation(
            "tenant.allow_jurisdictions",
            f"deployment {dep.id!r} sends data to {dep.spec.jurisdiction!r} ({dep.spec.operator}), "
            f"not in allow_jurisdictions {_listed(allowed)}",
        )
    return None


def tenant_self_hosted(ctx: Context, dep: Deployment) -> Violation | None:
    if ctx.tenant.require_self_hosted and not dep.spec.self_hosted:
        return Violation(
            "tenant.require_self_hosted", f"deployment {dep.id!r} is operated by {dep.spec.operator}, not self-hosted"
        )
    return None


def data_class_self_hosted(ctx: Context, dep: Deployment) -> Violation | None:
    if ctx.data_class.require_self_hosted and not dep.spec.self_hosted:
        return Violation(
            f"data_class.{ctx.data_class_id}.require_self_hosted",
            f"{ctx.data_class_id!r} data must stay self-hosted; "
            f"deployment {dep.id!r} is operated by {dep.spec.operator}",
        )
    return None


def data_class_jurisdictions(ctx: Context, dep: Deployment) -> Violation | None:
    allowed = ctx.data_class.allow_jurisdictions
    if allowed is not None and dep.spec.jurisdiction not in allowed:
        return Violation(
            f"data_class.{ctx.data_class_id}.allow_jurisdictions",
            f"{ctx.data_class_id!r} data may go to {_listed(allowed)}; "
            f"deployment {dep.id!r} is in {dep.spec.jurisdiction!r}",
        )
    return None


def capabilities(ctx: Context, dep: Deployment) -> Violation | None:
    caps = dep.model.capabilities
    if ctx.endpoint not in dep.model.endpoints:
        return Violation(
            "capability.endpoint",
            f"{dep.model_id!r} does not serve /v1/{ctx.endpoint.replace('chat', 'chat/completions')}",
        )
    missing = (
        [
            name
            for name, needed, has in (
                ("tools", ctx.needs_tools, caps.tools),
                ("json", ctx.needs_json, caps.json_output),
                ("vision", ctx.needs_vision, caps.vision),
            )
            if needed and not has
        ]
        if ctx.needs_tools or ctx.needs_json or ctx.needs_vision
        else None
    )
    if missing:
        return Violation(f"capability.{missing[0]}", f"{dep.model_id!r} does not support {', '.join(missing)}")
    if ctx.tokens_needed > caps.context_window:
        return Violation(
            "capability.context_window",
            f"about {ctx.tokens_needed} tokens needed; {dep.model_id!r} has a context window of {caps.context_window}",
        )
    return None


def available(ctx: Context, dep: Deployment) -> Violation | None:
    if dep.unavailable:
        return Violation("deployment.unavailable", f"deployment {dep.id!r}: {dep.unavailable}")
    return None


POLICY_RULES: tuple[Rule, ...] = (
    allow_models,
    deny_models,
    allow_quality_tiers,
    deny_origins,
    allow_origins,
    tenant_jurisdictions,
    tenant_self_hosted,
    data_class_self_hosted,
    data_class_jurisdictions,
)
FIT_RULES: tuple[Rule, ...] = (capabilities, available)


def is_policy_rule(rule: str) -> bool:
    return rule.startswith(("tenant.", "data_class."))
