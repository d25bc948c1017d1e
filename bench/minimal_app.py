"""The minimal ASGI app of ``python -m bench.servers``: a fixed chat completion and the gateway's headers.

No imports, so any server's environment can load it.
"""

from typing import Any

BODY = (
    b'{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,'
    b'"message":{"role":"assistant","content":"Hello there."},"finish_reason":"stop"}],'
    b'"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}'
)
HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(BODY)).encode()),
    (b"x-request-id", b"req_0123456789abcdef0123456789abcdef"),
    (b"x-gateway-model", b"gpt-4o-mini"),
    (b"x-gateway-deployment", b"gpt-4o-mini-openai"),
    (b"x-gateway-tier", b"simple"),
    (b"x-gateway-policy-revision", b"3f2a9c1b7d4e"),
]


async def app(scope: Any, receive: Any, send: Any) -> None:
    """The minimal ASGI app both servers run."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
