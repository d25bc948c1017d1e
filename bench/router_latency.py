"""Cost of the learned router: per-request scoring latency on one core, artifact load time, RSS growth.

    .venv/bin/python bench/router_latency.py [--data ../shared/routing/dev.jsonl] [--n 5000]

Scores every prompt of the data set (or built-in prompts when the file is missing) through
``LearnedClassifier.classify`` (normalize excluded) and prints p50/p90/p99/max in microseconds,
plus a worst case: a request at the classifier's 8,000-character text limit.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import statistics
import time
from pathlib import Path

import orjson


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def prompts(path: Path, n: int) -> list[str]:
    if not path.is_file():
        return ["What is the capital of France?", "Prove step by step that sqrt(2) is irrational."] * (n // 2)
    rows = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    return [str(r["prompt"]) for r in rows][:n]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=Path("../shared/routing/dev.jsonl"))
    parser.add_argument("--n", type=int, default=5000)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core

    from gateway.classify.learned import LearnedClassifier
    from gateway.classify.loader import read_router_model
    from gateway.router_cli import default_artifact
    from gateway.router_train import chat_request

    texts = prompts(args.data, args.n)
    requests = [chat_request(t) for t in texts]
    gc.collect()
    before = rss_mb()
    started = time.perf_counter()
    classifier = LearnedClassifier(read_router_model(default_artifact()))
    load_s = time.perf_counter() - started
    gc.collect()
    growth = rss_mb() - before
    for request in requests[:200]:
        classifier.classify(request)
    samples = []
    for request in requests:
        t0 = time.perf_counter_ns()
        classifier.classify(request)
        samples.append((time.perf_counter_ns() - t0) / 1000)
    q = statistics.quantiles(samples, n=100)
    worst = chat_request("The quick brown fox considers 42 theorems; " * 200)
    worst_samples = []
    for _ in range(200):
        t0 = time.perf_counter_ns()
        classifier.classify(worst)
        worst_samples.append((time.perf_counter_ns() - t0) / 1000)
    size = default_artifact().stat().st_size / 1e6
    print(f"learned router, {len(samples)} requests from {args.data if args.data.is_file() else 'built-in prompts'}")
    print(f"  score one request: p50 {q[49]:.0f} us  p90 {q[89]:.0f} us  p99 {q[98]:.0f} us  max {max(samples):.0f} us")
    print(f"  8,000-character request: p50 {statistics.median(worst_samples):.0f} us  "
          f"max {max(worst_samples):.0f} us")
    print(f"  artifact {size:.2f} MB, load {load_s * 1000:.0f} ms, RSS growth {growth:.1f} MB "
          f"(peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3:.0f} MB)")


if __name__ == "__main__":
    main()
