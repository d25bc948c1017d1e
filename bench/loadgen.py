"""A cheap closed-loop HTTP/1.1 load generator: raw keep-alive connections, httptools, uvloop.

    .venv/bin/python -m bench.loadgen URL [--concurrency 16] [--duration 10] [--stream] [--key bench-key]

Each of ``concurrency`` connections sends one request, waits for the whole answer, and sends the
next. Reports requests per second, latency p50/p90/p99 (request sent -> last byte), time to first
body byte (for streams: the first SSE event), errors, and the load generator's own CPU per request.
A warm-up phase runs first and is drained before the measured phase, so a caller that samples a
server's CPU at the ``start``/``end`` marks gets exactly the measured requests' work.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import resource
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urlsplit

import httptools
import orjson
import uvloop

SYSTEM = (
    "You are a concise assistant for a travel company. Answer in plain English, in at most three "
    "sentences, and say so when you are not sure."
)
PROMPTS = (
    "What is the capital of France?",
    "Summarise in two sentences why the Eiffel Tower was built and when it opened to visitors.",
    "List three quiet neighbourhoods in Paris for a family with small children, one line each.",
)
REQUEST_TIMEOUT = 60.0


def chat_body(model: str, stream: bool, prompt: str = PROMPTS[0]) -> bytes:
    """A realistic chat request: a system prompt, a user turn, sampling settings (~450 bytes)."""
    body: dict[str, object] = {
        "model": model,
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}],
        "temperature": 0.2,
        "max_tokens": 256,
        "user": "bench-user-42",
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return orjson.dumps(body)


def http_request(url: str, body: bytes, key: str | None) -> bytes:
    """The raw bytes of one POST, built once and sent many times."""
    parts = urlsplit(url)
    lines = [
        f"POST {parts.path} HTTP/1.1",
        f"host: {parts.netloc}",
        "content-type: application/json",
        "accept: application/json",
        f"content-length: {len(body)}",
        "user-agent: switchyard-bench",
    ]
    if key:
        lines.append(f"authorization: Bearer {key}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class Sample:
    latency: float  # seconds, request sent -> last byte
    first_byte: float  # seconds, request sent -> first body byte
    ok: bool
    finished_at: float


@dataclass
class Result:
    concurrency: int
    duration: float
    samples: list[Sample] = field(default_factory=list)
    client_cpu: float = 0.0  # seconds of this process's CPU during the measured phase
    errors_by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> list[Sample]:
        return [s for s in self.samples if s.ok]

    @property
    def errors(self) -> int:
        return sum(self.errors_by_kind.values())

    def rps(self, window_end: float) -> float:
        """Completed successful requests that finished inside the measured window, per second."""
        done = sum(1 for s in self.ok if s.finished_at <= window_end)
        return done / self.duration

    def summary(self, window_end: float) -> dict[str, float]:
        latencies = sorted(s.latency for s in self.ok)
        firsts = sorted(s.first_byte for s in self.ok)
        return {
            "requests": len(self.samples),
            "errors": self.errors,
            "rps": self.rps(window_end),
            "p50_ms": percentile(latencies, 50) * 1000,
            "p90_ms": percentile(latencies, 90) * 1000,
            "p99_ms": percentile(latencies, 99) * 1000,
            "ttfb_p50_ms": percentile(firsts, 50) * 1000,
            "ttfb_p90_ms": percentile(firsts, 90) * 1000,
            "ttfb_p99_ms": percentile(firsts, 99) * 1000,
            "client_cpu_us_per_req": self.client_cpu / max(len(self.samples), 1) * 1e6,
        }


def percentile(sorted_values: Sequence[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    rank = (len(sorted_values) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


class ClientConnection(asyncio.Protocol):
    """One keep-alive connection that runs one request at a time."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future[tuple[bool, str]] | None = None
        self.first_byte = 0.0
        self.tail = b""
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._finish(False, "connection closed")

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._finish(False, "bad HTTP response")
            if self.transport is not None:
                self.transport.close()

    def on_body(self, body: bytes) -> None:
        if not self.first_byte:
            self.first_byte = time.perf_counter()
        self.tail = (self.tail + body)[-64:]

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        if status != 200:
            self._finish(False, f"HTTP {status}")
        elif b"text/event-stream" in self.content_type and b"[DONE]" not in self.tail:
            self._finish(False, "stream ended without [DONE]")
        else:
            self._finish(True, "")

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"content-type":
            self.content_type = value

    def on_message_begin(self) -> None:
        self.content_type = b""

    def _finish(self, ok: bool, error: str) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result((ok, error))

    def send(self, request: bytes) -> asyncio.Future[tuple[bool, str]]:
        assert self.transport is not None
        self.done = asyncio.get_running_loop().create_future()
        self.first_byte = 0.0
        self.tail = b""
        self.transport.write(request)
        return self.done


