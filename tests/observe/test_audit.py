"""The audit trail: one JSON line per decision, content only when the tenant asks, and its summary."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import openai
import pytest

from gateway.http.app import create_app
from gateway.observe.audit import AuditLog, _pieces, audit_entry, write_all
from gateway.observe.record import RequestRecord
from gateway.settings import Settings
from gateway.standin.control import Fault
from gateway.standin.server import ThreadedServer
from tests.audit_file import audit_entries
from tests.conftest import ClientFactory, Upstreams
from tests.factories import REPO, FakeClock, small_policy, tenant

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
    settings = Settings(policies=policy, audit_log=str(audit), audit_flush_seconds=0, reload_seconds=0)
    with ThreadedServer(create_app(settings, env={})) as server:
        yield server.url, audit


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
    ok, denied = audit_entries(path)
    assert ok["tenant"] == "us-only" and ok["route"] == "auto" and ok["tier"] == "simple"
    assert ok["deployment"] == "us-open-a" and ok["origin"] == "US" and ok["status"] == 200
    rules = {c["deployment"]: c["rules"] for c in ok["candidates"]}
    assert rules["cn-open-a"] == ["tenant.deny_origins"] and rules["us-open-a"] == []
    assert ok["input_tokens"] > 0 and 0 < ok["cost_usd"] < ok["counterfactual_cost_usd"]
    assert ok["usage_estimated"] is None, "the upstream's own counts"
    assert ok["policy_revision"] and ok["request_id"].startswith("req_") and isinstance(ok["complexity_score"], float)
    assert denied["status"] == 403 and denied["error_code"] == "policy_denied" and denied["deployment"] is None
    assert SECRET_PROMPT not in path.read_text()


def test_attempts_and_fallbacks_are_recorded(
    audited: tuple[str, Path], make_client: ClientFactory, upstreams: Upstreams
) -> None:
    url, path = audited
    upstreams.controls["a"].inject(Fault(status=500, times=10))
    ask(make_client(url, "us-key"))
    (entry,) = audit_entries(path)
    assert entry["deployment"] == "us-open-b" and entry["fallbacks"] == 1
    assert [a["outcome"] for a in entry["attempts"]][-1] == "ok"
    assert {a["deployment"] for a in entry["attempts"]} == {"us-open-a", "us-open-b"}


def test_content_only_for_tenants_that_ask(audited: tuple[str, Path], make_client: ClientFactory) -> None:
    url, path = audited
    ask(make_client(url, "recorded-key"))
    ask(make_client(url, "recorded-key"), stream=True)
    plain, streamed = audit_entries(path)
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
    missing = subprocess.run(
        [sys.executable, "-m", "gateway", "audit", "summarize", str(path.with_name("missing.jsonl"))],
        check=False, capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert missing.returncode == 1 and "missing.jsonl" in missing.stderr


def entries_ok(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def test_lines_wait_for_the_flush_and_shutdown_writes_them(tmp_path: Path, upstreams: Upstreams) -> None:
    policy = small_policy(tmp_path / "p", upstreams.v1())
    audit = tmp_path / "audit.jsonl"
    settings = Settings(policies=policy, audit_log=str(audit), audit_flush_seconds=30, reload_seconds=0)
    with ThreadedServer(create_app(settings, env={})) as server:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="open-key", max_retries=0)
        ask(client)
        ask(client)
        assert audit.read_text() == "", "both lines are pending: the second came well within half the interval"
    assert [e["status"] for e in audit_entries(audit)] == [200, 200]


def test_a_pending_line_is_written_by_the_timer(tmp_path: Path, upstreams: Upstreams) -> None:
    policy = small_policy(tmp_path / "p", upstreams.v1())
    audit = tmp_path / "audit.jsonl"
    settings = Settings(policies=policy, audit_log=str(audit), audit_flush_seconds=2, reload_seconds=0)
    with ThreadedServer(create_app(settings, env={})) as server:
        ask(openai.OpenAI(base_url=server.url + "/v1", api_key="open-key", max_retries=0))
        assert audit.read_text() == "", "recorded before the answer went out, and pending"
        deadline = time.monotonic() + 10
        while not audit.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(audit_entries(audit)) == 1, "no other request came: the timer wrote it"


def _record(i: int) -> RequestRecord:
    return RequestRecord(
        request_id=f"req_{i}", time=0.0, endpoint="chat", tenant="t", route="auto", tier="simple", model="m",
        status=200, error_code=None, decision=None, deployment=None, attempts=(), input_tokens=1, output_tokens=1,
        cost_usd=0.0, counterfactual_cost_usd=0.0, seconds=0.1, overhead_seconds=0.0, ttft_seconds=None,
        denied_rules=(), policy_revision="r",
    )  # fmt: skip


def test_an_estimated_usage_says_why() -> None:
    assert audit_entry(_record(1))["usage_estimated"] is None
    assert audit_entry(replace(_record(1), usage_estimated="client_cancelled"))["usage_estimated"] == "client_cancelled"


def test_a_record_that_finds_the_batch_half_the_interval_old_writes_it(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "audit.jsonl"

    async def scenario() -> list[int]:
        log = AuditLog(str(path), flush_seconds=10, clock=clock)
        lines = []
        for at in (0.0, 4.0, 6.0, 7.0):
            clock.now = at
            log(_record(int(at)))
            lines.append(len(path.read_text().splitlines()))
        for i in range(200):  # ~600 bytes each: the batch reaches 64 kB well before the interval
            log(_record(100 + i))
        lines.append(len(path.read_text().splitlines()))
        log.close()
        lines.append(len(path.read_text().splitlines()))
        return lines

    at_0, at_4, at_6, at_7, by_size, closed = asyncio.run(scenario())
    assert (at_0, at_4, at_6) == (0, 0, 3), "at 6 s the batch (from 0 s) was half the 10 s old: all three written"
    assert at_7 == 3, "a new batch starts"
    assert 4 < by_size < 204 and closed == 204, "64 kB went out without waiting; close wrote the rest"


def test_zero_writes_each_line_at_once(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"

    async def scenario() -> int:
        log = AuditLog(str(path), flush_seconds=0)
        log(_record(1))
        written = len(path.read_text().splitlines())
        log.close()
        return written

    assert asyncio.run(scenario()) == 1


class ShortWrites(io.RawIOBase):
    """A raw file that writes at most ``most`` bytes per call, as a raw ``write()`` may."""

    def __init__(self, most: int) -> None:
        self.most, self.data, self.calls = most, bytearray(), 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self.calls += 1
        taken = bytes(b[: self.most])
        self.data += taken
        return len(taken)


def test_a_short_write_is_followed_by_the_rest_of_the_batch() -> None:
    out = ShortWrites(most=1000)
    batch = b"".join(json.dumps({"n": n, "pad": "x" * 300}).encode() + b"\n" for n in range(10))
    write_all(out, batch)
    assert bytes(out.data) == batch and out.calls == -(-len(batch) // 1000)


def test_batches_for_a_shared_stdout_stay_within_what_a_pipe_writes_whole() -> None:
    lines = [b"a" * 1500 + b"\n", b"b" * 1500 + b"\n", b"c" * 1500 + b"\n", b"d" * 5000 + b"\n", b"e\n"]
    pieces = _pieces(lines, 4096)
    assert b"".join(pieces) == b"".join(lines)
    assert [len(p) for p in pieces] == [3002, 1501, 5001, 2], "a line longer than the limit goes alone"


def test_candidate_lists_of_different_tenants_stay_apart(audited: tuple[str, Path], make_client: ClientFactory) -> None:
    url, path = audited
    for key in ("us-key", "open-key", "us-key", "open-key"):
        ask(make_client(url, key))
    rules = [{c["deployment"]: c["rules"] for c in e["candidates"]} for e in audit_entries(path)]
    assert rules[0] == rules[2] and rules[1] == rules[3]
    assert rules[0]["cn-open-a"] == ["tenant.deny_origins"] and rules[1]["cn-open-a"] == []
