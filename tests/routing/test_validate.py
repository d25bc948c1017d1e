"""The field tables of gateway.routing.validate: each bad value is refused naming its field, good ones pass."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import InvalidRequest
from gateway.routing.validate import RULES, check

# (api, field, a value the API allows, a value it does not)
TABLE: list[tuple[str, str, Any, Any]] = [
    ("chat", "temperature", 0.7, "hot"),
    ("chat", "temperature", 2, 2.5),
    ("chat", "temperature", 0, True),
    ("chat", "top_p", 1, -0.1),
    ("chat", "frequency_penalty", -2, 3),
    ("chat", "presence_penalty", 1.5, "1"),
    ("chat", "logit_bias", {"50256": -100}, {"50256": -101}),
    ("chat", "n", 1, 0),
    ("chat", "n", 128, 129),
    ("chat", "n", 2, 1.0),
    ("chat", "seed", -5, "5"),
    ("chat", "stop", "END", 5),
    ("chat", "stop", ["a", "b"], ["a", 1]),
    ("chat", "stream", True, "yes"),
    ("chat", "user", "u-1", 42),
    ("chat", "max_tokens", 1, -1),
    ("chat", "max_completion_tokens", 10, 0),
    ("chat", "logprobs", True, 1),
    ("chat", "top_logprobs", 20, 21),
    ("chat", "parallel_tool_calls", False, "false"),
    ("chat", "tool_choice", "required", "always"),
    ("chat", "tool_choice", {"type": "function", "function": {"name": "f"}}, {"function": {"name": "f"}}),
    ("chat", "store", False, 0),
    ("chat", "metadata", {"k": "v"}, {"k": 1}),
    ("chat", "modalities", ["text"], "text"),
    ("chat", "service_tier", "auto", 1),
    ("chat", "reasoning_effort", "low", 1),
    ("completions", "temperature", 1.0, [1]),
    ("completions", "n", 3, -1),
    ("completions", "best_of", 2, 21),
    ("completions", "echo", True, "true"),
    ("completions", "logprobs", 5, 6),
    ("completions", "logprobs", 0, True),
    ("completions", "suffix", "}", {}),
    ("completions", "max_tokens", 16, -1),
    ("embeddings", "encoding_format", "base64", "int8"),
    ("embeddings", "dimensions", 256, 0),
    ("embeddings", "user", "u", ["u"]),
    ("messages", "max_tokens", 1024, -1),
    ("messages", "temperature", 1, 1.5),
    ("messages", "top_p", 0.5, "0.5"),
    ("messages", "top_k", 40, -1),
    ("messages", "stop_sequences", ["\n\nHuman:"], "END"),
    ("messages", "stream", False, "no"),
    ("messages", "metadata", {"user_id": "u"}, "u"),
    ("messages", "thinking", {"type": "enabled", "budget_tokens": 1024}, {"type": "enabled", "budget_tokens": 10}),
    ("messages", "thinking", {"type": "disabled"}, {"type": "on"}),
    ("messages", "service_tier", "standard_only", "priority"),
]
IDS = [f"{api}.{field}={bad!r}" for api, field, _, bad in TABLE]


@pytest.mark.parametrize(("api", "field", "good", "bad"), TABLE, ids=IDS)
def test_a_bad_value_is_refused_naming_its_field(api: str, field: str, good: Any, bad: Any) -> None:
    check(RULES[api], {"model": "auto", field: good})
    with pytest.raises(InvalidRequest) as caught:
        check(RULES[api], {"model": "auto", field: bad})
    assert caught.value.param == field and caught.value.status == 400
    assert f"'{field}'" in caught.value.message and repr(bad)[:20] in caught.value.message


@pytest.mark.parametrize("api", sorted(RULES))
def test_null_and_unknown_fields_pass(api: str) -> None:
    check(
        RULES[api],
        {"temperature": None, "n": None, "repetition_penalty": "anything", "min_p": [1], "x-vendor": {"a": 1}},
    )


def test_the_first_bad_field_in_body_order_is_named() -> None:
    with pytest.raises(InvalidRequest) as caught:
        check(RULES["chat"], {"n": 0, "temperature": "hot"})
    assert caught.value.param == "n"


def test_a_long_value_is_cut_short_in_the_message() -> None:
    with pytest.raises(InvalidRequest) as caught:
        check(RULES["chat"], {"user": ["x" * 10_000]})
    assert len(caught.value.message) < 200
