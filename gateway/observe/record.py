"""What one request did, as a frozen value: the input of every side channel (metrics, audit)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from gateway.policy.decide import Decision
from gateway.policy.policy_set import Deployment
from gateway.upstream.caller import Attempt

UsageEstimate = Literal["client_cancelled", "upstream_failed", "usage_missing", "usage_invalid"]
"""Why a request's tokens are the gateway's estimate, not the upstream's count: the client left the stream,
the upstream failed during it, or the answer came with no usage or a malformed one."""


@dataclass(frozen=True, slots=True)
class RequestRecord:
    request_id: str
    time: float  # unix seconds when the request arrived
    endpoint: str
    tenant: str  # "none" where a stage was not reached
    route: str
    tier: str
    model: str
    status: int
    error_code: str | None
    decision: Decision | None
    deployment: Deployment | None
    attempts: tuple[Attempt, ...]
    input_tokens: int
    output_tokens: int
    cost_usd: float
    counterfactual_cost_usd: float
    seconds: float
    overhead_seconds: float
    ttft_seconds: float | None
    denied_rules: tuple[str, ...]
    policy_revision: str
    cache: str | None = None  # "hit" or "miss" when the route or tenant caches, else None
    content: dict[str, Any] | None = None  # prompt and completion, only when the tenant's policy asks for it
    usage_estimated: UsageEstimate | None = None  # why the tokens are estimated; None: the upstream's own counts
    traceparent: str | None = None  # the client's W3C traceparent header, for tracing
    decided_seconds: float | None = None  # from arrival to the routing decision (auth, normalize, classify, policy)
    requested_model: str | None = None  # the client's name, also when no decision was made (model_not_found)
