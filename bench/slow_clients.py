"""Connections under attack (issue #17): idle and slowloris clients against one gateway process.

    .venv/bin/python -m bench.slow_clients [--idle 1000] [--slowloris 100] [--before 20] [--during 30]

Starts a stand-in upstream and `gateway serve` (edge limits at their defaults: idle timeout 5 s,
header timeout 10 s; ``--max-connections`` just above what the attack holds), then:

1. ``before``: one client sends normal chat requests back to back on a kept-alive connection;
2. ``during``: the same, while ``idle`` connections that send nothing and ``slowloris``
   connections that send a request head a byte a second are held open (each one the gateway
   closes is opened again, as an attacker would);
3. with the attack still on, ``extra`` more connections are opened past ``--max-connections``.

Prints the normal requests' p50/p99 latency before and during the attack, what the idle and
slowloris connections got and how long they lasted, and what the connections past the maximum
got (a clean ``503 too_many_connections``, or closed at once beyond the turn-away slack).
:func:`attack` is also what tests/http/test_connection_attack.py runs, smaller.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson

from bench.procs import free_port, ready, spawn, stop, wait_until
from tests.factories import deployment, model, tenant, write_policy

KEY = "slow-clients-key"
CHAT = orjson.dumps({"model": "auto", "messages": [{"role": "user", "content": "Say hello."}]})
SLOW_HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-slow: " + b"a" * 100_000
STANDIN = (
    "import uvicorn; from gateway.standin.openai_wire import create_openai_app; "
    "uvicorn.run(create_openai_app(), host='127.0.0.1', port={port}, loop='uvloop', http='httptools', "
    "log_level='warning', access_log=False)"
)


@dataclass
class Latencies:
    ms: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)

    def line(self) -> str:
        if not self.ms:
            return f"no answer; failures: {dict(self.failures)}"
        q = statistics.quantiles(self.ms, n=100) if len(self.ms) > 1 else [self.ms[0]] * 99
        failed = sum(self.failures.values())
        return f"{len(self.ms)} answered, p50 {q[49]:.2f} ms, p99 {q[98]:.2f} ms, {failed} failed {dict(self.failures)}"


@dataclass
class Held:
    """Connections of one kind: how many were opened, and what each the gateway closed got."""

    opened: int = 0
    closed: Counter[str] = field(default_factory=Counter)  # the status line it got, or "closed, no answer"
    lifetimes: list[float] = field(default_factory=list)  # seconds from connect to closed by the gateway

    def copy(self) -> Held:
        return Held(self.opened, Counter(self.closed), list(self.lifetimes))

    def line(self) -> str:
        lasted = f", median life {statistics.median(self.lifetimes):.1f} s" if self.lifetimes else ""
        return f"{self.opened} opened, {sum(self.closed.values())} closed by the gateway {dict(self.closed)}{lasted}"


@dataclass
class Report:
    before: Latencies
    during: Latencies
    idle: Held
    slowloris: Held
    beyond: Counter[str]  # what each connection past the maximum got


async def normal_requests(url: str, seconds: float) -> Latencies:
    out = Latencies()
    headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    end = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
        while time.monotonic() < end:
            started = time.perf_counter()
            try:
                response = await client.post("/v1/chat/completions", content=CHAT)
            except httpx.HTTPError as exc:
                out.failures[type(exc).__name__] += 1
                continue
            if response.status_code == 200:
                out.ms.append((time.perf_counter() - started) * 1000)
            else:
                out.failures[str(response.status_code)] += 1
    return out


def _status(answer: bytes) -> str:
    if not answer:
        return "closed, no answer"
    line = answer.split(b"\r\n", 1)[0].decode(errors="replace")
    return line.removeprefix("HTTP/1.1 ")


async def _hold(port: int, held: Held, stop_at: asyncio.Event, drip: bytes) -> None:
    """Keep one connection open (sending ``drip`` a byte a second, if any), reopening it when closed."""
    while not stop_at.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError as exc:
            held.closed[f"connect failed: {type(exc).__name__}"] += 1
            await asyncio.sleep(0.5)
            continue
        held.opened += 1
        opened = time.monotonic()
        answer = asyncio.ensure_future(reader.read(4096))
        stopping = asyncio.ensure_future(stop_at.wait())
        with contextlib.suppress(OSError):
            for byte in _bytes_of(drip):
                done, _ = await asyncio.wait({answer, stopping}, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
                if done:
                    break
                writer.write(byte)
            await asyncio.wait({answer, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if answer.done() and not answer.cancelled() and answer.exception() is None:
            held.closed[_status(answer.result())] += 1
            held.lifetimes.append(time.monotonic() - opened)
        answer.cancel()
        writer.close()


def _bytes_of(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


async def beyond_the_maximum(port: int, count: int) -> Counter[str]:
    """Open ``count`` connections at once and say what each got within 3 s."""

    async def one() -> str:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError as exc:
            return f"connect failed: {type(exc).__name__}"
        try:
            async with asyncio.timeout(3.0):
                answer = await reader.read(4096)
        except TimeoutError:
            return "accepted (under the maximum)"
        except OSError:
            return "reset"
        finally:
            writer.close()
        if b" 503 " in answer.split(b"\r\n", 1)[0] and b"too_many_connections" in answer:
            return "503 too_many_connections"
        return _status(answer)

    return Counter(await asyncio.gather(*(one() for _ in range(count))))


async def attack(
    url: str, idle: int, slowloris: int, before: float, during: float, extra: int, settle: float = 2.0
) -> Report:
    """The three phases against the gateway at ``url`` (``http://127.0.0.1:PORT``)."""
    port = int(url.rsplit(":", 1)[1])
    quiet = await normal_requests(url, before)
    stop_at = asyncio.Event()
    idle_held, slow_held = Held(), Held()
    holders = [asyncio.ensure_future(_hold(port, idle_held, stop_at, b"")) for _ in range(idle)]
    holders += [asyncio.ensure_future(_hold(port, slow_held, stop_at, SLOW_HEAD)) for _ in range(slowloris)]
    try:
        await asyncio.sleep(settle)  # all connected
        loud = await normal_requests(url, during)
        idle_seen, slow_seen = idle_held.copy(), slow_held.copy()  # before the extra fill the maximum up
        beyond = await beyond_the_maximum(port, extra)
    finally:
        stop_at.set()
        await asyncio.gather(*holders, return_exceptions=True)
    return Report(quiet, loud, idle_seen, slow_seen, beyond)


def policy(directory: Path, upstream: str) -> Path:
    return write_policy(
        directory,
        models={"m": model("US", "strong", 1.0)},
        deployments={"d": deployment("m", upstream)},
        tenants={"t": tenant(KEY)},
        routes={"auto": {"tiers": {tier: ["m"] for tier in ("simple", "standard", "complex")}}},
    )


def with_gateway(flags: list[str], run: Callable[[str], Awaitable[Report]]) -> Report:
    """A stand-in upstream and `gateway serve FLAGS` on it, for the time of ``run(gateway_url)``."""
    python = sys.executable
    up, gw = free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="slow-clients-") as tmp:
        procs = [spawn([python, "-c", STANDIN.format(port=up)])]
        try:
            policies = policy(Path(tmp) / "policies", f"http://127.0.0.1:{up}/v1")
            serve = [python, "-m", "gateway", "serve", "--policies", str(policies), "--port", str(gw)]
            procs.append(spawn([*serve, "--log-level", "error", "--audit-log", "off", *flags]))
            wait_until(ready(f"http://127.0.0.1:{gw}"), procs[-1], 60, "the gateway")
            return asyncio.run(run(f"http://127.0.0.1:{gw}"))
        finally:
            for proc in reversed(procs):
                stop(proc)


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.slow_clients", description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--slowloris", type=int, default=100)
    parser.add_argument("--before", type=float, default=20.0, help="seconds of normal requests alone")
    parser.add_argument("--during", type=float, default=30.0, help="seconds of normal requests under attack")
    parser.add_argument("--extra", type=int, default=60, help="connections opened past the maximum")
    args = parser.parse_args(argv)
    maximum = args.idle + args.slowloris + 10  # the attack and the normal client fit; the extra do not
    raise_fd_limit(4 * (maximum + args.extra) + 256)  # the gateway inherits it: client and server ends
    flags = ["--max-connections", str(maximum)]

    def run(url: str) -> Awaitable[Report]:
        return attack(url, args.idle, args.slowloris, args.before, args.during, args.extra, settle=5.0)

    report = with_gateway(flags, run)
    print(f"connections under attack: one gateway process, edge limits at their defaults, --max-connections {maximum}")
    print(f"  normal requests, alone ({args.before:g} s):  {report.before.line()}")
    print(f"  normal requests, during the attack ({args.during:g} s): {report.during.line()}")
    print(f"  {args.idle} idle connections: {report.idle.line()}")
    print(f"  {args.slowloris} slowloris connections (a header byte a second): {report.slowloris.line()}")
    print(f"  {args.extra} connections opened past the maximum: {dict(report.beyond)}")


if __name__ == "__main__":
    main()
