from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.classify.heuristic import HeuristicClassifier
from gateway.errors import InvalidRequest, ModelNotFound, NotCapable, PolicyDenied
from gateway.policy.decide import decide, refusal, tier_for
from gateway.policy.schema import Thresholds
from gateway.policyfiles.loader import load_policy_dir
from tests.factories import chat, example_policy, small_policy, tenant

URLS = {"a": "http://127.0.0.1:9/v1", "b": "http://127.0.0.1:9/v1", "c": "http://127.0.0.1:9/v1"}
HARD = "Prove step by step and analyze the trade-offs, then design a plan; justify and evaluate the edge cases."
CLASSIFIER = HeuristicClassifier()


@pytest.fixture
def policy(tmp_path: Path):  # type: ignore[no-untyped-def]
    return load_policy_dir(small_policy(tmp_path, URLS), {})


def test_thresholds_pick_the_tier() -> None:
    thresholds = Thresholds(standard=0.3, complex=0.7)
    assert [tier_for(s, thresholds) for s in (0.0, 0.3, 0.69, 0.7, 1.0)] == [
        "simple",
        "standard",
        "standard",
        "complex",
        "complex",
    ]


def test_simple_request_goes_to_the_cheapest_allowed_deployment(policy) -> None:  # type: ignore[no-untyped-def]
    decision = decide(policy, "open", chat("hi"), CLASSIFIER)
    assert decision.tier == "simple"
    assert [d.id for d in decision.ranked] == ["cn-open-a", "cn-open-b", "us-open-a", "us-open-b"]


def test_denied_origin_is_never_ranked_and_the_reason_names_rule_and_value(policy) -> None:  # type: ignore[no-untyped-def]
    decision = decide(policy, "us-only", chat("hi"), CLASSIFIER)
    assert [d.id for d in decision.ranked] == ["us-open-a", "us-open-b"]
    denied = [v for v in decision.verdicts if not v.allowed]
    assert {v.deployment.id for v in denied} == {"cn-open-a", "cn-open-b"}
    assert denied[0].violations[0].rule == "tenant.deny_origins"
    assert "'CN'" in denied[0].violations[0].message and "[CN]" in denied[0].violations[0].message


def test_hard_request_goes_to_the_complex_tier(policy) -> None:  # type: ignore[no-untyped-def]
    decision = decide(policy, "open", chat(HARD), CLASSIFIER)
    assert decision.tier == "complex" and decision.ranked[0].id == "frontier-api"


def test_nothing_allowed_is_a_403_naming_the_rule(policy) -> None:  # type: ignore[no-untyped-def]
    decision = decide(policy, "private", chat(HARD), CLASSIFIER)
    error = refusal(decision)
    assert isinstance(error, PolicyDenied) and error.status == 403
    assert "tenant.require_self_hosted" in error.message and "Frontier Inc" in error.message


def test_a_concrete_model_is_still_subject_to_policy(policy) -> None:  # type: ignore[no-untyped-def]
    error = refusal(decide(policy, "us-only", chat("hi", model="cn-open"), CLASSIFIER))
    assert isinstance(error, PolicyDenied) and "tenant.deny_origins" in error.message
    assert decide(policy, "us-only", chat("hi", model="us-open"), CLASSIFIER).tier is None


def test_unknown_model_is_not_found(policy) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ModelNotFound):
        decide(policy, "open", chat("hi", model="gpt-17"), CLASSIFIER)


def test_missing_capability_is_a_400_not_a_policy_denial(tmp_path: Path) -> None:
    models = {"m": {"vendor": "v", "origin": "US", "open_weights": True, "license": "x", "quality_tier": "basic"}}
    policy = load_policy_dir(
        small_policy(
            tmp_path,
            URLS,
            models=models,
            deployments={"d": {"model": "m", "base_url": "http://x", "operator": "o", "jurisdiction": "US"}},
            routes={"auto": {"tiers": {"simple": ["m"], "standard": ["m"], "complex": ["m"]}}},
        ),
        {},
    )
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    error = refusal(decide(policy, "open", chat("hi", tools=tools), CLASSIFIER))
    assert isinstance(error, NotCapable) and "capability.tools" in error.message


def test_unhealthy_deployments_go_last_but_stay_allowed(policy) -> None:  # type: ignore[no-untyped-def]
    decision = decide(policy, "us-only", chat("hi"), CLASSIFIER, frozenset({"us-open-a"}))
    assert [d.id for d in decision.ranked] == ["us-open-b", "us-open-a"]


def test_route_fallback_comes_after_the_tier(tmp_path: Path) -> None:
    routes = {
        "auto": {
            "tiers": {"simple": ["cn-open"], "standard": ["cn-open"], "complex": ["frontier"]},
            "fallback": ["us-open"],
        }
    }
    policy = load_policy_dir(small_policy(tmp_path, URLS, routes=routes), {})
    decision = decide(policy, "private", chat(HARD), CLASSIFIER)
    assert [d.id for d in decision.ranked] == ["us-open-a", "us-open-b"]
    assert [v.fallback for v in decision.verdicts] == [False, True, True]


