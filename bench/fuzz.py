"""The fuzz suite of tests/test_fuzz.py, longer: many cases per endpoint against a real gateway on loopback.

    .venv/bin/python -m bench.fuzz [--cases 100000] [--seed 0] [--endpoints chat,messages] [--workers 8]
    .venv/bin/python -m bench.fuzz --schemathesis [--cases 20000] [--seed 0]

The gateway (the example policies) and the four stand-in upstreams run in this process, as in the tests.
Cases are drawn by the same hypothesis strategies in batches, each batch seeded from ``--seed`` (the same
command draws the same cases), and sent by a few threads. Prints, per endpoint, the cases and the statuses
seen, every failure (a 5xx, a traceback, a body of the wrong shape) with the bytes that caused it, and the
process's RSS before and after: memory that grows with the cases would show there. Exits 1 on a failure.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import resource
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hypothesis import given, seed, settings

from gateway.http.app import create_app
from gateway.settings import Settings
from gateway.standin.anthropic_wire import create_anthropic_app
from gateway.standin.control import Control
from gateway.standin.openai_wire import create_openai_app
from gateway.standin.server import ThreadedServer
from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY, Upstreams
from tests.http.test_fuzz import FUZZ, SURFACES, WORKERS, Case, Surface, ThreadClients, cases, judge

POLICIES = Path(__file__).resolve().parent.parent / "policies"
BATCH = 500  # cases drawn, then sent, at a time: a batch can hold bodies of a few hundred KB each
SHOWN_FAILURES = 5


@contextlib.contextmanager
def gateway() -> Iterator[tuple[str, Upstreams]]:
    """The stand-ins and a gateway in front of them, as tests/conftest.py builds them."""
    controls = {name: Control() for name in ("a", "b", "c", "anthropic")}
    apps = {
        "a": create_openai_app(controls["a"], name="vllm-a"),
        "b": create_openai_app(controls["b"], name="vllm-b"),
        "c": create_openai_app(controls["c"], name="openai", api_key=OPENAI_KEY),
        "anthropic": create_anthropic_app(controls["anthropic"], api_key=ANTHROPIC_KEY),
    }
    with contextlib.ExitStack() as stack:
        servers = {name: stack.enter_context(ThreadedServer(app)) for name, app in apps.items()}
        upstreams = Upstreams({name: server.url for name, server in servers.items()}, controls)
        app = create_app(Settings(policies=POLICIES), env=upstreams.example_env())
        yield stack.enter_context(ThreadedServer(app)).url, upstreams


def draw(surface: Surface, count: int, batch_seed: int) -> list[Case]:
    drawn: list[Case] = []

    @seed(batch_seed)
    @settings(FUZZ, max_examples=count, derandomize=False)
    @given(case=cases(surface))
    def collect(case: Case) -> None:
        drawn.append(case)

    collect()
    return drawn


def fuzz(clients: ThreadClients, upstreams: Upstreams, surface: Surface, total: int, start: int) -> Counter[str]:
    seen: Counter[str] = Counter()
    with ThreadPoolExecutor(WORKERS) as pool:
        for batch, done in enumerate(range(0, total, BATCH)):
            drawn = draw(surface, min(BATCH, total - done), start + batch)
            seen.update(pool.map(lambda case: judge(clients, surface, case), drawn))
            upstreams.reset()  # the stand-ins record every call
    return seen


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=100_000, help="cases in all, shared among the endpoints")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--endpoints", default=",".join(SURFACES), help=f"some of {', '.join(SURFACES)}")
    parser.add_argument(
        "--schemathesis", action="store_true", help="draw the cases from /openapi.json with schemathesis instead, "
        "--cases shared among its operations, half schema-valid and half schema-breaking (tests/http/test_openapi.py)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.schemathesis:
        sys.exit(by_document(args.cases, args.seed))
    names = args.endpoints.split(",")
    logging.disable(logging.WARNING)  # every refused case logs a warning; the counts say it all
    failed = False
    with gateway() as (url, upstreams), contextlib.closing(ThreadClients(url)) as clients:
        before = rss_mb()
        print(f"RSS before: {before:.0f} MB")
        for index, name in enumerate(names):
            began = time.perf_counter()
            seen = fuzz(
                clients, upstreams, SURFACES[name], args.cases // len(names), args.seed * 10_000 + index * 1_000
            )
            failures = sorted(verdict for verdict in seen if verdict.startswith("FAIL"))
            statuses = {k: v for k, v in sorted(seen.items()) if not k.startswith("FAIL")}  # a failure names its case
            spent = time.perf_counter() - began
            print(f"{SURFACES[name].path}: {seen.total()} cases in {spent:.0f} s, statuses {statuses}, ", end="")
            print(f"failures {sum(seen[f] for f in failures)}, RSS {rss_mb():.0f} MB")
            for failure in failures[:SHOWN_FAILURES]:
                print("   ", failure[:2_000])
            failed = failed or bool(failures)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"RSS after: {rss_mb():.0f} MB (peak {peak:.0f} MB, before {before:.0f} MB)")
    sys.exit(1 if failed else 0)


def by_document(total: int, seed_base: int) -> int:
    """schemathesis against the gateway's own OpenAPI document, ``total`` cases shared among its operations."""
    from tests.http.test_openapi import MODES, draw, operations, run, summary

    logging.disable(logging.WARNING)
    found = operations()
    per_operation = max(total // len(found), 2)
    failed = False
    with gateway() as (url, upstreams):
        before = rss_mb()
        print(f"RSS before: {before:.0f} MB; {len(found)} operations, {per_operation} cases each")
        for index, operation in enumerate(found):
            began, seen = time.perf_counter(), Counter[str]()
            for batch, done in enumerate(range(0, per_operation, BATCH)):
                half = max(min(BATCH, per_operation - done) // 2, 1)
                batch_seed = seed_base * 10_000 + index * 1_000 + batch
                for mode in MODES:
                    seen.update(run(url, draw(operation, mode, half, batch_seed, by_seed=True)))
                upstreams.reset()  # the stand-ins record every call
            statuses, failures = summary(seen)
            spent = time.perf_counter() - began
            print(f"{operation.label}: {seen.total()} cases in {spent:.0f} s, statuses {statuses}, ", end="")
            print(f"failures {sum(seen[f] for f in failures)}, RSS {rss_mb():.0f} MB")
            for failure in failures[:SHOWN_FAILURES]:
                print("   ", failure[:2_000])
            failed = failed or bool(failures)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"RSS after: {rss_mb():.0f} MB (peak {peak:.0f} MB, before {before:.0f} MB)")
    return 1 if failed else 0


if __name__ == "__main__":
    main()
