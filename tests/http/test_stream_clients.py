"""Streams and the clients that misbehave on them (issue #17), against `gateway serve` as ops run it.

- A client that reads a stream a few bytes a second does not make the gateway buffer without bound:
  what the upstream managed to send stops growing at about the socket buffers on the way.
- A client that leaves mid-stream (the openai SDK's stream closed early): the upstream's connection
  is closed, the deployment's concurrency lease is given back, and the request is recorded as
  client-cancelled in the audit trail and the metrics.

The upstream is :class:`tests.http.sse_upstream.SseUpstream`, which counts the bytes the kernel took
from it and sees its connections close.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest

from gateway.routing.auth import hash_key
from tests.audit_file import audit_entries
from tests.factories import deployment, model, tenant, write_policy
from tests.http.sse_upstream import SseUpstream
from tests.processes import Served, serve

KEY, ADMIN = "stream-key", "stream-admin-key"
MiB = 1024 * 1024
# What may sit between the upstream and a stalled client: the client's small receive buffer, the
# gateway's send buffer to it and its upstream socket's receive buffer (loopback autotuning: a few MB
# each), the gateway's read-ahead (1 MiB), the upstream's send buffer, and events being re-encoded.
IN_FLIGHT_BOUND = 24 * MiB


def stream_policy(directory: Path, upstream: str) -> Path:
    return write_policy(
        directory,
        models={"m": model("US", "strong", 1.0)},
        deployments={"d": deployment("m", upstream, max_retries=0, caps={"max_concurrency": 4})},
        tenants={"t": tenant(KEY)},
        routes={"auto": {"tiers": {tier: ["m"] for tier in ("simple", "standard", "complex")}}},
        admin={"keys": [{"name": "ops", "sha256": hash_key(ADMIN)}]},
        limits={"request_deadline_seconds": 600.0},
    )


def eventually(ok: Callable[[], bool], seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while not ok():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@contextlib.contextmanager
def gateway_for(tmp_path: Path, upstream: SseUpstream) -> Iterator[tuple[Served, Path]]:
    audit = tmp_path / "audit.jsonl"
    flags = ("--audit-log", str(audit), "--audit-flush-seconds", "0", "--reload-seconds", "0")
    with serve(stream_policy(tmp_path / "policies", upstream.url), {}, *flags) as served:
        yield served, audit


@pytest.fixture
def fast_upstream() -> Iterator[SseUpstream]:
    with SseUpstream(events=1_000_000, piece=4096) as upstream:  # ~4 GB if nothing pushed back
        yield upstream


@pytest.fixture
def slow_upstream() -> Iterator[SseUpstream]:
    with SseUpstream(events=2000, gap=0.02) as upstream:  # 40 s of stream: the client leaves long before
        yield upstream


def test_a_client_reading_a_few_bytes_a_second_holds_the_upstream_back(
    tmp_path: Path, fast_upstream: SseUpstream
) -> None:
    upstream = fast_upstream
    with gateway_for(tmp_path, upstream) as (served, _):
        _stall(served, upstream)
    assert eventually(lambda: upstream.live_connections() == 0), "the gateway kept the upstream's connection"


def _stall(served: Served, upstream: SseUpstream) -> None:
    port = int(served.url.rsplit(":", 1)[1])
    body = json.dumps({"model": "auto", "stream": True, "messages": [{"role": "user", "content": "hi"}]}).encode()
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    client.connect(("127.0.0.1", port))
    client.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"authorization: Bearer %s\r\ncontent-length: %d\r\n\r\n%s" % (KEY.encode(), len(body), body)
    )
    try:
        assert client.recv(16).startswith(b"HTTP/1.1 200")
        seen: list[int] = []
        for _ in range(8):  # 8 s at 32 bytes a second
            time.sleep(1.0)
            client.recv(32)
            seen.append(upstream.sent_bytes)
        print(f"upstream bytes sent, one a second while the client stalls: {[round(b / MiB, 1) for b in seen]} MiB")
        assert seen[-1] < IN_FLIGHT_BOUND, f"{seen[-1] / MiB:.1f} MiB left the upstream for a stalled client"
        assert seen[-1] - seen[-4] < MiB, f"the upstream still sends: {seen}"  # the last 3 s: held back
    finally:
        client.close()


def test_a_client_that_leaves_mid_stream_cancels_the_upstream_and_is_recorded(
    tmp_path: Path, slow_upstream: SseUpstream
) -> None:
    upstream = slow_upstream
    with gateway_for(tmp_path, upstream) as (served, audit), _client(served) as client:
        stream = client.chat.completions.create(model="auto", stream=True, messages=[{"role": "user", "content": "hi"}])
        with stream:
            for received, _chunk in enumerate(stream, 1):
                if received == 5:
                    break  # leaving the block closes the response, the connection with it
        assert eventually(lambda: upstream.closed_mid_stream == 1), "the upstream never saw the stream end"
        assert eventually(lambda: upstream.live_connections() == 0), "a connection to the upstream stayed open"
        assert eventually(lambda: audit_entries(audit, writing=True) != [])
        entry = audit_entries(audit)[-1]
        assert entry["usage_estimated"] == "client_cancelled" and entry["deployment"] == "d"
        assert entry["status"] == 499 and entry["error_code"] == "client_cancelled"
        assert _metric(served.url, "gateway_requests_total", 'status="499"') == 1.0
        assert _metric(served.url, "gateway_errors_total", 'code="client_cancelled"') == 1.0
        assert _metric(served.url, "gateway_usage_estimated_total", 'reason="client_cancelled"') == 1.0
        assert _metric(served.url, "gateway_in_flight_requests") == 0.0
        deployments = httpx.get(served.url + "/admin/deployments", headers={"authorization": f"Bearer {ADMIN}"})
        (d,) = [row for row in deployments.json()["deployments"] if row["deployment"] == "d"]
        assert d["in_flight"] == 0 and d["max_concurrency"] == 4
        assert upstream.sent_bytes < 2000 * 200  # the stream was cut, not read to its end


@contextlib.contextmanager
def _client(served: Served) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(base_url=served.url + "/v1", api_key=KEY, max_retries=0)
    try:
        yield client
    finally:
        client.close()


def _metric(url: str, name: str, label: str = "") -> float:
    text = httpx.get(url + "/metrics").text
    pattern = rf"^{name}(?:{{[^}}]*{re.escape(label)}[^}}]*}})? (\S+)$" if label else rf"^{name} (\S+)$"
    return sum(float(v) for v in re.findall(pattern, text, re.M))
