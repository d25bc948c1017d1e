"""Cost of the learned router: per-request scoring latency on one core, artifact load time, RSS growth.

    .venv/bin/python bench/router_latency.py [--data ../shared/routing/dev.jsonl] [--n 5000]

Scores every prompt of the data set (or built-in prompts when the file is missing) through
``LearnedClassifier.classify`` (normalize excluded) and prints p50/p90/p99/max in microseconds, for
one pass and for each request's fastest of ``--repeat`` passes (which removes the preemptions that a
shared machine adds to a single pass),
plus the long prompts alone (the longest 5% of the data, the slow ones), a coding agent's request (scored on
its task, ``gateway.classify.task``), a request at the
classifier's 8,000-character text limit, and the worst case for the character grams: 8,000
characters of words the artifact has never seen, new on every call (so the per-word memo never hits).
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def prompts(path: Path, n: int) -> list[str]:
    if not path.is_file():
        return ["What is the capital of France?", "Prove step by step that sqrt(2) is irrational."] * (n // 2)
    rows = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    return [str(r["prompt"]) for r in rows][:n]


def timed(classify: Callable[[Any], object], requests: Sequence[Any], repeat: int = 1) -> list[float]:
    """Microseconds per request; with ``repeat`` > 1, each request's fastest of that many passes (the cost
    of the work itself, without the preemptions a busy machine adds to single passes)."""
    best: list[float] = []
    for _ in range(repeat):
        samples = []
        for request in requests:
            t0 = time.perf_counter_ns()
            classify(request)
            samples.append((time.perf_counter_ns() - t0) / 1000)
        best = samples if not best else list(map(min, best, samples))
    return best


def unseen_words(rng: random.Random, chars: int = 8000) -> str:
    words: list[str] = []
    size = 0
    while size < chars:
        words.append("".join(rng.choice("bcdfghjklmnpqrstvwxz") for _ in range(rng.randint(4, 11))))
        size += len(words[-1]) + 1
    return " ".join(words)[:chars]


def agent_request(task: str) -> Any:
    """A coding agent's request (tests/classify/agent.py: a long system prompt, tool schemas, a reminder)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests/
    from gateway.routing.normalize import normalize
    from tests.classify.agent import agent_body

    return normalize("chat", orjson.dumps(agent_body(task)), {})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=Path("../shared/routing/dev.jsonl"))
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3, help="passes; each request's fastest is reported too")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core

    from gateway.classify.learned import LearnedClassifier
    from gateway.classify.loader import read_router_model
    from gateway.training.cli import default_artifact
    from gateway.training.train import chat_request

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
    samples = timed(classifier.classify, requests)
    q = statistics.quantiles(samples, n=100)
    best = timed(classifier.classify, requests, args.repeat)
    bq = statistics.quantiles(best, n=100)
    cut = sorted(len(t) for t in texts)[len(texts) * 95 // 100]
    long_requests = [r for r, t in zip(requests, texts, strict=True) if len(t) >= cut]
    long_samples = timed(classifier.classify, long_requests, max(args.repeat, 5))
    lq = statistics.quantiles(long_samples, n=100)
    worst = chat_request("The quick brown fox considers 42 theorems; " * 200)
    worst_samples = timed(classifier.classify, [worst] * 200)
    rng = random.Random(0)
    unseen = [chat_request(unseen_words(rng)) for _ in range(200)]
    unseen_samples = timed(classifier.classify, unseen)  # one pass: a repeat would hit the per-word memo
    agent = [agent_request(task) for task in ("say hi", "fix the race in reservations.py and add tests")] * 100
    agent_samples = timed(classifier.classify, agent, args.repeat)
    size = default_artifact().stat().st_size / 1e6
    print(f"learned router, {len(samples)} requests from {args.data if args.data.is_file() else 'built-in prompts'}")
    print(
        f"  score one request, one pass: p50 {q[49]:.0f} us  p90 {q[89]:.0f} us  p99 {q[98]:.0f} us  "
        f"max {max(samples):.0f} us"
    )
    print(
        f"  score one request, fastest of {args.repeat} passes: p50 {bq[49]:.0f} us  p90 {bq[89]:.0f} us  "
        f"p99 {bq[98]:.0f} us  max {max(best):.0f} us"
    )
    print(
        f"  longest 5% ({len(long_requests)} requests of {cut:,}+ characters, fastest of {max(args.repeat, 5)}): "
        f"p50 {lq[49]:.0f} us  "
        f"p99 {lq[98]:.0f} us  max {max(long_samples):.0f} us"
    )
    print(f"  8,000-character request: p50 {statistics.median(worst_samples):.0f} us  max {max(worst_samples):.0f} us")
    print(
        f"  8,000 characters of unseen words, new each call: p50 {statistics.median(unseen_samples):.0f} us  "
        f"p99 {statistics.quantiles(unseen_samples, n=100)[98]:.0f} us  max {max(unseen_samples):.0f} us"
    )
    print(
        f"  agent request (7.7k-character system prompt, 6 tools, reminder; scored on its task): "
        f"p50 {statistics.median(agent_samples):.0f} us  p99 {statistics.quantiles(agent_samples, n=100)[98]:.0f} us"
    )
    print(
        f"  artifact {size:.2f} MB, load {load_s * 1000:.0f} ms, RSS growth {growth:.1f} MB "
        f"(peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3:.0f} MB)"
    )


if __name__ == "__main__":
    main()
