"""The audit trail: one JSON line per routing decision, to stdout or a file.

Which vendor saw this request, and why: every candidate with allowed or denied and the rules,
the deployment chosen, attempts and fallbacks, tokens (and why they are estimated, when they are),
cost, counterfactual cost and the policy revision; the personal-data detectors that raised the data class
(their names and the class, never what they matched). Prompt and completion text appear only for
tenants whose policy sets ``audit_content``.
"""

from __future__ import annotations

import asyncio
import select
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from gateway.observe.record import RequestRecord
from gateway.policy.decide import Verdict


def audit_entry(rec: RequestRecord, candidates: Any = None) -> dict[str, Any]:
    """The audit line of ``rec``; ``candidates`` replaces the candidate list (e.g. as a pre-serialised
    ``orjson.Fragment``)."""
    decision, dep = rec.decision, rec.deployment
    entry: dict[str, Any] = {
        "request_id": rec.request_id,
        "time": datetime.fromtimestamp(rec.time, UTC).isoformat(timespec="milliseconds"),
        "tenant": rec.tenant,
        "endpoint": rec.endpoint,
        "route": rec.route,
        "requested_model": rec.requested_model,
        "alias": decision.alias if decision else None,
        "resolved_model": decision.resolved_model if decision else None,
        "tier": rec.tier,
        "complexity_score": decision.complexity.score if decision and decision.complexity else None,
        "data_class": decision.data_class if decision else None,
        "detected": decision.detected.to_json() if decision and decision.detected else None,  # never the text
        "candidates": candidate_list(decision.verdicts if decision else ()) if candidates is None else candidates,
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
        "usage_estimated": rec.usage_estimated,
        "cost_usd": round(rec.cost_usd, 10),
        "counterfactual_cost_usd": round(rec.counterfactual_cost_usd, 10),
        "latency_seconds": round(rec.seconds, 6),
        "ttft_seconds": None if rec.ttft_seconds is None else round(rec.ttft_seconds, 6),
        "policy_revision": rec.policy_revision,
    }
    if rec.content is not None:
        entry["content"] = rec.content
    return entry


def candidate_list(verdicts: Sequence[Verdict]) -> list[dict[str, Any]]:
    return [
        {
            "deployment": v.deployment.id,
            "model": v.deployment.model_id,
            "allowed": v.allowed,
            "rules": [x.rule for x in v.violations],
        }
        for v in verdicts
    ]


CANDIDATE_LISTS = 256  # serialised candidate lists kept (distinct tenant, tier and health combinations)
FLUSH_BYTES = 64 * 1024  # pending lines are written at once when they reach this size


class AuditLog:
    """A sink writing one line per record. ``target`` is a path, or ``-`` for stdout.

    Lines are written in batches, not one write per request: at most ``flush_seconds`` after the
    first pending line (a timer), sooner when a later record finds the batch half that old (so under
    steady traffic the flush rides on a request and the timer rarely wakes the process), at 64 kB,
    and at close. Envoy's access log makes the same trade (flushed every second by default): a
    process killed outright loses at most ``flush_seconds`` of lines. ``flush_seconds=0`` writes
    each line at once. Measured with strace, the per-request write was one of four syscalls of a
    proxied request; at one client against a 50 ms upstream every syscall runs on cold caches.

    ``shared``: other processes write to the same stdout (``--workers``). A pipe keeps a write whole
    only up to ``PIPE_BUF`` bytes, so batches to stdout are then cut at line ends below that size.
    """

    def __init__(
        self, target: str, flush_seconds: float = 1.0, shared: bool = False, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._owned = target != "-"
        self._out: IO[bytes] = (
            Path(target).open("ab", buffering=0) if self._owned else sys.stdout.buffer  # noqa: SIM115
        )
        self.flush_seconds = flush_seconds
        self._clock = clock
        self._piece_limit = select.PIPE_BUF if shared and not self._owned else None
        self._pending: list[bytes] = []
        self._size = 0
        self._since = 0.0  # monotonic time of the oldest pending line
        self._timer: asyncio.TimerHandle | None = None
        self._known: dict[tuple[tuple[str, int], ...], tuple[orjson.Fragment, tuple[Any, ...]]] = {}

    def __call__(self, rec: RequestRecord) -> None:
        candidates = self._candidates(rec.decision.verdicts) if rec.decision else None
        line = orjson.dumps(audit_entry(rec, candidates), option=orjson.OPT_APPEND_NEWLINE)
        now = self._clock()
        if not self._pending:
            self._since = now
        self._pending.append(line)
        self._size += len(line)
        if self._size >= FLUSH_BYTES or now - self._since >= self.flush_seconds / 2:
            self.flush()
        elif self._timer is None:
            try:
                self._timer = asyncio.get_running_loop().call_later(self.flush_seconds, self.flush)
            except RuntimeError:  # no event loop (a command-line use): nothing would flush later
                self.flush()

    def _candidates(self, verdicts: Sequence[Verdict]) -> orjson.Fragment:
        """The candidate list, serialised once per distinct list. Requests of one tenant and tier share
        their deployments and the very same violation tuples (``decide.policy_verdicts``), so the list is
        keyed by deployment ids and the identity of those tuples; the cache holds the tuples, so an
        identity is never reused while its entry lives. Building and serialising the list was about a
        third of the audit line's cost with a dozen candidates."""
        key = tuple((v.deployment.id, id(v.violations)) for v in verdicts)
        known = self._known.get(key)
        if known is None:
            if len(self._known) >= CANDIDATE_LISTS:
                self._known.clear()
            fragment = orjson.Fragment(orjson.dumps(candidate_list(verdicts)))
            known = self._known[key] = (fragment, tuple(v.violations for v in verdicts))
        return known[0]

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending:
            return
        pieces = [b"".join(self._pending)] if self._piece_limit is None else _pieces(self._pending, self._piece_limit)
        self._pending.clear()
        self._size = 0
        for piece in pieces:
            write_all(self._out, piece)
            if not self._owned:
                self._out.flush()  # stdout is buffered: each piece is its own write

    def close(self) -> None:
        self.flush()
        if self._owned:
            self._out.close()


def write_all(out: IO[bytes], data: bytes) -> None:
    """Every byte of ``data``: the file is unbuffered, and a raw ``write()`` may write fewer bytes than asked
    (a signal mid-write, a disk filling up), which would lose the rest of the batch without an error. A full
    disk then raises ``OSError`` on the next call."""
    view = memoryview(data)
    while view:
        view = view[out.write(view) :]


def _pieces(lines: list[bytes], limit: int) -> list[bytes]:
    """The lines joined into pieces of at most ``limit`` bytes (a longer line is a piece of its own)."""
    pieces: list[bytes] = []
    group: list[bytes] = []
    size = 0
    for line in lines:
        if group and size + len(line) > limit:
            pieces.append(b"".join(group))
            group, size = [], 0
        group.append(line)
        size += len(line)
    if group:
        pieces.append(b"".join(group))
    return pieces
