"""Chat completions, OpenAI wire: from a request body to canned replies and the response JSON."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from gateway.standin.canned import (
    Ending,
    Reply,
    ToolUse,
    answer_text,
    finish,
    new_id,
    prompt_tokens,
    text_of,
    tool_result_text,
)
from gateway.standin.gate import Json, WireError
from gateway.standin.params import first_int, int_param, list_param, model_of, stop_list
from gateway.standin.placeholder import placeholder

FINISH_REASON: dict[Ending, str] = {"end": "stop", "stop": "stop", "length": "length", "tool": "tool_calls"}
MAX_CHOICES = 128


@dataclass(frozen=True, slots=True)
class Answer:
    """Everything a chat or text completion response is built from."""

    model: str
    replies: list[Reply]
    prompt_tokens: int
    id: str = field(default_factory=lambda: new_id("chatcmpl-"))
    created: int = field(default_factory=lambda: int(time.time()))

    def usage(self) -> Json:
        completion = sum(reply.output_tokens for reply in self.replies)
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        }


def answer_chat(body: Json) -> Answer:
    model = model_of(body)
    messages = _messages(body)
    count = int_param(body, "n", high=MAX_CHOICES) or 1
    int_param(body, "seed", low=-(2**63), high=2**63 - 1)
    tool = _tool_use(body, messages)
    reply = Reply("", "tool", tool) if tool else _text_reply(body, model, messages)
    prompt = prompt_tokens([text_of(m.get("content")) for m in messages])
    return Answer(model, [reply] * count, prompt)


def chat_response(answer: Answer, fingerprint: str) -> Json:
    return {
        "id": answer.id,
        "object": "chat.completion",
        "created": answer.created,
        "model": answer.model,
        "system_fingerprint": fingerprint,
        "choices": [
            {"index": i, "message": _message(reply), "logprobs": None, "finish_reason": FINISH_REASON[reply.ending]}
            for i, reply in enumerate(answer.replies)
        ],
        "usage": answer.usage(),
    }


def tool_call(tool: ToolUse) -> Json:
    function = {"name": tool.name, "arguments": tool.arguments_json}
    return {"id": new_id("call_"), "type": "function", "function": function}


def _message(reply: Reply) -> Json:
    if reply.tool is not None:
        return {"role": "assistant", "content": None, "refusal": None, "tool_calls": [tool_call(reply.tool)]}
    return {"role": "assistant", "content": reply.text, "refusal": None, "annotations": []}


def _messages(body: Json) -> list[Json]:
    messages = list_param(body, "messages", required=True)
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        raise WireError(400, "each message must be an object with a role", param="messages")
    return messages


def _tool_results(messages: list[Json]) -> list[Json]:
    """The tool results (``tool`` messages, or ``function`` ones of the older API) since the last answer in
    text. Once there is one, the stand-in answers with text, so a tool loop ends, also when the client adds a
    user turn after the results (the Anthropic translation does, with the text beside ``tool_result`` blocks);
    a new question after a text answer may call a tool again."""
    results: list[Json] = []
    for message in reversed(messages):
        if message["role"] == "assistant" and not (message.get("tool_calls") or message.get("function_call")):
            break
        if message["role"] in ("tool", "function"):
            results.append(message)
    return results


def _text_reply(body: Json, model: str, messages: list[Json]) -> Reply:
    results = _tool_results(messages)
    if results:
        text = tool_result_text(model, text_of(results[0].get("content")))
    else:
        users = [m for m in messages if m["role"] == "user"] or messages
        text = answer_text(model, text_of(users[-1].get("content")))
    text = _shaped(text, body.get("response_format"), model)
    limit = first_int(body, "max_completion_tokens", "max_tokens")
    return finish(text, stops=stop_list(body.get("stop"), "stop"), limit=limit)


def _shaped(text: str, response_format: Any, model: str) -> str:
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "json_object":
        return json.dumps({"model": model, "answer": text})
    if kind == "json_schema":
        spec = response_format.get("json_schema") if isinstance(response_format, dict) else None
        if not isinstance(spec, dict):
            raise WireError(400, "response_format.json_schema must be an object", param="response_format")
        return json.dumps(placeholder(spec.get("schema") or {"type": "object"}))
    return text


def _tool_use(body: Json, messages: list[Json]) -> ToolUse | None:
    tools = list_param(body, "tools")
    choice = body.get("tool_choice", "auto")
    if not tools or choice == "none" or _tool_results(messages):
        return None
    functions = [t["function"] for t in tools if isinstance(t, dict) and isinstance(t.get("function"), dict)]
    if not functions:
        raise WireError(400, "tools must be a list of function tools", param="tools")
    name = _chosen_name(choice) or functions[0].get("name")
    function = next((f for f in functions if f.get("name") == name), None)
    if function is None:
        raise WireError(400, f"tool_choice names {name!r}, which is not among the tools", param="tool_choice")
    arguments = placeholder(function.get("parameters") or {"type": "object"})
    return ToolUse(str(name), arguments if isinstance(arguments, dict) else {})


def _chosen_name(choice: Any) -> str | None:
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        name = choice["function"].get("name")
        return name if isinstance(name, str) else None
    return None
