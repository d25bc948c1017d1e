"""The enumeration and the guarantee checks, on small policy sets written by the factories."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.policy.proof import Need, judge_cell
from gateway.policy.verify import prove
from gateway.policyfiles.loader import PolicyError, load_policy_dir
from tests.factories import small_policy, tenant

URLS = {"a": "http://127.0.0.1:9/v1", "b": "http://127.0.0.1:9/v1", "c": "http://127.0.0.1:9/v1"}


def proof_of(directory: Path, **overrides: Any):  # type: ignore[no-untyped-def]
    small_policy(directory, URLS, **overrides)
    return prove(load_policy_dir(directory, {}))


def rules(proof: Any) -> set[str]:
    return {f.rule for f in proof.findings}


def test_the_reachable_set_is_every_allowed_deployment_not_just_the_first(tmp_path: Path) -> None:
    small_policy(tmp_path, URLS)
    policy = load_policy_dir(tmp_path, {})
    cell = judge_cell(policy, "open", "public", "auto", "simple", Need())
    assert cell is not None
    assert [d.id for d in cell.reachable] == ["cn-open-a", "cn-open-b", "us-open-a", "us-open-b"]
    us_only = judge_cell(policy, "us-only", "public", "auto", "simple", Need())
    assert us_only is not None and {d.model_id for d in us_only.reachable} == {"us-open"}


def test_a_broken_guarantee_names_the_tenant_the_deployment_and_a_cell(tmp_path: Path) -> None:
    tenants = {"open": tenant("open-key", guarantees={"never_origins": ["CN"]})}
    proof = proof_of(tmp_path, tenants=tenants)
    assert not proof.ok
    messages = [f.message for f in proof.findings if f.rule == "guarantees.never_origins"]
    assert {m.split("deployment ")[1].split(":")[0] for m in messages} == {"'cn-open-a'", "'cn-open-b'"}
    assert all("tenant 'open'" in m and "origin 'CN'" in m and "auto tier simple" in m for m in messages)


def test_a_guarantee_kept_by_the_rules_holds(tmp_path: Path) -> None:
    tenants = {
        "us-only": tenant("us-key", deny_origins=["CN"], guarantees={"never_origins": ["CN"], "only_origins": ["US"]}),
        "private": tenant("private-key", require_self_hosted=True, guarantees={"self_hosted_only": True}),
    }
    proof = proof_of(tmp_path, tenants=tenants)
    assert proof.ok, proof.findings


def test_every_capability_combination_is_a_cell(tmp_path: Path) -> None:
    proof = proof_of(tmp_path, tenants={"open": tenant("open-key")})
    needs = {
        c.need.label for c in proof.cells if c.target == "auto" and c.tier == "complex" and c.need.endpoint == "chat"
    }
    assert needs == {
        "chat",
        "chat+tools",
        "chat+vision",
        "chat+json",
        "chat+tools+vision",
        "chat+tools+json",
        "chat+vision+json",
        "chat+tools+vision+json",
    }


def test_self_hosted_origins_and_data_classes(tmp_path: Path) -> None:
    data_classes = {"public": {}, "secret": {}}
    tenants = {
        "open": tenant(
            "open-key",
            guarantees={"self_hosted_origins": ["US"], "self_hosted_data_classes": ["secret"]},
        )
    }
    proof = proof_of(tmp_path, tenants=tenants, data_classes=data_classes)
    found = {(f.rule, f.message.split("deployment ")[1].split(":")[0]) for f in proof.findings}
    assert found == {
        ("guarantees.self_hosted_origins", "'frontier-api'"),
        ("guarantees.self_hosted_data_classes", "'frontier-api'"),
    }


def test_one_vendor_in_a_tier_breaks_min_vendors_per_tier(tmp_path: Path) -> None:
    tenants = {"open": tenant("open-key", guarantees={"min_vendors_per_tier": 2})}
    proof = proof_of(tmp_path, tenants=tenants)
    broken = [f.message for f in proof.findings if f.rule == "guarantees.min_vendors_per_tier"]
    assert broken and all("1 vendor(s)" in m for m in broken)  # the factory gives every model one vendor


def test_contradictions_default_class_and_an_unusable_route_tier(tmp_path: Path) -> None:
    tenants = {"open": tenant("open-key", allow_jurisdictions=["FR"])}
    proof = proof_of(tmp_path, tenants=tenants)
    assert rules(proof) == {"contradiction.default_data_class", "contradiction.route_tier"}
    tiers = {f.message.split(":")[0] for f in proof.findings if f.rule == "contradiction.route_tier"}
    assert tiers == {"route 'auto' tier 'simple'", "route 'auto' tier 'standard'", "route 'auto' tier 'complex'"}


@pytest.mark.parametrize(
    ("guarantees", "problem"),
    [
        ({"never_origins": ["XX"]}, "tenants.open.guarantees.never_origins[0]: 'XX' is not an ISO 3166 country code"),
        ({"never_models": ["nope"]}, "tenants.open.guarantees.never_models[0]: unknown model 'nope'"),
        ({"self_hosted_data_classes": ["secrett"]}, "guarantees.self_hosted_data_classes[0]: unknown data class"),
        ({"never_origin": ["CN"]}, "tenants.open.guarantees.never_origin: unknown field"),
    ],
)
def test_bad_guarantees_are_policy_problems(tmp_path: Path, guarantees: dict[str, Any], problem: str) -> None:
    small_policy(tmp_path, URLS, tenants={"open": tenant("open-key", guarantees=guarantees)})
    with pytest.raises(PolicyError) as info:
        load_policy_dir(tmp_path, {})
    assert any(problem in p for p in info.value.problems), info.value.problems
