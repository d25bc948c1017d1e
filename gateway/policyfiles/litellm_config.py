"""A LiteLLM proxy config (``model_list:``), read into entries the importer can map, or every problem at once.

Pure: the caller parses the YAML. Only ``model_list`` is imported; the other sections (``litellm_settings``,
``router_settings``, ``general_settings``, ``environment_variables``) are named in the notes and left alone.
A literal secret in ``litellm_params`` is refused (the importer never copies one) unless the caller asks for
it to be replaced by an environment variable reference.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ENV_PREFIX = "os.environ/"  # LiteLLM's way of reading a value from the environment
SECRET_PARAMS = (
    "api_key", "azure_ad_token", "client_secret", "azure_password", "vertex_credentials", "aws_access_key_id",
    "aws_secret_access_key", "aws_session_token", "aws_web_identity_token", "anthropic_identity_token",
)  # fmt: skip
_GATEWAY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$")  # schema.Id
_BARE_PROVIDERS = (("gpt-", "openai"), ("chatgpt-", "openai"), ("o1", "openai"), ("o3", "openai"),
                   ("o4", "openai"), ("text-embedding-", "openai"), ("claude-", "anthropic"))  # fmt: skip
_SECTIONS_NOT_IMPORTED = {
    "litellm_settings": "litellm's own module settings; retries, timeouts and fallbacks are per deployment and "
    "per route here",
    "router_settings": "routing strategy, retries and cooldowns: the gateway tries a group's deployments in the "
    "order written and has its own breakers (state.breaker); model_group_alias becomes aliases.yaml",
    "general_settings": "master key, database, UI: gateway keys are per tenant (tenants.yaml)",
    "environment_variables": "set them in the gateway's environment instead",
    "include": "other files are not followed: merge their model_list into this config first",
}


class ConfigProblems(Exception):
    """The config cannot be imported; ``problems`` names every entry and field at fault."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Entry:
    """One ``model_list`` item: a deployment in the gateway's words."""

    index: int
    model_name: str  # what clients ask for
    provider: str  # the litellm prefix: openai, hosted_vllm, azure, ...
    upstream: str  # the rest of litellm_params.model
    params: Mapping[str, Any]  # litellm_params, secrets removed
    info: Mapping[str, Any]  # model_info
    key_env: str | None = None  # the variable holding the key (api_key: os.environ/NAME)
    key_replaced: bool = False  # a literal key was dropped; key_env is a new name ops must set

    @property
    def where(self) -> str:
        return f"model_list[{self.index}] (model_name {self.model_name!r})"


@dataclass
class Config:
    entries: list[Entry]
    notes: list[str] = field(default_factory=list)
    group_aliases: dict[str, str] = field(default_factory=dict)  # router_settings.model_group_alias


def read_config(raw: Any, replace_literal_keys: bool = False) -> Config:
    """The config's entries, or :class:`ConfigProblems`."""
    if not isinstance(raw, dict):
        raise ConfigProblems(["the top level must be a mapping with a model_list: (a LiteLLM proxy config)"])
    model_list = raw.get("model_list")
    if not isinstance(model_list, list) or not model_list:
        raise ConfigProblems(["no model_list: a LiteLLM proxy config lists its models under model_list:"])
    notes = [f"{name}: not imported ({why})" for name, why in _SECTIONS_NOT_IMPORTED.items() if name in raw]
    notes += [f"{name}: not a LiteLLM config section; ignored" for name in raw if _unknown_section(name)]
    problems: list[str] = []
    entries = []
    for index, item in enumerate(model_list):
        entry = _entry(index, item, replace_literal_keys, problems, notes)
        if entry is not None:
            entries.append(entry)
    if problems:
        raise ConfigProblems(problems)
    if not entries:
        raise ConfigProblems(["model_list: no entry could be imported (see the notes above)", *notes])
    return Config(entries, notes, _group_aliases(raw.get("router_settings")))


