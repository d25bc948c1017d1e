"""``gateway policy test DIR``: the example cases, their failure report, JUnit XML and feature cases."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.cli.main import main
from tests.factories import POLICIES


def copy_policies(tmp_path: Path, cases: list[dict[str, Any]] | None = None) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(POLICIES, target, ignore=shutil.ignore_patterns("cases"))
    if cases is not None:
        (target / "cases").mkdir()
        (target / "cases" / "mine.yaml").write_text(yaml.safe_dump({"cases": cases}, sort_keys=False))
    return target


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["policy", "test", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def case(name: str, expect: dict[str, Any], tenant: str = "demo", **request: Any) -> dict[str, Any]:
    return {"name": name, "tenant": tenant, **request, "expect": expect}


HI = {"request": {"model": "auto", "messages": [{"role": "user", "content": "What is the capital of France?"}]}}


def test_the_shipped_cases_pass_and_the_summary_counts_them(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, str(POLICIES))
    assert code == 0, err
    assert out.startswith(f"ok: {POLICIES}: ") and " 0 failed " in out


def test_a_failure_prints_expected_actual_and_the_reasons(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wrong = case("wrong on purpose", {"first": "qwen3-32b-vllm"}, tenant="demo-us-only", **HI)
    right = case("right", {"first": "gpt-oss-120b-vllm"}, tenant="demo-us-only", **HI)
    code, out, err = run(capsys, str(copy_policies(tmp_path, [right, wrong])))
    assert code == 1
    assert out.startswith("FAILED: ") and "1 passed, 1 failed" in out
    lines = err.splitlines()
    assert lines[0] == f"FAIL {tmp_path / 'policies' / 'cases' / 'mine.yaml'}:11: wrong on purpose"
    assert "- expected first deployment 'qwen3-32b-vllm', got order ['gpt-oss-120b-vllm'" in lines[1]
    assert "route auto, tier simple" in err and "data class public" in err
    assert "qwen3-32b-vllm: denied: tenant.deny_origins:" in err, "the rule that denied it is named"


def test_junit_xml_lists_every_case_and_its_failure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = [case("passes", {"tier": "simple"}, **HI), case("fails", {"tier": "complex"}, **HI)]
    report = tmp_path / "report.xml"
    code, _, _ = run(capsys, str(copy_policies(tmp_path, cases)), "--junit", str(report))
    assert code == 1
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None and (suite.get("tests"), suite.get("failures")) == ("2", "1")
    passed, failed = suite.findall("testcase")
    assert passed.get("name") == "passes" and passed.find("failure") is None
    failure = failed.find("failure")
    assert failure is not None and "expected tier 'complex', got 'simple'" in (failure.get("message") or "")
    assert "decision: model 'auto'" in (failure.text or "")


def test_junit_is_written_when_every_case_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "out" / "report.xml"
    report.parent.mkdir()
    code, _, _ = run(
        capsys, str(copy_policies(tmp_path, [case("passes", {"tier": "simple"}, **HI)])), "--junit", str(report)
    )
    assert code == 0 and ET.parse(report).getroot().find("testsuite/testcase") is not None


@pytest.mark.parametrize(
    ("features", "expect"),
    [
        ({"tier": "complex"}, {"tier": "complex", "first": "gpt-4.1-openai"}),
        ({"tier": "standard"}, {"tier": "standard", "first": "qwen3-32b-vllm"}),
        ({"tier": "simple", "vision": True}, {"first": "gpt-4.1-mini-openai", "never": ["qwen3-32b-vllm"]}),
        ({"model": "qwen3-32b", "tools": True, "json": True}, {"allowed": ["qwen3-32b-vllm"]}),
        ({"tier": "complex", "data_class": "confidential"}, {"allowed": ["gpt-oss-120b-vllm"]}),
    ],
)
def test_cases_may_give_only_the_features(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], features: dict[str, Any], expect: dict[str, Any]
) -> None:
    tenant = "helios-health" if "data_class" in features else "demo"
    code, _, err = run(capsys, str(copy_policies(tmp_path, [case("f", expect, tenant, features=features)])))
    assert code == 0, err


def test_a_case_with_both_request_and_features_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    both = case("both", {"tier": "simple"}, features={"tier": "simple"}, **HI)
    code, _, err = run(capsys, str(copy_policies(tmp_path, [both])))
    assert code == 1 and "give either request (a full body) or features, not both" in err


def test_an_unknown_tenant_names_the_known_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, str(copy_policies(tmp_path, [case("who", {}, tenant="acme", **HI)])))
    assert code == 1 and "unknown tenant 'acme'; known: demo, demo-us-only" in err


def test_no_cases_fails_and_a_broken_policy_runs_none(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = copy_policies(tmp_path)
    code, _, err = run(capsys, str(directory))
    assert code == 1 and "no cases in" in err
    (directory / "more.yaml").write_text("tenant: {}\n")
    code, _, err = run(capsys, str(directory))
    assert code == 1 and "more.yaml:1: tenant: unknown field 'tenant' (did you mean 'tenants'?)" in err
    assert "no case was run" in err
