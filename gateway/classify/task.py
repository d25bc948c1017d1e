"""The task of a request, apart from its context. Pure, no I/O.

The router learned from single prompts: the text it reads is the work asked for. An agent (Claude Code, Codex,
the Agents SDK) sends much more with every request: a system prompt of rules and environment (~2k tokens),
tool schemas, reminders and instructions inside the user turn (``<system-reminder>``, ``<environment_context>``),
and the loop's history of tool calls and results. Read as one text, that boilerplate is most of what the router
sees, and every agent request, even "say hi", scored near 1.

So a request that is more than one prompt is scored on its *task*: the latest user turn that says something
besides reminders (tool results are role ``tool`` after normalization, so during an agent loop the task is the
turn that started it), with the reminder blocks removed. The rest (system prompt, earlier turns, tool schemas,
the turn count and the requested output size, which an agent sends with every request) is *context*: its weight
is bounded (``LearnedClassifier`` adds it as one capped term, ``context``), so context alone cannot lift a
trivial task to the complex tier, while a hard task still gets there on its own words.

Limitation: a terse follow-up ("yes, go on") scores as the short text it is, plus the bounded context.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Sequence
from typing import Any

from gateway.request import CHARS_PER_TOKEN, ChatRequest

# Blocks that agents put into the user turn for the model, not from the user. Removed with their content.
AGENT_TAGS = (
    "system-reminder",
    "environment_context",
    "user_instructions",
    "command-message",
    "command-name",
    "command-args",
    "local-command-stdout",
)
_TAG_OPEN = "<"
CLASSIFY_CHARS = 4_000  # a long task is read at each end, as ``routing.normalize`` reads a long prompt
READ_CHARS = 65_536  # a user turn longer than twice this is searched for agent blocks at its two ends only
CONTEXT_UNIT = 64  # tokens; the context-length term grows with log2(1 + context tokens / unit)


@dataclasses.dataclass(frozen=True, slots=True)
class Task:
    request: ChatRequest  # the task as a one-prompt request (what the router learned to score)
    context_tokens: int  # estimated tokens of everything else: system prompt, earlier turns, tool schemas


def split(request: ChatRequest) -> Task | None:
    """The task and the size of its context, or None when the request is its own task (a single prompt)."""
    messages = request.body.get("messages")
    if request.endpoint != "chat" or not isinstance(messages, list):
        return None
    alone = len(messages) == 1
    if alone and _TAG_OPEN not in request.last_user:
        return None
    task, chars = latest_task(messages) or read_task(request.last_user)
    if (alone and chars == len(request.last_user.strip())) or not task:  # nothing removed: the prompt itself
        return None
    context_tokens = max(0, request.prompt_tokens_estimate - chars // CHARS_PER_TOKEN)
    context_tokens += _tool_chars(request.body.get("tools")) // CHARS_PER_TOKEN
    view = dataclasses.replace(
        request,
        text=task if len(task) <= 2 * CLASSIFY_CHARS else task[:CLASSIFY_CHARS] + "\n" + task[-CLASSIFY_CHARS:],
        last_user=task,
        turns=1,
        prompt_tokens_estimate=max(1, chars // CHARS_PER_TOKEN),
        max_tokens=None,
        needs_tools=False,
    )
    return Task(view, context_tokens)


def scored(request: ChatRequest) -> ChatRequest:
    """The request the router's text features are read from: its task, or itself."""
    task = split(request)
    return request if task is None else task.request


def latest_task(messages: Sequence[Any]) -> tuple[str, int] | None:
    """The latest user message that says more than agent reminders, the reminders removed (``read_task``)."""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            task = read_task(_text(message.get("content")))
            if task[0]:
                return task
    return None


def read_task(text: str) -> tuple[str, int]:
    """A user turn without its agent blocks, and how long it is. A turn over ``2 * READ_CHARS`` characters is
    searched at its two ends only (``READ_CHARS`` each; the classifier reads 4,000 of each end anyway): its
    middle is counted in the length, not read, so the work is bounded whatever the turn's size."""
    if _TAG_OPEN not in text:
        stripped = text.strip()
        return stripped, len(stripped)
    if len(text) <= 2 * READ_CHARS:
        stripped = strip_agent_blocks(text)
        return stripped, len(stripped)
    unread = len(text) - 2 * READ_CHARS
    stripped = strip_agent_blocks(text[:READ_CHARS] + "\n" + text[-READ_CHARS:])
    return stripped, len(stripped) + unread


@functools.lru_cache(maxsize=128)
def _opener(tags: frozenset[str]) -> re.Pattern[str]:
    return re.compile("<(" + "|".join(re.escape(t) for t in AGENT_TAGS if t in tags) + ")>")


def strip_agent_blocks(text: str) -> str:
    """``text`` without its agent blocks (``<tag>...</tag>``, the nearest closing tag), stripped.

    Linear in the text: a tag found open with no closing tag after it is dropped from the search (no later
    one can close either), where a ``<tag>.*?</tag>`` regex would scan to the end from every such opening."""
    if _TAG_OPEN not in text:
        return text.strip()
    tags = frozenset(AGENT_TAGS)
    pieces, kept, at = [], 0, 0
    while tags and (match := _opener(tags).search(text, at)) is not None:
        tag = match.group(1)
        end = text.find(f"</{tag}>", match.end())
        if end < 0:
            tags -= {tag}
            at = match.start()  # other tags may open here or later
            continue
        pieces.append(text[kept : match.start()])
        kept = at = end + len(tag) + 3
    pieces.append(text[kept:])
    return "".join(pieces).strip()


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _tool_chars(tools: Any) -> int:
    """A cheap size of the tool schemas: their descriptions' length (the schemas themselves are not read)."""
    if not isinstance(tools, list):
        return 0
    size = 0
    for tool in tools:
        function = tool.get("function", tool) if isinstance(tool, dict) else None
        if isinstance(function, dict):
            size += len(str(function.get("description") or "")) + len(str(function.get("name") or ""))
    return size


def context_fraction(context_tokens: int) -> float:
    """How much of the bounded context weight a context of this size earns: 0 for none, 1 from ~2k tokens."""
    return min(1.0, math.log2(1.0 + context_tokens / CONTEXT_UNIT) / 5.0)