def _group_aliases(settings: Any) -> dict[str, str]:
    """``router_settings.model_group_alias``: a client name -> a model_name (or ``{model: name, hidden: ..}``)."""
    given = settings.get("model_group_alias") if isinstance(settings, dict) else None
    aliases = {}
    for alias, target in (given or {}).items() if isinstance(given, dict) else ():
        name = target.get("model") if isinstance(target, dict) else target
        if isinstance(alias, str) and isinstance(name, str):
            aliases[alias] = name
    return aliases


def _unknown_section(name: Any) -> bool:
    return name not in ("model_list", *_SECTIONS_NOT_IMPORTED)


def _entry(index: int, item: Any, replace_keys: bool, problems: list[str], notes: list[str]) -> Entry | None:
    where = f"model_list[{index}]"
    if not isinstance(item, dict):
        problems.append(f"{where}: must be a mapping with model_name and litellm_params")
        return None
    name = item.get("model_name")
    if not isinstance(name, str) or not name:
        problems.append(f"{where}: model_name is missing (the name clients ask for)")
        return None
    where = f"{where} (model_name {name!r})"
    params = item.get("litellm_params")
    if not isinstance(params, dict):
        problems.append(f"{where}: litellm_params is missing (a mapping with model: provider/name)")
        return None
    model = params.get("model")
    if not isinstance(model, str) or not model:
        problems.append(f"{where}: litellm_params.model is missing (e.g. openai/gpt-4o)")
        return None
    if "*" in name or "*" in model:
        notes.append(f"{where}: wildcard routing ({model}) not imported: list the models it should serve")
        return None
    if not _GATEWAY_NAME.match(name):
        problems.append(f"{where}: model_name cannot be a gateway name (letters, digits and . _ : / @ - only)")
        return None
    provider, upstream = _split(model)
    if provider is None:
        problems.append(f"{where}: litellm_params.model {model!r} has no provider prefix; write e.g. openai/{model}")
        return None
    info = item.get("model_info")
    entry = Entry(index, name, provider, upstream, {}, info if isinstance(info, dict) else {})
    return _with_secrets(entry, params, replace_keys, problems, notes)


def _split(model: str) -> tuple[str | None, str]:
    provider, slash, rest = model.partition("/")
    if slash and rest:
        return provider, rest
    guessed = next((p for prefix, p in _BARE_PROVIDERS if model.startswith(prefix)), None)
    return guessed, model


def _with_secrets(entry: Entry, params: dict[str, Any], replace_keys: bool, problems: list[str],
                  notes: list[str]) -> Entry | None:  # fmt: skip
    """The entry with its key as an environment variable name; literal secrets refused or replaced."""
    kept = {k: v for k, v in params.items() if k not in SECRET_PARAMS}
    key_env, replaced = env_name(params.get("api_key")), False
    for name in (n for n in SECRET_PARAMS if params.get(n) not in (None, "")):
        value = params[name]
        if env_name(value) is not None:
            if name != "api_key":
                notes.append(f"{entry.where}: litellm_params.{name} not carried over: {_process_env(entry)}")
            continue
        if not replace_keys or name != "api_key":
            problems.append(
                f"{entry.where}: litellm_params.{name} is a literal secret; the importer never copies one: write "
                f"{name}: os.environ/NAME in the LiteLLM config (or pass --replace-literal-keys for api_key)"
            )
            return None
        key_env, replaced = _slug_env(entry), True
    return Entry(entry.index, entry.model_name, entry.provider, entry.upstream, kept, entry.info, key_env, replaced)


def env_name(value: Any) -> str | None:
    """``NAME`` of ``os.environ/NAME``, else None."""
    if isinstance(value, str) and value.startswith(ENV_PREFIX):
        name = value.removeprefix(ENV_PREFIX)
        return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) else None
    return None


def _slug_env(entry: Entry) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", f"{entry.model_name}_{entry.provider}".upper()).strip("_") + "_API_KEY"


def _process_env(entry: Entry) -> str:
    if entry.provider == "bedrock":
        return "litellm signs Bedrock calls from the process environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)"
    return "credentials other than api_key come from the gateway process's environment"
