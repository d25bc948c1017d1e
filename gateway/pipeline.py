"""The routing of one request, top to bottom.

    raw body -> auth (key -> tenant) -> normalize -> classify + policy (decide) -> call (retry, fallback)

Each stage hands the next a frozen value. Metrics, audit and logs are side channels
fed by the caller of this module; nothing here reads them back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.auth import authenticate
from gateway.call import Caller, Completed, Streaming
from gateway.classify.base import Classifier
from gateway.health import HealthBoard
from gateway.normalize import normalize
from gateway.policy.decide import Decision, decide, refusal
from gateway.policy.policy_set import PolicySet
from gateway.request import ChatRequest, Endpoint


@dataclass(frozen=True, slots=True)
class Routing:
    """What the stages need that lives longer than a request."""

    policy: PolicySet
    classifier: Classifier
    health: HealthBoard
    caller: Caller


def plan(routing: Routing, endpoint: Endpoint, raw: bytes, headers: Mapping[str, str]) -> tuple[ChatRequest, Decision]:
    """Everything up to the call: who asks, what they ask, and where it may go. No I/O."""
    tenant = authenticate(routing.policy, headers)
    request = normalize(endpoint, raw, headers)
    decision = decide(routing.policy, tenant, request, routing.classifier, routing.health.unhealthy())
    return request, decision


async def execute(routing: Routing, request: ChatRequest, decision: Decision) -> Completed | Streaming:
    error = refusal(decision)
    if error is not None:
        raise error
    deadline = routing.policy.limits.request_deadline_seconds
    if request.stream:
        return await routing.caller.stream(decision, request, deadline)
    return await routing.caller.complete(decision, request, deadline)
