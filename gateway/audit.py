"""The audit trail: one JSON line per routing decision, to stdout or a file.

Which vendor saw this request, and why: every candidate with allowed or denied and the rules,
the deployment chosen, attempts and fallbacks, tokens, cost, counterfactual cost and the policy
revision. Prompt and completion text appear only for tenants whose policy sets ``audit_content``.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from gateway.record import RequestRecord


def audit_entry(rec: RequestRecord) -> dict[str, Any]:
    decision, dep = rec.decision, rec.deployment
    entry: dict[str, Any] = {
        "request_id": rec.request_id,
        "time": datetime.fromtimestamp(rec.time, UTC).isoformat(timespec="milliseconds"),
        "tenant": rec.tenant,
        "endpoint": rec.endpoint,
        "route": rec.route,
        "requested_model": decision.requested_model if decision else None,
        "tier": rec.tier,
        "complexity_score": decision.complexity.score if decision and decision.complexity else None,
        "data_class": decision.data_class if decision else None,
        "candidates": [
            {
                "deployment": v.deployment.id,
                "model": v.deployment.model_id,
                "allowed": v.allowed,
                "rules": [x.rule for x in v.violations],
            }
            for v in (decision.verdicts if decision else ())
        ],
        "deployment": dep.id if dep else None,
        "model": dep.model_id if dep else None,
        "vendor": dep.model.vendor if dep else None,
        "origin": dep.model.origin if dep else None,
        "operator": dep.spec.operator if dep else None,
        "jurisdiction": dep.spec.jurisdiction if dep else None,
        "self_hosted": dep.spec.self_hosted if dep else None,
        "attempts": [
            {"deployment": a.deployment, "outcome": a.code, "seconds": round(a.seconds, 6)} for a in rec.attempts
        ],
        "fallbacks": len({a.deployment for a in rec.attempts}) - 1 if rec.attempts else 0,
        "status": rec.status,
        "error_code": rec.error_code,
        "input_tokens": rec.input_tokens,
        "output_tokens": rec.output_tokens,
        "cost_usd": round(rec.cost_usd, 10),
        "counterfactual_cost_usd": round(rec.counterfactual_cost_usd, 10),
        "latency_seconds": round(rec.seconds, 6),
        "ttft_seconds": None if rec.ttft_seconds is None else round(rec.ttft_seconds, 6),
        "policy_revision": rec.policy_revision,
    }
    if rec.content is not None:
        entry["content"] = rec.content
    return entry


class AuditLog:
    """A sink writing one line per record. ``target`` is a path, or ``-`` for stdout."""

    def __init__(self, target: str) -> None:
        self._owned = target != "-"
        self._out: IO[bytes] = (
            Path(target).open("ab", buffering=0) if self._owned else sys.stdout.buffer  # noqa: SIM115
        )

    def __call__(self, rec: RequestRecord) -> None:
        self._out.write(orjson.dumps(audit_entry(rec), option=orjson.OPT_APPEND_NEWLINE))
        if not self._owned:
            self._out.flush()

    def close(self) -> None:
        if self._owned:
            self._out.close()
