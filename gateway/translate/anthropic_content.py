"""Anthropic content blocks -> OpenAI chat messages and content parts, as pure functions.

    text                          -> text part (user) or text joined without separator (assistant)
    image, source base64 | url    -> image_url part (``data:`` URL for base64)
    document, source text         -> text part: title, context and the text, separated by a blank line
    document, source content      -> its text blocks as text parts, its images as image_url parts
    document, source base64 (PDF) -> file part {"filename": title or "document.pdf", "file_data": data: URL}
                                     (OpenAI's PDF input; the gateway counts it as needing ``vision``)
    tool_use (assistant)          -> tool_calls; arguments = JSON of ``input``; the id is kept verbatim
    tool_result (user)            -> a ``role: "tool"`` message before the rest of the turn, content = its text
                                     blocks joined with a newline; ``is_error: true`` prefixes "Error: ".
                                     OpenAI's tool messages carry text only, so the images and documents of a
                                     tool result move to a user message right after the turn's tool messages,
                                     opened by a text part naming the tool_use_id they came from.
    thinking, redacted_thinking   -> dropped (assistant turns)
    document, source url | file;  -> a text part "[document 'title' at <url or file_id>: not attached, this model
    image, source file               cannot read it from there]": chat has no PDF by URL, the gateway no Files API
Refused with ``InvalidRequest`` naming the field: server-tool blocks and anything malformed.
Deployments that speak Anthropic's API get the blocks unchanged (no translation; see docs/api-anthropic.md).
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.errors import InvalidRequest

Json = dict[str, Any]

IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
THINKING_BLOCKS = frozenset({"thinking", "redacted_thinking"})
_USER_BLOCKS = frozenset({"text", "image", "document", "tool_result"})
_RESULT_BLOCKS = frozenset({"text", "image", "document"})


def user(content: Any, param: str) -> list[Json]:
    """A user turn: its tool messages first, then one user message of attachments and its own parts."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    results: list[Json] = []
    attached: list[Json] = []
    parts: list[Json] = []
    for where, block in blocks(content, param, _USER_BLOCKS):
        if block["type"] == "tool_result":
            message, media = _tool_result(block, where)
            results.append(message)
            if media:
                note = f"Attachments of the tool result {message['tool_call_id']}:"
                attached += [{"type": "text", "text": note}, *media]
        else:
            parts += _part(block, where)
    return results + ([{"role": "user", "content": attached + parts}] if attached or parts else [])


def assistant(content: Any, param: str) -> Json:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts, calls = [], []
    for where, block in blocks(content, param, {"text", "tool_use", *THINKING_BLOCKS}):
        if block["type"] == "text":
            texts.append(text_of(block, where))
        elif block["type"] == "tool_use":
            calls.append(_tool_call(block, where))
    message: Json = {"role": "assistant", "content": "".join(texts) or (None if calls else "")}
    return message | ({"tool_calls": calls} if calls else {})


def blocks(content: Any, param: str, allowed: frozenset[str] | set[str]) -> list[tuple[str, Json]]:
    """Each block of ``content`` with its param path; a block whose ``type`` is not allowed raises."""
    if not isinstance(content, list) or not content:
        raise InvalidRequest(f"'{param}' must be a string or a non-empty array of content blocks.", param=param)
    out = []
    for index, block in enumerate(content):
        where = f"{param}[{index}]"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise InvalidRequest(f"'{where}' must be a content block with a 'type'.", param=where)
        if block["type"] not in allowed:
            kinds = ", ".join(sorted(set(allowed) - THINKING_BLOCKS))
            raise InvalidRequest(
                f"'{where}.type' {shown(block['type'])} is not supported here; the gateway takes {kinds}.",
                param=f"{where}.type",
            )
        out.append((where, block))
    return out


def _part(block: Json, where: str) -> list[Json]:
    if block["type"] == "image":
        return [image(block, where)]
    if block["type"] == "document":
        return _document(block, where)
    return [{"type": "text", "text": text_of(block, where)}]


def text_of(block: Json, where: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise InvalidRequest(f"'{where}.text' must be a string.", param=f"{where}.text")
    return text


def string(block: Json, name: str, where: str) -> str:
    value = block.get(name)
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"'{where}.{name}' must be a non-empty string.", param=f"{where}.{name}")
    return value


