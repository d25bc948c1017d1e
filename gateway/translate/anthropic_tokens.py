"""``POST /v1/messages/count_tokens``: an estimate of a request's input tokens, without a tokenizer or an upstream.

The gateway cannot know the tokenizer of the deployment a request would reach (it may be a self-hosted model
or Claude, and the route decides), so it estimates from the request's OpenAI translation, the way it estimates
prompts for rate limits:

    each message        4 tokens of framing (role, separators) + ceil(characters of its text / 4)
    each image          1,600 tokens (Anthropic's figure for an image of about 1.15 megapixels, its largest
                        before downscaling; smaller images cost less, so this errs high)
    each PDF document   1,600 tokens per started 100 kB of the decoded PDF (about a page of text and its image)
    tools               ceil(characters of the tool definitions as JSON / 4) + 300 (the tool-use preamble)
    tool calls          ceil(characters of their arguments / 4) each, plus the name

Expect it within about 25% of the real count for English text; code and other scripts tokenize denser.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.translate.anthropic_content import Json

CHARS_PER_TOKEN = 4  # as gateway.request.CHARS_PER_TOKEN
MESSAGE_TOKENS = 4
IMAGE_TOKENS = 1600
PDF_TOKENS_PER_100KB = 1600
TOOLS_PREAMBLE_TOKENS = 300


def estimate(chat: Json) -> int:
    """Input tokens of a translated (OpenAI chat) body, by the rules above."""
    tokens = sum(_message(m) for m in chat.get("messages") or ())
    tools = chat.get("tools")
    if tools:
        tokens += _chars(len(orjson.dumps(tools))) + TOOLS_PREAMBLE_TOKENS
    return max(tokens, 1)


def _message(message: Json) -> int:
    tokens = MESSAGE_TOKENS + _content(message.get("content"))
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        tokens += _chars(len(function.get("name") or "") + len(function.get("arguments") or ""))
    return tokens


def _content(content: Any) -> int:
    if isinstance(content, str):
        return _chars(len(content))
    tokens = 0
    for part in content or ():
        kind = part.get("type")
        if kind == "text":
            tokens += _chars(len(part.get("text") or ""))
        elif kind == "image_url":
            tokens += IMAGE_TOKENS
        elif kind == "file":
            data = (part.get("file") or {}).get("file_data") or ""
            decoded = len(data) * 3 // 4
            tokens += PDF_TOKENS_PER_100KB * max(1, -(-decoded // 100_000))
    return tokens


def _chars(count: int) -> int:
    return -(-count // CHARS_PER_TOKEN)
