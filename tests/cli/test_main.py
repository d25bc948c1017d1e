from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tests.factories import POLICIES
from tests.processes import run_cli


def test_keys_hash_reads_stdin_and_matches_sha256() -> None:
    result = run_cli("keys", "hash", stdin="demo-key\n")
    assert result.returncode == 0
    assert result.stdout.strip() == hashlib.sha256(b"demo-key").hexdigest()
    assert run_cli("keys", "hash", "demo-key").stdout == result.stdout
    assert run_cli("keys", "hash", stdin="\n").returncode == 2


def test_policy_explain_prints_the_decision_without_calling(tmp_path: Path) -> None:
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"model": "auto", "messages": [{"role": "user", "content": "hi"}]}))
    result = run_cli(
        "policy", "explain", "--policies", str(POLICIES), "--tenant", "demo-us-only", "--request", str(request)
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["error"] is None and out["decision"]["order"][0] == "gpt-oss-120b-vllm"
    rules = {v["rule"] for c in out["decision"]["candidates"] for v in c["violations"]}
    assert "tenant.deny_origins" in rules


def test_policy_explain_of_a_denied_request_exits_3_with_the_rule(tmp_path: Path) -> None:
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"model": "deepseek-v3", "messages": [{"role": "user", "content": "hi"}]}))
    result = run_cli("policy", "explain", "--policies", str(POLICIES), "--tenant", "acme-us", "--request", str(request))
    assert result.returncode == 3
    assert "tenant.deny_origins" in json.loads(result.stdout)["error"]["message"]


def test_policy_explain_names_an_unknown_tenant(tmp_path: Path) -> None:
    request = tmp_path / "request.json"
    request.write_text("{}")
    result = run_cli("policy", "explain", "--policies", str(POLICIES), "--tenant", "nobody", "--request", str(request))
    assert result.returncode == 2 and "unknown tenant 'nobody'" in result.stderr


def test_serve_refuses_a_broken_policy_directory_with_its_problems(tmp_path: Path) -> None:
    (tmp_path / "tenants.yaml").write_text("tenants:\n  t:\n    keys: []\n")
    result = run_cli("serve", "--policies", str(tmp_path), "--port", "0")
    assert result.returncode != 0
    assert "tenants.t.keys" in result.stderr and "Traceback" not in result.stderr
