"""The compliance proof: every deployment each tenant could ever reach, and its guarantees checked against them.

Pure: no I/O. The enumeration runs the routing decision itself (:func:`gateway.policy.decide.decide`) on
synthetic requests, one per cell: tenant x data class x route tier or named model x the request needs that
change the candidate set (endpoint; tools, vision, json on chat). A cell's reachable set is the whole ranked
list, first choice and every fallback: the caller may try any of them when caps, budgets or breakers skip
the others, and it never tries anything else. Every deployment counts as available (credentials come and
go); a longer prompt or a larger ``max_tokens`` only removes candidates, so the shortest prompt is the
widest case. The budget downgrade sends a route to its ``simple`` tier, which is a cell of its own.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

from gateway.classify.base import FixedScore
from gateway.errors import GatewayError
from gateway.policy.decide import decide, effective_data_class, refusal
from gateway.policy.policy_set import Deployment, PolicySet
from gateway.policy.schema import TIERS, RouteSpec, Tier
from gateway.request import ChatRequest, Endpoint

CAPABILITIES = ("tools", "vision", "json")


@dataclass(frozen=True, slots=True)
class Need:
    """What a request needs of a deployment, beyond the policy: its endpoint and chat capabilities."""

    endpoint: Endpoint = "chat"
    tools: bool = False
    vision: bool = False
    json: bool = False

    @property
    def plain(self) -> bool:
        return self.endpoint == "chat" and not (self.tools or self.vision or self.json)

    @property
    def label(self) -> str:
        asked = [name for name in CAPABILITIES if getattr(self, name)]
        return "+".join([self.endpoint, *asked])


@dataclass(frozen=True, slots=True)
class Cell:
    """One synthetic request and the deployments its decision allows, in the order they would be tried."""

    tenant: str
    data_class: str
    target: str  # the route or catalog model asked for
    tier: Tier | None  # None for a named model
    need: Need
    reachable: tuple[Deployment, ...]
    refused: str = ""  # the client's error when nothing is allowed

    @property
    def where(self) -> str:
        tier = f" tier {self.tier}" if self.tier else ""
        return f"data class {self.data_class}, {self.target}{tier}, {self.need.label}"


def enumerate_cells(policy: PolicySet) -> Iterator[Cell]:
    for tenant_id in policy.tenants:
        for data_class in reachable_data_classes(policy, tenant_id):
            for target, tier in targets(policy, tenant_id):
                for need in needs_of(policy, target):
                    cell = judge_cell(policy, tenant_id, data_class, target, tier, need)
                    if cell is not None:
                        yield cell


def reachable_data_classes(policy: PolicySet, tenant_id: str) -> tuple[str, ...]:
    """The classes a request of this tenant can end up in: its default and every class the header may raise it to."""
    tenant = policy.tenants[tenant_id]
    found: set[str] = set()
    for name in policy.data_classes:
        try:
            found.add(effective_data_class(policy, tenant_id, tenant, name))
        except GatewayError:  # allow_data_classes refuses it
            continue
    return tuple(name for name in policy.data_classes if name in found)


def targets(policy: PolicySet, tenant_id: str) -> Iterator[tuple[str, Tier | None]]:
    """Every route tier the tenant may ask for, then every catalog model that has a deployment, by name."""
    allowed_routes = policy.tenants[tenant_id].allow_routes
    for route_id in policy.routes:
        if allowed_routes is None or route_id in allowed_routes:
            for tier in TIERS:
                yield route_id, tier
    for model_id in policy.models:
        if policy.deployments_by_model.get(model_id):
            yield model_id, None


def needs_of(policy: PolicySet, target: str) -> Iterator[Need]:
    route = policy.routes.get(target)
    models = _route_models(route) if route is not None else (target,)
    endpoints = {e for m in models if m in policy.models for e in policy.models[m].endpoints}
    for endpoint in ("chat", "completions", "embeddings"):
        if endpoint not in endpoints:
            continue
        if endpoint != "chat":
            yield Need(endpoint)
            continue
        for tools, vision, json in itertools.product((False, True), repeat=3):
            yield Need("chat", tools, vision, json)


def _route_models(route: RouteSpec) -> tuple[str, ...]:
    return (*(m for tier in TIERS for m in route.tiers[tier]), *route.fallback)


def judge_cell(
    policy: PolicySet, tenant_id: str, data_class: str, target: str, tier: Tier | None, need: Need
) -> Cell | None:
    """The decision for one cell, or None when no request can land in that tier (thresholds make it empty)."""
    request = synthetic_request(target, data_class, need)
    route = policy.routes.get(target)
    classifier = FixedScore(score_in_tier(route, tier), "proof")
    try:
        decision = decide(policy, tenant_id, request, classifier, downgrade=tier == "simple")
    except GatewayError as exc:
        return Cell(tenant_id, data_class, target, tier, need, (), exc.message)
    if decision.tier != tier:
        return None
    error = refusal(decision)
    return Cell(tenant_id, data_class, target, tier, need, decision.ranked, error.message if error else "")


def score_in_tier(route: RouteSpec | None, tier: Tier | None) -> float:
    """A score the route's thresholds put in ``tier`` (its lowest); 0 for a named model."""
    if route is None or tier in (None, "simple"):
        return 0.0  # simple: the budget downgrade reaches it whatever the thresholds say
    return route.thresholds.standard if tier == "standard" else route.thresholds.complex


def synthetic_request(model: str, data_class: str, need: Need) -> ChatRequest:
    content: list[dict[str, object]] | str = "x"
    if need.vision:
        content = [{"type": "text", "text": "x"}, {"type": "image_url", "image_url": {"url": "data:,"}}]
    body: dict[str, object] = {"model": model, "messages": [{"role": "user", "content": content}]}
    return ChatRequest(
        endpoint=need.endpoint,
        model=model,
        body=body,
        stream=False,
        include_usage=False,
        text="x",
        last_user="x",
        turns=1,
        needs_tools=need.tools,
        needs_json=need.json,
        needs_vision=need.vision,
        max_tokens=1,
        prompt_tokens_estimate=1,
        data_class=data_class,
    )
