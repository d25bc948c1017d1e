"""A fast fake OpenAI-compatible upstream: raw asyncio protocol, httptools parser, uvloop.

    .venv/bin/python -m bench.upstream --port 9000 [--delay-ms 0] [--chunks 20] [--chunk-gap-ms 0]

Answers ``POST .../chat/completions`` (and ``.../completions``) with realistic bodies that carry
usage, as JSON or as SSE when the request says ``"stream": true`` (a role chunk, ``--chunks``
content chunks, a finish chunk, a usage chunk when ``stream_options.include_usage``, ``[DONE]``).
``--delay-ms`` is the time before the answer (streams: before the first chunk), ``--chunk-gap-ms``
the time between chunks. ``GET /v1/models`` lists one model. Benchmarks change the behaviour
between runs without a restart:

    POST /bench/config {"delay_ms": 50, "chunks": 20, "chunk_gap_ms": 0}   -> the new config
    GET  /bench/stats                                        -> {"requests": N, "connections": M}

It answers in a few tens of microseconds of CPU, so it is never the bottleneck of a benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import time
from dataclasses import asdict, dataclass
from typing import Any, cast

import httptools
import orjson
import uvloop

ANSWER = (
    "The capital of France is Paris, which has been the country's political, economic and cultural centre "
    "since the Middle Ages. It sits on the Seine in the north of the country and is home to about two "
    "million people, or more than twelve million in the wider metropolitan area."
)
WORDS = ANSWER.split(" ")
_STATUS = {200: b"200 OK", 400: b"400 Bad Request", 404: b"404 Not Found", 405: b"405 Method Not Allowed"}


@dataclass
class Config:
    delay_ms: float = 0.0
    chunks: int = 20
    chunk_gap_ms: float = 0.0


@dataclass
class Stats:
    requests: int = 0
    connections: int = 0  # accepted so far: a client that pools well opens few


class Upstream:
    """Shared state of all connections: behaviour and counters."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.stats = Stats()
        self.ids = itertools.count(1)

    def completion_id(self) -> str:
        return f"chatcmpl-bench{next(self.ids):012x}"


