"""Agent frameworks pointed at the gateway with their default model names (resolved by policies/aliases.yaml):
the OpenAI Agents SDK (a model object, and the default client) and LangChain's ChatOpenAI. The recipes of
docs/agents.md are these."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
from agents import (
    Agent,
    OpenAIChatCompletionsModel,
    Runner,
    function_tool,
    set_default_openai_api,
    set_default_openai_client,
    set_tracing_disabled,
)
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from gateway.http.app import create_app
from gateway.settings import Settings
from gateway.standin.server import ThreadedServer
from tests.conftest import Upstreams
from tests.factories import POLICIES


@pytest.fixture(scope="module")
def gateway(_upstreams: Upstreams) -> Iterator[str]:
    """The shipped policies without the Anthropic deployment's key (litellm is not loaded: a quick start)."""
    env = {k: v for k, v in _upstreams.example_env().items() if not k.startswith("ANTHROPIC_")}
    with ThreadedServer(create_app(Settings(policies=POLICIES, reload_seconds=0), env=env)) as server:
        yield server.url


@pytest.fixture(autouse=True)
def _no_tracing() -> None:
    set_tracing_disabled(True)  # the Agents SDK would export traces to OpenAI


@function_tool
def weather(city: str) -> str:
    """Weather in a city."""
    return f"{city}: 18C"


@pytest.mark.anyio
async def test_agents_sdk_with_a_chat_completions_model(gateway: str, upstreams: Upstreams) -> None:
    async with openai.AsyncOpenAI(base_url=gateway + "/v1", api_key="demo-key", max_retries=0) as client:
        model = OpenAIChatCompletionsModel(model="gpt-5", openai_client=client)
        agent = Agent(name="helper", instructions="Be brief.", model=model, tools=[weather])
        result = await Runner.run(agent, "What is the weather in Paris?")
    assert "Based on the tool result: example: 18C" in result.final_output  # the stand-in called the tool once
    calls = upstreams.controls["a"].calls()
    roles = [m["role"] for m in calls[-1].body["messages"]]
    assert len(calls) == 2 and roles == ["system", "user", "assistant", "tool"]


@pytest.mark.anyio
async def test_agents_sdk_with_the_default_client(gateway: str, upstreams: Upstreams) -> None:
    async with openai.AsyncOpenAI(base_url=gateway + "/v1", api_key="demo-key", max_retries=0) as client:
        set_default_openai_client(client, use_for_tracing=False)
        set_default_openai_api("chat_completions")
        try:
            result = await Runner.run(Agent(name="helper", model="gpt-5-mini"), "say hi")
        finally:
            set_default_openai_api("responses")
    assert "Here is a short answer to: say hi" in result.final_output
    assert upstreams.controls["a"].count() == 1


def test_langchain_chat_openai(gateway: str, upstreams: Upstreams) -> None:
    chat = ChatOpenAI(
        model="gpt-5-codex",
        base_url=gateway + "/v1",
        api_key=SecretStr("demo-key"),
        max_retries=0,
        use_responses_api=False,  # it picks the Responses API for codex models, which the gateway does not serve
    )
    assert "say hi" in str(chat.invoke("say hi").content)
    assert "say hi" in "".join(str(piece.content) for piece in chat.stream("say hi"))
    assert upstreams.controls["a"].count() == 2
