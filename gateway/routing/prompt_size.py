"""How much prompt a request carries, in characters: what ``limits.max_prompt_chars`` is compared with.

All the text the upstream would get, whichever API the request came in (Anthropic's Messages and OpenAI's
Responses API are counted on their translation to chat, which holds their ``system``, ``instructions``,
tools and the earlier turns of ``previous_response_id``):

- chat: each message's text (a string, or the ``text`` of its parts), its ``name``, the names and
  ``arguments`` of its tool calls; and ``tools`` / ``functions`` whole: every key and string in them
  (the schemas are text the model reads);
- completions: ``prompt``; embeddings: ``input`` (token arrays count 4 characters a token, as the estimate).

Images, audio and files are not text and are not counted (``max_body_bytes`` bounds them). Characters, not
bytes: the unit of the classifier's window and of the token estimate, the same for every script and
however the JSON escapes it, and ``len`` of a Python string costs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gateway.request import Endpoint


def prompt_chars(endpoint: Endpoint, body: Mapping[str, Any], texts: Sequence[str]) -> int:
    """``texts``: the texts normalize read (message contents, or the prompt or input), already checked."""
    chars = sum(map(len, texts))
    if endpoint != "chat":
        return chars
    for message in body["messages"]:
        chars += _str_len(message.get("name")) + _calls_chars(message)
    return chars + strings_chars(body.get("tools")) + strings_chars(body.get("functions"))


def _str_len(value: Any) -> int:
    return len(value) if isinstance(value, str) else 0


def _calls_chars(message: Mapping[str, Any]) -> int:
    calls = message.get("tool_calls")
    functions = [c.get("function") for c in calls if isinstance(c, dict)] if isinstance(calls, list) else []
    functions.append(message.get("function_call"))
    return sum(_str_len(f.get("name")) + _str_len(f.get("arguments")) for f in functions if isinstance(f, dict))


def strings_chars(value: Any) -> int:
    """The characters of every string and object key in a JSON value, walked without recursion."""
    chars, stack = 0, [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            chars += len(node)
        elif isinstance(node, dict):
            chars += sum(map(len, node))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return chars
