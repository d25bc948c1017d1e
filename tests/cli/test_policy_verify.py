"""``gateway policy verify`` on every policy set in the repository, and on planted violations in each pack."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.cli.main import main
from tests.factories import EXAMPLE_PACKS as EXAMPLES
from tests.factories import POLICIES, POLICY_SETS, REPO
from tests.processes import run_cli

PACKS = ("cost-saver", "us-enterprise", "sovereign-open", "no-lock-in")


def verify(directory: Path, capsys: pytest.CaptureFixture[str], *flags: str) -> tuple[int, str]:
    code = main(["policy", "verify", str(directory), *flags])
    return code, capsys.readouterr().out


@pytest.mark.parametrize("directory", POLICY_SETS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_policy_set_in_the_repository_verifies_and_passes_its_cases(
    directory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = verify(directory, capsys)
    assert code == 0, out
    assert out.rstrip().splitlines()[-1].startswith("ok: policy revision")
    assert main(["policy", "check", str(directory)]) == 0, capsys.readouterr().err


def test_the_packs_are_all_there_with_a_readme_and_cases() -> None:
    for name in PACKS:
        pack = EXAMPLES / name
        assert (pack / "README.md").read_text().startswith(f"# {name}\n")
        assert list((pack / "cases").glob("*.yaml")), name
        for path in pack.glob("*.yaml"):
            assert path.read_text().startswith("# yaml-language-server: $schema=../../schema/policy.schema.json\n")


@pytest.mark.parametrize("name", PACKS)
def test_a_packs_catalog_is_the_shipped_catalog(name: str) -> None:
    """The packs are self-contained (ops copy one as a whole) and carry a copy of policies/models.yaml; a
    provenance fix there (an origin, a licence, a price) must reach every copy, or a pack proves the wrong thing."""
    shipped = yaml.safe_load((POLICIES / "models.yaml").read_text())["models"]
    assert yaml.safe_load((EXAMPLES / name / "models.yaml").read_text())["models"] == shipped, (
        f"policies/examples/{name}/models.yaml differs from policies/models.yaml: copy the catalog over"
    )


def planted(tmp_path: Path, pack: str, edits: dict[str, Callable[[dict[str, Any]], None]]) -> Path:
    """A copy of the pack with each file's YAML changed by its edit."""
    target = tmp_path / pack
    shutil.copytree(EXAMPLES / pack, target)
    shutil.rmtree(target / "cases")  # the cases describe the pack as shipped
    for name, edit in edits.items():
        path = target / f"{name}.yaml"
        data = yaml.safe_load(path.read_text())
        edit(data)
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    return target


