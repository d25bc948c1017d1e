"""The count_tokens estimate, rule by rule (docs/api-anthropic.md)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.translate.anthropic_messages import to_openai
from gateway.translate.anthropic_tokens import estimate

TOOL: Any = {"name": "t", "input_schema": {"type": "object"}}
PDF: Any = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "A" * 200_000}}
IMAGE: Any = {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}


def tokens(messages: list[Any], **fields: Any) -> int:
    return estimate(to_openai({"model": "m", "max_tokens": 1, "messages": messages, **fields}))


@pytest.mark.parametrize(
    ("messages", "fields", "expected"),
    [
        ([{"role": "user", "content": "abcd" * 10}], {}, 4 + 10),
        ([{"role": "user", "content": "abcde"}], {"system": "1234"}, (4 + 1) + (4 + 2)),
        ([{"role": "user", "content": [IMAGE]}], {}, 4 + 1600),
        ([{"role": "user", "content": [PDF]}], {}, 4 + 1600 * 2),  # 150 kB decoded: two started 100 kB
        ([{"role": "user", "content": "x"}], {"tools": [TOOL]}, 4 + 1 + 300 + 19),  # 76 characters of tools JSON
    ],
)
def test_the_estimate_follows_its_rules(messages: list[Any], fields: dict[str, Any], expected: int) -> None:
    assert tokens(messages, **fields) == expected


def test_tool_calls_count_their_name_and_arguments() -> None:
    call = {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "t", "input": {"a": 1}}]}
    without = tokens([{"role": "user", "content": "x"}, {"role": "assistant", "content": "ok"}])
    assert tokens([{"role": "user", "content": "x"}, call]) == without - 1 + 2  # "ok" -> 1 token; t + {"a":1} -> 2
