"""The Prometheus config, the alert rules and the Grafana dashboard, against a real Prometheus
scraping a real ``gateway serve`` process.

A panel that shows nothing is a failed test: after varied traffic (tenants, tiers, streams,
embeddings, a refusal, upstream faults that cause retries, fallbacks, open circuit breakers and
5xx, two policy reloads, one of them broken, a tenant over its rate limit, one whose budget is
used up, and cache hits and misses), every PromQL expression of the dashboard must return a value
other than zero. The alerts this traffic provokes must go pending or firing; the thresholds and
durations of all of them are checked by promtool's rule unit tests.

Needs ``prometheus`` and ``promtool`` (Debian package ``prometheus``; ``.ci/run`` installs it).
Without them the tests skip, except in CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import openai
import pytest
import yaml

from gateway.standin.control import Fault
from tests.conftest import ClientFactory, Upstreams
from tests.deploy import dashboard
from tests.deploy.dashboard import DEPLOY
from tests.factories import POLICIES, REPO, tenant

PROMETHEUS_DIR = DEPLOY / "prometheus"
PROMETHEUS_YML = PROMETHEUS_DIR / "prometheus.yml"
RULES = PROMETHEUS_DIR / "rules" / "switchyard.yml"
RULE_TESTS = PROMETHEUS_DIR / "tests" / "switchyard_test.yml"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

SCRAPES = 8  # scrapes of the gateway under traffic before the queries: plenty for rate(...[30s])
START_SECONDS = 30.0
SETTLE_SECONDS = 15.0
# The traffic provokes these; SwitchyardGatewayDown (the gateway stays up), SwitchyardFallbackRateHigh
# (the breaker stops fallbacks from a failing deployment within a few requests) and
# SwitchyardSharedStateUnavailable (the in-process store does not fail) only in the unit tests.
PROVOKED = {
    "SwitchyardBreakerOpen", "SwitchyardErrorRateHigh", "SwitchyardPolicyReloadFailed", "SwitchyardBudgetNearlySpent",
}  # fmt: skip
MAY_BE_ZERO = {"In flight"}  # panels whose true value between two requests is 0

HI = [{"role": "user", "content": "What is the capital of France?"}]
HARD = [
    {
        "role": "user",
        "content": "Prove step by step that the sum of the first n odd numbers is n^2; analyze the trade-offs "
        "of induction versus a combinatorial argument, design a plan, justify it and evaluate the edge cases.",
    }
]
QWEN = "Qwen/Qwen3-32B"  # what the qwen3-32b-vllm deployment asks stand-in `a` for
CONFIDENTIAL = {"x-gateway-data-class": "confidential"}
# Tenants of the test only, beside the shipped ones: over a rate limit, over a budget, with a response cache.
LIMITED, BUDGETED, CACHED = "limited-key", "budgeted-key", "cached-key"
# A daily budget of about 14 requests of BUDGET_REQUEST (gpt-4.1: $2 in, $8 out per million tokens; reserved
# before the call at the prompt estimate and max_tokens, about $0.00014): when a request no longer fits, more
# than 90% of it is spent, so SwitchyardBudgetNearlySpent goes pending.
TEST_TENANTS = {
    "limited": tenant(LIMITED, limits={"rpm": 2}),
    "budgeted": tenant(BUDGETED, budget={"daily_usd": 0.002, "monthly_usd": 1}),
    "cached": tenant(CACHED, cache={"ttl_seconds": 60}),
}
BUDGET_REQUEST: dict[str, Any] = {"model": "gpt-4.1", "messages": HI, "max_tokens": 16}
BUDGET_REQUESTS_MAX = 40
KEYS = ("demo-key", "demo-us-only", "acme-example-key", "helios-example-key", LIMITED, BUDGETED, CACHED)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Tools:
    prometheus: str
    promtool: str


@pytest.fixture(scope="module")
def tools() -> Tools:
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if prometheus and promtool:
        return Tools(prometheus, promtool)
    missing = "prometheus and promtool are not on PATH (Debian: apt-get install prometheus)"
    if IN_CI:
        pytest.fail(f"{missing}; .ci/run installs them, and CI must run these tests")
    pytest.skip(missing)


def promtool(tools: Tools, *args: str) -> str:
    done = subprocess.run([tools.promtool, *args], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}{done.stderr}"
    return done.stdout


def test_promtool_accepts_the_shipped_config_and_rules(tools: Tools) -> None:
    assert "SUCCESS" in promtool(tools, "check", "config", str(PROMETHEUS_YML))
    assert "SUCCESS" in promtool(tools, "check", "rules", str(RULES))


def test_the_alert_rules_pass_their_promtool_unit_tests(tools: Tools) -> None:
    """Thresholds and `for` durations: a breaker that never closes alerts, one that recovers does not, ..."""
    assert "SUCCESS" in promtool(tools, "test", "rules", str(RULE_TESTS))


def test_every_dashboard_query_returns_data_from_a_live_gateway(
    tools: Tools, upstreams: Upstreams, make_client: ClientFactory, tmp_path: Path
) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies)
    (policies / "tenants-deploy-test.yaml").write_text(yaml.safe_dump({"tenants": TEST_TENANTS}, sort_keys=False))
    with (
        gateway_process(policies, upstreams.example_env(), tmp_path / "gateway.log") as url,
        prometheus_process(tools, scrape_config(url, tmp_path), tmp_path) as prom,
    ):
        traffic = Traffic(url, upstreams, make_client, policies)
        while not traffic.done(scrapes := prom.scrapes()):
            traffic.round(scrapes)
        until(lambda: prom.total_requests() == traffic.sent, "Prometheus to scrape every request", SETTLE_SECONDS)
        until(lambda: not prom.quiet_alerts(), "the provoked alerts", SETTLE_SECONDS, explain=prom.quiet_alerts)

        rules = prom.rules()
        assert [f"{r['name']}: {r.get('lastError')}" for r in rules if r["health"] != "ok"] == []
        board = dashboard.load()
        problems = [prom.shows_nothing(q.where, q.promql(), q.panel in MAY_BE_ZERO) for q in dashboard.queries(board)]
        problems += [prom.shows_nothing(r["name"], r["name"]) for r in rules if r["type"] == "recording"]
        problems += prom.empty_variables(dashboard.variables(board))
        assert [p for p in problems if p] == [], "these show nothing:\n" + "\n".join(p for p in problems if p)


# -- traffic ------------------------------------------------------------------------------------------------------


class Traffic:
    """Every kind of request the dashboard has a panel for, in rounds, with faults at set scrape counts.

    A deployment's breaker opens after 5 failed attempts within 30 s (the default) and one failing
    request makes 3 attempts (2 retries), so qwen can fail for two requests before it is skipped.
    Those two come two scrapes apart: rate() ignores the first value of a series, so the counters
    they create must increase again after a scrape has seen them. For the same reason every round
    sends a request over the rate limit and one over the budget (used up in the first round), and
    asks the cache for a new answer twice (a miss, then a hit).
    """

    def __init__(self, url: str, upstreams: Upstreams, make_client: ClientFactory, policies: Path) -> None:
        self.clients = {key: make_client(url, key) for key in KEYS}
        self.qwen, self.openai = upstreams.controls["a"], upstreams.controls["c"]
        self.policies = policies
        self.sent = 0
        self.rounds = 0
        # scrape count -> burst, run once
        self.events = {0: self.spend_the_budget, 2: self.first_faults, 4: self.second_faults}
        self.openai.inject(Fault(status=500, times=1000, model="gpt-4.1-mini"))  # always down

    def done(self, scrapes: int) -> bool:
        return scrapes >= SCRAPES and not self.events

    def round(self, scrapes: int) -> None:
        for at in [at for at in self.events if scrapes >= at]:
            self.events.pop(at)()
        self.chat("demo-key", HI)  # qwen, until its breaker opens; then gpt-oss
        self.stream("demo-key", HI)
        self.chat("demo-key", HARD)  # gpt-4.1
        self.stream("demo-key", HARD)
        self.chat("demo-us-only", HI)  # qwen denied: origin CN
        self.refused("demo-us-only", "qwen3-32b")
        self.chat("acme-example-key", HI)
        self.chat("acme-example-key", HARD)
        self.chat("helios-example-key", HARD, headers=CONFIDENTIAL)  # frontier denied: route fallback gpt-oss
        self.stream("helios-example-key", HI, headers=CONFIDENTIAL)
        self.chat("demo-key", HI, model="claude-sonnet-4")  # through litellm to the Anthropic stand-in
        self.embed("demo-key", "qwen3-embedding-8b")
        self.fails("demo-key", "gpt-4.1-mini")  # 3 failed attempts; once its breaker is open, skipped
        self.fails("acme-example-key", "gpt-4.1-mini")  # keeps 5xx above 5% of the traffic: SwitchyardErrorRateHigh
        self.chat_or_refused(LIMITED, "rate_limit_exceeded", model="auto", messages=HI)  # 2 a minute pass
        self.chat_or_refused(BUDGETED, "insufficient_quota", **BUDGET_REQUEST)
        again = [{"role": "user", "content": f"What is the capital of France? (round {self.rounds})"}]
        self.chat(CACHED, again)  # a miss
        self.chat(CACHED, again)  # a hit (a miss if a policy reload came in between: a new revision)
        self.rounds += 1

    def spend_the_budget(self) -> None:
        """Requests of the budgeted tenant until one is refused with insufficient_quota."""
        for _ in range(BUDGET_REQUESTS_MAX):
            if self.chat_or_refused(BUDGETED, "insufficient_quota", **BUDGET_REQUEST):
                return
        raise AssertionError(f"{BUDGET_REQUESTS_MAX} requests did not use up the budget of {TEST_TENANTS['budgeted']}")

    def first_faults(self) -> None:
        """qwen fails all 3 attempts: the request falls back to gpt-oss. A good policy change."""
        self.qwen.inject(Fault(status=500, times=3, model=QWEN))
        self.chat("demo-key", HI)
        with (self.policies / "limits.yaml").open("a") as file:
            file.write("# touched by tests/deploy: a new revision\n")

    def second_faults(self) -> None:
        """The same for a stream (before its first byte): qwen's breaker opens. A broken policy change."""
        self.qwen.inject(Fault(status=500, times=3, model=QWEN))
        self.stream("demo-key", HI)
        (self.policies / "broken.yaml").write_text("tenantz: {}\n")

    def chat(self, key: str, messages: Any, model: str = "auto", headers: Mapping[str, str] | None = None) -> None:
        self.sent += 1
        self.clients[key].chat.completions.create(model=model, messages=messages, extra_headers=headers)

    def chat_or_refused(self, key: str, code: str, **request: Any) -> bool:
        """A request that may be refused with a 429 of this error code: True when it was."""
        self.sent += 1
        try:
            self.clients[key].chat.completions.create(**request)
        except openai.RateLimitError as refused:
            assert refused.code == code, refused
            return True
        return False

    def stream(self, key: str, messages: Any, headers: Mapping[str, str] | None = None) -> None:
        self.sent += 1
        chunks = self.clients[key].chat.completions.create(
            model="auto", messages=messages, stream=True, stream_options={"include_usage": True}, extra_headers=headers
        )
        with chunks:
            assert list(chunks)

    def embed(self, key: str, model: str) -> None:
        self.sent += 1
        self.clients[key].embeddings.create(model=model, input="switchyard")

    def refused(self, key: str, model: str) -> None:
        self.sent += 1
        with pytest.raises(openai.PermissionDeniedError):
            self.clients[key].chat.completions.create(model=model, messages=HI)  # type: ignore[arg-type]

    def fails(self, key: str, model: str) -> None:
        self.sent += 1
        with pytest.raises(openai.APIStatusError) as failed:
            self.clients[key].chat.completions.create(model=model, messages=HI)  # type: ignore[arg-type]
        assert failed.value.status_code >= 500


