"""A fake of AWS Bedrock's Converse API (``bedrock-runtime``), its wire format.

Routes: ``POST /model/{modelId}/converse`` (JSON) and ``/converse-stream``, whose answer is AWS's binary
event stream (``application/vnd.amazon.eventstream``, :func:`event_message`): ``messageStart``,
``contentBlockStart`` (tool use), ``contentBlockDelta``, ``contentBlockStop``, ``messageStop`` and ``metadata``
(usage), each payload padded with AWS's random-length ``p`` field.

Authentication is either SigV4 (``Authorization: AWS4-HMAC-SHA256 Credential=<key id>/<date>/<region>/bedrock/
aws4_request, SignedHeaders=..., Signature=...`` with ``X-Amz-Date`` and ``X-Amz-Content-Sha256`` or a body
that the signature covers), checked for shape, key id, region and service (not recomputed), or a Bedrock API
key as ``Authorization: Bearer``. Refusals are AWS's: 403 with ``x-amzn-ErrorType:
UnrecognizedClientException`` and ``{"message": ...}``; other errors likewise (ValidationException,
ThrottlingException, ...).
"""

from __future__ import annotations

import binascii
import json
import re
import struct
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Send

from gateway.standin.canned import Reply, fragments, new_id, prompt_tokens, words
from gateway.standin.control import Control
from gateway.standin.delivery import Delivery
from gateway.standin.gate import Json, WireError
from tests.upstream.fakes.wire import Tool, as_int, gated, reply_to

SIGV4 = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<key>[A-Z0-9]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/(?P<service>[a-z-]+)"
    r"/aws4_request, ?SignedHeaders=(?P<signed>[a-z0-9;-]+), ?Signature=(?P<signature>[0-9a-f]{64})$"
)
ERROR_TYPES = {400: "ValidationException", 403: "AccessDeniedException", 404: "ResourceNotFoundException",
               408: "ModelTimeoutException", 424: "ModelErrorException", 429: "ThrottlingException",
               500: "InternalServerException", 503: "ServiceUnavailableException"}  # fmt: skip
STOP_REASONS = {"end": "end_turn", "stop": "stop_sequence", "length": "max_tokens", "tool": "tool_use"}
EVENT_STREAM = "application/vnd.amazon.eventstream"
STRING = 7  # the header value type of a string in AWS's event-stream encoding


@dataclass(frozen=True, slots=True)
class BedrockWire:
    access_key_id: str
    region: str
    api_key: str | None = None

    def authenticate(self, request: Request) -> None:
        sent = request.headers.get("authorization", "")
        if self.api_key is not None and sent == f"Bearer {self.api_key}":
            return
        match = SIGV4.match(sent)
        if match is None or match["key"] != self.access_key_id:
            raise WireError(403, "The security token included in the request is invalid.",
                            code="UnrecognizedClientException")  # fmt: skip
        signed = match["signed"].split(";")
        date = request.headers.get("x-amz-date", "")
        if match["service"] != "bedrock" or match["region"] != self.region or not date.startswith(match["date"]):
            raise WireError(403, f"Credential should be scoped to a valid region and service: {match['region']}/"
                            f"{match['service']}", code="InvalidSignatureException")  # fmt: skip
        if not {"host", "x-amz-date"} <= set(signed):
            raise WireError(403, "Signed headers must include host and x-amz-date", code="InvalidSignatureException")

    def error(self, error: WireError) -> Response:
        kind = error.code or ERROR_TYPES.get(error.status, "InternalServerException")
        headers = error.headers | {"x-amzn-errortype": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/",
                                   "x-amzn-requestid": new_id("", 32)}  # fmt: skip
        return JSONResponse({"message": error.message}, status_code=error.status, headers=headers)


def create_bedrock_app(control: Control, *, access_key_id: str, region: str, api_key: str | None = None) -> Starlette:
    wire = BedrockWire(access_key_id, region, api_key)
    handler = gated(wire, control, _model, _answer)
    return Starlette(routes=[
        Route("/model/{model}/converse", handler, methods=["POST"]),
        Route("/model/{model}/converse-stream", handler, methods=["POST"]),
    ])  # fmt: skip


def _model(request: Request) -> str:
    return unquote(str(request.path_params["model"]))


def _answer(body: Json, model: str, request: Request, delivery: Delivery) -> Response:
    turn = _Turn.read(body, model)
    if request.url.path.endswith("/converse-stream"):
        return BinaryEvents(turn.events(), drop_after=delivery.drop_after, gap=delivery.gap)
    return delivery.json(turn.response())


# -- the event-stream encoding -------------------------------------------------------------------------------


def event_message(event_type: str, payload: Json) -> bytes:
    """One message of AWS's event stream: prelude (total and headers length, CRC32), headers, payload, CRC32."""
    headers = b"".join(_header(name, value) for name, value in (
        (":event-type", event_type), (":content-type", "application/json"), (":message-type", "event")))  # fmt: skip
    body = json.dumps(payload, separators=(",", ":")).encode()
    prelude = struct.pack(">II", 12 + len(headers) + len(body) + 4, len(headers))
    head = prelude + struct.pack(">I", binascii.crc32(prelude)) + headers + body
    return head + struct.pack(">I", binascii.crc32(head))


