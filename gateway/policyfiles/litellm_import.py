"""A LiteLLM proxy ``model_list`` -> a gateway policy set: catalog, deployments, one route per client name.

Pure: entries in (:mod:`gateway.policyfiles.litellm_config`), the catalog as data in, :class:`Imported` out
(:mod:`gateway.policyfiles.litellm_render` writes it as YAML). Models the catalog knows keep its provenance;
the others get ``FILL-ME`` where nothing is certain, so the set does not load until ops fill them in.

Each ``model_name`` group becomes a route of that name whose every tier lists the group's models, ranked in
the order written (``rank: order``): clients keep asking for their names. A group named like its only
model needs no route: a catalog model is asked for by its id. LiteLLM balances load across a group; the
gateway tries its deployments in order and falls back to the next (docs/policies.md, "Migrating from
LiteLLM").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.policy.provenance import FILL_ME
from gateway.policy.schema import ModelSpec
from gateway.policyfiles.litellm_config import Config, Entry, env_name
from gateway.policyfiles.litellm_names import CatalogIndex
from gateway.policyfiles.litellm_providers import (
    SELF_HOSTED,
    Provider,
    openai_base_url,
    provider_of,
    region_country,
)
from gateway.routing.auth import hash_key

TENANT = "litellm-clients"
EXAMPLE_KEY = "REPLACE-ME-not-a-real-key"  # the stub tenant's key: obviously fake, to be replaced
PROVENANCE = ("vendor", "origin", "open_weights", "license", "quality_tier")
_MAPPED = {"model", "api_base", "api_version", "rpm", "tpm", "timeout", "max_retries", "aws_region_name",
           "vertex_location", "input_cost_per_token", "output_cost_per_token"}  # fmt: skip
_HELLO: dict[str, dict[str, Any]] = {
    "chat": {"messages": [{"role": "user", "content": "hi"}]},
    "completions": {"prompt": "hi"},
    "embeddings": {"input": "hi"},
}
_ALIAS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$")
_MODES = {"chat": ["chat"], "completion": ["completions"], "embedding": ["embeddings"]}


@dataclass
class Section:
    """Entries of one policy section: id -> fields, and a comment written above each."""

    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    comments: dict[str, str] = field(default_factory=dict)


@dataclass
class Imported:
    models: Section
    deployments: Section
    routes: Section
    tenants: Section
    aliases: dict[str, str]  # router_settings.model_group_alias: client name -> route or model
    cases: list[dict[str, Any]]
    known: list[str]  # model ids whose provenance came from the catalog
    unfilled: list[str]  # "models.x: origin, license" for every entry with FILL-ME
    env: list[str]  # variables the set reads: base URLs (needed to load) and keys (needed to call)
    notes: list[str]


@dataclass
class _Build:
    catalog: Mapping[str, ModelSpec]
    index: CatalogIndex
    jurisdictions: Mapping[str, str]
    out: Imported
    groups: dict[str, list[str]] = field(default_factory=dict)  # model_name -> deployment ids
    by_signature: dict[tuple[Any, ...], str] = field(default_factory=dict)


def convert(
    config: Config, catalog: Mapping[str, ModelSpec], index: CatalogIndex, jurisdictions: Mapping[str, str]
) -> Imported:
    """``jurisdictions``: a country for deployments whose jurisdiction is not certain, by litellm prefix
    (``azure``) or ``self-hosted``."""
    out = Imported(Section(), Section(), Section(), _tenant(), {}, [], [], [], [], list(config.notes))
    build = _Build(catalog, index, jurisdictions, out)
    for entry in config.entries:
        build.groups.setdefault(entry.model_name, []).append(_deployment(build, entry))
    targets = _routes(build)
    _aliases(build, config.group_aliases, targets)
    _shared_models(build)
    out.unfilled = [
        f"{section}.{key}: {', '.join(k for k, v in fields.items() if v == FILL_ME)}"
        for section, part in (("models", out.models), ("deployments", out.deployments))
        for key, fields in part.entries.items()
        if FILL_ME in fields.values()
    ]
    return out


def _model(build: _Build, entry: Entry, provider: Provider) -> str:
    base_model = entry.info.get("base_model")
    known = build.index.match(base_model if isinstance(base_model, str) else None, entry.upstream)
    if known is not None:
        if known not in build.out.models.entries:
            build.out.models.entries[known] = build.catalog[known].model_dump(mode="json", by_alias=True,
                                                                              exclude_none=True)  # fmt: skip
            build.out.models.comments[known] = f"from the catalog (LiteLLM {entry.provider}/{entry.upstream})"
            build.out.known.append(known)
        return known
    model_id = _slug(entry.upstream.rsplit("/", 1)[-1])
    if model_id not in build.out.models.entries:
        build.out.models.entries[model_id] = _unknown_model(entry, provider)
        build.out.models.comments[model_id] = (
            f"not in the catalog (LiteLLM {entry.provider}/{entry.upstream}): fill every {FILL_ME}"
        )
    return model_id


def _unknown_model(entry: Entry, provider: Provider) -> dict[str, Any]:
    vendor, origin = provider.vendor or (FILL_ME, FILL_ME)
    first_party = provider.vendor is not None  # the vendor's own API serves only its closed models
    fields: dict[str, Any] = {
        "vendor": vendor, "origin": origin, "open_weights": False if first_party else FILL_ME,
        "license": "proprietary" if first_party else FILL_ME, "quality_tier": FILL_ME,
        "endpoints": _MODES.get(str(entry.info.get("mode")), ["chat"]),
    }  # fmt: skip
    capabilities = {
        name: entry.info[key]
        for name, key in (("tools", "supports_function_calling"), ("json", "supports_response_schema"),
                          ("vision", "supports_vision"), ("context_window", "max_input_tokens"))
        if isinstance(entry.info.get(key), bool | int)
    }  # fmt: skip
    if capabilities:
        fields["capabilities"] = capabilities
    fields["description"] = f"Imported from LiteLLM ({entry.provider}/{entry.upstream})."
    return fields


def _deployment(build: _Build, entry: Entry) -> str:
    params = entry.params
    api_base = _env_ref(params.get("api_base"))
    provider = provider_of(entry.provider, api_base)
    model_id = _model(build, entry, provider)
    base_url = _base_url(entry, provider, api_base)
    signature = (entry.provider, entry.upstream, base_url, entry.key_env, model_id)
    if signature in build.by_signature:  # one endpoint listed in two groups: one deployment
        return build.by_signature[signature]
    fields: dict[str, Any] = {"model": model_id}
    if provider.gateway != "openai_compatible":
        fields["provider"] = provider.gateway
    if entry.upstream != model_id:
        fields["upstream_model"] = entry.upstream
    if base_url:
        fields["base_url"] = base_url
    if entry.key_env:
        fields["api_key_env"] = entry.key_env
    fields |= _where(build, entry, provider)
    fields |= _limits(build, entry)
    dep_id = _deployment_id(build, entry, model_id)
    build.out.deployments.entries[dep_id] = fields
    build.out.deployments.comments[dep_id] = f"LiteLLM {entry.where}: {entry.provider}/{entry.upstream}"
    build.by_signature[signature] = dep_id
    _env_notes(build, entry, base_url)
    return dep_id


def _base_url(entry: Entry, provider: Provider, api_base: str | None) -> str | None:
    url = api_base or provider.base_url
    if url is None:
        return None
    if provider.gateway == "openai_compatible":
        url = openai_base_url(entry.provider, url)
    version = entry.params.get("api_version")
    if entry.provider == "azure" and isinstance(version, str) and "api-version=" not in url:
        url += f"{'&' if '?' in url else '?'}api-version={version}"
    return url


def _where(build: _Build, entry: Entry, provider: Provider) -> dict[str, Any]:
    jurisdiction = provider.jurisdiction
    if jurisdiction == FILL_ME and entry.provider in ("bedrock", "vertex_ai"):
        region = entry.params.get("aws_region_name" if entry.provider == "bedrock" else "vertex_location")
        jurisdiction = region_country(entry.provider, region if isinstance(region, str) else None, entry.upstream)
    if jurisdiction == FILL_ME:
        jurisdiction = build.jurisdictions.get(SELF_HOSTED if provider.self_hosted else entry.provider, FILL_ME)
    fields: dict[str, Any] = {"operator": provider.operator, "jurisdiction": jurisdiction}
    if provider.self_hosted:
        fields["self_hosted"] = True
    return fields


def _limits(build: _Build, entry: Entry) -> dict[str, Any]:
    params, fields = entry.params, dict[str, Any]()
    timeout = params.get("timeout")
    if isinstance(timeout, int | float) and 0 < timeout <= 3600:
        fields["timeout_seconds"] = timeout
    retries = params.get("max_retries")
    if isinstance(retries, int) and 0 <= retries <= 10:
        fields["retry"] = {"attempts": retries + 1}
    if isinstance(params.get("rpm"), int) and params["rpm"] > 0:
        fields["caps"] = {"rpm": params["rpm"]}
    price = _price(entry)
    if price is not None:
        fields["price"] = price
    if "tpm" in params:
        build.out.notes.append(
            f"{entry.where}: tpm not imported: a deployment is capped by rpm and max_concurrency; token limits "
            "are per tenant (tenants.*.limits.tpm)"
        )
    unmapped = sorted(k for k in params if k not in _MAPPED)
    if unmapped:
        build.out.notes.append(f"{entry.where}: litellm_params not imported: {', '.join(unmapped)}")
    return fields


def _price(entry: Entry) -> dict[str, float] | None:
    costs = {**entry.info, **entry.params}
    given = {k: costs.get(f"{k}_cost_per_token") for k in ("input", "output")}
    if not isinstance(given["input"], int | float):
        return None
    output = given["output"] if isinstance(given["output"], int | float) else 0.0
    return {"input": round(given["input"] * 1e6, 6), "output": round(output * 1e6, 6)}


def _deployment_id(build: _Build, entry: Entry, model_id: str) -> str:
    given = entry.info.get("id")
    candidate = given if isinstance(given, str) and _slug(given) == given else f"{model_id}-{entry.provider}"
    taken, dep_id, n = build.out.deployments.entries, candidate, 2
    while dep_id in taken:
        dep_id, n = f"{candidate}-{n}", n + 1
    return dep_id


def _env_notes(build: _Build, entry: Entry, base_url: str | None) -> None:
    for name in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", base_url or ""):
        line = f"{name} (base URL: needed to load the set)"
        if line not in build.out.env:
            build.out.env.append(line)
    if entry.key_env:
        line = f"{entry.key_env} (API key: needed to call; unset, the deployment is skipped)"
        if entry.key_replaced:
            line = f"{entry.key_env} (API key: NEW name, the config's literal key was not copied: set it)"
        if line not in build.out.env:
            build.out.env.append(line)


def _routes(build: _Build) -> dict[str, str]:
    """One route per group; returns model_name -> the route or model a client name reaches."""
    deployments, targets = build.out.deployments.entries, {}
    for name, dep_ids in build.groups.items():
        models = list(dict.fromkeys(deployments[d]["model"] for d in dep_ids))
        route_id = targets[name] = name
        if name in build.out.models.entries:
            if models == [name]:
                build.out.cases.append(_case(build, name, None, models))
                continue
            route_id = targets[name] = f"{name}-group"
            build.out.notes.append(
                f"model_name {name!r} is also a catalog model id: clients asking for {name!r} get that model; "
                f"the whole group ({', '.join(models)}) is the route {route_id!r}"
            )
        build.out.routes.entries[route_id] = {
            "description": f"LiteLLM model_name {name}, {len(dep_ids)} entry(ies); deployments tried in order",
            "tiers": dict.fromkeys(("simple", "standard", "complex"), models),
            "rank": "order",
        }
        build.out.routes.comments[route_id] = f"clients ask for {route_id!r}"
        build.out.cases.append(_case(build, route_id, route_id, models))
    return targets


def _aliases(build: _Build, given: Mapping[str, str], targets: Mapping[str, str]) -> None:
    taken = {*build.out.models.entries, *build.out.routes.entries}
    for alias, group in given.items():
        if group not in targets:
            build.out.notes.append(f"router_settings.model_group_alias.{alias}: no model_name {group!r}; skipped")
        elif alias in taken or not _ALIAS.match(alias):
            build.out.notes.append(f"router_settings.model_group_alias.{alias}: not a free gateway name; skipped")
        else:
            build.out.aliases[alias] = targets[group]


def _case(build: _Build, name: str, route: str | None, models: list[str]) -> dict[str, Any]:
    deployments = build.out.deployments.entries
    reached = [d for m in models for d, fields in deployments.items() if fields["model"] == m]
    endpoints = build.out.models.entries[models[0]].get("endpoints", ["chat"])
    endpoint = "chat" if "chat" in endpoints else endpoints[0]
    body: dict[str, Any] = {"model": name, **_HELLO[endpoint]}
    expect: dict[str, Any] = {"allowed": reached} if route or len(reached) == 1 else {"first_model": name}
    case = {"name": f"{name} reaches its LiteLLM deployments", "tenant": TENANT}
    return case | ({"endpoint": endpoint} if endpoint != "chat" else {}) | {"request": body, "expect": expect}


def _shared_models(build: _Build) -> None:
    """A route reaches every deployment of its models: say so when a group had only some of them."""
    deployments = build.out.deployments.entries
    for name, dep_ids in build.groups.items():
        for model in {deployments[d]["model"] for d in dep_ids}:
            others = [d for d, f in deployments.items() if f["model"] == model and d not in dep_ids]
            if others:
                build.out.notes.append(
                    f"model_name {name!r}: the gateway also reaches {', '.join(others)} for {model} (a route "
                    "tries every deployment of its models); restrict with a tenant's allow_jurisdictions if needed"
                )


def _tenant() -> Section:
    spec = {"description": "Stub tenant for the imported routes: replace its key before production.",
            "keys": [{"name": "REPLACE-ME", "sha256": hash_key(EXAMPLE_KEY)}]}  # fmt: skip
    comment = f'key {EXAMPLE_KEY!r} is a placeholder: `echo -n "$KEY" | gateway keys hash` for a real one'
    return Section({TENANT: spec}, {TENANT: comment})


def _env_ref(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    name = env_name(value)
    return f"${{{name}}}" if name else value


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9._:@-]+", "-", text.lower()).strip("-._:@")
    return slug[:128] or "model"