def _source(block: Json, where: str, kinds: tuple[str, ...]) -> tuple[Json, str]:
    source, param = block.get("source"), f"{where}.source"
    if not isinstance(source, dict):
        raise InvalidRequest(f"'{param}' must be an object.", param=param)
    if source.get("type") not in kinds:
        allowed = " or ".join(repr(k) for k in kinds)
        raise InvalidRequest(
            f"'{param}.type' must be {allowed}, got {shown(source.get('type'))}.", param=f"{param}.type"
        )
    return source, param


def image(block: Json, where: str) -> Json:
    source, param = _source(block, where, ("base64", "url", "file"))
    if source["type"] == "file":
        return _not_attached("image", source, param)
    if source["type"] == "url":
        url = string(source, "url", param)
    else:
        media_type = source.get("media_type")
        if not isinstance(media_type, str) or media_type not in IMAGE_MEDIA_TYPES:
            allowed = ", ".join(sorted(IMAGE_MEDIA_TYPES))
            raise InvalidRequest(
                f"'{param}.media_type' must be one of {allowed}, got {shown(media_type)}.", param=f"{param}.media_type"
            )
        url = f"data:{media_type};base64,{string(source, 'data', param)}"
    return {"type": "image_url", "image_url": {"url": url}}


def _document(block: Json, where: str) -> list[Json]:
    source, param = _source(block, where, ("text", "content", "base64", "url", "file"))
    title, context = _optional(block, "title", where), _optional(block, "context", where)
    if source["type"] in ("url", "file"):
        return [_not_attached(f"document {title!r}" if title else "document", source, param)]
    if source["type"] == "base64":
        if source.get("media_type") != "application/pdf":
            raise InvalidRequest(
                f"'{param}.media_type' must be 'application/pdf', got {shown(source.get('media_type'))}.",
                param=f"{param}.media_type",
            )
        data = f"data:application/pdf;base64,{string(source, 'data', param)}"
        return [{"type": "file", "file": {"filename": title or "document.pdf", "file_data": data}}]
    head = [text for text in (title, context) if text]
    if source["type"] == "text":
        body = source.get("data")
        if not isinstance(body, str):
            raise InvalidRequest(f"'{param}.data' must be a string.", param=f"{param}.data")
        return [{"type": "text", "text": "\n\n".join([*head, body])}]
    content = source.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": "\n\n".join([*head, content])}]
    parts = [{"type": "text", "text": "\n\n".join(head)}] if head else []
    for at, inner in blocks(content, f"{param}.content", {"text", "image"}):
        parts += _part(inner, at)
    return parts


def _not_attached(what: str, source: Json, param: str) -> Json:
    """A text part in place of what chat cannot carry (a PDF by URL, a file of Anthropic's Files API)."""
    where = string(source, "url", param) if source["type"] == "url" else string(source, "file_id", param)
    return {"type": "text", "text": f"[{what} at {where}: not attached, this model cannot read it from there]"}


def _optional(block: Json, name: str, where: str) -> str | None:
    value = block.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidRequest(f"'{where}.{name}' must be a string.", param=f"{where}.{name}")
    return value


def _tool_call(block: Json, where: str) -> Json:
    ident, name = string(block, "id", where), string(block, "name", where)
    arguments = block.get("input", {})
    if not isinstance(arguments, dict):
        raise InvalidRequest(f"'{where}.input' must be an object.", param=f"{where}.input")
    function = {"name": name, "arguments": orjson.dumps(arguments).decode()}
    return {"id": ident, "type": "function", "function": function}


def _tool_result(block: Json, where: str) -> tuple[Json, list[Json]]:
    """The tool message and the attachments (image, file parts) that a tool message cannot carry."""
    ident, content = string(block, "tool_use_id", where), block.get("content")
    texts: list[str] = []
    media: list[Json] = []
    if isinstance(content, str) or not content:
        texts.append(content or "")
    else:
        for at, part in blocks(content, f"{where}.content", _RESULT_BLOCKS):
            for piece in _part(part, at):
                if piece["type"] == "text":
                    texts.append(piece["text"])
                else:
                    media.append(piece)
    text = "\n".join(texts)
    if block.get("is_error") is True:
        text = f"Error: {text}"
    return {"role": "tool", "tool_call_id": ident, "content": text}, media


def shown(value: Any, limit: int = 80) -> str:
    """A client's value as an error message quotes it: its repr, cut short, since it may be megabytes."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
