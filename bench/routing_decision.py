"""Micro-benchmark of the pure routing decision: normalize + classify + policy + rank, per request.

    .venv/bin/python bench/routing_decision.py [--policies policies] [--n 20000]

Prints microseconds per decision (p50, p90, p99) for a short and a long prompt, no I/O involved.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import orjson

from gateway.classify.heuristic import HeuristicClassifier
from gateway.normalize import normalize
from gateway.policy.decide import decide
from gateway.policy_loader import load_policy_dir

PROMPTS = {
    "short": "What is the capital of France?",
    "long": ("Please review this function and explain step by step how to optimize it.\n```python\n"
             + "def f(x):\n    return [i * i for i in range(x)]\n" * 40 + "```"),
}


def measure(policies: Path, tenant: str, prompt: str, n: int) -> list[float]:
    policy = load_policy_dir(policies, {})
    classifier = HeuristicClassifier()
    raw = orjson.dumps({"model": "auto", "messages": [{"role": "user", "content": prompt}]})
    samples = []
    for _ in range(n):
        started = time.perf_counter_ns()
        decide(policy, tenant, normalize("chat", raw, {}), classifier)
        samples.append((time.perf_counter_ns() - started) / 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--policies", type=Path, default=Path("policies"))
    parser.add_argument("--tenant", default="demo-us-only")
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args()
    print(f"routing decision (normalize + classify + policy + rank), tenant {args.tenant}, {args.n} runs each")
    for name, prompt in PROMPTS.items():
        samples = sorted(measure(args.policies, args.tenant, prompt, args.n))
        q = statistics.quantiles(samples, n=100)
        print(f"  {name:5} prompt ({len(prompt):5} chars): p50 {q[49]:7.1f} us  p90 {q[89]:7.1f} us  p99 {q[98]:7.1f} us")


if __name__ == "__main__":
    main()
