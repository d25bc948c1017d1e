from __future__ import annotations

from pathlib import Path

import yaml

from gateway.policyfiles.cases import run_cases
from tests.factories import POLICIES, example_policy


def test_the_shipped_example_cases_pass() -> None:
    assert run_cases(example_policy(), POLICIES / "cases") == []


def test_a_wrong_expectation_is_reported(tmp_path: Path) -> None:
    case = {
        "name": "wrong on purpose",
        "tenant": "demo-us-only",
        "request": {"model": "auto", "messages": [{"role": "user", "content": "hi"}]},
        "expect": {"first": "qwen3-32b-vllm", "tier": "complex"},
    }
    (tmp_path / "wrong.yaml").write_text(yaml.safe_dump({"cases": [case]}))
    failures = run_cases(example_policy(), tmp_path)
    assert len(failures) == 2
    assert "expected tier 'complex', got 'simple'" in failures[0]
    assert "expected first deployment 'qwen3-32b-vllm'" in failures[1]


def test_a_malformed_case_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({"cases": [{"name": "x", "tenant": "demo", "expected": {}}]}))
    assert "invalid case file" in run_cases(example_policy(), tmp_path)[0]
