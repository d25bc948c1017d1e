"""The routing of one request, top to bottom.

    raw body -> auth (key -> tenant) -> normalize -> prompt size -> detect + classify + policy (decide) -> rate limits
             -> cache -> budget -> call (gate, retry, fallback) ... -> finish (settle, cache)

``decide`` first runs the policy's personal-data detectors (which may raise the data class), then the
classifier, then the rules, so explain, the policy cases and serving all judge a request alike.
Each stage hands the next a frozen value. Metrics, audit and logs are side channels fed through
``on_decision`` and the request record; nothing here reads them back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.observe.record import RequestRecord
from gateway.policy.decide import Decision, decide, refusal
from gateway.policy.policy_set import PolicySet
from gateway.policy.prompt_limit import check_prompt_size
from gateway.request import ChatRequest, Endpoint, Native
from gateway.routing.auth import authenticate
from gateway.routing.normalize import normalize
from gateway.state.guards import Grant, Guards
from gateway.upstream.caller import Caller, Completed, Streaming
from gateway.upstream.gate import DeploymentGate


@dataclass(frozen=True, slots=True)
class Routing:
    """What the stages need that lives longer than a request (replaced whole when the policy reloads)."""

    policy: PolicySet  # with the classifier that scores its auto routes
    caller: Caller
    guards: Guards
    gate: DeploymentGate


@dataclass(frozen=True, slots=True)
class Cached:
    deployment: str
    body: bytes


@dataclass(frozen=True, slots=True)
class Routed:
    request: ChatRequest
    decision: Decision
    outcome: Completed | Streaming | Cached
    grant: Grant
    cache: tuple[str, float] | None  # key and TTL when this answer may be cached

    @property
    def has_aftermath(self) -> bool:
        """Whether :func:`finish` has anything to do: a budget or token count to settle, a cache to fill."""
        return self.cache is not None or self.grant.reservation_id is not None or bool(self.grant.limits)


async def route(
    routing: Routing,
    endpoint: Endpoint,
    raw: bytes | dict[str, Any],
    headers: Mapping[str, str],
    on_decision: Callable[[Decision, str], None],
    native: Native | None = None,
    on_request: Callable[[str, ChatRequest], None] | None = None,
) -> Routed:
    """``native``: the client's own body when ``raw`` is its translation (Anthropic's Messages API).
    ``on_request``: told the tenant and the request before the decision (which may refuse it)."""
    policy, guards = routing.policy, routing.guards
    tenant, key_hash = authenticate(policy, headers)
    request = normalize(endpoint, raw, headers, native, policy.aliases)
    if on_request is not None:
        on_request(tenant, request)
    check_prompt_size(policy, tenant, request)  # before any store call; decide checks again (explain, cases)
    downgrade = await guards.over_downgrade_line(policy, tenant)
    decision = decide(policy, tenant, request, policy.classifier, await routing.gate.unhealthy(policy), downgrade)
    on_decision(decision, request.text)
    grant = await guards.admit(policy, tenant, key_hash, request)
    try:
        if (error := refusal(decision)) is not None:
            raise error
        cache = guards.cache_key(policy, decision, request)
        if cache is not None and (hit := await guards.cached(policy, cache[0])) is not None:
            deployment, _, body = hit.partition(b"\n")
            return Routed(request, decision, Cached(deployment.decode(), body), grant, None)
        grant = await guards.reserve(policy, decision, grant)
        deadline = policy.limits.request_deadline_seconds
        call = routing.caller.stream if request.stream else routing.caller.complete
        return Routed(request, decision, await call(policy, decision, request, deadline), grant, cache)
    except BaseException:  # whatever was raised (an error, a bug, a cancelled request), nothing stays reserved
        await asyncio.shield(guards.settle(grant, 0.0, 0))
        raise


async def finish(routing: Routing, routed: Routed, record: RequestRecord, body: bytes | None) -> None:
    """After the answer went out: settle budgets and token counts with real usage, fill the cache."""
    await routing.guards.settle(routed.grant, record.cost_usd, record.input_tokens + record.output_tokens)
    if routed.cache is not None and body is not None and record.status == 200 and record.deployment is not None:
        key, ttl = routed.cache
        await routing.guards.remember(key, record.deployment.id.encode() + b"\n" + body, ttl)
