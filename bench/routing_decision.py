"""Micro-benchmark of the pure routing decision: normalize + classify + policy + rank, per request.

    .venv/bin/python bench/routing_decision.py [--policies bench/policies] [--tenant bench] [--n 20000]

Prints microseconds per decision (p50, p90, p99) for a short, a realistic and a long prompt, with no
I/O involved. ``python -m bench --routing`` prints the same figures inside the full benchmark.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import orjson

if __package__ in (None, ""):  # run as a script: make ``bench`` importable (``gateway`` may come from PYTHONPATH)
    sys.path.append(str(Path(__file__).resolve().parent.parent))

from bench.loadgen import chat_body
from gateway.classify.heuristic import HeuristicClassifier
from gateway.policy.decide import decide
from gateway.policyfiles.loader import load_policy_dir
from gateway.routing.normalize import normalize

BENCH_POLICIES = Path(__file__).resolve().parent / "policies"
PROMPTS = {
    "short": orjson.dumps(
        {"model": "auto", "messages": [{"role": "user", "content": "What is the capital of France?"}]}
    ),
    "bench": chat_body("auto", stream=False),  # the request the load generator sends
    "long": orjson.dumps(
        {
            "model": "auto",
            "messages": [
                {
                    "role": "user",
                    "content": "Please review this function and explain step by step how to optimize it.\n```python\n"
                    + "def f(x):\n    return [i * i for i in range(x)]\n" * 40
                    + "```",
                }
            ],
        }
    ),
}


def measure(policies: Path, tenant: str, raw: bytes, n: int) -> list[float]:
    policy = load_policy_dir(policies, {})
    classifier = HeuristicClassifier()
    for _ in range(min(n, 500)):  # warm up
        decide(policy, tenant, normalize("chat", raw, {}), classifier)
    samples = []
    for _ in range(n):
        started = time.perf_counter_ns()
        decide(policy, tenant, normalize("chat", raw, {}), classifier)
        samples.append((time.perf_counter_ns() - started) / 1000)
    return samples


def run(policies: Path, tenant: str, n: int) -> list[str]:
    lines = [f"routing decision (normalize + classify + policy + rank), {policies}, tenant {tenant}, {n} runs each"]
    for name, raw in PROMPTS.items():
        q = statistics.quantiles(measure(policies, tenant, raw, n), n=100)
        lines.append(
            f"  {name:5} request ({len(raw):5} bytes): p50 {q[49]:7.1f} us  p90 {q[89]:7.1f} us  p99 {q[98]:7.1f} us"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--policies", type=Path, default=BENCH_POLICIES)
    parser.add_argument("--tenant", default="bench")
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args()
    print("\n".join(run(args.policies, args.tenant, args.n)))


if __name__ == "__main__":
    main()