def _header(name: str, value: str) -> bytes:
    encoded = value.encode()
    return struct.pack(">B", len(name)) + name.encode() + struct.pack(">BH", STRING, len(encoded)) + encoded


class BinaryEvents(StreamingResponse):
    """Event-stream messages, optionally cut after ``drop_after`` of them (the connection drops)."""

    def __init__(self, messages: Iterable[bytes], *, drop_after: int | None, gap: float) -> None:
        super().__init__(_paced(messages, gap), media_type=EVENT_STREAM, headers={"x-amzn-requestid": new_id("", 32)})
        self.drop_after = drop_after

    async def stream_response(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        sent = 0
        async for message in self.body_iterator:
            if sent == self.drop_after:
                return
            body = message if isinstance(message, bytes) else bytes(message, "utf-8")
            await send({"type": "http.response.body", "body": body, "more_body": True})
            sent += 1
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _paced(messages: Iterable[bytes], gap: float) -> AsyncIterator[bytes]:
    import asyncio

    for index, message in enumerate(messages):
        if index and gap > 0:
            await asyncio.sleep(gap)
        yield message


# -- the conversation ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Turn:
    model: str
    reply: Reply
    prompt: int

    @classmethod
    def read(cls, body: Json, model: str) -> _Turn:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise WireError(400, "1 validation error detected: Value at 'messages' failed to satisfy constraint: "
                            "Member must not be null")  # fmt: skip
        texts, last_user, tool_result = _read_messages(messages)
        system = " ".join(s["text"] for s in body.get("system") or [] if isinstance(s, dict) and "text" in s)
        config = body.get("inferenceConfig") or {}
        tools, forced = _read_tools(body)
        reply = reply_to(
            model, last_user, tool_result=tool_result, tools=tools, forced=forced,
            stops=list(config.get("stopSequences") or []), limit=as_int(config.get("maxTokens"), "maxTokens"),
        )  # fmt: skip
        return cls(model, reply, prompt_tokens([system, *texts]))

    def usage(self) -> Json:
        output = self.reply.output_tokens
        return {"inputTokens": self.prompt, "outputTokens": output, "totalTokens": self.prompt + output}

    def response(self) -> Json:
        return {
            "output": {"message": {"role": "assistant", "content": [self._block()]}},
            "stopReason": STOP_REASONS[self.reply.ending],
            "usage": self.usage(),
            "metrics": {"latencyMs": 42},
        }

    def _block(self) -> Json:
        tool = self.reply.tool
        if tool is None:
            return {"text": self.reply.text}
        return {"toolUse": {"toolUseId": new_id("tooluse_", 22), "name": tool.name, "input": tool.arguments}}

    def events(self) -> Iterator[bytes]:
        yield _padded("messageStart", {"role": "assistant"})
        tool = self.reply.tool
        if tool is not None:
            start = {"toolUse": {"toolUseId": new_id("tooluse_", 22), "name": tool.name}}
            yield _padded("contentBlockStart", {"contentBlockIndex": 0, "start": start})
            for piece in fragments(tool.arguments_json):
                yield _padded("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"toolUse": {"input": piece}}})
        else:
            for piece in words(self.reply.text):
                yield _padded("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}})
        yield _padded("contentBlockStop", {"contentBlockIndex": 0})
        yield _padded("messageStop", {"stopReason": STOP_REASONS[self.reply.ending]})
        yield _padded("metadata", {"usage": self.usage(), "metrics": {"latencyMs": 42}})


def _padded(event_type: str, payload: Json) -> bytes:
    """AWS pads each event's payload with a ``p`` field of varying length (against length side channels)."""
    return event_message(event_type, payload | {"p": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"[: 3 + len(event_type)]})


def _read_messages(messages: list[object]) -> tuple[list[str], str, str | None]:
    texts: list[str] = []
    last_user, tool_result = "", None
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise WireError(400, "Value at 'messages.role' failed to satisfy constraint: Member must satisfy enum "
                            "value set: [user, assistant]")  # fmt: skip
        blocks = [b for b in message.get("content") or [] if isinstance(b, dict)]
        text = " ".join(b["text"] for b in blocks if isinstance(b.get("text"), str))
        texts.append(text)
        last_user = text if message["role"] == "user" and text else last_user
        results = [b["toolResult"] for b in blocks if "toolResult" in b]
        tool_result = _result_text(results[-1]) if results else None
    return texts, last_user, tool_result


def _result_text(result: Json) -> str:
    parts = result.get("content") or []
    return " ".join(p["text"] if "text" in p else json.dumps(p.get("json")) for p in parts if isinstance(p, dict))


def _read_tools(body: Json) -> tuple[list[Tool], str | None]:
    """The tools offered, and the one forced: ``toolChoice: {tool: {name}}``; ``{any: {}}`` forces the first."""
    config = body.get("toolConfig") or {}
    specs = [t["toolSpec"] for t in config.get("tools") or [] if isinstance(t, dict) and "toolSpec" in t]
    tools = [Tool(s["name"], (s.get("inputSchema") or {}).get("json") or {}) for s in specs]
    choice = config.get("toolChoice") or {"auto": {}}
    if tools and not {"auto", "any", "tool"} & set(choice):
        raise WireError(400, "toolChoice must be one of auto, any, tool")
    forced = (choice.get("tool") or {}).get("name") if "tool" in choice else None
    return tools, forced
