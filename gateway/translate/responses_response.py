"""OpenAI chat completion -> OpenAI Responses API ``response`` object, and back, as pure functions.

    choices[0].message.content     -> a ``message`` output item with one ``output_text`` part (annotations [],
                                      logprobs []); ``refusal`` -> a ``refusal`` part
    tool_calls                     -> ``function_call`` items, one per call: call_id = the call's id verbatim (so
                                      the client's function_call_output routes back), name, arguments as sent
    reasoning_content / reasoning  -> dropped (not in ``output``; usage keeps the reasoning token count)
    finish_reason stop | tool_calls -> status "completed", incomplete_details null
                  length           -> status "incomplete", incomplete_details.reason "max_output_tokens"
                  content_filter   -> status "incomplete", incomplete_details.reason "content_filter"
    usage prompt_tokens            -> input_tokens; prompt_tokens_details.cached_tokens -> input_tokens_details
          completion_tokens        -> output_tokens; completion_tokens_details.reasoning_tokens -> output_tokens_details
    id                             -> "resp_" + a new id (an upstream's chat id says nothing of a response)
The request's own fields (instructions, tools, tool_choice, temperature, top_p, metadata, text, reasoning, ...)
are echoed as the Responses API does (:func:`echo`). :func:`to_chat` is the inverse, for accounting an answer a
Responses deployment gave (passthrough) and for the round-trip property test.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from gateway.errors import GatewayError, UpstreamBadResponse
from gateway.translate.anthropic_content import Json

INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}
FINISH = {"max_output_tokens": "length", "content_filter": "content_filter"}
_ECHOED = ("tool_choice", "parallel_tool_calls", "temperature", "top_p", "max_output_tokens", "store")
_DEFAULTS: Json = {"tool_choice": "auto", "parallel_tool_calls": True, "temperature": 1.0, "top_p": 1.0, "store": True}


def new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


def from_chat(answer: Json, request: Json, model: str, response_id: str, created_at: float) -> Json:
    """A chat completion as a Responses ``response``; ``request`` is the client's Responses body."""
    choices = answer.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else None
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(choice, dict) or not isinstance(message, dict):
        raise UpstreamBadResponse("The upstream answer has no choices[0].message.")
    output = _message_items(message) + [function_call(call) for call in message.get("tool_calls") or []]
    done = finished(choice.get("finish_reason"))
    return (
        echo(request, model, response_id, created_at) | done | {"output": output, "usage": usage(answer.get("usage"))}
    )


def echo(request: Json, model: str, response_id: str, created_at: float, status: str = "completed") -> Json:
    """The fields of a response that come from the request, with the API's defaults for those not given."""
    text = request.get("text") if isinstance(request.get("text"), dict) else {}
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(created_at),
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": request.get("instructions"),
        "model": model,
        "output": [],
        "tools": [_tool(tool) for tool in request.get("tools") or []],
        "metadata": request.get("metadata") or {},
        "text": {"format": {"type": "text"}} | (text or {}),
        "reasoning": request.get("reasoning") if isinstance(request.get("reasoning"), dict) else None,
        "previous_response_id": request.get("previous_response_id"),
        "truncation": request.get("truncation") or "disabled",
        **{name: _or(request.get(name), _DEFAULTS.get(name)) for name in _ECHOED},
        **({"user": request["user"]} if isinstance(request.get("user"), str) else {}),
    }


def _tool(tool: Any) -> Any:
    """A function tool as the API echoes it: ``strict`` and ``parameters`` always present."""
    if not isinstance(tool, dict) or tool.get("type") != "function":
        return tool
    return {"strict": None, "parameters": None} | tool


def finished(finish_reason: Any) -> Json:
    """``status``, ``incomplete_details`` and ``completed_at`` for a chat finish_reason."""
    reason = INCOMPLETE.get(finish_reason) if isinstance(finish_reason, str) else None
    if reason is None:
        return {"status": "completed", "incomplete_details": None, "completed_at": int(time.time())}
    return {"status": "incomplete", "incomplete_details": {"reason": reason}, "completed_at": None}


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def _message_items(message: Json) -> list[Json]:
    text = message.get("content")
    if isinstance(text, list):  # some upstreams answer with content parts
        text = "".join(p["text"] for p in text if isinstance(p, dict) and isinstance(p.get("text"), str))
    refusal = message.get("refusal")
    parts = [output_text(text)] if isinstance(text, str) and text else []
    parts += [{"type": "refusal", "refusal": refusal}] if isinstance(refusal, str) and refusal else []
    return [message_item(new_id("msg_"), parts)] if parts else []


