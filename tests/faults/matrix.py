"""The fault matrix: every upstream fault x {plain, stream} x three deployment layouts, through a real gateway.

Used by tests/faults/test_fault_matrix.py (a few requests a cell) and ``python -m bench.faults``
(1,000 a cell). For one fault, :func:`fault_gateway` writes a policy with three routes, each a layout:

- ``single``: one deployment, the faulty one;
- ``pair``: the faulty deployment ranked first (cheaper) and a healthy stand-in of the same model;
- ``denied``: the faulty deployment and a healthy one of a CN-origin model the tenant denies.

:func:`run_cell` sends the cell's requests and returns a :class:`Cell`: what the clients got, how long
the slowest took, whether the denied deployment was called, and the open file descriptors and
connections to the faulty upstream before and after.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx
import orjson

from gateway.http.app import create_app
from gateway.settings import Settings
from gateway.standin.control import Control
from gateway.standin.openai_wire import create_openai_app
from gateway.standin.server import ThreadedServer
from tests.factories import deployment, model, tenant, write_policy
from tests.faults.upstream import Fault, FaultyUpstream, Unreachable, refused_url

Layout = Literal["single", "pair", "denied"]
LAYOUTS: tuple[Layout, ...] = ("single", "pair", "denied")
MODES = ("plain", "stream")
KEY = "fault-key"
TIMEOUT_SECONDS = 0.5  # each read from the faulty upstream
DEADLINE_SECONDS = 2.0  # the whole request
HANG_SECONDS = DEADLINE_SECONDS + 1.5  # an answer later than this is a hang
FAULTY_DEPLOYMENTS = 3  # single-faulty, pair-faulty, allowed-faulty: each has its own pool of connections
SLOW: frozenset[Fault] = frozenset({"connect_timeout", "read_timeout", "slow_first_byte"})


@dataclass
class Cell:
    fault: Fault
    layout: Layout
    mode: str
    outcomes: Counter[str] = field(default_factory=Counter)
    slowest: float = 0.0
    denied_calls: int = 0
    fds: tuple[int, int] = (0, 0)  # before, after
    upstream_connections: tuple[int, int] = (0, 0)
    bad: list[str] = field(default_factory=list)  # answers not in the API's shape

    def summary(self) -> str:
        return ", ".join(f"{n} {what}" for what, n in sorted(self.outcomes.items()))


@dataclass
class FaultGateway:
    url: str
    upstream: FaultyUpstream
    denied: Control  # the healthy stand-in of the denied model: must never be called
    healthy: Control
    fault: Fault = "http_500"

    def set(self, fault: Fault) -> None:
        self.fault = fault
        self.upstream.fault = fault


def policy(directory: Path, faulty_url: str, healthy_url: str, denied_url: str) -> Path:
    faulty = {"timeout_seconds": TIMEOUT_SECONDS, "max_retries": 1}
    models = {
        "m-single": model("US", "strong", 1.0),
        "m-pair": model("US", "strong", 1.0),
        "m-allowed": model("US", "strong", 1.0),
        "m-denied": model("CN", "strong", 0.1),
    }
    deployments = {
        "single-faulty": deployment("m-single", faulty_url, **faulty),
        "pair-faulty": deployment("m-pair", faulty_url, price={"input": 0.1, "output": 0.2}, **faulty),
        "pair-healthy": deployment("m-pair", healthy_url, price={"input": 1.0, "output": 2.0}),
        "allowed-faulty": deployment("m-allowed", faulty_url, **faulty),
        "denied-healthy": deployment("m-denied", denied_url),
    }
    routes = {
        name: {"rank": "price", "tiers": {tier: list(candidates) for tier in ("simple", "standard", "complex")}}
        for name, candidates in {
            "single": ["m-single"],
            "pair": ["m-pair"],
            "denied": ["m-denied", "m-allowed"],
        }.items()
    }
    return write_policy(
        directory,
        models=models,
        deployments=deployments,
        tenants={"faults": tenant(KEY, deny_origins=["CN"])},
        routes=routes,
        limits={"max_body_bytes": 65536, "request_deadline_seconds": DEADLINE_SECONDS},
        state={"breaker": {"failures": 1_000_000}},  # every request meets the fault; the breaker has its own tests
    )


Address = Literal["server", "refused", "unreachable"]


def address_of(fault: Fault) -> Address:
    """Where the faulty deployments point: the faulty server, a closed port, or a listener that never answers."""
    return {"connect_refused": "refused", "connect_timeout": "unreachable"}.get(fault, "server")  # type: ignore[return-value]


@contextlib.contextmanager
def fault_gateway(address: Address, directory: Path) -> Iterator[FaultGateway]:
    """A gateway whose faulty deployments point at ``address``; :meth:`FaultGateway.set` picks the fault."""
    healthy, denied = Control(), Control()
    with contextlib.ExitStack() as stack:
        upstream = stack.enter_context(FaultyUpstream())
        healthy_server = stack.enter_context(ThreadedServer(create_openai_app(healthy, name="healthy")))
        denied_server = stack.enter_context(ThreadedServer(create_openai_app(denied, name="denied")))
        faulty_url = upstream.url
        if address == "refused":
            faulty_url = refused_url()
        elif address == "unreachable":
            unreachable = Unreachable()
            stack.callback(unreachable.close)
            faulty_url = unreachable.url
        policies = policy(directory, faulty_url, healthy_server.url + "/v1", denied_server.url + "/v1")
        gateway = stack.enter_context(ThreadedServer(create_app(Settings(policies=policies), env={})))
        yield FaultGateway(gateway.url, upstream, denied, healthy)


def run_cell(gateway: FaultGateway, layout: Layout, mode: str, requests: int, concurrency: int = 1) -> Cell:
    """``requests`` of one cell, after one that is not counted: pools fill, then the baseline is taken."""
    cell = Cell(gateway.fault, layout, mode)
    body = orjson.dumps(
        {"model": layout, "messages": [{"role": "user", "content": "Say hello."}], "stream": mode == "stream"}
    )
    with httpx.Client(base_url=gateway.url, timeout=HANG_SECONDS + 5) as client:
        _one(client, body, mode)
        gateway.denied.reset()
        cell.fds = (open_fds(), 0)
        cell.upstream_connections = (gateway.upstream.live_connections(), 0)
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            for outcome, seconds, bad in pool.map(lambda _: _one(client, body, mode), range(requests)):
                cell.outcomes[outcome] += 1
                cell.slowest = max(cell.slowest, seconds)
                if bad:
                    cell.bad.append(bad)
    cell.denied_calls = gateway.denied.count()
    settle_until = time.monotonic() + 5.0
    while time.monotonic() < settle_until and open_fds() > cell.fds[0]:
        time.sleep(0.05)
    cell.fds = (cell.fds[0], open_fds())
    cell.upstream_connections = (cell.upstream_connections[0], gateway.upstream.live_connections())
    return cell


def _one(client: httpx.Client, body: bytes, mode: str) -> tuple[str, float, str]:
    """(what the client got, seconds, why the answer is not in the API's shape or '')."""
    started = time.monotonic()
    headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    try:
        with client.stream("POST", "/v1/chat/completions", content=body, headers=headers) as response:
            raw = response.read()
            answered_by = response.headers.get("x-gateway-deployment", "?")
            status = response.status_code
            content_type = response.headers.get("content-type", "")
    except httpx.HTTPError as exc:
        return f"client error {type(exc).__name__}", time.monotonic() - started, f"transport: {exc!r}"
    seconds = time.monotonic() - started
    if status != 200:
        code, bad = _error_code(raw)
        return f"{status} {code}", seconds, bad
    if mode == "stream":
        return _stream_outcome(raw, answered_by, content_type), seconds, _stream_shape(raw, content_type)
    return f"200 from {answered_by}", seconds, "" if _is_completion(raw) else f"200 body: {raw[:200]!r}"


def _error_code(raw: bytes) -> tuple[str, str]:
    try:
        error = orjson.loads(raw)["error"]
        shaped = isinstance(error.get("message"), str)
        return str(error.get("code") or error.get("type")), "" if shaped else "no message"
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return "?", f"error body not in OpenAI's shape: {raw[:200]!r}"


def _events(raw: bytes) -> list[bytes]:
    return [line[5:].strip() for line in raw.split(b"\n") if line.startswith(b"data:")]


def _stream_outcome(raw: bytes, answered_by: str, content_type: str) -> str:
    if not content_type.startswith("text/event-stream"):
        return f"200 {content_type} from {answered_by}"
    events = _events(raw)
    errors = [e for e in events if e.startswith(b"{") and b'"error"' in e]
    if errors:
        code, _ = _error_code(errors[-1])
        return f"200 stream, then error event {code}"
    done = bool(events) and events[-1] == b"[DONE]"
    return f"200 stream from {answered_by}" + ("" if done else " (no [DONE])")


def _stream_shape(raw: bytes, content_type: str) -> str:
    if not content_type.startswith("text/event-stream"):
        return f"a stream answered as {content_type}"
    for event in _events(raw):
        if event == b"[DONE]":
            continue
        try:
            orjson.loads(event)
        except orjson.JSONDecodeError:
            return f"an event that is not JSON: {event[:120]!r}"
    return ""


def _is_completion(raw: bytes) -> bool:
    try:
        return orjson.loads(raw).get("object") == "chat.completion"
    except (orjson.JSONDecodeError, AttributeError):
        return False


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def table(cells: list[Cell]) -> str:
    """The matrix as a Markdown table: one row per fault and mode, one column per layout."""
    rows = ["| fault | mode | " + " | ".join(LAYOUTS) + " |", "|---|---|" + "---|" * len(LAYOUTS)]
    by_key = {(c.fault, c.mode, c.layout): c for c in cells}
    for fault in dict.fromkeys(c.fault for c in cells):
        for mode in MODES:
            shown = [by_key[key].summary() if (key := (fault, mode, layout)) in by_key else "" for layout in LAYOUTS]
            rows.append(f"| {fault} | {mode} | " + " | ".join(shown) + " |")
    return "\n".join(rows)
