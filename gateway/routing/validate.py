"""Strict checks of the fields each API defines: a wrong type or an out-of-range value is a 400 naming the field.

One table per API maps a top-level field to a check: a small function that returns what is wrong with a value
(``"must be a number from 0 to 2"``) or None. :func:`check` walks the body's own keys once and looks each up, so a
body of six fields costs six dict lookups and a few ``type()`` calls, not a model per request. A field that is
``null`` passes (the OpenAI schema makes most of them nullable; the upstream applies its default). Fields that
are in no table pass through untouched: upstreams take fields of their own (vLLM's ``top_k``, ``min_p``, ...).

Fields whose shape the gateway reads itself (``model``, ``messages``, ``prompt``, ``input``, ``tools``,
``tool_choice``, ``response_format``, ``stream_options``, ``max_tokens``) are checked where they are read
(:mod:`gateway.routing.normalize`, :mod:`gateway.translate.anthropic_messages`); the tables add the rest.
The ranges are those of each API's reference (OpenAI's openapi.yaml, Anthropic's Messages API).

Reusable: :func:`check` takes any table of the same form, so another API's edge (``/v1/responses``) can build
its own from :func:`number`, :func:`integer`, :data:`boolean`, :data:`string`, :func:`one_of`, ... and call it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gateway.errors import InvalidRequest

Check = Callable[[Any], str | None]  # a value -> what is wrong with it, or None
Rules = Mapping[str, Check]
# each check's JSON Schema, for the OpenAPI document (gateway/http/openapi.py)
_SCHEMAS: dict[Check, dict[str, Any]] = {}


def described(schema: dict[str, Any]) -> Callable[[Check], Check]:
    """Record ``schema`` as the JSON Schema of the values the decorated check lets pass."""

    def record(rule: Check) -> Check:
        _SCHEMAS[rule] = schema
        return rule

    return record


def schema_of(rule: Check) -> dict[str, Any]:
    """The JSON Schema of what ``rule`` lets pass (``{}``, anything, for a check that recorded none)."""
    return _SCHEMAS.get(rule, {})


def check(rules: Rules, body: Mapping[str, Any]) -> None:
    """Raise ``InvalidRequest`` (param = the field) for the first field of ``body`` that breaks its rule."""
    for name, value in body.items():
        rule = rules.get(name)
        if rule is not None and value is not None and (problem := rule(value)) is not None:
            raise InvalidRequest(f"'{name}' {problem}, got {shown(value)}.", param=name)


def shown(value: Any, limit: int = 80) -> str:
    """A client's value as an error message quotes it: its repr, cut short, since the value may be megabytes."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _is_number(value: Any) -> bool:
    kind = type(value)
    return kind is float or kind is int  # bool is an int subclass, but not a number here


def number(low: float, high: float) -> Check:
    @described({"type": "number", "minimum": low, "maximum": high})
    def rule(value: Any) -> str | None:
        return None if _is_number(value) and low <= value <= high else f"must be a number from {low:g} to {high:g}"

    return rule


def integer(low: int, high: int | None = None) -> Check:
    noun = f"an integer from {low} to {high}" if high is not None else f"an integer of at least {low}"
    bounds = {"minimum": low} | ({"maximum": high} if high is not None else {})

    @described({"type": "integer", **bounds})
    def rule(value: Any) -> str | None:
        fits = type(value) is int and value >= low and (high is None or value <= high)
        return None if fits else f"must be {noun}"

    return rule


@described({"type": "integer"})
def any_integer(value: Any) -> str | None:
    return None if type(value) is int else "must be an integer"


@described({"type": "boolean"})
def boolean(value: Any) -> str | None:
    return None if type(value) is bool else "must be a boolean"


@described({"type": "string"})
def string(value: Any) -> str | None:
    return None if type(value) is str else "must be a string"


@described({"type": "object"})
def mapping(value: Any) -> str | None:
    return None if type(value) is dict else "must be an object"


@described({"type": "array", "items": {"type": "string"}})
def strings(value: Any) -> str | None:
    fits = type(value) is list and all(type(item) is str for item in value)
    return None if fits else "must be an array of strings"


