"""gateway/policy/retry_schema.py: a deployment's ``retry:``, its ranges, and ``max_retries`` as the legacy spelling.

Each bad file goes through the real loader, so the error a user sees (file and key) is what is asserted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.policy.retry_schema import RetrySpec
from gateway.policyfiles.loader import PolicyError, load_policy_dir
from tests.factories import deployment, small_policy

URLS = {"a": "http://127.0.0.1:9/v1", "b": "http://127.0.0.1:9/v1", "c": "http://127.0.0.1:9/v1"}


ROUTES = {"auto": {"tiers": {"simple": ["us-open"], "standard": ["us-open"], "complex": ["us-open"]}}}


def written(tmp_path: Path, **fields: Any) -> Path:
    deployments = {"us-open-a": deployment("us-open", URLS["a"], **fields)}
    return small_policy(tmp_path, URLS, deployments=deployments, routes=ROUTES)


def loaded_retry(tmp_path: Path, **fields: Any) -> RetrySpec:
    return load_policy_dir(written(tmp_path, **fields), {}).deployments["us-open-a"].spec.retry


def problem(tmp_path: Path, **fields: Any) -> str:
    with pytest.raises(PolicyError) as info:
        load_policy_dir(written(tmp_path, **fields), {})
    (only,) = info.value.problems
    return only


def test_the_default_is_three_tries_with_the_old_backoff(tmp_path: Path) -> None:
    assert loaded_retry(tmp_path) == RetrySpec(attempts=3, backoff_seconds=0.05, max_backoff_seconds=2.0)


def test_retry_is_read_per_deployment(tmp_path: Path) -> None:
    spec = loaded_retry(tmp_path, retry={"attempts": 5, "backoff_seconds": 0.2, "max_backoff_seconds": 1.5})
    assert spec == RetrySpec(attempts=5, backoff_seconds=0.2, max_backoff_seconds=1.5)


@pytest.mark.parametrize(("legacy", "attempts"), [(0, 1), (2, 3), (10, 11)])
def test_max_retries_is_the_legacy_spelling_of_attempts(tmp_path: Path, legacy: int, attempts: int) -> None:
    assert loaded_retry(tmp_path, max_retries=legacy) == RetrySpec(attempts=attempts)


def test_both_spellings_at_once_are_refused(tmp_path: Path) -> None:
    message = problem(tmp_path, max_retries=2, retry={"attempts": 3})
    assert "deployments.us-open-a" in message and "deployments.yaml" in message
    assert "either retry:" in message and "max_retries" in message and "not both" in message


@pytest.mark.parametrize("legacy", [-1, 11, "two", True, 1.5])
def test_a_bad_max_retries_names_the_key(tmp_path: Path, legacy: object) -> None:
    message = problem(tmp_path, max_retries=legacy)
    assert "deployments.us-open-a" in message and "max_retries must be a whole number from 0 to 10" in message


@pytest.mark.parametrize(
    ("retry", "key", "words"),
    [
        ({"attempts": 0}, "retry.attempts", "greater than or equal to 1"),
        ({"attempts": 12}, "retry.attempts", "less than or equal to 11"),
        ({"attempts": "many"}, "retry.attempts", "integer"),
        ({"backoff_seconds": -0.1}, "retry.backoff_seconds", "greater than or equal to 0"),
        ({"max_backoff_seconds": 301}, "retry.max_backoff_seconds", "less than or equal to 300"),
        ({"attempt": 3}, "retry.attempt", "unknown field 'attempt' (did you mean 'attempts'?)"),
        ({"backoff_seconds": 1.0, "max_backoff_seconds": 0.5}, "retry", "must not be below backoff_seconds (1)"),
        ("3", "retry", "valid dictionary"),
    ],
)
def test_a_bad_retry_names_the_key(tmp_path: Path, retry: object, key: str, words: str) -> None:
    message = problem(tmp_path, retry=retry)
    assert f"deployments.us-open-a.{key}" in message and words in message, message