def _head(status: int, content_type: bytes, length: int | None, keep_alive: bool) -> bytes:
    lines = [b"HTTP/1.1 " + _STATUS[status], b"content-type: " + content_type]
    if length is None:
        lines += [b"transfer-encoding: chunked", b"cache-control: no-cache"]
    else:
        lines.append(b"content-length: " + str(length).encode())
    if not keep_alive:
        lines.append(b"connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n"


def completion_body(upstream: Upstream, request: dict[str, Any], prompt_tokens: int) -> bytes:
    completion_tokens = len(WORDS)
    return orjson.dumps(
        {
            "id": upstream.completion_id(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.get("model", "bench-model"),
            "system_fingerprint": "fp_bench",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": ANSWER, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
    )


def stream_events(upstream: Upstream, request: dict[str, Any], prompt_tokens: int, chunks: int) -> list[bytes]:
    """Every SSE event of one streamed answer, each already framed as an HTTP chunk.

    The per-event tails are serialised once per chunk count; only the head (id, model) is per request.
    """
    head = orjson.dumps(
        {
            "id": upstream.completion_id(),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": request.get("model", "bench-model"),
            "system_fingerprint": "fp_bench",
        }
    )[:-1]
    tails = list(_event_tails(chunks))
    options = request.get("stream_options") or {}
    if isinstance(options, dict) and options.get("include_usage"):
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": chunks, "total_tokens": prompt_tokens + chunks}
        tails.append(b"," + orjson.dumps({"choices": [], "usage": usage})[1:])
    framed = [_chunked(b"data: " + head + tail + b"\n\n") for tail in tails]
    framed.append(_chunked(b"data: [DONE]\n\n") + b"0\r\n\r\n")
    return framed


@functools.lru_cache(maxsize=16)
def _event_tails(chunks: int) -> tuple[bytes, ...]:
    """The JSON after the head of each event: role chunk, ``chunks`` content chunks, finish chunk."""
    pieces = [" ".join(WORDS[i::chunks]) for i in range(chunks)] if chunks else []
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    deltas += [{"content": piece + " "} for piece in pieces]
    choices = [[{"index": 0, "delta": d, "logprobs": None, "finish_reason": None}] for d in deltas]
    choices.append([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}])
    return tuple(b"," + orjson.dumps({"choices": c})[1:] for c in choices)


def _chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class Connection(asyncio.Protocol):
    """One keep-alive client connection. Requests are answered in order (no pipelining expected)."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.upstream.stats.connections += 1

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._send(400, b"application/json", b'{"error": {"message": "bad request"}}', keep_alive=False)

    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        keep_alive = self.parser.should_keep_alive()
        path = self.url.split(b"?", 1)[0]
        if method == b"POST" and path.endswith(b"/completions"):
            self._completion(keep_alive)
        elif path == b"/bench/config":
            self._config(method, keep_alive)
        elif path == b"/bench/stats":
            self._send(200, b"application/json", orjson.dumps(asdict(self.upstream.stats)), keep_alive)
        elif path.endswith(b"/models") or path in (b"/healthz", b"/health"):
            models = {"object": "list", "data": [{"id": "bench-model", "object": "model", "owned_by": "bench"}]}
            self._send(200, b"application/json", orjson.dumps(models), keep_alive)
        else:
            self._send(404, b"application/json", b'{"error": {"message": "not found"}}', keep_alive)

    def _config(self, method: bytes, keep_alive: bool) -> None:
        config = self.upstream.config
        if method == b"POST":
            changes = orjson.loads(b"".join(self.body) or b"{}")
            self.upstream.config = config = Config(**{**asdict(config), **changes})
        self._send(200, b"application/json", orjson.dumps(asdict(config)), keep_alive)

    def _completion(self, keep_alive: bool) -> None:
        raw = b"".join(self.body)
        try:
            request = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self._send(400, b"application/json", b'{"error": {"message": "invalid JSON"}}', keep_alive)
            return
        self.upstream.stats.requests += 1
        config = self.upstream.config
        prompt_tokens = max(len(raw) // 4, 1)
        if request.get("stream"):
            events = stream_events(self.upstream, request, prompt_tokens, config.chunks)
            self._later(config.delay_ms, self._stream, events, config.chunk_gap_ms / 1000, keep_alive)
        else:
            body = completion_body(self.upstream, request, prompt_tokens)
            self._later(config.delay_ms, self._send, 200, b"application/json", body, keep_alive)

    def _later(self, delay_ms: float, callback: Any, *args: Any) -> None:
        if delay_ms > 0:
            self.loop.call_later(delay_ms / 1000, callback, *args)
        else:
            callback(*args)

    def _send(self, status: int, content_type: bytes, body: bytes, keep_alive: bool) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(_head(status, content_type, len(body), keep_alive) + body)
        if not keep_alive:
            self.transport.close()

    def _stream(self, events: list[bytes], gap: float, keep_alive: bool) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(_head(200, b"text/event-stream", None, keep_alive) + events[0])
        self._rest(events, 1, gap, keep_alive)

    def _rest(self, events: list[bytes], index: int, gap: float, keep_alive: bool) -> None:
        """Write the remaining events one write each, ``gap`` seconds apart (0: as fast as possible)."""
        transport = self.transport
        while transport is not None and not transport.is_closing() and index < len(events):
            transport.write(events[index])
            index += 1
            if gap > 0 and index < len(events):
                self.loop.call_later(gap, self._rest, events, index, gap, keep_alive)
                return
        if not keep_alive and transport is not None:
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(host: str, port: int, config: Config, ready: asyncio.Event | None = None) -> None:
    upstream = Upstream(config)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Connection(upstream), host, port, backlog=1024, reuse_address=True)
    if ready is not None:
        ready.set()
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--chunk-gap-ms", type=float, default=0.0)
    args = parser.parse_args()
    config = Config(delay_ms=args.delay_ms, chunks=args.chunks, chunk_gap_ms=args.chunk_gap_ms)
    print(f"fake upstream on http://{args.host}:{args.port}/v1 ({config})", flush=True)
    uvloop.run(serve(args.host, args.port, config))


if __name__ == "__main__":
    main()
