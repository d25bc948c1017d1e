"""Prometheus metrics: a side channel fed after each request, never read by routing.

Label values come only from configuration (tenants, routes, tiers, models, vendors, origins,
jurisdictions, deployments) and fixed sets (status codes, error codes, rule names), never from
request content, so cardinality stays bounded.

With several worker processes, set ``PROMETHEUS_MULTIPROC_DIR`` (``gateway serve --workers N``
does it): every process writes its samples there and ``/metrics`` aggregates them.
"""

from __future__ import annotations

import bisect
import math
import os
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client.exposition import generate_latest

from gateway.observe.record import RequestRecord

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
BREAKER_VALUES = {"closed": 0, "half_open": 1, "open": 2}
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)
REQUEST_LABELS = (
    "endpoint", "tenant", "route", "tier", "model", "vendor", "origin", "jurisdiction", "deployment", "self_hosted",
    "status",
)  # fmt: skip


def _adder(child: Counter) -> Callable[[float], None]:
    """``child.inc``, minus the per-call checks (observable, non-negative) that hold by construction here.

    prometheus_client's ``Counter.inc`` and ``Histogram.observe`` run four or five Python frames each,
    ~5% of a request's CPU when the process wakes cold (py-spy, one client against a 50 ms upstream).
    The value objects are the same ones ``inc`` would update (in-process or multiprocess), so the
    exposition is identical (tests/test_metrics_fast.py); an unknown prometheus_client layout falls back
    to the public methods."""
    value = getattr(child, "_value", None)
    return child.inc if value is None or not callable(getattr(value, "inc", None)) else value.inc