def findings(directory: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    code, out = verify(directory, capsys, "--json")
    proof = json.loads(out)
    assert code == (0 if proof["ok"] else 1)
    found: list[dict[str, Any]] = proof["findings"]
    return found


QWEN_IN_US = {"model": "qwen3-32b", "base_url": "http://qwen-vllm:8000/v1", "operator": "self", "jurisdiction": "US"}


def test_us_enterprise_a_cn_fallback_is_caught_once_a_rule_lets_it_through(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def add_fallback(data: dict[str, Any]) -> None:
        data["routes"]["auto"]["fallback"].append("qwen3-32b")

    def add_deployment(data: dict[str, Any]) -> None:
        data["deployments"]["qwen3-32b-vllm"] = {**QWEN_IN_US, "self_hosted": True}

    edits = {"routes": add_fallback, "deployments": add_deployment}
    assert findings(planted(tmp_path / "one", "us-enterprise", edits), capsys) == []  # deny_origins still holds

    def relax(data: dict[str, Any]) -> None:
        rules = data["tenants"]["acme-us"]
        del rules["deny_origins"], rules["allow_origins"]  # "the allow-list was in the way"

    found = findings(planted(tmp_path / "two", "us-enterprise", {**edits, "tenants": relax}), capsys)
    assert {f["rule"] for f in found} == {"guarantees.never_origins", "guarantees.only_origins"}
    assert all(f["tenant"] == "acme-us" and "'qwen3-32b-vllm'" in f["message"] for f in found)


def test_us_enterprise_a_deployment_outside_the_us_is_caught(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def eu_region(data: dict[str, Any]) -> None:
        data["deployments"]["gpt-4.1-openai"]["jurisdiction"] = "IE"

    def relax(data: dict[str, Any]) -> None:
        del data["tenants"]["acme-us"]["allow_jurisdictions"]

    def relax_class(data: dict[str, Any]) -> None:
        del data["data_classes"]["internal"]["allow_jurisdictions"]

    edits = {"deployments": eu_region, "tenants": relax, "data_classes": relax_class}
    found = findings(planted(tmp_path, "us-enterprise", edits), capsys)
    assert [(f["rule"], f["tenant"]) for f in found] == [("guarantees.only_jurisdictions", "acme-us")]
    assert "'gpt-4.1-openai': jurisdiction 'IE' is not in only_jurisdictions ['US']" in found[0]["message"]


def test_cost_saver_a_cn_api_in_the_standard_tier_is_caught(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def add(data: dict[str, Any]) -> None:
        data["deployments"]["deepseek-v3-api"] = {
            "model": "deepseek-v3", "base_url": "https://api.deepseek.com/v1", "operator": "DeepSeek",
            "jurisdiction": "CN",
        }  # fmt: skip

    def tier(data: dict[str, Any]) -> None:
        data["routes"]["auto"]["tiers"]["standard"].append("deepseek-v3")

    found = findings(planted(tmp_path, "cost-saver", {"deployments": add, "routes": tier}), capsys)
    assert {f["rule"] for f in found} == {"guarantees.only_jurisdictions", "guarantees.never_vendors"}


def test_sovereign_open_a_cn_model_through_an_in_country_api_is_caught(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def add(data: dict[str, Any]) -> None:
        data["deployments"]["qwen3-32b-hosted-de"] = {
            "model": "qwen3-32b", "base_url": "https://llm.example-host.de/v1", "operator": "Example Host GmbH",
            "jurisdiction": "DE",
        }  # fmt: skip

    found = findings(planted(tmp_path, "sovereign-open", {"deployments": add}), capsys)
    assert {f["rule"] for f in found} == {"guarantees.self_hosted_origins"}
    assert "'qwen3-32b-hosted-de'" in found[0]["message"]


def test_no_lock_in_a_single_vendor_tier_is_caught(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def one_vendor(data: dict[str, Any]) -> None:
        data["routes"]["auto"]["tiers"]["complex"] = ["gpt-4.1"]
        data["routes"]["auto"]["fallback"] = ["gpt-oss-120b"]  # also OpenAI's weights

    found = findings(planted(tmp_path, "no-lock-in", {"routes": one_vendor}), capsys)
    assert {f["rule"] for f in found} == {"guarantees.min_vendors_per_tier"}
    assert all("auto tier complex" in f["message"] and "['OpenAI']" in f["message"] for f in found)
    assert {f["message"].split("data class ")[1].split(",")[0] for f in found} == {"public", "internal"}


def test_verify_prints_a_table_per_tenant_and_exits_1_on_a_finding(tmp_path: Path) -> None:
    def relax(data: dict[str, Any]) -> None:
        data["tenants"]["agency"]["allow_jurisdictions"] = ["DE", "CN"]

    def relax_class(data: dict[str, Any]) -> None:
        del data["data_classes"]["internal"]["allow_jurisdictions"]

    directory = planted(tmp_path, "sovereign-open", {"tenants": relax, "data_classes": relax_class})
    result = run_cli("policy", "verify", str(directory))
    assert result.returncode == 1, result.stderr
    assert "tenant agency: data classes internal, confidential" in result.stdout
    assert "reachable jurisdictions: CN, DE" in result.stdout
    assert "FAILED: policy revision" in result.stdout and "deepseek-v3-deepseek-api" in result.stdout
    missing = run_cli("policy", "verify", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "not a directory" in missing.stderr and "Traceback" not in missing.stderr
