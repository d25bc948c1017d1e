"""Property: an Anthropic assistant turn taken to OpenAI chat (as the gateway sends it upstream) and answered back
(whole, or streamed through the SDK's own accumulation) keeps its text, tool_use ids and inputs, and usage."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.translate.anthropic_messages import from_openai, to_openai
from gateway.translate.anthropic_stream import StreamTranslator
from tests.translate.test_anthropic_stream import accumulated

JSON_LEAF = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20)
JSON_VALUE = st.recursive(
    JSON_LEAF,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
INPUTS = st.dictionaries(st.text(min_size=1, max_size=10), JSON_VALUE, max_size=4)
NAMES = st.from_regex(r"[a-z_][a-z0-9_]{0,20}", fullmatch=True)
TEXTS = st.lists(st.text(min_size=1, max_size=40), max_size=3)
USAGES = st.tuples(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**5))


@st.composite
def turns(draw: st.DrawFn) -> tuple[list[str], list[dict[str, Any]]]:
    texts = draw(TEXTS)
    count = draw(st.integers(0 if texts else 1, 3))
    ids = draw(
        st.lists(st.from_regex(r"toolu_[A-Za-z0-9]{6,24}", fullmatch=True), min_size=count, max_size=count, unique=True)
    )
    uses = [{"type": "tool_use", "id": i, "name": draw(NAMES), "input": draw(INPUTS)} for i in ids]
    return texts, uses


def upstream_message(texts: list[str], uses: list[dict[str, Any]]) -> dict[str, Any]:
    """The assistant turn as the gateway sends it to an OpenAI-format upstream."""
    turn = {"role": "assistant", "content": [{"type": "text", "text": t} for t in texts] + uses}
    body = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}, turn]}
    return dict(to_openai(body)["messages"][1])


def openai_usage(input_tokens: int, output: int, cached: int) -> dict[str, Any]:
    prompt = input_tokens + cached
    details = {"cached_tokens": cached}
    return {
        "prompt_tokens": prompt,
        "completion_tokens": output,
        "total_tokens": prompt + output,
        "prompt_tokens_details": details,
    }


@settings(max_examples=150, deadline=None)
@given(turns(), USAGES)
def test_a_whole_answer_keeps_text_tool_ids_inputs_and_usage(turn: Any, counts: tuple[int, int, int]) -> None:
    texts, uses = turn
    message = upstream_message(texts, uses)
    finish = "tool_calls" if uses else "stop"
    answer = {"id": "chatcmpl-1", "choices": [{"index": 0, "message": message, "finish_reason": finish}]}
    back = from_openai(answer | {"usage": openai_usage(*counts)}, "m")
    assert [b for b in back["content"] if b["type"] == "tool_use"] == uses
    assert "".join(b["text"] for b in back["content"] if b["type"] == "text") == "".join(texts)
    assert back["stop_reason"] == ("tool_use" if uses else "end_turn")
    usage = back["usage"]
    assert (usage["input_tokens"], usage["output_tokens"], usage["cache_read_input_tokens"]) == counts


@settings(max_examples=100, deadline=None)
@given(turns(), USAGES, st.integers(1, 7))
def test_a_streamed_answer_keeps_them_too(turn: Any, counts: tuple[int, int, int], piece: int) -> None:
    texts, uses = turn
    message = upstream_message(texts, uses)
    chunks: list[dict[str, Any]] = []
    text = message["content"] or ""
    for start in range(0, len(text), piece):
        chunks.append({"id": "c1", "choices": [{"index": 0, "delta": {"content": text[start : start + piece]}}]})
    for index, call in enumerate(message.get("tool_calls") or []):
        arguments = call["function"]["arguments"]
        head = {"index": index, "id": call["id"], "function": {"name": call["function"]["name"], "arguments": ""}}
        chunks.append({"id": "c1", "choices": [{"index": 0, "delta": {"tool_calls": [head]}}]})
        for start in range(0, len(arguments), piece):
            fragment = {"index": index, "function": {"arguments": arguments[start : start + piece]}}
            chunks.append({"id": "c1", "choices": [{"index": 0, "delta": {"tool_calls": [fragment]}}]})
    finish = "tool_calls" if uses else "stop"
    chunks.append({"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    chunks.append({"id": "c1", "choices": [], "usage": openai_usage(*counts)})
    translator = StreamTranslator("m")
    final = accumulated([e for c in chunks for e in translator.feed(c)] + translator.finish())
    content = [block.model_dump() for block in final.content]
    assert [{k: b[k] for k in ("type", "id", "name", "input")} for b in content if b["type"] == "tool_use"] == uses
    assert "".join(b["text"] for b in content if b["type"] == "text") == "".join(texts)
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.cache_read_input_tokens) == counts
