"""Limits at the HTTP edge (issue #18), probed with raw sockets against `gateway serve` as ops run it.

One gateway for the module (``--demo``: stand-in upstreams in process), with timeouts of about a
second so that each probe takes a second or two. Each test closes its own sockets.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import select
import socket
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gateway.errors import AuthenticationFailed
from gateway.http.protocol import TURN_AWAY_SLACK
from gateway.policy.policy_set import PolicySet
from gateway.policyfiles.loader import load_policy_dir
from gateway.routing import auth
from tests.factories import REPO, small_policy
from tests.processes import free_port

IDLE, HEAD, BODY, MAX_CONNECTIONS = 1.0, 1.0, 1.0, 40
FLAGS = (
    "--idle-timeout-seconds", str(IDLE), "--header-timeout-seconds", str(HEAD), "--body-timeout-seconds", str(BODY),
    "--min-body-bytes-per-second", "1024", "--max-connections", str(MAX_CONNECTIONS),
)  # fmt: skip
CHAT = b'{"model": "auto", "messages": [{"role": "user", "content": "hi"}]}'


@dataclass
class Gateway:
    port: int
    pid: int
    log: Path

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def log_lines(self) -> list[dict[str, str]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    port, log = free_port(), tmp_path_factory.mktemp("edge") / "stderr.log"
    command = [sys.executable, "-m", "gateway", "serve", "--demo", "--port", str(port), "--audit-log", "off"]
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [*command, "--log-level", "debug", *FLAGS], cwd=REPO, stdout=subprocess.DEVNULL, stderr=stderr
        )
    try:
        deadline = time.monotonic() + 30
        while not _ready(port):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.1)
        yield Gateway(port, proc.pid, log)
    finally:
        proc.terminate()
        proc.wait(20)


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def connect(gateway: Gateway, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", gateway.port), timeout=timeout)


def read_all(conn: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a socket timeout fails the test)."""
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    return data


def answered(conn: socket.socket, wait: float) -> bool:
    """Has the server sent something (so stop writing, and read it before a reset can drop it)?"""
    return bool(select.select([conn], [], [], wait)[0])


def error_of(answer: bytes, status: int) -> dict[str, object]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status), head
    assert b"connection: close" in head
    error: dict[str, object] = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def post_head(key: str = "demo-key", length: int = len(CHAT), extra: bytes = b"") -> bytes:
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"authorization: Bearer %s\r\ncontent-length: %d\r\n%s\r\n" % (key.encode(), length, extra)
    )


# Item 1: memory without a valid key


def test_a_head_over_the_byte_limit_gets_431_and_is_closed(gateway: Gateway) -> None:
    with connect(gateway) as conn:
        conn.sendall(post_head(extra=b"x-big: " + b"a" * 70_000 + b"\r\n") + CHAT)
        error = error_of(read_all(conn), 431)
    assert error["code"] == "request_header_fields_too_large" and error["type"] == "invalid_request_error"


def test_more_than_100_header_lines_get_431(gateway: Gateway) -> None:
    extra = b"".join(b"x-h%d: v\r\n" % i for i in range(101))
    with connect(gateway) as conn:
        conn.sendall(post_head(extra=extra) + CHAT)
        assert error_of(read_all(conn), 431)["code"] == "request_header_fields_too_large"


def test_a_32_mb_header_is_refused_while_it_arrives(gateway: Gateway) -> None:
    """httptools buffers one header until the next begins: the head is measured as it arrives."""
    with connect(gateway) as conn:
        conn.sendall(b"GET /readyz HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ")
        for _ in range(32 * 16):  # 32 MB in 64 KiB writes, stopping once answered
            if answered(conn, 0):
                break
            conn.sendall(b"k" * 65536)
        answer = read_all(conn)
    assert error_of(answer, 431)["code"] == "request_header_fields_too_large"


def test_a_big_head_that_arrives_in_pieces_is_still_served(gateway: Gateway) -> None:
    """Measured, not guessed: 40 KiB of headers in 2 KiB reads is under the 64 KiB limit."""
    head = post_head(extra=b"".join(b"x-pad-%d: %s\r\n" % (i, b"p" * 1000) for i in range(40)))
    with connect(gateway) as conn:
        for start in range(0, len(head), 2048):
            conn.sendall(head[start : start + 2048])
            time.sleep(0.005)
        conn.sendall(CHAT)
        assert conn.recv(65536).startswith(b"HTTP/1.1 200 OK\r\n")


def test_distinct_1_mb_keys_do_not_take_memory(gateway: Gateway) -> None:
    """Issue #18: 400 requests, each with a different 1 MB bearer key, took RSS up by ~700 MB."""

    def one(_: int) -> bytes:
        with connect(gateway, timeout=10) as conn:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                conn.sendall(post_head(key=secrets.token_hex(512 * 1024)) + CHAT)
            return read_all(conn)[:12]

    before = gateway.rss_mb()
    with ThreadPoolExecutor(8) as pool:
        statuses = set(pool.map(one, range(400)))
    assert statuses == {b"HTTP/1.1 431"}
    assert gateway.rss_mb() - before < 50, "the keys were not kept"


def small_policy_set(tmp_path: Path) -> PolicySet:
    urls = dict.fromkeys(("a", "b", "c"), "http://127.0.0.1:9/v1")
    return load_policy_dir(small_policy(tmp_path / "p", urls), {})


