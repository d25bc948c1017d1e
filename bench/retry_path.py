"""Micro-benchmark of the call path's retry machinery: what a request that succeeds at once pays for it.

    .venv/bin/python bench/retry_path.py [--n 20000] [--rounds 5]
    PYTHONPATH=bench/.logs/gateway-<sha> .venv/bin/python bench/retry_path.py   # another ref's gateway/

Two figures, in-process, no network:
- ``caller``: ``Caller.complete`` with a provider that answers at once and the real gate on the in-memory
  store (breaker, lease), CPU microseconds per call (``process_time`` over the batch) and wall p50. Run it
  against two refs (``--gateway-ref`` of ``python -m bench`` exports them to ``bench/.logs/``), interleaved.
- ``tenacity``: one awaited no-op coroutine, bare and inside the ``AsyncRetrying`` the gateway builds for a
  retry (``gateway.upstream.retrying``, when that module is on the path): what every request would pay if
  its first try went through tenacity.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``bench`` importable (``gateway`` may come from PYTHONPATH)
    sys.path.append(str(Path(__file__).resolve().parent.parent))

import gateway
from bench.loadgen import chat_body
from gateway.classify.heuristic import HeuristicClassifier
from gateway.policy.decide import decide
from gateway.policyfiles.loader import load_policy_dir
from gateway.routing.normalize import normalize
from gateway.state import MemoryStore
from gateway.state.guards import Outages
from gateway.upstream.caller import Caller
from gateway.upstream.gate import DeploymentGate

BENCH_POLICIES = Path(__file__).resolve().parent / "policies"
ANSWER = {
    "id": "x",
    "object": "chat.completion",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13},
}


class AtOnce:
    """A provider that answers every call at once."""

    async def complete(self, endpoint: str, target: Any, body: Any) -> dict[str, Any]:
        return dict(ANSWER)

    async def stream(self, endpoint: str, target: Any, body: Any) -> AsyncIterator[dict[str, Any]]:
        yield dict(ANSWER)

    async def aclose(self) -> None:
        pass


async def batch(call: Callable[[], Awaitable[object]], n: int) -> tuple[float, float]:
    """CPU microseconds per call over ``n`` calls, and the wall p50 of one call."""
    walls = []
    cpu = time.process_time_ns()
    for _ in range(n):
        started = time.perf_counter_ns()
        await call()
        walls.append(time.perf_counter_ns() - started)
    return (time.process_time_ns() - cpu) / n / 1000, statistics.median(walls) / 1000


async def caller_figures(n: int, rounds: int) -> list[str]:
    policy = load_policy_dir(BENCH_POLICIES, {"BENCH_UPSTREAM_URL": "http://127.0.0.1:9/v1"})
    request = normalize("chat", chat_body("auto", stream=False), {})
    decision = decide(policy, "bench", request, HeuristicClassifier())
    provider = AtOnce()
    caller = Caller(lambda kind: provider, DeploymentGate(MemoryStore(), Outages()), {})  # type: ignore[arg-type,return-value]

    async def call() -> object:
        return await caller.complete(policy, decision, request, 30.0)

    await batch(call, min(n, 2000))  # warm up
    runs = [await batch(call, n) for _ in range(rounds)]
    return [
        f"caller ({Path(gateway.__file__).parent}): Caller.complete, answered at once, {n} calls x {rounds} rounds",
        f"  CPU us/call per round: {'  '.join(f'{cpu:.1f}' for cpu, _ in runs)}   median {_median(runs, 0):.1f}",
        f"  wall p50 us per round: {'  '.join(f'{wall:.1f}' for _, wall in runs)}   median {_median(runs, 1):.1f}",
    ]


async def tenacity_figures(n: int, rounds: int) -> list[str]:
    try:
        from gateway.policy.retry_schema import RetrySpec
        from gateway.upstream import retrying
    except ImportError:
        return ["tenacity: gateway.upstream.retrying is not in this gateway/; skipped"]

    async def answer() -> object:
        return ANSWER

    async def inside() -> object:
        async for attempt in retrying.retrying(RetrySpec(), time.monotonic() + 30, time.monotonic, asyncio.sleep):
            with attempt:
                return await answer()
        raise AssertionError("unreachable")

    await batch(inside, min(n, 2000))
    bare = [await batch(answer, n) for _ in range(rounds)]
    wrapped = [await batch(inside, n) for _ in range(rounds)]
    return [
        f"tenacity: one awaited no-op, {n} calls x {rounds} rounds, CPU us/call (median of rounds)",
        f"  bare {_median(bare, 0):.2f}   inside AsyncRetrying {_median(wrapped, 0):.2f}   "
        f"difference {_median(wrapped, 0) - _median(bare, 0):.2f} us per call",
    ]


def _median(runs: list[tuple[float, float]], index: int) -> float:
    return statistics.median(run[index] for run in runs)


async def run(n: int, rounds: int) -> list[str]:
    return await caller_figures(n, rounds) + await tenacity_figures(n, rounds)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print("\n".join(asyncio.run(run(args.n, args.rounds))))


if __name__ == "__main__":
    main()