@dataclass
class Phase:
    """Requests are sent while ``now < until``; each connection then finishes its request and waits at ``barrier``."""

    until: float
    record: bool
    barrier: Callable[[], Awaitable[None]] | None = None


async def _worker(host: str, port: int, requests: itertools.cycle[bytes], phases: list[Phase], result: Result) -> None:
    loop = asyncio.get_running_loop()
    connection: ClientConnection | None = None
    for phase in phases:
        while time.perf_counter() < phase.until:
            if connection is None or connection.closed:
                connection = await _connect(loop, host, port, result)
                if connection is None:
                    await asyncio.sleep(0.05)
                    continue
            started = time.perf_counter()
            try:
                ok, error = await asyncio.wait_for(connection.send(next(requests)), REQUEST_TIMEOUT)
            except TimeoutError:
                ok, error = False, "timeout"
                assert connection.transport is not None
                connection.transport.close()
                connection = None
            finished = time.perf_counter()
            if phase.record:
                first = (connection.first_byte if connection and connection.first_byte else finished) - started
                result.samples.append(Sample(finished - started, first, ok, finished))
                if not ok:
                    result.errors_by_kind[error] = result.errors_by_kind.get(error, 0) + 1
        if phase.barrier is not None:
            await phase.barrier()
    if connection is not None and connection.transport is not None:
        connection.transport.close()


async def _connect(loop: asyncio.AbstractEventLoop, host: str, port: int, result: Result) -> ClientConnection | None:
    try:
        _, protocol = await loop.create_connection(ClientConnection, host, port)
    except OSError:
        result.errors_by_kind["connect failed"] = result.errors_by_kind.get("connect failed", 0) + 1
        return None
    return protocol


async def run(
    url: str,
    requests: Sequence[bytes],
    concurrency: int,
    duration: float,
    warmup: float = 1.0,
    mark: Callable[[str], None] | None = None,
) -> tuple[Result, float]:
    """Warm up, drain, call ``mark("start")``, load for ``duration`` s, drain, call ``mark("end")``.

    Returns the result and the end of the measured window (a ``perf_counter`` time).
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    result = Result(concurrency, duration)
    cycle = itertools.cycle(requests)
    now = time.perf_counter()
    warm, measured = Phase(now + warmup, record=False), Phase(0.0, record=True)
    warm.barrier = _Barrier(concurrency, lambda: _begin(measured, duration, result, mark)).wait
    measured.barrier = _Barrier(concurrency, lambda: _end(result, mark)).wait
    workers = [_worker(host, port, cycle, [warm, measured], result) for _ in range(concurrency)]
    await asyncio.gather(*workers)
    return result, measured.until


class _Barrier:
    """Waits for every worker, then runs ``action`` once before releasing them."""

    def __init__(self, parties: int, action: Callable[[], None]) -> None:
        self.parties = parties
        self.arrived = 0
        self.action = action
        self.released = asyncio.Event()

    async def wait(self) -> None:
        self.arrived += 1
        if self.arrived == self.parties:
            self.action()
            self.released.set()
        await self.released.wait()


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _begin(measured: Phase, duration: float, result: Result, mark: Callable[[str], None] | None) -> None:
    if mark is not None:
        mark("start")
    result.client_cpu = -_cpu()
    measured.until = time.perf_counter() + duration


def _end(result: Result, mark: Callable[[str], None] | None) -> None:
    result.client_cpu += _cpu()
    if mark is not None:
        mark("end")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", help="e.g. http://127.0.0.1:8080/v1/chat/completions")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--model", default="auto")
    parser.add_argument("--key", default="bench-key")
    parser.add_argument("--stream", action="store_true")
    args = parser.parse_args()
    requests = [http_request(args.url, chat_body(args.model, args.stream), args.key)]
    result, window_end = uvloop.run(run(args.url, requests, args.concurrency, args.duration, args.warmup))
    print(orjson.dumps({**result.summary(window_end), "errors_by_kind": result.errors_by_kind}).decode())


if __name__ == "__main__":
    main()
