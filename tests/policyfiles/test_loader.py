from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.policyfiles.loader import PolicyError, load_policy_dir
from tests.factories import POLICIES, REPO, example_policy, small_policy, tenant, write_policy

URLS = {"a": "http://127.0.0.1:9/v1", "b": "http://127.0.0.1:9/v1", "c": "http://127.0.0.1:9/v1"}


def problems(directory: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(PolicyError) as info:
        load_policy_dir(directory, env or {})
    return info.value.problems


def test_example_policies_load_with_a_stable_revision() -> None:
    first, second = example_policy(), example_policy()
    assert first.revision == second.revision and len(first.revision) == 12
    assert {"auto", "auto-fast"} <= set(first.routes)
    assert first.tenant_by_key_hash, "keys are indexed by hash"


def test_catalog_covers_the_vendors_ops_ask_about() -> None:
    vendors = {m.vendor.split()[0].lower() for m in example_policy().models.values()}
    for vendor in (
        "alibaba",
        "deepseek",
        "moonshot",
        "zhipu",
        "minimax",
        "mistral",
        "meta",
        "openai",
        "anthropic",
        "google",
    ):
        assert any(v.startswith(vendor) for v in vendors), vendor


def test_bad_country_names_file_path_and_value(tmp_path: Path) -> None:
    small_policy(tmp_path, URLS, tenants={"acme": tenant("k", deny_origins=["CNN"])})
    assert (
        f"{tmp_path / 'tenants.yaml'}:7: tenants.acme.deny_origins[0]: 'CNN' is not an ISO 3166 country code"
        in problems(tmp_path)
    )


def test_typo_in_a_field_is_rejected_with_its_path(tmp_path: Path) -> None:
    small_policy(tmp_path, URLS, tenants={"acme": {**tenant("k"), "deny_origin": ["CN"]}})
    assert problems(tmp_path) == [
        f"{tmp_path / 'tenants.yaml'}:6: tenants.acme.deny_origin: unknown field 'deny_origin' "
        "(did you mean 'deny_origins'?)"
    ]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    small_policy(
        tmp_path,
        URLS,
        tenants={"a": tenant("k1", deny_origins=["XX"]), "b": tenant("k2", allow_jurisdictions=["ZZ"])},
        routes={"auto": {"tiers": {"simple": ["cn-open"], "standard": ["nope"], "complex": ["frontier"]}}},
    )
    found = problems(tmp_path)  # schema errors and reference errors in one run (issue #19)
    assert [p.split(": ", 1)[1] for p in found] == [
        "tenants.a.deny_origins[0]: 'XX' is not an ISO 3166 country code",
        "tenants.b.allow_jurisdictions[0]: 'ZZ' is not an ISO 3166 country code",
        "routes.auto.tiers.standard[0]: unknown model 'nope'",
        "routes.auto.tiers.standard: no candidate model has a deployment",
    ]


def test_every_problem_comes_with_a_hint_in_one_run(tmp_path: Path) -> None:
    small_policy(
        tmp_path,
        URLS,
        tenants={
            "a": tenant("k1", deny_origins=["UK"]),
            "b": {**tenant("k2"), "allow_jurisdiction": ["US"]},
            "c": tenant("same"),
            "d": tenant("same"),
        },
        routes={"auto": {"tiers": {"simple": ["cn-open"], "standard": ["us-opn"], "complex": ["frontier"]}}},
    )
    found = "\n".join(problems(tmp_path))  # issue #19: every kind at once, each with what to write instead
    assert "tenants.a.deny_origins[0]: 'UK' is not an ISO 3166 country code (did you mean 'GB'?)" in found
    typo = "tenants.b.allow_jurisdiction: unknown field 'allow_jurisdiction' (did you mean 'allow_jurisdictions'?)"
    assert typo in found
    assert "routes.auto.tiers.standard[0]: unknown model 'us-opn' (did you mean 'us-open'?)" in found
    assert "tenants.d.keys[0].sha256: duplicate key hash" in found and "belongs to tenant 'c'" in found, found


def test_cross_references_name_the_file_that_holds_them(tmp_path: Path) -> None:
    small_policy(
        tmp_path,
        URLS,
        routes={"auto": {"tiers": {"simple": ["cn-open"], "standard": ["nope"], "complex": ["frontier"]}}},
    )
    assert problems(tmp_path) == [
        f"{tmp_path / 'routes.yaml'}:7: routes.auto.tiers.standard[0]: unknown model 'nope'",
        f"{tmp_path / 'routes.yaml'}:6: routes.auto.tiers.standard: no candidate model has a deployment",
    ]


def test_an_id_defined_twice_across_files_is_rejected(tmp_path: Path) -> None:
    small_policy(tmp_path, URLS)
    write_policy(tmp_path / "extra", tenants={"open": tenant("other")})
    (tmp_path / "extra" / "tenants.yaml").rename(tmp_path / "more-tenants.yaml")
    assert any("tenants.open: already defined in" in p for p in problems(tmp_path))


def test_the_same_key_for_two_tenants_is_rejected(tmp_path: Path) -> None:
    small_policy(tmp_path, URLS, tenants={"a": tenant("same"), "b": tenant("same")})
    assert any("the same key already belongs to tenant 'a'" in p for p in problems(tmp_path))


def test_environment_references_and_defaults(tmp_path: Path) -> None:
    small_policy(tmp_path, {"a": "${A_URL}", "b": "${B_URL:-http://fallback:1/v1}", "c": "http://c/v1"})
    policy = load_policy_dir(tmp_path, {"A_URL": "http://a:1/v1"})
    assert policy.deployments["cn-open-a"].spec.base_url == "http://a:1/v1"
    assert policy.deployments["cn-open-b"].spec.base_url == "http://fallback:1/v1"
    assert problems(tmp_path, {})[0].endswith("deployments.cn-open-a.base_url: environment variable A_URL is not set")


def test_a_deployment_without_its_secret_is_unavailable_not_an_error() -> None:
    policy = example_policy({"OPENAI_API_KEY": "sk-test"})
    assert policy.deployments["gpt-4.1-openai"].unavailable is None
    assert "ANTHROPIC_API_KEY" in (policy.deployments["claude-sonnet-4-anthropic"].unavailable or "")
    assert any("ANTHROPIC_API_KEY is not set" in w for w in policy.warnings)


def test_invalid_yaml_and_empty_directories(tmp_path: Path) -> None:
    assert problems(tmp_path)[0].endswith("no *.yaml policy files")
    (tmp_path / "broken.yaml").write_text("tenants: [unclosed\n")
    assert "cannot read YAML" in problems(tmp_path)[0]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args], check=False, capture_output=True, text=True, cwd=REPO, timeout=60
    )


def test_policy_check_accepts_the_examples_and_runs_their_cases() -> None:
    result = run_cli("policy", "check", str(POLICIES))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: ")


def test_policy_check_prints_every_problem_and_fails(tmp_path: Path) -> None:
    small_policy(tmp_path, URLS, tenants={"acme": tenant("k", deny_origins=["CNN"], allow_jurisdictions=["USA"])})
    result = run_cli("policy", "check", str(tmp_path))
    assert result.returncode == 1
    assert "deny_origins[0]: 'CNN' is not an ISO 3166 country code" in result.stderr
    assert "allow_jurisdictions[0]: 'USA' is not an ISO 3166 country code" in result.stderr
    assert "2 problem(s)" in result.stderr
