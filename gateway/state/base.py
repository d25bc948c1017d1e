"""Shared state behind small protocols: counters for rate limits, budgets, concurrency leases,
circuit breakers and the response cache.

Two backends implement them: in-process memory (one replica, the default) and Redis (several
replicas agree). Every multi-step update is atomic (one Lua script or one locked section). Every
key carries the store's prefix and a TTL so nothing grows without bound. A Redis backend raises
:class:`StateUnavailable` (never a redis exception) when Redis cannot answer within its timeout;
the caller decides per feature whether that fails open or closed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol


class StateUnavailable(Exception):
    """The shared store did not answer in time or is down."""


@dataclass(frozen=True, slots=True)
class Limit:
    """At most ``limit`` units per fixed window of ``window_seconds`` under ``key``."""

    key: str  # e.g. "rl:tenant:acme:rpm"; the store adds its prefix and the window number
    limit: int
    window_seconds: float
    amount: int = 1  # units this request adds (1 for requests, estimated tokens for TPM)
    # limits counted together in one admit() share a scope (e.g. "tenant:acme"); on a Redis Cluster
    # one scope is one hash slot. Empty: the key is its own scope.
    scope: str = ""


@dataclass(frozen=True, slots=True)
class Admission:
    allowed: bool
    refused: Limit | None = None  # the first limit that would be exceeded
    current: int = 0  # units already counted in the refused limit's window
    retry_after_seconds: float = 0.0  # until the refused limit's window ends
    windows: tuple[int, ...] = ()  # the window number of each limit, for adjust()


@dataclass(frozen=True, slots=True)
class Cap:
    """A spend limit in USD over a calendar window: ``window`` names it, e.g. "daily:2026-11-29"."""

    key: str  # e.g. "budget:acme:daily:2026-11-29"
    limit_usd: float
    ttl_seconds: float
    scope: str = ""  # as Limit.scope: the caps reserved together share it


@dataclass(frozen=True, slots=True)
class Reservation:
    allowed: bool
    reservation_id: str = ""
    refused: Cap | None = None
    spent_usd: float = 0.0  # spent + reserved in the refused cap, before this request


BreakerStatus = Literal["closed", "open", "half_open"]


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    failures: int = 5  # open after this many failures within window_seconds ...
    window_seconds: float = 30.0
    failure_rate: float | None = None  # ... or when this share of at least min_calls calls failed
    min_calls: int = 20
    cooldown_seconds: float = 30.0  # open -> half-open after this long; then one probe decides


@dataclass(frozen=True, slots=True)
class BreakerView:
    deployment: str
    status: BreakerStatus
    failures: int  # in the current window
    calls: int  # in the current window
    opened_at: float | None  # unix seconds


class Counters(Protocol):
    async def admit(self, limits: Sequence[Limit], now: float, settlement: str = "") -> Admission:
        """Atomically: if every limit has room for its amount, count all of them; otherwise count none.

        ``settlement``: the request's id. The store remembers the admission under it (while the windows
        live), and counts nothing when that settlement was already applied: a late copy of an admission
        the caller gave up on (a timeout) must not count twice."""

    async def adjust(
        self,
        limits: Sequence[Limit],
        windows: Sequence[int],
        deltas: Sequence[int],
        settlement: str = "",
        unadmitted: Sequence[int] | None = None,
        now: float | None = None,
    ) -> None:
        """Correct earlier counts (e.g. TPM: estimated tokens -> real usage) in the windows they were made in.

        With ``settlement``, applied at most once per id (a repeated call changes nothing). ``unadmitted``:
        the caller does not know whether the admission reached the store (it failed open); when the store
        has no admission under ``settlement``, these deltas apply instead, and a counter missing from a
        window still live at ``now`` (unix seconds; the current time when None) is created."""


class Budgets(Protocol):
    async def reserve(
        self, caps: Sequence[Cap], amount_usd: float, now: float, reservation_id: str = ""
    ) -> Reservation:
        """Atomically: if spent + reserved + amount <= limit for every cap, reserve amount in all of them.

        ``reservation_id``: the caller's (a new one when empty), so it can settle a reservation whose answer
        it never got; nothing is reserved under an id that was already settled (a late copy)."""

    async def settle(self, caps: Sequence[Cap], reservation_id: str, actual_usd: float) -> None:
        """Replace the reservation by the actual spend (0 when the request failed). The spend counts even
        without a reservation (it expired, or was never made). At most once per non-empty ``reservation_id``
        (for ``SETTLED_SECONDS``): a repeated call, such as a retry after a timeout, changes nothing."""

    async def spent(self, caps: Sequence[Cap]) -> list[float]:
        """Spent + reserved in each cap."""


class Leases(Protocol):
    async def acquire(self, key: str, limit: int, lease_seconds: float, now: float) -> str | None:
        """A lease id if fewer than ``limit`` unexpired leases are held under ``key``, else None."""

    async def release(self, key: str, lease_id: str) -> None: ...

    async def held(self, key: str, now: float) -> int: ...


class Breakers(Protocol):
    async def statuses(self, deployments: Sequence[str], policy: BreakerPolicy, now: float) -> dict[str, BreakerStatus]:
        """Current status of each deployment (open turns half-open once its cool-down has passed)."""

    async def allow_probe(self, deployment: str, policy: BreakerPolicy, now: float) -> bool:
        """For a half-open deployment: True for exactly one caller until that probe reports."""

    async def record(self, deployment: str, ok: bool, policy: BreakerPolicy, now: float) -> BreakerStatus:
        """Count a call's outcome; open, close or re-open the breaker as the policy says. Returns the new status."""

    async def view(self, deployments: Sequence[str], policy: BreakerPolicy, now: float) -> list[BreakerView]: ...


class Cache(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, value: bytes, ttl_seconds: float) -> None: ...


class Store(Protocol):
    """One backend: all of the above, plus its lifecycle."""

    name: str
    counters: Counters
    budgets: Budgets
    leases: Leases
    breakers: Breakers
    cache: Cache

    async def ping(self) -> bool: ...

    async def aclose(self) -> None: ...
