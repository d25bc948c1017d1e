"""The audit trail: one JSON line per decision, content only when the tenant asks, and its summary."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from gateway.app import create_app
from gateway.settings import Settings
from gateway.standin.control import Fault
from gateway.standin.server import ThreadedServer
from tests.conftest import ClientFactory, Upstreams
from tests.factories import REPO, small_policy, tenant

SECRET_PROMPT = "my-very-private-prompt-4711"


@pytest.fixture
def audited(tmp_path: Path, upstreams: Upstreams) -> Iterator[tuple[str, Path]]:
    tenants = {
        "open": tenant("open-key"),
        "us-only": tenant("us-key", deny_origins=["CN"]),
        "recorded": tenant("recorded-key", audit_content=True),
    }
    routes = {
        "auto": {
            "tiers": {"simple": ["cn-open", "us-open"], "standard": ["us-open"], "complex": ["frontier"]},
            "baseline_model": "frontier",
        }
    }
    policy = small_policy(tmp_path / "p", upstreams.v1(), tenants=tenants, routes=routes)
    audit = tmp_path / "audit.jsonl"
    settings = Settings(policies=policy, audit_log=str(audit), reload_seconds=0)
    with ThreadedServer(create_app(settings, env={})) as server:
        yield server.url, audit


def entries(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def ask(client: openai.OpenAI, **extra: Any) -> None:
    answer = client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": SECRET_PROMPT}], **extra
    )
    if extra.get("stream"):
        list(answer)  # the audit line is written when the stream ends


def test_one_line_per_decision_with_candidates_and_costs(audited: tuple[str, Path], make_client: ClientFactory) -> None:
    url, path = audited
    ask(make_client(url, "us-key"))
    with pytest.raises(openai.PermissionDeniedError):
        make_client(url, "us-key").chat.completions.create(model="cn-open", messages=[{"role": "user", "content": "x"}])
    ok, denied = entries(path)
    assert ok["tenant"] == "us-only" and ok["route"] == "auto" and ok["tier"] == "simple"
    assert ok["deployment"] == "us-open-a" and ok["origin"] == "US" and ok["status"] == 200
    rules = {c["deployment"]: c["rules"] for c in ok["candidates"]}
    assert rules["cn-open-a"] == ["tenant.deny_origins"] and rules["us-open-a"] == []
    assert ok["input_tokens"] > 0 and 0 < ok["cost_usd"] < ok["counterfactual_cost_usd"]
    assert ok["policy_revision"] and ok["request_id"].startswith("req_") and isinstance(ok["complexity_score"], float)
    assert denied["status"] == 403 and denied["error_code"] == "policy_denied" and denied["deployment"] is None
    assert SECRET_PROMPT not in path.read_text()


def test_attempts_and_fallbacks_are_recorded(
    audited: tuple[str, Path], make_client: ClientFactory, upstreams: Upstreams
) -> None:
    url, path = audited
    upstreams.controls["a"].inject(Fault(status=500, times=10))
    ask(make_client(url, "us-key"))
    (entry,) = entries(path)
    assert entry["deployment"] == "us-open-b" and entry["fallbacks"] == 1
    assert [a["outcome"] for a in entry["attempts"]][-1] == "ok"
    assert {a["deployment"] for a in entry["attempts"]} == {"us-open-a", "us-open-b"}


def test_content_only_for_tenants_that_ask(audited: tuple[str, Path], make_client: ClientFactory) -> None:
    url, path = audited
    ask(make_client(url, "recorded-key"))
    ask(make_client(url, "recorded-key"), stream=True)
    plain, streamed = entries(path)
    assert plain["content"]["prompt"] == SECRET_PROMPT and "Here is a short answer" in plain["content"]["completion"]
    assert "Here is a short answer" in streamed["content"]["completion"] and streamed["ttft_seconds"] > 0


def test_summarize_reports_traffic_cost_and_savings(audited: tuple[str, Path], make_client: ClientFactory) -> None:
    url, path = audited
    for key in ("us-key", "open-key", "open-key"):
        ask(make_client(url, key))
    path.write_text(path.read_text() + "not json\n")
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "audit", "summarize", str(path)],
        check=False, capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for heading in ("by tenant", "by tier", "by vendor", "by origin"):
        assert heading in result.stdout
    open_row = next(line for line in result.stdout.splitlines() if line.strip().startswith("open "))
    assert open_row.split()[1] == "2"
    saved = sum(e["counterfactual_cost_usd"] - e["cost_usd"] for e in entries_ok(path))
    assert f"{saved:.6f}" in result.stdout
    assert "1 line(s)" in result.stderr


def entries_ok(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]