# -- Prometheus -----------------------------------------------------------------------------------------------------


@dataclass
class Prometheus:
    http: httpx.Client

    def query(self, promql: str) -> list[dict[str, Any]]:
        answer = self.http.get("/api/v1/query", params={"query": promql})
        body = answer.json()
        assert answer.status_code == 200 and body["status"] == "success", f"{promql}: {answer.text}"
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def scalar(self, promql: str) -> float:
        result = self.query(promql)
        return float(result[0]["value"][1]) if result else 0.0

    def scrapes(self) -> int:
        return int(self.scalar('sum(count_over_time(up{job="switchyard"}[5m]))'))

    def total_requests(self) -> int:
        return int(self.scalar("sum(gateway_requests_total)"))

    def rules(self) -> list[dict[str, Any]]:
        groups = self.http.get("/api/v1/rules").json()["data"]["groups"]
        return [rule for group in groups for rule in group["rules"]]

    def shows_nothing(self, where: str, promql: str, zero_ok: bool = False) -> str | None:
        """None when the query returns a finite value, not zero unless ``zero_ok``; otherwise what it returned."""
        answer = self.http.get("/api/v1/query", params={"query": promql})
        body = answer.json()
        if body.get("status") != "success":
            return f"{where}: {promql!r}: {body.get('error')}"
        values = [float(sample["value"][1]) for sample in body["data"]["result"]]
        if not any(math.isfinite(v) and (v != 0 or zero_ok) for v in values):
            return f"{where}: {promql!r} returned {values or 'no series'}"
        return None

    def quiet_alerts(self) -> list[str]:
        """The provoked alerts that are neither pending nor firing."""
        return [r["name"] for r in self.rules() if r["name"] in PROVOKED and r["state"] == "inactive"]

    def empty_variables(self, variables: Mapping[str, str]) -> list[str]:
        """Template variables are ``label_values(metric, label)``: that label must have values."""
        problems = []
        for name, query in variables.items():
            metric, label = (part.strip() for part in query.removeprefix("label_values(").rstrip(")").split(","))
            values = self.http.get(f"/api/v1/label/{label}/values", params={"match[]": metric}).json()["data"]
            if not values:
                problems.append(f"variable {name!r}: {query} has no values")
        return problems


