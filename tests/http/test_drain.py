"""SIGTERM drains a real ``gateway serve`` process (gateway/http/drain.py, serve.py): /readyz turns 503 at
once, requests and streams in flight run to their end, answers close their connections, new connections
are still served, and the process exits 0; a stream longer than the drain timeout is cut with an error event."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.standin.control import Control
from gateway.standin.openai_wire import create_openai_app
from gateway.standin.server import ThreadedServer
from tests.factories import small_policy
from tests.processes import Served, serve

AUTH = {"authorization": "Bearer open-key"}
HI = {"model": "auto", "messages": [{"role": "user", "content": "What is the capital of France?"}]}
STREAM = {**HI, "stream": True}
CHUNK_GAP = 0.3  # seconds between the stand-in's stream events: a stream lasts a few seconds


@pytest.fixture(scope="module")
def slow() -> Iterator[tuple[str, Control]]:
    """A stand-in whose streams take a few seconds."""
    control = Control(chunk_gap=CHUNK_GAP)
    with ThreadedServer(create_openai_app(control, name="slow")) as server:
        yield server.url + "/v1", control


def policy(tmp_path: Path, url: str) -> Path:
    return small_policy(tmp_path / "p", {"a": url, "b": url, "c": url})


class Stream:
    """A stream read on a thread: its data lines, and an event set at its first."""

    def __init__(self, url: str) -> None:
        self.lines: list[str] = []
        self.first = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._read, args=(url,), daemon=True)
        self.thread.start()
        assert self.first.wait(20), "the stream did not start"

    def _read(self, url: str) -> None:
        try:
            with httpx.stream("POST", url + "/v1/chat/completions", json=STREAM, headers=AUTH, timeout=30) as answer:
                for line in answer.iter_lines():
                    if line.startswith("data: "):
                        self.lines.append(line[6:])
                        self.first.set()
        except httpx.HTTPError as exc:
            self.error = exc
        finally:
            self.first.set()

    def join(self) -> list[str]:
        self.thread.join(30)
        assert not self.thread.is_alive()
        return self.lines


def exit_code(served: Served) -> int:
    assert served.proc is not None
    return served.proc.wait(30)


def term(served: Served) -> None:
    assert served.proc is not None
    served.proc.send_signal(signal.SIGTERM)


def wait_draining(url: str) -> httpx.Response:
    """/readyz, on a new connection, once the drain has begun (the signal is handled between two loop turns)."""
    for _ in range(100):
        answer = httpx.get(url + "/readyz")
        if answer.status_code == 503:
            return answer
    raise AssertionError("/readyz never turned 503")


def test_a_stream_in_flight_at_sigterm_finishes_and_the_process_exits_0(
    tmp_path: Path, slow: tuple[str, Control]
) -> None:
    with serve(policy(tmp_path, slow[0]), {}, "--audit-log", "off") as served:
        with httpx.Client(headers=AUTH) as kept:  # a kept-alive connection, used before and after the signal
            assert kept.post(served.url + "/v1/chat/completions", json=HI).headers.get("connection") != "close"
            stream = Stream(served.url)
            term(served)
            ready = wait_draining(served.url)
            assert ready.json() == {"status": "draining"} and ready.headers["connection"] == "close"
            again = kept.post(served.url + "/v1/chat/completions", json=HI)  # the same connection, once more
            assert again.status_code == 200 and again.headers["connection"] == "close"
            fresh = httpx.post(served.url + "/v1/chat/completions", json=HI, headers=AUTH)  # a new connection
            assert fresh.status_code == 200 and fresh.headers["connection"] == "close"
            lines = stream.join()
        assert stream.error is None
        assert lines[-1] == "[DONE]" and len(lines) > 3
        assert all("error" not in json.loads(line) for line in lines[:-1])
        assert exit_code(served) == 0
    assert "draining" in served.stderr and "drained" in served.stderr


def test_a_stream_longer_than_the_drain_timeout_is_cut_with_an_error_event(
    tmp_path: Path, slow: tuple[str, Control]
) -> None:
    with serve(policy(tmp_path, slow[0]), {}, "--audit-log", "off", "--drain-seconds", "0.5") as served:
        stream = Stream(served.url)
        term(served)
        lines = stream.join()
        assert exit_code(served) == 0
    assert stream.error is None, "the stream ends cleanly, with its error event"
    error = json.loads(lines[-1])["error"]
    assert error["code"] == "gateway_draining" and error["type"] == "server_error"
    assert "[DONE]" not in lines
    assert "cut 1 stream(s)" in served.stderr


def test_an_idle_process_exits_0_on_sigterm(tmp_path: Path, slow: tuple[str, Control]) -> None:
    with serve(policy(tmp_path, slow[0]), {}, "--audit-log", "off") as served:
        term(served)
        assert exit_code(served) == 0


def test_workers_drain_too(tmp_path: Path, slow: tuple[str, Control]) -> None:
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    (tmp_path / "metrics").mkdir()
    with serve(policy(tmp_path, slow[0]), env, "--audit-log", "off", "--workers", "2") as served:
        streams = [Stream(served.url) for _ in range(4)]  # new connections: both workers get some
        term(served)
        for stream in streams:
            lines = stream.join()
            assert stream.error is None and lines[-1] == "[DONE]"
        assert exit_code(served) == 0
