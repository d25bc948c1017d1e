"""A catalog model without a deployment is refused with a reason naming it; ``/v1/models`` lists only the
routes and models a tenant can use (a route whose every model the tenant may not call is left out)."""

from __future__ import annotations

from pathlib import Path

import orjson

from gateway.classify.heuristic import HeuristicClassifier
from gateway.errors import NotCapable
from gateway.policy.decide import decide, refusal
from gateway.policy.policy_set import PolicySet
from gateway.policy.visible import visible_models
from gateway.policyfiles.loader import load_policy_dir
from gateway.routing.normalize import normalize
from tests.factories import model, small_policy

URLS = {"a": "http://a/v1", "b": "http://b/v1", "c": "http://c/v1"}
TIERS = {"simple": ["cn-open"], "standard": ["cn-open"], "complex": ["cn-open"]}


def policy(tmp_path: Path) -> PolicySet:
    models = {
        "cn-open": model("CN", "basic", 0.1),
        "us-open": model("US", "strong", 0.2),
        "frontier": model("US", "frontier", 2.0, open_weights=False, license="proprietary"),
        "catalog-only": model("US", "strong", 1.0),  # in the catalog, no deployment
    }
    routes = {
        "auto": {"tiers": {"simple": ["cn-open", "us-open"], "standard": ["us-open"], "complex": ["frontier"]}},
        "cn-only": {"tiers": TIERS},
    }
    return load_policy_dir(small_policy(tmp_path, URLS, models=models, routes=routes), {})


def test_a_catalog_model_without_a_deployment_is_refused_naming_it(tmp_path: Path) -> None:
    body = orjson.dumps({"model": "catalog-only", "messages": [{"role": "user", "content": "hi"}]})
    decision = decide(policy(tmp_path), "open", normalize("chat", body, {}), HeuristicClassifier())
    error = refusal(decision)
    assert isinstance(error, NotCapable) and error.status == 400
    assert "The model 'catalog-only' is in the catalog but has no deployment" in error.message
    assert ". ." not in error.message


def test_models_lists_only_routes_the_tenant_can_reach(tmp_path: Path) -> None:
    loaded = policy(tmp_path)
    open_ids = [entry["id"] for entry in visible_models(loaded, "open", 0)]
    us_ids = [entry["id"] for entry in visible_models(loaded, "us-only", 0)]
    assert open_ids == ["auto", "cn-only", "cn-open", "us-open", "frontier"]
    assert us_ids == ["auto", "us-open", "frontier"], "cn-only routes only to a CN model, which us-only denies"
    assert "catalog-only" not in open_ids