def _observer(child: Histogram) -> Callable[[float], None]:
    """``child.observe``: the sum and the first bucket whose bound is >= the value (the last is +Inf)."""
    try:
        total, bounds = child._sum.inc, list(child._upper_bounds)
        buckets = [bucket.inc for bucket in child._buckets]
    except AttributeError:
        return child.observe
    if len(buckets) != len(bounds) or bounds[-1] != math.inf:
        return child.observe

    def observe(amount: float) -> None:
        total(amount)
        buckets[bisect.bisect_left(bounds, amount)](1)

    return observe


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("gateway_requests", "Requests answered, by outcome.", REQUEST_LABELS, registry=r)
        self.duration = Histogram(
            "gateway_request_duration_seconds", "Time from request received to response complete.",
            ["endpoint", "route", "tier"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.ttft = Histogram(
            "gateway_time_to_first_token_seconds", "Streams: time from request received to the first chunk sent.",
            ["route", "deployment"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.overhead = Histogram(
            "gateway_overhead_seconds", "Time spent in the gateway itself, upstream time excluded.",
            ["endpoint"], buckets=OVERHEAD_BUCKETS, registry=r,
        )  # fmt: skip
        self.upstream = Histogram(
            "gateway_upstream_duration_seconds", "One call to a deployment: until its answer (streams: first chunk).",
            ["deployment", "outcome"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.retries = Counter(
            "gateway_retries", "Calls repeated on the same deployment, by the error that caused them.",
            ["deployment", "reason"], registry=r,
        )  # fmt: skip
        self.fallbacks = Counter(
            "gateway_fallbacks", "Moves to the next allowed deployment, by the error that caused them.",
            ["route", "deployment", "reason"], registry=r,
        )  # fmt: skip
        self.tokens = Counter(
            "gateway_tokens", "Tokens reported by upstreams (or estimated: gateway_usage_estimated).",
            ["tenant", "deployment", "direction"], registry=r,
        )  # fmt: skip
        self.usage_estimated = Counter(
            "gateway_usage_estimated", "Answers whose tokens the gateway estimated, as the upstream's usage did "
            "not come: client_cancelled, upstream_failed (streams), usage_missing, usage_invalid.",
            ["tenant", "deployment", "reason"], registry=r,
        )  # fmt: skip
        self.cost = Counter(
            "gateway_cost_usd", "Cost in USD at catalog prices.", ["tenant", "route", "deployment"], registry=r
        )
        self.counterfactual = Counter(
            "gateway_counterfactual_cost_usd",
            "What the same tokens would have cost on the route's baseline model; savings = this - cost.",
            ["tenant", "route"], registry=r,
        )  # fmt: skip
        self.denials = Counter(
            "gateway_policy_denials", "Requests in which a rule denied at least one candidate, or refused the "
            "request itself (limits.max_prompt_chars), by rule.",
            ["tenant", "rule"], registry=r,
        )  # fmt: skip
        self.refusals = Counter(
            "gateway_policy_refusals", "Requests refused because no deployment was allowed (403).",
            ["tenant", "route"], registry=r,
        )  # fmt: skip
        self.deployment_state = Gauge(
            "gateway_deployment_state", "Circuit breaker of each deployment: 0 closed, 1 half-open, 2 open.",
            ["deployment"], registry=r, multiprocess_mode="max",
        )  # fmt: skip
        self.errors = Counter(
            "gateway_errors",
            "Requests answered with an error, by error code.",
            ["endpoint", "route", "code"],
            registry=r,
        )
        self.budget_used = Gauge(
            "gateway_budget_used_ratio", "Share of each tenant budget spent or reserved in the current window.",
            ["tenant", "window"], registry=r, multiprocess_mode="livemax",
        )  # fmt: skip
        self.skips = Counter(
            "gateway_deployment_skips", "Allowed deployments passed over: breaker open or half-open, at a cap.",
            ["deployment", "reason"], registry=r,
        )  # fmt: skip
        self.rate_limited = Counter(
            "gateway_rate_limited", "Requests refused by a tenant or key rate limit (429).", ["tenant"], registry=r
        )
        self.budget_rejections = Counter(
            "gateway_budget_rejections", "Requests refused because a budget is used up (429 insufficient_quota).",
            ["tenant"], registry=r,
        )  # fmt: skip
        self.cache = Counter(
            "gateway_cache_requests", "Cacheable requests, by result (hit or miss).", ["tenant", "result"], registry=r
        )
        self.state_errors = Counter(
            "gateway_state_errors", "Calls to the shared state store that failed (Redis down or slow), by feature.",
            ["feature"], registry=r,
        )  # fmt: skip
        self.settlements_pending = Gauge(
            "gateway_settlements_pending", "Settlements (a finished request's spend and tokens) waiting in this "
            "process for the shared state store to answer; applied once it does.", registry=r,
            multiprocess_mode="livesum",
        )  # fmt: skip
        self.settlements_dropped = Counter(
            "gateway_settlements_dropped", "Settlements given up (the queue was full, or one failed with an "
            "error): that spend and those tokens were never counted in budgets and rate limits.", registry=r,
        )  # fmt: skip
        self.upstream_limits = Counter(
            "gateway_upstream_limits", "Upstream answers refused at one of the gateway's limits: answer_bytes, "
            "stream_bytes, encoded_bytes, unread_bytes, inflate_ratio, head_bytes, stream_line_bytes, "
            "stream_read_timeout.",
            ["deployment", "limit"], registry=r,
        )  # fmt: skip
        self.health_probes = Counter(
            "gateway_health_probes", "Active health checks of deployments, by result (ok or the failure's code).",
            ["deployment", "result"], registry=r,
        )  # fmt: skip
        self.health = Gauge(
            "gateway_deployment_health", "The last active health check of each deployment: 1 up, 0 down.",
            ["deployment"], registry=r, multiprocess_mode="min",
        )  # fmt: skip
        self.in_flight = Gauge(
            "gateway_in_flight_requests", "Requests being processed.", registry=r, multiprocess_mode="livesum"
        )
        self.policy_info = Gauge(
            "gateway_policy_info", "The loaded policy revision (value 1).", ["revision"], registry=r,
            multiprocess_mode="max",
        )  # fmt: skip
        self.reloads = Counter(
            "gateway_policy_reloads", "Policy reloads, by outcome (success or failure).", ["outcome"], registry=r
        )
        self._budget_labels: set[tuple[str, str]] = set()
        self._children: dict[tuple[object, tuple[str, ...]], Any] = {}
        self.reloads.labels("success")
        self.reloads.labels("failure")

    def exposition(self) -> bytes:
        directory = multiprocess_dir()
        if directory is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        return generate_latest(registry)

    def policy_loaded(self, revision: str, previous: str | None) -> None:
        if previous is not None and previous != revision:
            self.policy_info.remove(previous)
        self.policy_info.labels(revision).set(1)

    def record(self, rec: RequestRecord) -> None:
        """Count one finished request."""
        dep = rec.deployment
        labels = (
            rec.endpoint, rec.tenant, rec.route, rec.tier, rec.model,
            dep.model.vendor if dep else "none", dep.model.origin if dep else "none",
            dep.spec.jurisdiction if dep else "none", dep.id if dep else "none",
            ("true" if dep.spec.self_hosted else "false") if dep else "none", str(rec.status),
        )  # fmt: skip
        self._add(self.requests, *labels)(1)
        if rec.status >= 400:
            self._add(self.errors, rec.endpoint, rec.route, rec.error_code or "error")(1)
        self._observe(self.duration, rec.endpoint, rec.route, rec.tier)(rec.seconds)
        self._observe(self.overhead, rec.endpoint)(rec.overhead_seconds)
        if rec.ttft_seconds is not None and dep is not None:
            self._observe(self.ttft, rec.route, dep.id)(rec.ttft_seconds)
        self._attempts(rec)
        for rule in rec.denied_rules:
            self._add(self.denials, rec.tenant, rule)(1)
        if rec.status == 403 and rec.denied_rules:
            self._add(self.refusals, rec.tenant, rec.route)(1)
        if rec.error_code == "rate_limit_exceeded" and not rec.attempts:
            self._add(self.rate_limited, rec.tenant)(1)
        elif rec.error_code == "insufficient_quota":
            self._add(self.budget_rejections, rec.tenant)(1)
        if rec.cache is not None:
            self._add(self.cache, rec.tenant, rec.cache)(1)
        if dep is not None and (rec.input_tokens or rec.output_tokens):
            self._add(self.tokens, rec.tenant, dep.id, "input")(rec.input_tokens)
            self._add(self.tokens, rec.tenant, dep.id, "output")(rec.output_tokens)
            self._add(self.cost, rec.tenant, rec.route, dep.id)(rec.cost_usd)
            self._add(self.counterfactual, rec.tenant, rec.route)(rec.counterfactual_cost_usd)
        if dep is not None and rec.usage_estimated is not None:
            self._add(self.usage_estimated, rec.tenant, dep.id, rec.usage_estimated)(1)

    def _attempts(self, rec: RequestRecord) -> None:
        attempts = rec.attempts
        for index, attempt in enumerate(attempts):
            if attempt.skipped:
                self._add(self.skips, attempt.deployment, attempt.code.removeprefix("skipped_"))(1)
                continue
            self._observe(self.upstream, attempt.deployment, attempt.code)(attempt.seconds)
            if attempt.error is None or index + 1 >= len(attempts):
                continue
            if attempts[index + 1].deployment == attempt.deployment:
                self._add(self.retries, attempt.deployment, attempt.code)(1)
            else:
                self._add(self.fallbacks, rec.route, attempt.deployment, attempt.code)(1)

    def _add(self, metric: Counter, *values: str) -> Callable[[float], None]:
        """What adds to ``metric.labels(*values)``, remembered (label values come from configuration, so
        the set is bounded): the child's value itself, past ``Counter.inc``'s checks (see ``_adder``)."""
        return self._children.get((metric, values)) or self._remember(metric, values, _adder)

    def _observe(self, metric: Histogram, *values: str) -> Callable[[float], None]:
        return self._children.get((metric, values)) or self._remember(metric, values, _observer)

    def _remember(self, metric: Any, values: tuple[str, ...], build: Callable[[Any], Any]) -> Callable[[float], None]:
        update: Callable[[float], None] = build(metric.labels(*values))
        self._children[(metric, values)] = update
        return update

    def budgets(self, used: dict[tuple[str, str], float]) -> None:
        for stale in self._budget_labels - used.keys():  # tenants whose budget left the policy
            self.budget_used.remove(*stale)
        for (tenant, window), ratio in used.items():
            self.budget_used.labels(tenant, window).set(ratio)
        self._budget_labels = set(used)

    def breakers(self, statuses: dict[str, str]) -> None:
        for deployment, status in statuses.items():
            self.deployment_state.labels(deployment).set(BREAKER_VALUES.get(status, 0))