@described({"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]})
def string_or_strings(value: Any) -> str | None:
    return None if type(value) is str or strings(value) is None else "must be a string or an array of strings"


def one_of(*allowed: str) -> Check:
    listed = ", ".join(repr(a) for a in allowed)

    @described({"type": "string", "enum": list(allowed)})
    def rule(value: Any) -> str | None:
        return None if type(value) is str and value in allowed else f"must be one of {listed}"

    return rule


@described({"type": "array"})
def array(value: Any) -> str | None:
    return None if type(value) is list else "must be an array"


@described({"type": "object", "additionalProperties": {"type": "string"}})
def string_map(value: Any) -> str | None:
    fits = type(value) is dict and all(type(item) is str for item in value.values())
    return None if fits else "must be an object of string values"


def number_map(low: float, high: float) -> Check:
    @described({"type": "object", "additionalProperties": {"type": "number", "minimum": low, "maximum": high}})
    def rule(value: Any) -> str | None:
        fits = type(value) is dict and all(_is_number(v) and low <= v <= high for v in value.values())
        return None if fits else f"must be an object of numbers from {low:g} to {high:g}"

    return rule


@described(
    {
        "anyOf": [
            {"type": "string", "enum": ["none", "auto", "required"]},
            {"type": "object", "required": ["type"], "properties": {"type": {"type": "string"}}},
        ]
    }
)
def tool_choice(value: Any) -> str | None:
    """OpenAI's tool_choice: "none" | "auto" | "required", or an object with a string ``type``."""
    if type(value) is str:
        return None if value in ("none", "auto", "required") else "must be 'none', 'auto', 'required' or an object"
    fits = type(value) is dict and type(value.get("type")) is str
    return None if fits else "must be a string or an object with a 'type'"


_SAMPLING: dict[str, Check] = {
    "temperature": number(0, 2),
    "top_p": number(0, 1),
    "frequency_penalty": number(-2, 2),
    "presence_penalty": number(-2, 2),
    "logit_bias": number_map(-100, 100),
    "n": integer(1, 128),
    "seed": any_integer,
    "stop": string_or_strings,
    "stream": boolean,
    "user": string,
}

CHAT: Rules = _SAMPLING | {
    "max_tokens": integer(1),
    "max_completion_tokens": integer(1),
    "logprobs": boolean,
    "top_logprobs": integer(0, 20),
    "parallel_tool_calls": boolean,
    "tool_choice": tool_choice,
    "store": boolean,
    "metadata": string_map,
    "service_tier": string,
    "reasoning_effort": string,
    "verbosity": string,
    "modalities": strings,
    "prediction": mapping,
    "audio": mapping,
    "web_search_options": mapping,
    "safety_identifier": string,
    "prompt_cache_key": string,
}

COMPLETIONS: Rules = _SAMPLING | {
    "max_tokens": integer(1),
    "best_of": integer(0, 20),
    "echo": boolean,
    "logprobs": integer(0, 5),
    "suffix": string,
}

EMBEDDINGS: Rules = {
    "encoding_format": one_of("float", "base64"),
    "dimensions": integer(1),
    "user": string,
}


@described(
    {
        "anyOf": [
            {"type": "object", "required": ["type"], "properties": {"type": {"enum": ["disabled", "adaptive"]}}},
            {
                "type": "object",
                "required": ["type", "budget_tokens"],
                "properties": {"type": {"const": "enabled"}, "budget_tokens": {"type": "integer", "minimum": 1024}},
            },
        ]
    }
)
def thinking(value: Any) -> str | None:
    """Anthropic's thinking: {"type": "enabled", "budget_tokens": >= 1024}, {"type": "disabled"}, or
    {"type": "adaptive"} (the model decides how much to think; Claude Code 2.x sends it)."""
    if type(value) is not dict or value.get("type") not in ("enabled", "disabled", "adaptive"):
        return "must be an object whose 'type' is 'enabled', 'disabled' or 'adaptive'"
    budget = value.get("budget_tokens")
    if value["type"] == "enabled" and (type(budget) is not int or budget < 1024):
        return "with type 'enabled' needs an integer 'budget_tokens' of at least 1024"
    return None


MESSAGES: Rules = {
    "max_tokens": integer(1),
    "temperature": number(0, 1),
    "top_p": number(0, 1),
    "top_k": integer(0),
    "stop_sequences": strings,
    "stream": boolean,
    "metadata": mapping,
    "thinking": thinking,
    "service_tier": one_of("auto", "standard_only"),
}

# OpenAI's Responses API; input, tools, tool_choice and text are also read by gateway.translate.responses_request
RESPONSES: Rules = {
    "instructions": string,
    "max_output_tokens": integer(1),
    "max_tool_calls": integer(1),
    "temperature": number(0, 2),
    "top_p": number(0, 1),
    "top_logprobs": integer(0, 20),
    "parallel_tool_calls": boolean,
    "stream": boolean,
    "stream_options": mapping,
    "store": boolean,
    "background": boolean,
    "metadata": string_map,
    "user": string,
    "safety_identifier": string,
    "prompt_cache_key": string,
    "service_tier": string,
    "previous_response_id": string,
    "reasoning": mapping,
    "text": mapping,
    "include": strings,
    "truncation": one_of("auto", "disabled"),
    "tool_choice": tool_choice,
    "tools": array,
}

RULES: Mapping[str, Rules] = {
    "chat": CHAT,
    "completions": COMPLETIONS,
    "embeddings": EMBEDDINGS,
    "messages": MESSAGES,
    "responses": RESPONSES,
}
