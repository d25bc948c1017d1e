"""Canned, deterministic answers shared by every stand-in wire format.

Token counts are estimated from characters (about four per token), so every
figure a test asserts can be computed from the text alone.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

Json = dict[str, Any]
Ending = Literal["end", "stop", "length", "tool"]
"""Why a reply ended, independent of wire: natural end, stop sequence, token limit, tool call."""

CHARS_PER_TOKEN = 4
PROMPT_PREVIEW = 60
FRAGMENT_CHARS = 8


@dataclass(frozen=True, slots=True)
class ToolUse:
    """One call of a tool: its name and the arguments object."""

    name: str
    arguments: Json

    @property
    def arguments_json(self) -> str:
        return json.dumps(self.arguments)


@dataclass(frozen=True, slots=True)
class Reply:
    """One generated answer: either text or a tool call, and why it ended."""

    text: str
    ending: Ending = "end"
    tool: ToolUse | None = None
    stop_sequence: str | None = None

    @property
    def output_tokens(self) -> int:
        if self.tool is not None:
            return tokens(self.tool.name + self.tool.arguments_json)
        return tokens(self.text)


def tokens(text: str) -> int:
    """Estimated token count: one token per started group of four characters."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def prompt_tokens(texts: Sequence[str]) -> int:
    """Estimated prompt size; never zero, as a real tokenizer adds framing tokens."""
    return max(1, tokens("".join(texts)))


def answer_text(model: str, prompt: str) -> str:
    return f"[{model}] Here is a short answer to: {prompt[:PROMPT_PREVIEW]}"


def tool_result_text(model: str, result: str) -> str:
    return f"[{model}] Based on the tool result: {result[:PROMPT_PREVIEW]}"


def finish(text: str, *, stops: Sequence[str] = (), limit: int | None = None) -> Reply:
    """Apply stop sequences first, then the output token limit."""
    cut, matched = cut_at_stop(text, stops)
    if matched is not None:
        text = cut
    if limit is not None and tokens(text) > limit:
        return Reply(cut_to_tokens(text, limit), "length")
    if matched is not None:
        return Reply(text, "stop", stop_sequence=matched)
    return Reply(text)


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, str | None]:
    """Cut before the earliest stop sequence; return the cut text and the sequence that matched."""
    found = [(text.find(stop), stop) for stop in stops if stop and stop in text]
    if not found:
        return text, None
    index, stop = min(found)
    return text[:index], stop


def cut_to_tokens(text: str, limit: int) -> str:
    """Longest prefix within ``limit`` tokens, cut at a word boundary when there is one."""
    cut = text[: limit * CHARS_PER_TOKEN]
    if " " in cut.strip() and not text[len(cut)].isspace():
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip()


def words(text: str) -> list[str]:
    """Split text into word pieces (each with its trailing space) whose concatenation is the text."""
    return re.findall(r"\s*\S+\s*", text) or [text]


def fragments(text: str, size: int = FRAGMENT_CHARS) -> list[str]:
    """Fixed-size pieces of ``text`` (for streaming tool-call arguments)."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def new_id(prefix: str, length: int = 24) -> str:
    return prefix + uuid.uuid4().hex[:length]


def text_of(content: Any) -> str:
    """The text of a message content: a string, or a list of parts with ``text``."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(text_of(part.get("text", part.get("content"))) for part in content if isinstance(part, dict))
    return ""
