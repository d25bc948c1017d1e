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

from gateway.policy.policy_set import PolicySet
from gateway.standin.control import Control
from gateway.standin.openai_wire import create_openai_app
from gateway.standin.server import RunningServer, serve

DEMO_OPENAI_KEY = "sk-demo-standin"
# What each stand-in lists at /v1/models: the upstream_model of the example deployments it plays, so the
# gateway's model check at start (gateway/upstream/health.py) finds them and warns of nothing.
QWEN_MODELS = ("Qwen/Qwen3-32B", "Qwen/Qwen3-Embedding-8B")
GPT_OSS_MODELS = ("openai/gpt-oss-120b",)
OPENAI_MODELS = ("gpt-4.1", "gpt-4.1-mini", "text-embedding-3-small")
DEMO_KEYS = {"demo-key": "no restrictions", "demo-us-only": "denies models of origin CN"}


async def start_demo_upstreams(stack: AsyncExitStack) -> dict[str, str]:
    """Start the stand-ins; return the environment the demo policies are loaded with."""
    qwen = await _start(stack, "self-hosted vLLM (Qwen)", models=QWEN_MODELS)
    gpt_oss = await _start(stack, "self-hosted vLLM (gpt-oss)", models=GPT_OSS_MODELS)
    openai = await _start(stack, "OpenAI API stand-in", DEMO_OPENAI_KEY, OPENAI_MODELS)
    return {
        "QWEN_BASE_URL": f"{qwen.url}/v1",
        "GPT_OSS_BASE_URL": f"{gpt_oss.url}/v1",
        "QWEN_EMBEDDING_BASE_URL": f"{qwen.url}/v1",
        "OPENAI_BASE_URL": f"{openai.url}/v1",
        "OPENAI_API_KEY": DEMO_OPENAI_KEY,
    }


def demo_warnings(policy: PolicySet) -> tuple[list[str], str | None]:
    """The policy's warnings to log in the demo, and one line for the deployments it cannot call.

    The example policies name providers the demo has no stand-in for (Anthropic, Gemini, ...); their
    keys are missing on purpose, so instead of a warning each they get one line naming them."""
    without = sorted(dep.id for dep in policy.deployments.values() if dep.unavailable)
    expected = {f"deployments.{dep.id}: {dep.unavailable}" for dep in policy.deployments.values() if dep.unavailable}
    note = f"demo: no stand-in for {len(without)} deployment(s), not called: {', '.join(without)}" if without else None
    return [warning for warning in policy.warnings if warning not in expected], note


async def _start(
    stack: AsyncExitStack, name: str, api_key: str | None = None, models: tuple[str, ...] = ()
) -> RunningServer:
    server = await serve(create_openai_app(Control(max_calls=0), name=name, api_key=api_key, models=models))
    stack.push_async_callback(server.stop)
    return server
