"""The metrics' direct adders give exactly what prometheus_client's own inc and observe give; what a record adds."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

from gateway.observe.metrics import LATENCY_BUCKETS, OVERHEAD_BUCKETS, Metrics, _adder, _observer
from gateway.observe.record import RequestRecord
from gateway.policyfiles.loader import load_policy_dir
from tests.factories import small_policy

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


def test_estimated_usage_is_counted_by_reason(tmp_path: Path) -> None:
    policy = load_policy_dir(small_policy(tmp_path, {"a": "http://a/v1", "b": "http://b/v1", "c": "http://c/v1"}), {})
    base = RequestRecord(
        request_id="r", time=0.0, endpoint="chat", tenant="open", route="none", tier="none", model="us-open",
        status=200, error_code=None, decision=None, deployment=policy.deployments["us-open-a"], attempts=(),
        input_tokens=2000, output_tokens=5, cost_usd=0.0004, counterfactual_cost_usd=0.0004, seconds=0.1,
        overhead_seconds=0.0, ttft_seconds=None, denied_rules=(), policy_revision="r",
    )  # fmt: skip
    metrics = Metrics()
    for reason in ("client_cancelled", "client_cancelled", "usage_invalid", None):
        metrics.record(replace(base, usage_estimated=reason))
    text = metrics.exposition().decode()
    dep = 'deployment="us-open-a"'
    assert f'gateway_usage_estimated_total{{{dep},reason="client_cancelled",tenant="open"}} 2.0' in text
    assert f'gateway_usage_estimated_total{{{dep},reason="usage_invalid",tenant="open"}} 1.0' in text
    assert f'gateway_tokens_total{{{dep},direction="input",tenant="open"}} 8000.0' in text, "estimates count too"
