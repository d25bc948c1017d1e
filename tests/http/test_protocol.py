"""A response's head and body in one write, without holding anything back or reordering bytes."""

from __future__ import annotations

import asyncio
import functools
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import uvicorn
from starlette.types import Message, Receive, Scope, Send

from gateway.http.protocol import EdgeLimits, HttpProtocol, JoinedHead

HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


class Spy:
    """The real transport, as far as JoinedHead is concerned: what was written, in how many writes."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"extra:{name}"


def joined(run: Any, spy: Spy | None = None) -> Spy:
    spy = spy or Spy()

    async def scenario() -> None:
        await run(JoinedHead(spy, asyncio.get_running_loop()))  # type: ignore[arg-type]

    asyncio.run(scenario())
    return spy


def test_a_head_goes_out_with_the_body_written_after_it() -> None:
    async def run(t: JoinedHead) -> None:
        t.write(HEAD)
        t.write(b"ok")
        await asyncio.sleep(0)

    assert joined(run).writes == [HEAD + b"ok"]


def test_a_head_alone_goes_out_at_the_next_turn_of_the_loop() -> None:
    spy, seen = Spy(), []

    async def run(t: JoinedHead) -> None:
        t.write(HEAD)
        seen.append(len(spy.writes))
        await asyncio.sleep(0)  # the step ends without a body write
        seen.append(len(spy.writes))
        t.write(b"ok")

    joined(run, spy)
    assert seen == [0, 1] and spy.writes == [HEAD, b"ok"]


def test_continue_body_bytes_and_close_are_not_held() -> None:
    async def run(t: JoinedHead) -> None:
        t.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        t.write(b"chunk")
        t.write(HEAD)
        t.close()  # a held head goes out before the connection closes
        assert t.get_extra_info("peername") == "extra:peername"

    spy = joined(run)
    assert spy.writes == [b"HTTP/1.1 100 Continue\r\n\r\n", b"chunk", HEAD] and spy.closed


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["path"] == "/late":  # a stream whose first body part takes a while
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await asyncio.sleep(0.5)
        await send({"type": "http.response.body", "body": b"late", "more_body": False})
        return
    if scope["path"] == "/echo":
        body = b""
        while True:
            message: Message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})
        return
    path = scope["path"].encode()  # anything else: the path it was asked for
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(path))]})
    await send({"type": "http.response.body", "body": path})


@contextmanager
def serving(http: Any = HttpProtocol) -> Iterator[int]:
    """uvicorn in a thread with the project's protocol; yields the port."""
    sock = socket.create_server(("127.0.0.1", 0))
    config = uvicorn.Config(app, http=http, loop="uvloop", lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield sock.getsockname()[1]
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def served() -> Iterator[int]:
    with serving() as port:
        yield port


def test_keep_alive_requests_get_whole_answers_in_order(served: int) -> None:
    paths = (b"/first", b"/second", b"/third")
    with socket.create_connection(("127.0.0.1", served), timeout=5) as conn:
        conn.sendall(b"".join(b"GET %s HTTP/1.1\r\nhost: x\r\n\r\n" % path for path in paths))
        data = b""
        while not data.endswith(b"/third"):
            data += conn.recv(65536)
    answers = data.split(b"HTTP/1.1 200 OK\r\n")[1:]
    assert len(answers) == 3
    assert [answer.rsplit(b"\r\n\r\n", 1)[1] for answer in answers] == list(paths)
    assert all(b"content-length: %d\r\n" % len(path) in answer for path, answer in zip(paths, answers, strict=True))


def test_a_head_is_not_held_while_the_body_is_slow(served: int) -> None:
    with socket.create_connection(("127.0.0.1", served), timeout=5) as conn:
        conn.sendall(b"GET /late HTTP/1.1\r\nhost: x\r\n\r\n")
        started = time.monotonic()
        head = conn.recv(65536)
        waited = time.monotonic() - started
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"late" not in head
        assert waited < 0.4, "the head went out at the next turn of the loop, not with the body 0.5 s later"
        rest = b""
        while not rest.endswith(b"0\r\n\r\n"):
            rest += conn.recv(65536)
        assert b"late" in rest


def test_expect_continue_still_gets_its_interim_answer(served: int) -> None:
    with socket.create_connection(("127.0.0.1", served), timeout=5) as conn:
        conn.sendall(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\nexpect: 100-continue\r\n\r\n")
        assert conn.recv(65536).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        conn.sendall(b"ping")
        answer = b""
        while not answer.endswith(b"ping"):
            answer += conn.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")


def test_a_pipelined_head_is_timed_from_the_answer_before_it() -> None:
    """The header deadline is the client's: while the request before it is answered (0.5 s here),
    a pipelined request's unfinished head is not timed out, nor the answer in progress cut off."""
    limits = EdgeLimits(header_timeout_seconds=0.3, body_timeout_seconds=0.3)
    served = serving(functools.partial(HttpProtocol, limits=limits))
    with served as port, socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(b"GET /late HTTP/1.1\r\nhost: x\r\n\r\nGET /next HTTP/1.1\r\n")
        time.sleep(0.6)  # the answer to /late is out at 0.5 s; /next's clock starts then
        conn.sendall(b"host: x\r\n\r\n")
        data = b""
        while not data.endswith(b"/next"):
            chunk = conn.recv(65536)
            assert chunk, f"closed early: {data!r}"
            data += chunk
    assert b"late" in data and data.count(b"HTTP/1.1 200 OK") == 2


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="min_body_bytes_per_second must be greater than 0"):
        EdgeLimits(min_body_bytes_per_second=0)
