"""Anthropic's ``thinking``: enabled (with a budget), disabled, and adaptive (Claude Code 2.x sends it)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import InvalidRequest
from gateway.routing.validate import MESSAGES, check


@pytest.mark.parametrize(
    "thinking", [{"type": "adaptive"}, {"type": "disabled"}, {"type": "enabled", "budget_tokens": 1024}]
)
def test_the_thinking_modes_pass(thinking: Any) -> None:
    check(MESSAGES, {"thinking": thinking})


@pytest.mark.parametrize("thinking", [{"type": "sometimes"}, {"type": "enabled"}, "adaptive"])
def test_other_thinking_values_are_refused_naming_the_modes(thinking: Any) -> None:
    with pytest.raises(InvalidRequest, match="thinking") as refused:
        check(MESSAGES, {"thinking": thinking})
    assert refused.value.param == "thinking"
    assert "'adaptive'" in refused.value.message or "budget_tokens" in refused.value.message
