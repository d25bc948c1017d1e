"""The loaded policy, compiled into lookups the request path reads without work."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.classify.base import Classifier
from gateway.policy.aliases import Aliases
from gateway.policy.detect import Detection
from gateway.policy.guards_schema import RateLimits, StateSpec
from gateway.policy.schema import (
    DataClassSpec,
    DeploymentSpec,
    Limits,
    ModelSpec,
    Price,
    RouteSpec,
    TenantSpec,
)


@dataclass(frozen=True, slots=True)
class Violation:
    """Why a rule denies a candidate: the rule's name and a message naming the bad value and the allowed set."""

    rule: str
    message: str


# (tenant, data class) -> deployment -> what the tenant and data-class rules say of it
PolicyVerdicts = dict[tuple[str, str], Mapping[str, tuple[Violation, ...]]]


@dataclass(frozen=True, slots=True)
class Deployment:
    """A deployment joined with its model, its effective price and whether it can be called now."""

    id: str
    spec: DeploymentSpec
    model_id: str
    model: ModelSpec
    price: Price
    unavailable: str | None = None  # why it cannot be called (e.g. its api_key_env is not set)


@dataclass(frozen=True, slots=True)
class PolicySet:
    revision: str
    source: str
    models: Mapping[str, ModelSpec]
    deployments: Mapping[str, Deployment]
    deployments_by_model: Mapping[str, tuple[str, ...]]
    tenants: Mapping[str, TenantSpec]
    tenant_by_key_hash: Mapping[str, str]
    data_classes: Mapping[str, DataClassSpec]
    data_class_rank: Mapping[str, int]
    routes: Mapping[str, RouteSpec]
    # what scores the auto routes: the learned router of the directory's own router.json.gz (an operator's
    # model pair), else the packaged one; chosen once, when the policy loads
    classifier: Classifier = field(compare=False, repr=False)
    baseline_prices: Mapping[str, Price] = field(default_factory=dict)  # route -> its baseline model's price
    aliases: Aliases = field(default_factory=Aliases)  # client model names and patterns -> routes or models
    limits: Limits = field(default_factory=Limits)
    state: StateSpec = field(default_factory=StateSpec)
    key_limits: Mapping[str, RateLimits] = field(default_factory=dict)  # key hash -> that key's own limits
    admin_key_hashes: frozenset[str] = frozenset()
    metrics_key_hashes: frozenset[str] = frozenset()  # when set, /metrics needs one of these or an admin key
    warnings: tuple[str, ...] = ()
    detection: Detection = field(default_factory=Detection)  # personal-data detectors that raise a data class
    # Filled on first use by decide(): the tenant and data-class rules read nothing of a request, so
    # their verdicts are worked out once per (tenant, data class) for this revision, not per request.
    policy_verdicts: PolicyVerdicts = field(default_factory=dict, init=False, compare=False, repr=False)


def all_available(policy: PolicySet) -> PolicySet:
    """The set with every deployment counted as available (credentials come and go): what the example
    cases, the compliance proof and the diff judge, the policy rather than this shell's environment.
    A new set: its verdict memo starts empty."""
    deployments = {k: dataclasses.replace(d, unavailable=None) for k, d in policy.deployments.items()}
    return dataclasses.replace(policy, deployments=deployments)
