"""The imported policy set as the text of its files, in the shipped files' layout, with comments for ops."""

from __future__ import annotations

from typing import Any

import yaml

from gateway.policy.provenance import FILL_ME
from gateway.policyfiles.json_schema import render as render_schema
from gateway.policyfiles.litellm_import import Imported, Section

SCHEMA_LINE = "# yaml-language-server: $schema=schema/policy.schema.json\n"
CASES_FILE = "cases/litellm.yaml"
_HINTS = {
    "vendor": "who trained and released the model",
    "origin": "ISO 3166 alpha-2 country of the vendor (CN, FR, US, ...)",
    "open_weights": "true if the vendor publishes the weights",
    "license": "SPDX id (Apache-2.0, MIT) or a short name; proprietary = API access only",
    "quality_tier": "basic | strong | frontier (models.yaml of the shipped policies says how)",
    "operator": "who runs inference",
    "jurisdiction": "ISO 3166 alpha-2 country where the data goes",
}
_HEADERS = {
    "models": "Model catalog, imported from a LiteLLM config: what each model is and where it comes from.\n"
    f"Known models carry the shipped catalog's provenance; every {FILL_ME} must be filled before the set loads\n"
    "(`gateway policy check DIR` names each one). Fields: the shipped policies/models.yaml.",
    "deployments": "Deployments, imported from a LiteLLM config: one per model_list entry (an endpoint listed in\n"
    "two groups is one deployment). Keys are read from the environment (api_key_env), never written here.\n"
    f"Every {FILL_ME} (who runs inference, where the data goes) must be filled before the set loads.",
    "routes": "Routes, imported from a LiteLLM config: one per model_name group, so clients keep their model\n"
    "names. Every tier lists the group's models; deployments are tried in the order written (rank: order),\n"
    "then the next on failure. A group named like its only catalog model needs no route.",
    "tenants": "Tenants: who calls, with which keys. A stub: LiteLLM's master and virtual keys are not imported.\n"
    'Keys are stored as sha256 hashes: `echo -n "$KEY" | gateway keys hash`.',
}

_ALIASES_HEADER = "Aliases, imported from LiteLLM's router_settings.model_group_alias: client name -> route or model."


def render(imported: Imported) -> dict[str, str]:
    """Relative path -> file text: the four policy files, the example cases and the JSON Schemas."""
    files = {f"{name}.yaml": _section_file(name, getattr(imported, name)) for name in _HEADERS}
    cases = yaml.safe_dump({"cases": imported.cases}, sort_keys=False, width=120, allow_unicode=True)
    files[CASES_FILE] = (
        "# yaml-language-server: $schema=../schema/cases.schema.json\n"
        "# One case per client model name: a request for it reaches its deployments (`gateway policy test DIR`).\n"
        + cases
    )
    if imported.aliases:
        lines = [SCHEMA_LINE.rstrip("\n"), f"# {_ALIASES_HEADER}", "aliases:"]
        lines += [f"  {_scalar(alias)}: {_scalar(target)}" for alias, target in imported.aliases.items()]
        files["aliases.yaml"] = "\n".join(lines) + "\n"
    for schema in ("policy.schema.json", "cases.schema.json"):
        files[f"schema/{schema}"] = render_schema(schema)
    return files


def _section_file(name: str, section: Section) -> str:
    lines = [SCHEMA_LINE.rstrip("\n"), *(f"# {line}" for line in _HEADERS[name].splitlines()), f"{name}:"]
    for key, fields in section.entries.items():
        lines.append("")
        if comment := section.comments.get(key):
            lines.append(f"  # {comment}")
        lines.append(f"  {_scalar(key)}:")
        for field, value in fields.items():
            lines.extend(_field(field, value))
    return "\n".join(lines) + "\n"


def _field(name: str, value: Any) -> list[str]:
    if isinstance(value, dict) and value and all(isinstance(v, list) for v in value.values()):
        return [f"    {name}:", *(f"      {k}: {_scalar(v)}" for k, v in value.items())]
    line = f"    {name}: {_scalar(value)}"
    if value == FILL_ME and name in _HINTS:
        line += f"  # {_HINTS[name]}"
    return [line]


def _scalar(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10**6, allow_unicode=True)
    return text.removesuffix("\n").removesuffix("\n...")
