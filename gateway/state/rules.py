"""The arithmetic both backends share: fixed windows, key lifetimes, and the circuit breaker.

The memory backend runs :func:`record` and :func:`allow_probe` directly; the Redis backend runs the
same rules as Lua (``redis_scripts.py``), and both read breakers back through :func:`breaker_view`.
The behavioural tests in ``tests/state`` run against both, so the two copies cannot drift apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gateway.state.base import BreakerPolicy, BreakerStatus, BreakerView, Limit

SLACK_SECONDS = 60.0  # a key outlives its window by this much: clock skew between replicas, late adjust()
BUDGET_EPSILON = 1e-9  # USD; float sums of reservations must not refuse an exact fit
RESERVATION_SECONDS = 600.0  # a reservation not settled within this long is dropped (its replica died)
PROBE_SECONDS = 60.0  # a half-open probe that never reports frees the slot after this long
# a budget settlement is remembered this long, so a repeated one (a retry after a timeout) counts once
SETTLED_SECONDS = RESERVATION_SECONDS


def window_of(limit: Limit, now: float) -> int:
    return math.floor(now / limit.window_seconds)


def window_end(limit: Limit, window: int) -> float:
    return (window + 1) * limit.window_seconds


def counter_ttl(limit: Limit, window: int, now: float) -> float:
    """Seconds a window's counter is kept: to the end of the window, plus slack."""
    return max(window_end(limit, window) - now, 0.0) + SLACK_SECONDS


def live_counter_ttl(limit: Limit, window: int, now: float) -> float:
    """Seconds a window's counter still has to live at ``now``; 0 when it is gone (no counter to create)."""
    return max(window_end(limit, window) + SLACK_SECONDS - now, 0.0)


def lease_ttl(lease_seconds: float) -> float:
    return lease_seconds + SLACK_SECONDS


def breaker_ttl(policy: BreakerPolicy, probe_seconds: float) -> float:
    """Long enough to hold a window of counts, or an open breaker through cool-down and one probe."""
    return 2 * (policy.window_seconds + policy.cooldown_seconds + probe_seconds)


@dataclass(slots=True)
class BreakerState:
    """What is stored per deployment. ``status`` is never "half_open": that is derived from the clock."""

    status: str = "closed"  # "closed" | "open"
    opened_at: float | None = None
    window_start: float | None = None
    failures: int = 0
    calls: int = 0
    probe_until: float | None = None

    @classmethod
    def from_fields(cls, fields: list[bytes | None]) -> BreakerState:
        """From Redis, in the order of ``redis_scripts.BREAKER_FIELDS`` (missing ones are None)."""
        status, opened_at, window_start, failures, calls, probe_until = (f.decode() if f else None for f in fields)
        return cls(
            status=status or "closed",
            opened_at=_float(opened_at),
            window_start=_float(window_start),
            failures=int(failures or 0),
            calls=int(calls or 0),
            probe_until=_float(probe_until),
        )


def _float(text: str | None) -> float | None:
    return None if text is None else float(text)


def breaker_status(state: BreakerState, policy: BreakerPolicy, now: float) -> BreakerStatus:
    if state.status != "open" or state.opened_at is None:
        return "closed"
    return "half_open" if now >= state.opened_at + policy.cooldown_seconds else "open"


def breaker_view(deployment: str, state: BreakerState, policy: BreakerPolicy, now: float) -> BreakerView:
    status = breaker_status(state, policy, now)
    stale = status == "closed" and (state.window_start is None or now >= state.window_start + policy.window_seconds)
    return BreakerView(
        deployment=deployment,
        status=status,
        failures=0 if stale else state.failures,
        calls=0 if stale else state.calls,
        opened_at=state.opened_at if status != "closed" else None,
    )


def trips(policy: BreakerPolicy, failures: int, calls: int) -> bool:
    if failures >= policy.failures:
        return True
    rate = policy.failure_rate
    return rate is not None and calls >= policy.min_calls and failures >= rate * calls


def record(state: BreakerState, ok: bool, policy: BreakerPolicy, now: float) -> BreakerStatus:
    """Count one outcome (mutates ``state``). While cooling down, late outcomes are ignored;
    after it, the outcome decides: success closes with fresh counts, failure re-opens."""
    status = breaker_status(state, policy, now)
    if status == "open":
        return "open"
    if status == "half_open":
        state.probe_until = None
        if ok:
            state.status, state.opened_at = "closed", None
            state.window_start, state.failures, state.calls = now, 0, 0
            return "closed"
        state.opened_at = now
        return "open"
    if state.window_start is None or now >= state.window_start + policy.window_seconds:
        state.window_start, state.failures, state.calls = now, 0, 0
    state.calls += 1
    if not ok:
        state.failures += 1
        if trips(policy, state.failures, state.calls):
            state.status, state.opened_at = "open", now
            return "open"
    return "closed"


def allow_probe(state: BreakerState, policy: BreakerPolicy, now: float, probe_seconds: float) -> bool:
    """True when calls may go out: always while closed; once per probe period while half-open."""
    status = breaker_status(state, policy, now)
    if status == "closed":
        return True
    if status == "open" or (state.probe_until is not None and now < state.probe_until):
        return False
    state.probe_until = now + probe_seconds
    return True
