"""The whole gateway across a real Redis pause: every answered request is charged exactly once.

The official OpenAI SDK sends plain and streamed requests from a few threads while the Redis server is
stopped (SIGSTOP) for two seconds, then continued. The deployment costs $1 a token, so once the
gateway's settlement queue is empty, the budget's spend and the tpm counters in Redis must each equal
the sum of the usage the clients got back, though some of those requests were admitted, reserved or
settled while Redis could not answer.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai import OpenAI
from redis import Redis

from gateway.http.app import create_app
from gateway.settings import Settings
from gateway.standin.server import ThreadedServer
from tests.conftest import Upstreams
from tests.factories import deployment, model, tenant, write_policy
from tests.state.servers import RedisServer

KEY = "settle-key"
PAUSE_SECONDS = 2.0


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.close()


@pytest.fixture
def gateway(tmp_path: Path, upstreams: Upstreams, redis_server: RedisServer) -> Iterator[str]:
    price = {"input": 1_000_000.0, "output": 1_000_000.0}  # $1 a token
    policy = write_policy(
        tmp_path / "p",
        models={"m": model("US", "strong", 1.0)},
        deployments={"d": deployment("m", upstreams.v1()["a"], price=price)},
        tenants={"t": tenant(KEY, limits={"rpm": 10_000_000, "tpm": 1_000_000_000}, budget={"daily_usd": 1e12})},
        routes={"auto": {"tiers": {tier: ["m"] for tier in ("simple", "standard", "complex")}}},
        state={"breaker": {"failures": 1_000_000}},
    )
    app = create_app(Settings(policies=policy, reload_seconds=0), env={"REDIS_URL": redis_server.url})
    with ThreadedServer(app) as served:
        yield served.url


def ask(client: OpenAI, index: int) -> int:
    messages = [{"role": "user", "content": f"Say hello, number {index}."}]
    if index % 2 == 0:
        answer = client.chat.completions.create(model="auto", messages=messages)  # type: ignore[arg-type]
        return answer.usage.total_tokens if answer.usage else 0
    stream = client.chat.completions.create(
        model="auto",
        messages=messages,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    )
    return sum(chunk.usage.total_tokens for chunk in stream if chunk.usage)


def redis_totals(url: str) -> tuple[float, float, int]:
    with Redis.from_url(url) as reader:
        (budget,) = list(reader.scan_iter(match="*:budget:budget:t:d:*"))
        spent, reserved = reader.hmget(budget, "spent", "reserved")
        counters = list(reader.scan_iter(match="*:rate:rl:t:t:tpm:*"))
        tpm = sum(int(v) for v in reader.mget(counters) if v is not None)
    return float(spent or 0), float(reserved or 0), tpm


def metric(url: str, name: str) -> float:
    text = httpx.get(url + "/metrics", timeout=30).text
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_requests_across_a_redis_pause_are_charged_exactly_once(gateway: str, redis_server: RedisServer) -> None:
    usage: list[int] = []
    done = threading.Event()

    def client_loop(worker: int) -> None:
        client = OpenAI(base_url=gateway + "/v1", api_key=KEY, max_retries=0, timeout=60)
        index = worker
        while not done.is_set():
            usage.append(ask(client, index))
            index += 4

    threads = [threading.Thread(target=client_loop, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        redis_server.pause()
        time.sleep(PAUSE_SECONDS)
        redis_server.resume()
        time.sleep(1.0)
    finally:
        done.set()
        for thread in threads:
            thread.join(60)
    deadline = time.monotonic() + 60
    while metric(gateway, "gateway_settlements_pending") and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # the last answers' settlements run after their responses
    spent, reserved, tpm = redis_totals(redis_server.url)
    assert len(usage) > 8 and all(usage)
    assert metric(gateway, 'gateway_state_errors_total{feature="rate limits"}') > 0, "some requests failed open"
    assert (spent, tpm) == (sum(usage), sum(usage)), f"{len(usage)} requests"
    assert reserved == 0, "no reservation left held"
    assert metric(gateway, "gateway_settlements_dropped_total") == 0
