"""Finding a LiteLLM model string in the gateway's catalog, by a normalised name.

``hosted_vllm/Qwen/Qwen3-32B``, ``bedrock/us.anthropic.claude-sonnet-4-20250514-v1:0`` and
``ollama/llama3.3:70b`` are the catalog's ``qwen3-32b``, ``claude-sonnet-4`` and ``llama-3.3-70b-instruct``:
the provider and organisation prefixes, Bedrock's region and vendor prefixes and version suffix, date
suffixes and words such as ``-instruct`` are dropped, then the separators. The catalog is read as data: its
model ids and the ``upstream_model`` names its deployments use (``deepseek-chat`` is ``deepseek-v3``).
A key that two catalog models share matches neither.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

_BEDROCK_REGION = re.compile(r"^(us-gov|us|eu|apac|global|jp|au|ca)\.")
_BEDROCK_VENDOR = re.compile(r"^(anthropic|meta|mistral|amazon|cohere|deepseek|qwen|ai21|writer|openai|moonshot)\.")
_BEDROCK_API = re.compile(r"^(converse|invoke|converse_like)/")
_SUFFIXES = (
    re.compile(r"-v\d+(:\d+)?$"),  # Bedrock's -v1:0
    re.compile(r"[-@]\d{8}$"),  # -20250514, Vertex's @20250514
    re.compile(r"-\d{4}-\d{2}-\d{2}$"),  # -2024-08-06
    re.compile(r"-(instruct|chat|latest|it|fp8|awq|gptq|gguf|bf16)$"),
)


def name_key(name: str) -> str:
    """The normalised form two spellings of one model share."""
    key = _BEDROCK_API.sub("", name.strip().lower())
    key = key.rsplit("/", 1)[-1]  # provider and organisation prefixes
    key = _BEDROCK_VENDOR.sub("", _BEDROCK_REGION.sub("", key))
    base, _, tag = key.partition(":")  # Ollama's name:tag
    key = base if tag in ("", "latest") or re.search(r"-v\d+$", base) else f"{base}-{tag}"
    changed = True
    while changed:
        stripped = key
        for suffix in _SUFFIXES:
            stripped = suffix.sub("", stripped)
        changed, key = stripped != key, stripped
    return re.sub(r"[-_:\s]", "", key)


class CatalogIndex:
    """Normalised name -> catalog model id."""

    def __init__(self, names: Iterable[tuple[str, str]]) -> None:
        found: dict[str, set[str]] = {}
        for name, model_id in names:
            found.setdefault(name_key(name), set()).add(model_id)
        self._ids = {key: next(iter(ids)) for key, ids in found.items() if len(ids) == 1}

    @classmethod
    def of(cls, models: Iterable[str], upstream_names: Mapping[str, str]) -> CatalogIndex:
        """From the catalog's ids and its deployments' ``upstream_model`` -> model id."""
        return cls([*((m, m) for m in models), *upstream_names.items()])

    def match(self, *names: str | None) -> str | None:
        """The catalog id of the first name that matches, else None."""
        for name in names:
            if name and (found := self._ids.get(name_key(name))) is not None:
                return found
        return None