def test_data_class_never_drops_below_the_tenant_default() -> None:
    policy = example_policy()
    low = decide(policy, "helios-health", chat("hi", model="gpt-4.1"), CLASSIFIER)
    assert low.data_class == "internal"
    import orjson

    from gateway.routing.normalize import normalize

    body = orjson.dumps({"model": "auto", "messages": [{"role": "user", "content": "hi"}]})
    confidential = normalize("chat", body, {"x-gateway-data-class": "confidential"})
    decision = decide(policy, "helios-health", confidential, CLASSIFIER)
    assert decision.data_class == "confidential"
    assert all(d.spec.self_hosted for d in decision.ranked)
    with pytest.raises(InvalidRequest):
        decide(policy, "helios-health", normalize("chat", body, {"x-gateway-data-class": "secret"}), CLASSIFIER)


def test_tenant_route_allow_list(tmp_path: Path) -> None:
    policy = load_policy_dir(small_policy(tmp_path, URLS, tenants={"t": tenant("k", allow_routes=[])}), {})
    with pytest.raises(PolicyDenied, match=r"tenant\.allow_routes"):
        decide(policy, "t", chat("hi"), CLASSIFIER)


# --- property: whatever the tenant's rules, every ranked deployment satisfies them -----------------

COUNTRIES = ["US", "CN", "FR", "DE"]
countries = st.lists(st.sampled_from(COUNTRIES), unique=True, max_size=3)


@st.composite
def worlds(draw: st.DrawFn) -> tuple[dict, dict, dict]:  # type: ignore[type-arg]
    models = {
        f"m{i}": {
            "vendor": "v",
            "origin": draw(st.sampled_from(COUNTRIES)),
            "open_weights": True,
            "license": "x",
            "quality_tier": draw(st.sampled_from(["basic", "strong", "frontier"])),
            "capabilities": {"tools": True, "json": True, "context_window": 100000},
            "price": {"input": draw(st.floats(0, 20)), "output": draw(st.floats(0, 40))},
        }
        for i in range(draw(st.integers(1, 5)))
    }
    deployments = {
        f"d{i}": {
            "model": draw(st.sampled_from(sorted(models))),
            "base_url": "http://x/v1",
            "operator": "o",
            "jurisdiction": draw(st.sampled_from(COUNTRIES)),
            "self_hosted": draw(st.booleans()),
        }
        for i in range(draw(st.integers(1, 8)))
    }
    rules = {
        "deny_origins": draw(countries),
        "allow_origins": draw(st.none() | countries),
        "allow_jurisdictions": draw(st.none() | countries),
        "require_self_hosted": draw(st.booleans()),
        "allow_quality_tiers": draw(
            st.none() | st.lists(st.sampled_from(["basic", "strong", "frontier"]), unique=True)
        ),
    }
    return models, deployments, rules


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(world=worlds(), data_class=st.sampled_from(["public", "secret", "eu"]), hard=st.booleans())
def test_the_chosen_deployment_always_satisfies_the_tenants_rules(tmp_path_factory, world, data_class, hard) -> None:  # type: ignore[no-untyped-def]
    models, deployments, rules = world
    names = sorted(models)
    directory = small_policy(
        tmp_path_factory.mktemp("p"),
        URLS,
        models=models,
        deployments=deployments,
        tenants={"t": tenant("k", **rules)},
        routes={"auto": {"tiers": {"simple": names, "standard": names, "complex": names}}},
        data_classes={
            "public": {},
            "eu": {"allow_jurisdictions": ["FR", "DE"]},
            "secret": {"require_self_hosted": True},
        },
    )
    served = {d["model"] for d in deployments.values()}
    if not served:
        return
    policy = load_policy_dir(directory, {})
    import orjson

    from gateway.routing.normalize import normalize

    body = orjson.dumps({"model": "auto", "messages": [{"role": "user", "content": HARD if hard else "hi"}]})
    decision = decide(policy, "t", normalize("chat", body, {"x-gateway-data-class": data_class}), CLASSIFIER)
    for dep in decision.ranked:
        model, spec = models[dep.model_id], deployments[dep.id]
        assert model["origin"] not in rules["deny_origins"]
        assert rules["allow_origins"] is None or model["origin"] in rules["allow_origins"]
        assert rules["allow_jurisdictions"] is None or spec["jurisdiction"] in rules["allow_jurisdictions"]
        assert rules["allow_quality_tiers"] is None or model["quality_tier"] in rules["allow_quality_tiers"]
        assert spec["self_hosted"] or not (rules["require_self_hosted"] or data_class == "secret")
        assert data_class != "eu" or spec["jurisdiction"] in ("FR", "DE")
    allowed_by_hand = [
        d
        for d, spec in deployments.items()
        if models[spec["model"]]["origin"] not in rules["deny_origins"]
        and (rules["allow_origins"] is None or models[spec["model"]]["origin"] in rules["allow_origins"])
        and (rules["allow_jurisdictions"] is None or spec["jurisdiction"] in rules["allow_jurisdictions"])
        and (
            rules["allow_quality_tiers"] is None
            or models[spec["model"]]["quality_tier"] in rules["allow_quality_tiers"]
        )
        and (spec["self_hosted"] or not (rules["require_self_hosted"] or data_class == "secret"))
        and (data_class != "eu" or spec["jurisdiction"] in ("FR", "DE"))
    ]
    assert sorted(d.id for d in decision.ranked) == sorted(allowed_by_hand)
