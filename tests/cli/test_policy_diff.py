"""``gateway policy diff``: changed cells, case replay, audit replay and two git revisions."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.cli.main import main
from tests.factories import POLICIES

SIMPLE_BEFORE = "      simple: [qwen3-32b, gpt-oss-120b, gpt-4.1-mini]\n"
SIMPLE_AFTER = "      simple: [gpt-oss-120b, gpt-4.1-mini]\n"  # "block Qwen for easy work"


def changed_copy(tmp_path: Path) -> Path:
    new = tmp_path / "new"
    shutil.copytree(POLICIES, new)
    routes = (new / "routes.yaml").read_text()
    assert SIMPLE_BEFORE in routes
    (new / "routes.yaml").write_text(routes.replace(SIMPLE_BEFORE, SIMPLE_AFTER))
    return new


def diff(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = main(["policy", "diff", *args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_an_unchanged_set_has_no_difference(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = diff(capsys, str(POLICIES), str(POLICIES), "--fail-on-change")
    assert code == 0
    assert out["changed_cells"] == [] and out["cases"]["changed"] == 0 and out["cases"]["replayed"] > 0


def test_a_removed_candidate_changes_the_first_choice_of_the_simple_tier(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = diff(capsys, str(POLICIES), str(changed_copy(tmp_path)))
    assert code == 0  # without --fail-on-change a diff is information
    cells = out["changed_cells"]
    assert {(c["target"], c["tier"]) for c in cells} == {("auto", "simple")}
    plain = next(c for c in cells if c["tenant"] == "demo" and c["data_class"] == "public" and c["need"] == "chat")
    assert plain["first_before"] == "qwen3-32b-vllm" and plain["first_after"] == "gpt-oss-120b-vllm"
    assert "qwen3-32b-vllm" not in plain["after"]
    assert not any(c["tenant"] in ("demo-us-only", "acme-us") for c in cells), "Qwen was never theirs"
    transitions = out["cases"]["transitions"]
    assert transitions == {"qwen3-32b-vllm -> gpt-oss-120b-vllm": out["cases"]["changed"]}
    assert main(["policy", "diff", str(POLICIES), str(tmp_path / "new"), "--fail-on-change"]) == 1
    text = capsys.readouterr().out
    assert "tenant demo:" in text and "first qwen3-32b-vllm -> gpt-oss-120b-vllm" in text


def test_cases_given_by_their_features_are_replayed_as_the_requests_they_describe(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new = tmp_path / "new"
    shutil.copytree(POLICIES, new)
    routes = (new / "routes.yaml").read_text()
    complex_before = "      complex: [gpt-4.1, claude-sonnet-4, gemini-2.5-pro]\n"
    assert complex_before in routes
    complex_after = "      complex: [claude-sonnet-4, gemini-2.5-pro]\n"  # no gpt-4.1 for complex work
    (new / "routes.yaml").write_text(routes.replace(complex_before, complex_after))
    _, out = diff(capsys, str(POLICIES), str(new))
    changed = [e for e in out["cases"]["examples"] if "features.yaml" in e]
    # policies/cases/features.yaml pins "a complex request that needs tools and JSON output" to gpt-4.1-openai
    assert any("needs tools and JSON output" in e and "gpt-4.1-openai -> " in e for e in changed), out["cases"]


def audit_line(**fields: Any) -> bytes:
    entry = {
        "request_id": "r", "tenant": "demo", "endpoint": "chat", "route": "auto", "requested_model": "auto",
        "resolved_model": "auto", "tier": "simple", "complexity_score": 0.01, "data_class": "public",
        "candidates": [], "deployment": "qwen3-32b-vllm", "input_tokens": 12, "status": 200,
    }  # fmt: skip
    return orjson.dumps({**entry, **fields}) + b"\n"


def test_replay_rebuilds_audit_decisions_and_counts_the_changes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    audit = tmp_path / "audit.jsonl"
    audit.write_bytes(
        audit_line()
        + audit_line(tenant="demo-us-only", deployment="gpt-oss-120b-vllm")
        + audit_line(tier="complex", complexity_score=0.99, deployment="gpt-4.1-openai")
        + audit_line(resolved_model="qwen3-32b", route=None, tier=None, complexity_score=None)
        + b'{"tenant": null, "status": 401, "error_code": "invalid_api_key"}\n'
        + b"not json\n"
    )
    code, out = diff(capsys, str(POLICIES), str(changed_copy(tmp_path)), "--replay", str(audit))
    assert code == 0
    replay = out["audit"]
    assert (replay["replayed"], replay["changed"], replay["skipped"]) == (4, 1, 2)
    assert replay["transitions"] == {"qwen3-32b-vllm -> gpt-oss-120b-vllm": 1}


def test_replay_keeps_the_needs_the_recorded_rules_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    audit = tmp_path / "audit.jsonl"
    tools = [{"deployment": "x", "model": "x", "allowed": False, "rules": ["capability.tools"]}]
    audit.write_bytes(audit_line(candidates=tools, tier="complex", complexity_score=0.99))
    new = tmp_path / "new"
    shutil.copytree(POLICIES, new)
    models = (new / "models.yaml").read_text()
    (new / "models.yaml").write_text(models.replace("tools: true", "tools: false"))  # nothing calls tools any more
    _, out = diff(capsys, str(POLICIES), str(new), "--replay", str(audit))
    assert out["audit"]["changed"] == 1
    assert list(out["audit"]["transitions"]) == ["gpt-4.1-openai -> refused (model_not_capable)"]


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, timeout=60)


def test_two_git_revisions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(POLICIES, repo / "policies")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    routes = repo / "policies" / "routes.yaml"
    routes.write_text(routes.read_text().replace(SIMPLE_BEFORE, SIMPLE_AFTER))
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "two")
    code, out = diff(capsys, "--git", "HEAD~1", "HEAD", "--repo", str(repo))
    assert code == 0 and out["old_revision"] != out["new_revision"]
    assert {(c["target"], c["tier"]) for c in out["changed_cells"]} == {("auto", "simple")}
    assert main(["policy", "diff", "--git", "HEAD~1", "nope", "--repo", str(repo)]) == 2
    assert "git archive nope" in capsys.readouterr().err


def test_bad_arguments_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "diff", str(POLICIES)]) == 2
    assert "give OLD_DIR NEW_DIR, or --git REV1 REV2" in capsys.readouterr().err
    assert main(["policy", "diff", str(POLICIES), str(POLICIES), "--replay", str(tmp_path / "none")]) == 2
    assert "no such file" in capsys.readouterr().err
