"""The Responses API, OpenAI wire (``POST /v1/responses``): what OpenAI itself serves, for the passthrough tests.

The body is answered as the chat stand-in answers its chat translation (gateway.translate.responses_request),
and the answer is given in the Responses shape, whole or as the typed events (gateway.translate.responses_*).
``previous_response_id`` is refused: the stand-in keeps no state (the gateway resolves chains itself).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

from starlette.responses import Response

from gateway.errors import InvalidRequest
from gateway.standin.delivery import Delivery, sse_event
from gateway.standin.gate import Json, WireError
from gateway.standin.openai_chat import Answer, answer_chat, chat_response
from gateway.standin.openai_stream import chat_events
from gateway.translate.responses_request import to_chat
from gateway.translate.responses_response import from_chat, new_id
from gateway.translate.responses_stream import ResponsesStream


def answer_responses(body: Json, delivery: Delivery, fingerprint: str) -> Response:
    if body.get("previous_response_id") is not None:
        raise WireError(400, "this stand-in keeps no responses", param="previous_response_id")
    try:
        chat = to_chat(body)
    except InvalidRequest as exc:
        raise WireError(400, exc.message, param=exc.param) from None
    answer = answer_chat(chat | {"stream_options": {"include_usage": True}})
    response_id, created = new_id("resp_"), time.time()
    if body.get("stream"):
        return delivery.events(_events(answer, body, fingerprint, response_id, created))
    return delivery.json(from_chat(chat_response(answer, fingerprint), body, answer.model, response_id, created))


def _events(answer: Answer, body: Json, fingerprint: str, response_id: str, created: float) -> Iterator[str]:
    stream = ResponsesStream(body, answer.model, response_id, created)
    for line in chat_events(answer, fingerprint=fingerprint, usage=True):
        data = line.removeprefix("data: ").strip()
        if data != "[DONE]":
            yield from (sse_event(event["type"], event) for event in stream.feed(json.loads(data)))
    yield from (sse_event(event["type"], event) for event in stream.finish())
