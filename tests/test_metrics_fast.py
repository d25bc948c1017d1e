"""The metrics' direct adders give exactly what prometheus_client's own inc and observe give."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

from gateway.metrics import LATENCY_BUCKETS, OVERHEAD_BUCKETS, _adder, _observer

VALUES = (0.0, 0.0001, 0.00025, 0.0003, 0.005, 0.0049999, 0.0050001, 1, 2.5, 60, 120, 121.5, 1e9)


def exposition(fast: bool) -> bytes:
    registry = CollectorRegistry()
    counter = Counter("c", "c", ["a"], registry=registry)
    latency = Histogram("l", "l", ["a"], buckets=LATENCY_BUCKETS, registry=registry)
    overhead = Histogram("o", "o", ["a"], buckets=OVERHEAD_BUCKETS, registry=registry)
    for label in ("x", "y"):
        add = _adder(counter.labels(label)) if fast else counter.labels(label).inc
        observe_latency = _observer(latency.labels(label)) if fast else latency.labels(label).observe
        observe_overhead = _observer(overhead.labels(label)) if fast else overhead.labels(label).observe
        for value in VALUES:
            add(value)
            observe_latency(value)
            observe_overhead(value)
    return b"\n".join(line for line in generate_latest(registry).splitlines() if b"_created" not in line)


def test_direct_adders_expose_the_same_samples_as_the_public_methods() -> None:
    assert exposition(fast=True) == exposition(fast=False)


def test_an_unknown_layout_falls_back_to_the_public_methods() -> None:
    class Child:
        def inc(self, amount: float) -> None: ...
        def observe(self, amount: float) -> None: ...

    child = Child()
    assert _adder(child) == child.inc  # type: ignore[arg-type]
    assert _observer(child) == child.observe  # type: ignore[arg-type]
