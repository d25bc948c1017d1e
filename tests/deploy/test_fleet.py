"""Three ``gateway serve`` replicas behind a real HAProxy, one shared Redis, a client loop of plain and streamed
requests, and a rolling update (bench/fleet.py): with drain (SIGTERM) no request fails; killed (SIGKILL),
only requests in flight on the killed replica do. A tenant's rate limit holds exactly across the fleet, and
a tenant's budget spent through all three replicas settles exactly in Redis.

Needs ``haproxy`` (Debian package ``haproxy``; ``scripts/test`` installs it when run as root). Without it
the test skips, except in CI (``CI=true``), where it fails. About a minute.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from bench.fleet import Fleet, fleet, in_flight_at_a_kill, run_phase, table
from gateway.standin.control import Control
from gateway.standin.openai_wire import create_openai_app
from gateway.standin.server import ThreadedServer
from tests.factories import small_policy, tenant
from tests.state.servers import RedisServer

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
RPM = 30
DAILY_USD = 0.0001
HI = {"model": "auto", "messages": [{"role": "user", "content": "Hi"}]}


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory, redis: RedisServer) -> Iterator[Fleet]:
    if shutil.which("haproxy") is None and not os.path.exists("/usr/sbin/haproxy"):
        missing = "haproxy is not installed (Debian: apt-get install haproxy; scripts/test does it as root)"
        if IN_CI:
            pytest.fail(missing)
        pytest.skip(missing)
    workdir = tmp_path_factory.mktemp("fleet")
    with ThreadedServer(create_openai_app(Control(chunk_gap=0.05))) as upstream:
        v1 = upstream.url + "/v1"
        tenants = {
            "open": tenant("open-key"),
            "limited": tenant("limited-key", limits={"rpm": RPM}),
            "budgeted": tenant("budget-key", budget={"daily_usd": DAILY_USD}),
        }
        policy = small_policy(workdir / "p", {"a": v1, "b": v1, "c": v1}, tenants=tenants)
        env = {"REDIS_URL": redis.url, "REDIS_TIMEOUT_SECONDS": "1"}  # a loaded box: Redis answers, the limits hold
        with fleet(policy, env, 3, workdir) as replicas:
            yield replicas


def test_a_rate_limit_is_exact_across_the_fleet(running: Fleet) -> None:
    if time.time() % 60 > 50:  # the limit counts per minute: keep the burst inside one
        time.sleep(61 - time.time() % 60)

    def one(_: int) -> int:
        key = {"authorization": "Bearer limited-key"}
        answer = httpx.post(running.url + "/v1/chat/completions", json=HI, headers=key)
        return answer.status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = Counter(pool.map(one, range(2 * RPM)))
    assert statuses == {200: RPM, 429: RPM}


def test_a_budget_spent_through_the_fleet_settles_exactly(running: Fleet, redis: RedisServer) -> None:
    def one(_: int) -> int:
        key = {"authorization": "Bearer budget-key"}
        return httpx.post(running.url + "/v1/chat/completions", json=HI, headers=key).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = Counter(pool.map(one, range(120)))
    assert statuses[200] > 10 and statuses[429] > 0 and statuses[200] + statuses[429] == 120, statuses
    day = time.strftime("%Y-%m-%d", time.gmtime())
    key = f"switchyard:{{tenant:budgeted}}:budget:budget:budgeted:d:{day}"
    deadline = time.monotonic() + 10
    while float(redis.hash_field(key, "reserved") or 0) > 0:  # settlement runs right after each response
        assert time.monotonic() < deadline, "reservations never settled"
        time.sleep(0.05)
    spent = float(redis.hash_field(key, "spent") or 0)
    costs = sum(_tenant_cost(f"http://127.0.0.1:{member.port}", "budgeted") for member in running.replicas)
    print(f"\nbudget ${DAILY_USD}: {statuses[200]} served, {statuses[429]} refused, spent ${spent:.8f} in Redis")
    # what the three replicas charged, each by its own count, is what Redis holds: nothing lost, nothing twice
    assert spent == pytest.approx(costs, rel=1e-9)
    assert spent <= DAILY_USD * 1.5  # at most one estimate over (the last admitted request's reservation)


def _tenant_cost(url: str, tenant_id: str) -> float:
    total = 0.0
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith("gateway_cost_usd_total{") and f'tenant="{tenant_id}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_a_rolling_update_with_drain_fails_no_request_and_a_killed_one_only_those_in_flight(running: Fleet) -> None:
    drained = run_phase(running, signal.SIGTERM, clients=8, pause=2.0)
    drained_codes = list(running.exit_codes)
    killed = run_phase(running, signal.SIGKILL, clients=8, pause=2.0)
    kills = list(running.kills)
    print("\n" + table({"drain (SIGTERM)": (drained, []), "killed (SIGKILL)": (killed, kills)}))
    assert drained_codes == [0, 0, 0], "each drained replica exits 0"
    assert len(drained) > 100 and {o.kind for o in drained} == {"plain", "stream"}
    assert [o for o in drained if o.error] == []
    failed = [o for o in killed if o.error]
    assert all(in_flight_at_a_kill(o, kills) for o in failed), failed
