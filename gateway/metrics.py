"""Prometheus metrics: a side channel fed after each request, never read by routing.

Label values come only from configuration (routes, tiers, models, deployments, tenants) and
fixed sets (status codes, outcomes), never from request content, so cardinality stays bounded.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "gateway_requests",
            "Requests answered, by outcome.",
            ["endpoint", "tenant", "route", "tier", "model", "deployment", "status"],
            registry=r,
        )
        self.duration = Histogram(
            "gateway_request_duration_seconds",
            "Time from request received to response complete.",
            ["endpoint", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.overhead = Histogram(
            "gateway_overhead_seconds",
            "Time spent in the gateway itself, upstream time excluded.",
            ["endpoint"],
            buckets=OVERHEAD_BUCKETS,
            registry=r,
        )
        self.attempts = Counter(
            "gateway_upstream_attempts",
            "Calls to upstream deployments, by outcome (ok or error code).",
            ["deployment", "outcome"],
            registry=r,
        )
        self.tokens = Counter(
            "gateway_tokens", "Tokens reported by upstreams.", ["deployment", "direction"], registry=r
        )
        self.cost = Counter("gateway_cost_usd", "Cost in USD at catalog prices.", ["tenant", "deployment"], registry=r)
        self.fallbacks = Counter(
            "gateway_fallbacks", "Requests that needed more than the first deployment.", ["route"], registry=r
        )
        self.policy_info = Gauge(
            "gateway_policy_info", "The loaded policy revision (value 1).", ["revision"], registry=r
        )
        self.in_flight = Gauge("gateway_in_flight_requests", "Requests being processed.", registry=r)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
