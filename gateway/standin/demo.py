"""``gateway serve --demo``: stand-in upstreams on loopback, so the example policies answer without keys or network.

Three stand-ins play the deployments of the example policies: a self-hosted Qwen (vLLM), a
self-hosted gpt-oss (vLLM) and OpenAI's API. They answer canned text over real HTTP in
OpenAI's wire format, with usage. The policies are loaded with an environment holding only
the stand-ins' addresses, so no real provider key in the shell can be picked up by the demo.

The stand-ins record no calls (a demo may run for days, and nothing reads the record) and mount
no ``/_standin`` control routes, which take no key and would show prompts and queue faults.
"""

from __future__ import annotations

from contextlib import AsyncExitStack

from gateway.standin.control import Control
from gateway.standin.openai_wire import create_openai_app
from gateway.standin.server import RunningServer, serve

DEMO_OPENAI_KEY = "sk-demo-standin"
DEMO_KEYS = {"demo-key": "no restrictions", "demo-us-only": "denies models of origin CN"}


async def start_demo_upstreams(stack: AsyncExitStack) -> dict[str, str]:
    """Start the stand-ins; return the environment the demo policies are loaded with."""
    qwen = await _start(stack, "self-hosted vLLM (Qwen)")
    gpt_oss = await _start(stack, "self-hosted vLLM (gpt-oss)")
    openai = await _start(stack, "OpenAI API stand-in", DEMO_OPENAI_KEY)
    return {
        "QWEN_BASE_URL": f"{qwen.url}/v1",
        "GPT_OSS_BASE_URL": f"{gpt_oss.url}/v1",
        "QWEN_EMBEDDING_BASE_URL": f"{qwen.url}/v1",
        "OPENAI_BASE_URL": f"{openai.url}/v1",
        "OPENAI_API_KEY": DEMO_OPENAI_KEY,
    }


async def _start(stack: AsyncExitStack, name: str, api_key: str | None = None) -> RunningServer:
    server = await serve(create_openai_app(Control(max_calls=0), name=name, api_key=api_key))
    stack.push_async_callback(server.stop)
    return server
