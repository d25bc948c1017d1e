"""The same behaviour from both backends: each test runs on memory and on a real Redis.

"Replicas" are separate RedisStore clients on one server (for memory: the one in-process store).
Time is passed explicitly, so windows, reservations, leases and breakers are tested without sleeping.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from gateway.state import open_store
from gateway.state.base import BreakerPolicy, Cap, Limit, Store
from tests.state.conftest import StoreFactory

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0  # a multiple of 60: the start of a minute window


async def replicas(make_store: StoreFactory, n: int = 2, **options: object) -> list[Store]:
    return [await make_store(**options) for _ in range(n)]


# --- rate limits -----------------------------------------------------------------------------------


async def test_admit_is_exact_under_concurrency(make_store: StoreFactory) -> None:
    a, b = await replicas(make_store)
    rpm = Limit("rl:tenant:acme:rpm", 10, 60.0)
    results = await asyncio.gather(*((a, b)[i % 2].counters.admit([rpm], NOW + 1) for i in range(30)))
    allowed = [r for r in results if r.allowed]
    refused = [r for r in results if not r.allowed]
    assert len(allowed) == 10
    assert {(r.refused, r.current) for r in refused} == {(rpm, 10)}
    assert all(r.retry_after_seconds == pytest.approx(59.0) for r in refused)
    assert {r.windows for r in results} == {(int(NOW // 60),)}


async def test_admit_counts_all_limits_or_none(store: Store) -> None:
    rpm = Limit("rl:key:k1:rpm", 5, 60.0, scope="tenant:acme")
    tpm = Limit("rl:key:k1:tpm", 100, 60.0, amount=40, scope="tenant:acme")
    assert (await store.counters.admit([rpm, tpm], NOW)).allowed
    assert (await store.counters.admit([rpm, tpm], NOW)).allowed
    refused = await store.counters.admit([rpm, tpm], NOW)
    assert (refused.allowed, refused.refused, refused.current) == (False, tpm, 80)
    # the refused request counted nowhere: rpm has 3 of 5 left
    results = [await store.counters.admit([rpm], NOW) for _ in range(4)]  # alone, under its scope still
    assert [r.allowed for r in results] == [True, True, True, False]


async def test_adjust_corrects_estimates_with_real_usage(store: Store) -> None:
    tpm = Limit("rl:tenant:acme:tpm", 100, 60.0, amount=80)
    admission = await store.counters.admit([tpm], NOW)
    await store.counters.adjust([tpm], admission.windows, [-50])  # used 30 tokens, not 80
    assert (await store.counters.admit([Limit(tpm.key, 100, 60.0, amount=70)], NOW)).allowed
    refused = await store.counters.admit([Limit(tpm.key, 100, 60.0, amount=1)], NOW)
    assert (refused.allowed, refused.current) == (False, 100)
    await store.counters.adjust([tpm], admission.windows, [-1000])  # never below zero
    assert (await store.counters.admit([Limit(tpm.key, 100, 60.0, amount=100)], NOW)).allowed


async def test_adjust_leaves_windows_it_never_saw_alone(store: Store) -> None:
    tpm = Limit("rl:tenant:acme:tpm", 100, 60.0, amount=50)
    await store.counters.adjust([tpm], [int(NOW // 60)], [70])  # nothing counted there: not created
    assert (await store.counters.admit([tpm, tpm], NOW)).allowed


async def test_windows_roll_over(store: Store) -> None:
    rpm = Limit("rl:tenant:acme:rpm", 2, 60.0)
    assert (await store.counters.admit([rpm], NOW)).allowed
    assert (await store.counters.admit([rpm], NOW + 5)).allowed
    refused = await store.counters.admit([rpm], NOW + 10)
    assert refused.retry_after_seconds == pytest.approx(50.0)
    assert (await store.counters.admit([rpm], NOW + 59.999)).allowed is False
    later = await store.counters.admit([rpm], NOW + 60)
    assert later.allowed
    assert later.windows == (int(NOW // 60) + 1,)


# --- budgets ---------------------------------------------------------------------------------------


def caps(daily: float = 10.0, monthly: float = 100.0) -> list[Cap]:
    return [
        Cap("budget:acme:daily:2027-01-15", daily, 86_400, "tenant:acme"),
        Cap("budget:acme:monthly:2027-01", monthly, 86_400, "tenant:acme"),
    ]


async def test_concurrent_reservations_never_overshoot(make_store: StoreFactory) -> None:
    a, b = await replicas(make_store)
    results = await asyncio.gather(*((a, b)[i % 2].budgets.reserve(caps(), 1.0, NOW) for i in range(20)))
    assert sum(r.allowed for r in results) == 10
    refused = [r for r in results if not r.allowed]
    assert {(r.refused, r.spent_usd) for r in refused} == {(caps()[0], 10.0)}
    assert await a.budgets.spent(caps()) == pytest.approx([10.0, 10.0])
    await asyncio.gather(*(b.budgets.settle(caps(), r.reservation_id, 0.8) for r in results if r.allowed))
    assert await a.budgets.spent(caps()) == pytest.approx([8.0, 8.0])


async def test_reservations_of_mixed_sizes_fill_the_budget_exactly(make_store: StoreFactory) -> None:
    a, b = await replicas(make_store)
    amounts = [round(random.uniform(0.01, 2.0), 6) for _ in range(40)]
    results = await asyncio.gather(*((a, b)[i % 2].budgets.reserve(caps(), x, NOW) for i, x in enumerate(amounts)))
    total = sum(x for x, r in zip(amounts, results, strict=True) if r.allowed)
    assert total <= 10.0 + 1e-9
    # a refusal was right when made, and the total only grew after it
    assert all(total + x > 10.0 for x, r in zip(amounts, results, strict=True) if not r.allowed)
    assert (await b.budgets.spent(caps()))[0] == pytest.approx(total)


async def test_settle_replaces_the_reservation(store: Store) -> None:
    first = await store.budgets.reserve(caps(), 1.0, NOW)
    failed = await store.budgets.reserve(caps(), 2.0, NOW)
    assert await store.budgets.spent(caps()) == pytest.approx([3.0, 3.0])
    await store.budgets.settle(caps(), first.reservation_id, 0.25)
    await store.budgets.settle(caps(), failed.reservation_id, 0.0)  # the request failed: nothing spent
    assert await store.budgets.spent(caps()) == pytest.approx([0.25, 0.25])
    await store.budgets.settle(caps(), "never-reserved", 0.5)  # spend is counted even without a reservation
    assert await store.budgets.spent(caps()) == pytest.approx([0.75, 0.75])


async def test_every_cap_must_have_room(store: Store) -> None:
    tight = caps(daily=10.0, monthly=1.5)
    assert (await store.budgets.reserve(tight, 1.0, NOW)).allowed
    refused = await store.budgets.reserve(tight, 1.0, NOW)
    assert (refused.allowed, refused.refused, refused.spent_usd) == (False, tight[1], 1.0)
    assert await store.budgets.spent(tight) == pytest.approx([1.0, 1.0])  # the daily cap was not charged


async def test_unsettled_reservations_expire(make_store: StoreFactory) -> None:
    store = await make_store(reservation_seconds=300.0)
    assert (await store.budgets.reserve(caps(daily=1.0), 1.0, NOW)).allowed  # its replica then dies
    assert not (await store.budgets.reserve(caps(daily=1.0), 1.0, NOW + 299)).allowed
    late = await store.budgets.reserve(caps(daily=1.0), 1.0, NOW + 300)
    assert late.allowed
    assert await store.budgets.spent(caps(daily=1.0)) == pytest.approx([1.0, 1.0])


async def test_unknown_caps_are_empty(store: Store) -> None:
    assert await store.budgets.spent(caps()) == [0.0, 0.0]


# --- leases ----------------------------------------------------------------------------------------


async def test_leases_cap_concurrency_exactly(make_store: StoreFactory) -> None:
    a, b = await replicas(make_store)
    leases = await asyncio.gather(*((a, b)[i % 2].leases.acquire("lease:gpu-1", 5, 600, NOW) for i in range(20)))
    held = [lease for lease in leases if lease is not None]
    assert len(held) == len(set(held)) == 5
    assert await a.leases.held("lease:gpu-1", NOW) == 5
    await b.leases.release("lease:gpu-1", held[0])
    await b.leases.release("lease:gpu-1", "not-a-lease")
    assert await a.leases.held("lease:gpu-1", NOW) == 4
    assert await a.leases.acquire("lease:gpu-1", 5, 600, NOW) is not None
    assert await a.leases.acquire("lease:gpu-1", 5, 600, NOW) is None


async def test_leases_expire(store: Store) -> None:
    assert await store.leases.acquire("lease:gpu-2", 1, 30, NOW) is not None
    assert await store.leases.acquire("lease:gpu-2", 1, 30, NOW + 29) is None
    assert await store.leases.held("lease:gpu-2", NOW + 29) == 1
    assert await store.leases.held("lease:gpu-2", NOW + 30) == 0
    assert await store.leases.acquire("lease:gpu-2", 1, 30, NOW + 30) is not None


# --- circuit breakers ------------------------------------------------------------------------------

POLICY = BreakerPolicy(failures=3, window_seconds=30, cooldown_seconds=10)


async def test_breaker_opens_cools_down_and_probes_once(make_store: StoreFactory) -> None:
    a, b = await replicas(make_store)
    assert [await a.breakers.record("vllm-a", False, POLICY, NOW + i) for i in range(3)] == ["closed", "closed", "open"]
    assert await b.breakers.statuses(["vllm-a", "vllm-b"], POLICY, NOW + 5) == {"vllm-a": "open", "vllm-b": "closed"}
    assert not await b.breakers.allow_probe("vllm-a", POLICY, NOW + 5)
    view = (await b.breakers.view(["vllm-a"], POLICY, NOW + 5))[0]
    assert (view.status, view.failures, view.calls, view.opened_at) == ("open", 3, 3, NOW + 2)

    assert await b.breakers.statuses(["vllm-a"], POLICY, NOW + 12) == {"vllm-a": "half_open"}
    probes = await asyncio.gather(*((a, b)[i % 2].breakers.allow_probe("vllm-a", POLICY, NOW + 12) for i in range(10)))
    assert sum(probes) == 1

    assert await a.breakers.record("vllm-a", False, POLICY, NOW + 13) == "open"  # the probe failed: re-open
    assert await b.breakers.statuses(["vllm-a"], POLICY, NOW + 22) == {"vllm-a": "open"}
    assert await b.breakers.allow_probe("vllm-a", POLICY, NOW + 23)  # cooled down again; a fresh probe
    assert await b.breakers.record("vllm-a", True, POLICY, NOW + 24) == "closed"
    view = (await a.breakers.view(["vllm-a"], POLICY, NOW + 24))[0]
    assert (view.status, view.failures, view.calls, view.opened_at) == ("closed", 0, 0, None)


async def test_breaker_ignores_late_outcomes_while_cooling_down(store: Store) -> None:
    for i in range(3):
        await store.breakers.record("vllm-a", False, POLICY, NOW + i)
    assert await store.breakers.record("vllm-a", True, POLICY, NOW + 3) == "open"  # a request from before
    assert await store.breakers.statuses(["vllm-a"], POLICY, NOW + 12) == {"vllm-a": "half_open"}


async def test_failures_outside_the_window_do_not_add_up(store: Store) -> None:
    for t in (0, 10, 31, 40, 62, 70):  # two failures per 30-second window
        assert await store.breakers.record("vllm-a", False, POLICY, NOW + t) == "closed"
    assert (await store.breakers.view(["vllm-a"], POLICY, NOW + 70))[0].failures == 2
    assert (await store.breakers.view(["vllm-a"], POLICY, NOW + 200))[0].failures == 0


async def test_breaker_opens_on_failure_rate(store: Store) -> None:
    policy = BreakerPolicy(failures=1000, window_seconds=60, failure_rate=0.5, min_calls=10, cooldown_seconds=10)
    outcomes = [False, True] * 4 + [False]  # 9 calls, 5 failed: too few calls to judge
    for i, ok in enumerate(outcomes):
        assert await store.breakers.record("vllm-b", ok, policy, NOW + i) == "closed"
    assert await store.breakers.record("vllm-b", True, policy, NOW + 9) == "closed"  # a success never opens it
    assert await store.breakers.record("vllm-b", False, policy, NOW + 10) == "open"  # 6 of 11 failed
    view = (await store.breakers.view(["vllm-b"], policy, NOW + 10))[0]
    assert (view.failures, view.calls) == (6, 11)


async def test_a_lost_probe_frees_the_slot(make_store: StoreFactory) -> None:
    store = await make_store(probe_seconds=20.0)
    for i in range(3):
        await store.breakers.record("vllm-a", False, POLICY, NOW + i)
    assert await store.breakers.allow_probe("vllm-a", POLICY, NOW + 12)
    assert not await store.breakers.allow_probe("vllm-a", POLICY, NOW + 31)
    assert await store.breakers.allow_probe("vllm-a", POLICY, NOW + 32)


async def test_a_closed_breaker_lets_calls_through(store: Store) -> None:
    assert await store.breakers.allow_probe("never-seen", POLICY, NOW)
    await store.breakers.record("vllm-a", True, POLICY, NOW)
    assert await store.breakers.allow_probe("vllm-a", POLICY, NOW)


# --- cache -----------------------------------------------------------------------------------------


async def test_cache_round_trip_and_tenant_keys(make_store: StoreFactory) -> None:
    a, b = await replicas(make_store)
    await a.cache.put("acme:3f2a", b'{"id": "chatcmpl-1"}', 60)
    assert await b.cache.get("acme:3f2a") == b'{"id": "chatcmpl-1"}'
    assert await b.cache.get("globex:3f2a") is None
    await b.cache.put("acme:3f2a", b"newer", 60)
    assert await a.cache.get("acme:3f2a") == b"newer"


async def test_cache_entries_expire(store: Store) -> None:
    await store.cache.put("acme:short", b"x", 0.05)
    await store.cache.put("acme:long", b"y", 60)
    await asyncio.sleep(0.1)
    assert await store.cache.get("acme:short") is None
    assert await store.cache.get("acme:long") == b"y"


# --- lifecycle -------------------------------------------------------------------------------------


async def test_open_store_picks_the_backend(redis_url: str, prefix: str) -> None:
    memory = await open_store(None)
    shared = await open_store(redis_url, prefix=prefix)
    try:
        assert (memory.name, shared.name) == ("memory", "redis")
        assert await memory.ping()
        assert await shared.ping()
    finally:
        await memory.aclose()
        await shared.aclose()


# --- settled once per request id (a retry after a timeout whose first try did land) ---------------


async def test_a_repeated_settle_counts_once(store: Store) -> None:
    reservation = await store.budgets.reserve(caps(), 1.0, NOW, "req-1")
    assert reservation.reservation_id == "req-1"
    await store.budgets.settle(caps(), "req-1", 0.25)
    await store.budgets.settle(caps(), "req-1", 0.25)  # the retry of a settle that did land
    assert await store.budgets.spent(caps()) == pytest.approx([0.25, 0.25])
    await store.budgets.settle(caps(), "never-reserved", 0.5)
    await store.budgets.settle(caps(), "never-reserved", 0.5)  # failed open: no reservation, still once
    assert await store.budgets.spent(caps()) == pytest.approx([0.75, 0.75])


async def test_a_late_reservation_of_a_settled_request_reserves_nothing(store: Store) -> None:
    await store.budgets.settle(caps(), "req-2", 0.5)  # its reserve timed out (failed open) and it settled
    assert (await store.budgets.reserve(caps(), 3.0, NOW, "req-2")).allowed  # then the reserve lands
    assert await store.budgets.spent(caps()) == pytest.approx([0.5, 0.5]), "no reservation left behind"


async def test_a_repeated_adjust_counts_once(store: Store) -> None:
    tpm = Limit("rl:tenant:acme:tpm", 1000, 60.0, amount=10, scope="tenant:acme")
    admission = await store.counters.admit([tpm], NOW, "req-3")
    for _ in range(2):
        await store.counters.adjust([tpm], admission.windows, [25], "req-3", now=NOW)
    refused = await store.counters.admit([Limit(tpm.key, 35, 60.0, amount=1, scope="tenant:acme")], NOW)
    assert (refused.allowed, refused.current) == (False, 35)


async def test_an_admission_that_failed_open_is_counted_once_when_it_settles(store: Store) -> None:
    rpm = Limit("rl:tenant:acme:rpm", 100, 60.0, scope="tenant:acme")
    tpm = Limit("rl:tenant:acme:tpm", 1000, 60.0, amount=10, scope="tenant:acme")
    window = (int(NOW // 60),) * 2
    # req-4 never reached the store: its whole request counts (1 request, 40 tokens), created in the window
    for _ in range(2):
        await store.counters.adjust([rpm, tpm], window, [0, 30], "req-4", unadmitted=[1, 40], now=NOW)
    # req-5's admission did land (the caller timed out on the answer): only the correction applies
    await store.counters.admit([rpm, tpm], NOW, "req-5")
    await store.counters.adjust([rpm, tpm], window, [0, 30], "req-5", unadmitted=[1, 40], now=NOW)
    # and req-6's admission lands after it settled: it counts nothing
    await store.counters.adjust([rpm, tpm], window, [0, 30], "req-6", unadmitted=[1, 40], now=NOW)
    await store.counters.admit([rpm, tpm], NOW, "req-6")
    probe = await store.counters.admit([Limit(rpm.key, 3, 60.0, scope="tenant:acme")], NOW)
    assert (probe.allowed, probe.current) == (False, 3), "3 requests"
    probe = await store.counters.admit([Limit(tpm.key, 120, 60.0, amount=1, scope="tenant:acme")], NOW)
    assert (probe.allowed, probe.current) == (False, 120), "40 tokens each"


async def test_an_unadmitted_settlement_of_a_window_long_gone_creates_nothing(store: Store) -> None:
    tpm = Limit("rl:tenant:acme:tpm", 1000, 60.0, amount=10, scope="tenant:acme")
    old = int(NOW // 60) - 5
    await store.counters.adjust([tpm], [old], [30], "req-7", unadmitted=[40], now=NOW)
    assert (await store.counters.admit([Limit(tpm.key, 1, 60.0, scope="tenant:acme")], (old + 0.5) * 60)).allowed