def scrape_config(gateway_url: str, tmp_path: Path) -> Path:
    """The shipped prometheus.yml, scraping the test gateway every second, with the shipped rules."""
    config = yaml.safe_load(PROMETHEUS_YML.read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "switchyard"]
    job["static_configs"] = [{"targets": [gateway_url.removeprefix("http://")]}]
    config["rule_files"] = [str(PROMETHEUS_DIR / pattern) for pattern in config["rule_files"]]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@contextmanager
def prometheus_process(tools: Tools, config: Path, tmp_path: Path) -> Iterator[Prometheus]:
    promtool(tools, "check", "config", str(config))
    address = f"127.0.0.1:{free_port()}"
    command = [
        tools.prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address={address}", "--log.level=warn",
    ]  # fmt: skip
    with (
        running(command, tmp_path / "prometheus.log") as process,
        httpx.Client(base_url=f"http://{address}", timeout=5) as http,
    ):
        until(lambda: ready(http, "/-/ready"), "Prometheus to start", START_SECONDS, process)
        yield Prometheus(http)


# -- the gateway ----------------------------------------------------------------------------------------------------


@contextmanager
def gateway_process(policies: Path, env: Mapping[str, str], log: Path) -> Iterator[str]:
    """``gateway serve`` on a free loopback port, as in production, with only the stand-ins' environment."""
    command = [
        sys.executable, "-m", "gateway", "serve", "--policies", str(policies), "--host", "127.0.0.1", "--port", "0",
        "--audit-log", "off", "--reload-seconds", "0.2", "--log-level", "warning",
    ]  # fmt: skip
    base = {name: os.environ[name] for name in ("PATH", "HOME", "LANG", "TMPDIR") if name in os.environ}
    with running(command, log, {**base, **env, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}) as process:
        url = until(lambda: banner_url(log), "the gateway to start", START_SECONDS, process)
        with httpx.Client(base_url=url, timeout=5) as http:
            until(lambda: ready(http, "/readyz"), "the gateway to be ready", START_SECONDS, process)
        yield url


