"""Micro-benchmark of the personal-data detectors: their cost per request on a 2 kB and a 100 kB prompt.

    .venv/bin/python bench/detect.py [--policies policies/examples/regulated] [--n 2000]

Runs the policy's detection (every detector its data classes list: the regulated pack has the five
built-in ones and a custom regex) the way ``decide`` does, on prose with numbers, dates, versions and
prices that hold no personal data (``clean``: every detector scans the whole text) and on the same
prose with a card number and an email address near its end (``hits``). Prints microseconds per
request (p50, p99; the thread's CPU time, so a busy machine's waits are not counted),
then the time of each detector alone on the 100 kB clean prompt, then three
hostile prompts (100 kB of digits, of ``a@``, of ``4 ``) that show the scan stays linear. No I/O.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``bench`` importable (``gateway`` may come from PYTHONPATH)
    sys.path.append(str(Path(__file__).resolve().parent.parent))

from gateway.policy.detect import Detection, Scanned
from gateway.policy.policy_set import PolicySet
from gateway.policyfiles.loader import load_policy_dir

REGULATED = Path(__file__).resolve().parent.parent / "policies" / "examples" / "regulated"
WORDS = [
    "the",
    "deployment",
    "of",
    "our",
    "scheduling",
    "service",
    "failed",
    "again",
    "after",
    "the",
    "upgrade",
    "to",
    "version",
    "3.11.7",
    "on",
    "2024-01-15",
    "at",
    "10:30,",
    "order",
    "48213",
    "shipped,",
    "invoice",
    "total",
    "$1,299.00",
    "(tax",
    "19.5%),",
    "build",
    "10.0.19045.3803,",
    "see",
    "page",
    "42",
    "and",
    "section",
    "7.2.1;",
    "please",
    "review",
    "this",
    "function",
    "and",
    "explain",
    "step",
    "by",
    "step",
    "how",
    "to",
    "optimise",
    "it",
    "for",
    "p99",
    "latency",
    "under",
    "250",
    "ms",
    "with",
    "64",
    "clients,",
    "1,000",
    "requests",
    "per",
    "second",
    "and",
    "a",
    "4096",
    "token",
    "context",
    "window",
]
HITS = " Refund card 4111 1111 1111 1111 and write to jane.doe@example.com when done. "


def prose(size: int, seed: int = 7) -> str:
    pick = random.Random(seed).choice
    words: list[str] = []
    length = 0
    while length < size:
        word = pick(WORDS)
        words.append(word)
        length += len(word) + 1
    return " ".join(words)[:size]


def with_hits(text: str) -> str:
    cut = len(text) - len(HITS) - 200
    return text[:cut] + HITS + text[cut + len(HITS) :]


def timed(run: Callable[[], object], n: int) -> list[float]:
    """Microseconds of this thread's CPU per run: on a shared machine, wall time also counts the waits for a core."""
    for _ in range(min(n, 50)):
        run()
    samples = []
    for _ in range(n):
        started = time.thread_time_ns()
        run()
        samples.append((time.thread_time_ns() - started) / 1000)
    return samples


def quantiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=100)
    return statistics.median(samples), cuts[98]


def scan(policy: PolicySet, text: str) -> Callable[[], object]:
    tenant_default = next(iter(policy.data_classes))
    return lambda: policy.detection.scan(text, tenant_default, policy.data_class_rank)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policies", type=Path, default=REGULATED)
    parser.add_argument("--n", type=int, default=2000, help="requests per cell (100 kB cells run n/10)")
    args = parser.parse_args()
    policy = load_policy_dir(args.policies, {})
    detectors = sorted({d for e in policy.detection.escalations for d in e.detectors})
    print(f"detectors: {', '.join(detectors)} ({args.policies})")
    print(f"{'prompt':<16}{'found':<34}{'p50 µs':>10}{'p99 µs':>10}{'ns/char':>9}")
    for size in (2_000, 100_000):
        clean = prose(size)
        for label, text in (("clean", clean), ("hits", with_hits(clean))):
            found = scan(policy, text)()
            assert (found is None) == (label == "clean"), f"{label} text: {found}"
            p50, p99 = quantiles(timed(scan(policy, text), args.n if size < 10_000 else max(20, args.n // 10)))
            what = "nothing" if found is None else f"{', '.join(found.detectors)} -> {found.data_class}"  # type: ignore[attr-defined]
            print(f"{size // 1000:>3} kB {label:<10}{what:<34}{p50:>10.1f}{p99:>10.1f}{p50 * 1000 / size:>9.1f}")
    _per_detector(policy.detection, prose(100_000), detectors, max(20, args.n // 10))
    _hostile(policy, max(10, args.n // 100))


def _per_detector(detection: Detection, text: str, names: list[str], n: int) -> None:
    print("\neach detector alone, 100 kB clean prompt:")
    for name in names:
        finder = detection.finders[name]
        p50, p99 = quantiles(timed(lambda f=finder: f(Scanned(text)), n))  # type: ignore[misc]
        print(f"  {name:<12}{p50:>10.1f}{p99:>10.1f} µs")


def _hostile(policy: PolicySet, n: int) -> None:
    print("\nhostile 100 kB prompts (all detectors, p50 / p99 µs):")
    for label, text in (("digits", "1" * 100_000), ("a@ repeated", "a@" * 50_000), ("'4 ' repeated", "4 " * 50_000)):
        p50, p99 = quantiles(timed(scan(policy, text), n))
        print(f"  {label:<16}{p50:>10.1f}{p99:>10.1f}")


if __name__ == "__main__":
    main()
