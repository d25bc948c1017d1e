"""A tenant's largest prompt: ``limits.max_prompt_chars``, overridden by the tenant's own. Pure, no I/O.

Checked before the detectors and the classifier read the text and before any upstream call, so an
over-sized prompt costs a comparison. What is counted: :mod:`gateway.routing.prompt_size`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.errors import PromptTooLarge
from gateway.policy.policy_set import PolicySet
from gateway.request import ChatRequest

GLOBAL_RULE = "limits.max_prompt_chars"


@dataclass(frozen=True, slots=True)
class PromptSize:
    """What the explain output says of a request's prompt: its size, its limit and what the classifier read."""

    chars: int  # all the text the upstream would get (gateway.routing.prompt_size)
    max_chars: int | None  # the limit in force for the tenant; None: no limit but max_body_bytes
    limit: str | None  # the rule that set it
    classified_chars: int  # the text the classifier read (at most 4,000 characters from each end)
    truncated: bool  # the classifier read the text's two ends only

    def to_json(self) -> dict[str, Any]:
        return {
            "chars": self.chars,
            "max_chars": self.max_chars,
            "limit": self.limit,
            "classified_chars": self.classified_chars,
            "truncated_for_classification": self.truncated,
        }


def prompt_limit(policy: PolicySet, tenant_id: str) -> tuple[int | None, str | None]:
    """The tenant's limit and the rule that sets it: the tenant's own, else the global one, else none."""
    own = policy.tenants[tenant_id].limits
    if own is not None and own.max_prompt_chars is not None:
        return own.max_prompt_chars, f"tenants.{tenant_id}.limits.max_prompt_chars"
    limit = policy.limits.max_prompt_chars
    return limit, (GLOBAL_RULE if limit is not None else None)


def check_prompt_size(policy: PolicySet, tenant_id: str, request: ChatRequest) -> PromptSize:
    """The prompt's size against the tenant's limit, or ``PromptTooLarge`` naming both and the tenant."""
    limit, rule = prompt_limit(policy, tenant_id)
    size = request.prompt_chars
    if limit is not None and rule is not None and size > limit:
        raise PromptTooLarge(
            f"The prompt is {size:,} characters; tenant {tenant_id!r} may send at most {limit:,} ({rule} = {limit}).",
            param=_param(request),
            rule=rule,
        )
    return PromptSize(size, limit, rule, len(request.text), request.whole_text is not None)


def _param(request: ChatRequest) -> str:
    if request.native is not None:
        return "input" if request.native.api == "responses" else "messages"
    return {"chat": "messages", "completions": "prompt", "embeddings": "input"}[request.endpoint]