def banner_url(log: Path) -> str | None:
    for line in log.read_text(errors="replace").splitlines():
        if "listening on http://" in line:
            return line.split("listening on ", 1)[1].split()[0]
    return None


# -- processes --------------------------------------------------------------------------------------------------------


class ProcessDied(AssertionError):
    pass


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    log: Path

    def check(self, what: str) -> None:
        if self.process.poll() is not None:
            raise ProcessDied(f"{what}: the process exited with {self.process.returncode}:\n{self.tail()}")

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])


@contextmanager
def running(command: list[str], log: Path, env: Mapping[str, str] | None = None) -> Iterator[Running]:
    with log.open("wb") as out, subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO) as p:
        try:
            yield Running(p, log)
        finally:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def until(
    condition: Callable[[], T | None],
    what: str,
    seconds: float,
    process: Running | None = None,
    explain: Callable[[], object] | None = None,
) -> T:
    deadline = time.monotonic() + seconds
    while True:
        if process is not None:
            process.check(f"waiting for {what}")
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = f": {explain()}" if explain else f"\n{process.tail()}" if process else ""
            raise AssertionError(f"timed out after {seconds} s waiting for {what}{detail}")
        time.sleep(0.1)


def ready(http: httpx.Client, path: str) -> bool:
    try:
        return http.get(path).status_code == 200
    except httpx.TransportError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
