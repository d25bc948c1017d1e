"""The control panel of a stand-in upstream: recorded calls, queued faults, timing.

One :class:`Control` is shared between a stand-in app (which may run in another
thread) and the test or admin that drives it, so every access takes a lock.

The record keeps the last ``max_calls`` calls only (each holds a whole request body), so a
long-running stand-in, such as the ones ``gateway serve --demo`` starts, stays the same size;
``Control(max_calls=0)`` records nothing.

A :class:`Fault` applies to the next ``times`` matching requests (optionally only
for one model or path) and does one thing: answer with an HTTP error ``status``,
or drop the connection after ``drop_after`` stream events (for a non-streamed
answer: after the headers and half the body). ``delay`` may come with either, or
alone to make an answer slow.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

RECORDED_HEADERS = (
    "authorization", "x-api-key", "anthropic-version", "anthropic-beta", "content-type", "user-agent", "traceparent",
)  # fmt: skip
CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key"})  # kept for in-process asserts, never served
REDACTED = "[redacted]"
MAX_CALLS = 2000


class Fault(BaseModel):
    """One queued misbehaviour. JSON form: the same fields, e.g. ``{"status": 503, "times": 2}``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    status: int | None = Field(default=None, ge=400, le=599)
    retry_after: float | None = Field(default=None, ge=0)
    delay: float = Field(default=0.0, ge=0)
    drop_after: int | None = Field(default=None, ge=0)
    model: str | None = None
    path: str | None = None
    times: int = Field(default=1, ge=1)
    message: str | None = None

    @model_validator(mode="after")
    def _one_outcome(self) -> Fault:
        if self.status is not None and self.drop_after is not None:
            raise ValueError("a fault either answers with `status` or drops after `drop_after` events, not both")
        return self

    def matches(self, path: str, model: str | None) -> bool:
        return (self.model is None or self.model == model) and (self.path is None or self.path == path)


FAULT_LIST: TypeAdapter[list[Fault]] = TypeAdapter(list[Fault])


@dataclass(frozen=True, slots=True)
class Call:
    """One request a stand-in received."""

    path: str
    model: str | None
    body: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    def to_json(self) -> dict[str, Any]:
        """The call as served over HTTP: credentials redacted, so no answer ever carries a key."""
        body = dict(self.body)
        headers = {k: REDACTED if k in CREDENTIAL_HEADERS else v for k, v in self.headers.items()}
        return {"path": self.path, "model": self.model, "stream": self.stream, "body": body, "headers": headers}


def recorded_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The subset of request headers worth asserting on: auth, versions, and every ``x-*`` header."""
    return {k: v for k, v in headers.items() if k in RECORDED_HEADERS or k.startswith("x-")}


@dataclass(slots=True)
class _Pending:
    fault: Fault
    left: int


class Control:
    """Thread-safe record of the last ``max_calls`` calls, queue of faults and timing knobs for stand-in apps."""

    def __init__(self, *, delay: float = 0.0, chunk_gap: float = 0.0, max_calls: int = MAX_CALLS) -> None:
        if max_calls < 0:
            raise ValueError(f"max_calls must be 0 or more, not {max_calls}")
        self._lock = threading.Lock()
        self._calls: deque[Call] = deque(maxlen=max_calls)
        self._pending: list[_Pending] = []
        self._initial_timing = (delay, chunk_gap)
        self._delay, self._chunk_gap = self._initial_timing

    # -- timing ---------------------------------------------------------------
    @property
    def delay(self) -> float:
        """Seconds every answer waits before its first byte."""
        with self._lock:
            return self._delay

    @property
    def chunk_gap(self) -> float:
        """Seconds between two stream events."""
        with self._lock:
            return self._chunk_gap

    def set_timing(self, *, delay: float | None = None, chunk_gap: float | None = None) -> None:
        with self._lock:
            self._delay = self._delay if delay is None else delay
            self._chunk_gap = self._chunk_gap if chunk_gap is None else chunk_gap

    # -- faults ---------------------------------------------------------------
    def inject(self, *faults: Fault) -> None:
        """Queue faults; each request takes the first one that matches it."""
        with self._lock:
            self._pending.extend(_Pending(fault, fault.times) for fault in faults)

    def take_fault(self, path: str, model: str | None) -> Fault | None:
        with self._lock:
            for pending in self._pending:
                if pending.fault.matches(path, model):
                    pending.left -= 1
                    if pending.left == 0:
                        self._pending.remove(pending)
                    return pending.fault
        return None

    def pending_faults(self) -> list[Fault]:
        with self._lock:
            return [p.fault.model_copy(update={"times": p.left}) for p in self._pending]

    # -- calls ----------------------------------------------------------------
    def record(self, call: Call) -> None:
        """Keep ``call``; past ``max_calls`` the oldest is forgotten."""
        with self._lock:
            self._calls.append(call)

    def calls(self, model: str | None = None) -> list[Call]:
        """Recorded calls in arrival order, optionally only those for ``model``."""
        with self._lock:
            return [c for c in self._calls if model is None or c.model == model]

    def models(self) -> list[str]:
        """Models asked for, in arrival order (one entry per recorded call)."""
        return [c.model for c in self.calls() if c.model is not None]

    def count(self, model: str | None = None) -> int:
        return len(self.calls(model))

    def counts(self) -> dict[str, int]:
        return dict(Counter(self.models()))

    def reset(self) -> None:
        """Forget calls and pending faults; timing back to what the constructor was given."""
        with self._lock:
            self._calls.clear()
            self._pending.clear()
            self._delay, self._chunk_gap = self._initial_timing

    def snapshot(self) -> dict[str, Any]:
        """Everything recorded, as JSON (served at ``GET /_standin/calls``), credentials redacted."""
        return {
            "calls": [c.to_json() for c in self.calls()],
            "counts": self.counts(),
            "pending_faults": [f.model_dump(exclude_defaults=True) for f in self.pending_faults()],
        }
