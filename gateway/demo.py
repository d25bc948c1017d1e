"""``gateway serve --demo``: stand-in upstreams on loopback, so the example policies answer without keys or network.

Three stand-ins play the deployments of the example policies: a self-hosted Qwen (vLLM), a
self-hosted gpt-oss (vLLM) and OpenAI's API. They answer canned text over real HTTP in
OpenAI's wire format, with usage. The policies are loaded with an environment holding only
the stand-ins' addresses, so no real provider key in the shell can be picked up by the demo.
"""

from __future__ import annotations

from contextlib import AsyncExitStack

from gateway.standin.openai_wire import create_openai_app
from gateway.standin.server import serve

DEMO_OPENAI_KEY = "sk-demo-standin"
DEMO_KEYS = {"demo-key": "no restrictions", "demo-us-only": "denies models of origin CN"}


async def start_demo_upstreams(stack: AsyncExitStack) -> dict[str, str]:
    """Start the stand-ins; return the environment the demo policies are loaded with."""
    qwen = await serve(create_openai_app(name="self-hosted vLLM (Qwen)"))
    stack.push_async_callback(qwen.stop)
    gpt_oss = await serve(create_openai_app(name="self-hosted vLLM (gpt-oss)"))
    stack.push_async_callback(gpt_oss.stop)
    openai = await serve(create_openai_app(name="OpenAI API stand-in", api_key=DEMO_OPENAI_KEY))
    stack.push_async_callback(openai.stop)
    return {
        "QWEN_BASE_URL": f"{qwen.url}/v1",
        "GPT_OSS_BASE_URL": f"{gpt_oss.url}/v1",
        "QWEN_EMBEDDING_BASE_URL": f"{qwen.url}/v1",
        "OPENAI_BASE_URL": f"{openai.url}/v1",
        "OPENAI_API_KEY": DEMO_OPENAI_KEY,
    }