def test_only_keys_that_matched_are_remembered(tmp_path: Path) -> None:
    policy = small_policy_set(tmp_path)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for _ in range(3000):
            with pytest.raises(AuthenticationFailed):
                auth.authenticate(policy, {"authorization": "Bearer " + secrets.token_hex(250)})
        kept = sum(stat.size_diff for stat in tracemalloc.take_snapshot().compare_to(before, "filename"))
    finally:
        tracemalloc.stop()
    assert kept < 100_000, f"{kept} bytes kept for 3,000 wrong keys"
    assert auth.authenticate(policy, {"authorization": "Bearer open-key"})[0] == "open"


def test_an_absurdly_long_key_is_refused_as_invalid(tmp_path: Path) -> None:
    policy = small_policy_set(tmp_path)
    with pytest.raises(AuthenticationFailed) as info:
        auth.authenticate(policy, {"authorization": "Bearer " + "k" * (auth.MAX_KEY_LENGTH + 1)})
    assert info.value.code == "invalid_api_key"
    assert not auth.is_admin(policy, {"x-api-key": "k" * (auth.MAX_KEY_LENGTH + 1)})


# Item 8: timeouts and a connection limit


def closed_within(conn: socket.socket, seconds: float) -> bytes:
    """What the server sent before closing, which it must do within ``seconds``."""
    conn.settimeout(seconds)
    started = time.monotonic()
    data = read_all(conn)
    assert time.monotonic() - started < seconds
    return data


def test_a_connection_that_sends_nothing_is_closed(gateway: Gateway) -> None:
    with connect(gateway) as conn:
        assert closed_within(conn, IDLE + 1.5) == b""


def test_bare_line_ends_do_not_keep_a_connection_open(gateway: Gateway) -> None:
    with connect(gateway) as conn:
        drip_until_closed(conn, b"\r\n", every=0.2, within=IDLE + 2)


def test_a_dripped_head_gets_408_at_its_deadline(gateway: Gateway) -> None:
    with connect(gateway) as conn:
        conn.sendall(b"GET /readyz HTTP/1.1\r\n")
        started = time.monotonic()
        for i in range(int((HEAD + 2) / 0.2)):  # a header line every 0.2 s, until answered
            conn.sendall(b"x-drip-%d: y\r\n" % i)
            if answered(conn, 0.2):
                break
        error = error_of(closed_within(conn, HEAD + 2), 408)
    assert error["code"] == "request_timeout"
    assert time.monotonic() - started < HEAD + 2.5


def test_a_paused_body_is_closed(gateway: Gateway) -> None:
    with connect(gateway) as conn:
        conn.sendall(post_head(length=1000) + b"{")
        assert closed_within(conn, BODY + 1.5) == b""


def test_a_body_dripped_a_byte_at_a_time_is_closed(gateway: Gateway) -> None:
    """Never quiet for the body timeout, but far slower than 1 KiB/s: closed by the rate."""
    with connect(gateway) as conn:
        conn.sendall(post_head(length=1000))
        drip_until_closed(conn, b" ", every=0.1, within=BODY + 3)


def drip_until_closed(conn: socket.socket, piece: bytes, *, every: float, within: float) -> None:
    """Send ``piece`` every ``every`` seconds until the gateway closes the connection, which must be ``within``."""
    started = time.monotonic()
    with pytest.raises((BrokenPipeError, ConnectionResetError)):
        while time.monotonic() - started < within:
            conn.sendall(piece)
            time.sleep(every)
    assert time.monotonic() - started < within


def test_connections_beyond_the_limit_get_503(gateway: Gateway) -> None:
    held = [connect(gateway) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.2)  # the server has taken them all
        with connect(gateway) as extra:
            extra.sendall(b"GET /readyz HTTP/1.1\r\nhost: x\r\n\r\n")
            error = error_of(read_all(extra), 503)
        assert error["code"] == "too_many_connections"
        assert gateway.open_fds() < 100 + TURN_AWAY_SLACK
    finally:
        for conn in held:
            conn.close()
    time.sleep(0.3)
    assert _ready(gateway.port), "served again once they are gone"


def test_many_idle_sockets_are_let_go(gateway: Gateway) -> None:
    """Issue #18: 2,000 idle sockets were held for ever; now the limit turns most away and the idle
    timeout closes the rest."""
    baseline = gateway.open_fds()
    conns = []
    try:
        for _ in range(500):
            conns.append(connect(gateway))
        time.sleep(0.3)
        assert gateway.open_fds() <= baseline + MAX_CONNECTIONS + TURN_AWAY_SLACK
        time.sleep(IDLE + 1)
        assert gateway.open_fds() <= baseline + 2
    finally:
        for conn in conns:
            conn.close()


def test_answers_still_come_on_a_kept_alive_connection(gateway: Gateway) -> None:
    with connect(gateway) as conn:
        for _ in range(3):
            conn.sendall(post_head() + CHAT)
            assert conn.recv(65536).startswith(b"HTTP/1.1 200 OK\r\n")


# Item 10 (part): a client leaving mid-body


def test_a_client_leaving_mid_body_is_one_quiet_line(gateway: Gateway) -> None:
    with connect(gateway) as conn:
        conn.sendall(post_head(length=len(CHAT) + 100) + CHAT[:10])
        time.sleep(0.1)
    deadline = time.monotonic() + 5
    while not any("client disconnected" in line["message"] for line in gateway.log_lines()):
        assert time.monotonic() < deadline, "no line for the disconnect"
        time.sleep(0.1)
    lines = gateway.log_lines()
    assert next(line["level"] for line in lines if "client disconnected" in line["message"]) == "debug"
    assert not [line for line in lines if line["level"] == "error"]
    assert "Traceback" not in gateway.log.read_text()