def output_text(text: str) -> Json:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, parts: list[Json], status: str = "completed") -> Json:
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": parts}


def function_call(call: Any, status: str = "completed") -> Json:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise UpstreamBadResponse("The upstream answer has a tool call without a function name.")
    arguments = function.get("arguments")
    return {
        "id": new_id("fc_"),
        "type": "function_call",
        "status": status,
        "call_id": call.get("id") or new_id("call_"),
        "name": function["name"],
        "arguments": arguments if isinstance(arguments, str) else "{}",
    }


def usage(raw: Any) -> Json:
    raw = raw if isinstance(raw, dict) else {}
    prompt, completion = _count(raw.get("prompt_tokens")), _count(raw.get("completion_tokens"))
    return {
        "input_tokens": prompt,
        "input_tokens_details": {
            "cached_tokens": _detail(raw, "prompt_tokens_details", "cached_tokens"),
            "cache_write_tokens": 0,  # chat upstreams do not report cache writes
        },
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": _detail(raw, "completion_tokens_details", "reasoning_tokens")},
        "total_tokens": prompt + completion,
    }


def _detail(raw: Json, group: str, name: str) -> int:
    details = raw.get(group)
    return _count(details.get(name)) if isinstance(details, dict) else 0


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def error_code(exc: GatewayError) -> str:
    """A ``ResponseError.code`` (a closed set) for a gateway error."""
    return "rate_limit_exceeded" if exc.status == 429 else "server_error"


# ---- back: a response as a chat completion ---------------------------------------------------------


def to_chat(response: Json) -> Json:
    """A Responses ``response`` as a chat completion: text, tool calls (ids and arguments), finish_reason, usage.

    Used to account an answer a Responses deployment gave itself, and by the round-trip property test."""
    texts, calls = [], []
    for item in response.get("output") or []:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            parts = item.get("content") or []
            texts += [p["text"] for p in parts if isinstance(p, dict) and p.get("type") == "output_text"]
        elif item.get("type") == "function_call":
            function = {"name": item.get("name"), "arguments": item.get("arguments")}
            calls.append({"id": item.get("call_id"), "type": "function", "function": function})
    message: Json = {"role": "assistant", "content": "".join(texts) if texts else None}
    message |= {"tool_calls": calls} if calls else {}
    details = response.get("incomplete_details")
    reason = FINISH.get(str(details.get("reason"))) if isinstance(details, dict) else None
    finish = reason or ("tool_calls" if calls else "stop")
    return {
        "id": response.get("id"),
        "object": "chat.completion",
        "model": response.get("model"),
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": chat_usage(response.get("usage")),
    }


def chat_usage(raw: Any) -> Json:
    raw = raw if isinstance(raw, dict) else {}
    prompt, completion = _count(raw.get("input_tokens")), _count(raw.get("output_tokens"))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": _detail(raw, "input_tokens_details", "cached_tokens")},
        "completion_tokens_details": {"reasoning_tokens": _detail(raw, "output_tokens_details", "reasoning_tokens")},
    }


# ---- input items as the API lists them (GET /v1/responses/{id}/input_items) -------------------------

_ITEM_PREFIXES = {"message": "msg_", "function_call": "fc_", "function_call_output": "fco_", "reasoning": "rs_"}


def as_resources(items: list[Json]) -> list[Json]:
    """Input items as stored and listed: each with ``type``, an ``id`` and a ``status``; a message's string content
    as one text part (``input_text``, or ``output_text`` for the assistant). They stay valid input."""
    return [_resource(item) for item in items]


def _resource(item: Json) -> Json:
    kind = item.get("type") or ("message" if "role" in item else None)
    if not isinstance(kind, str):
        return item
    out: Json = {"type": kind, "id": new_id(_ITEM_PREFIXES.get(kind, "item_"))} | item | {"type": kind}
    if kind in ("message", "function_call", "function_call_output"):
        out.setdefault("status", "completed")
    if kind == "message" and isinstance(out.get("content"), str):
        part = "output_text" if out.get("role") == "assistant" else "input_text"
        out["content"] = [
            output_text(out["content"]) if part == "output_text" else {"type": part, "text": out["content"]}
        ]
    return out
