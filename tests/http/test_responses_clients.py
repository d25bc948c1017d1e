"""Agent frameworks, unmodified, through the gateway: the Agents SDK (Responses and chat models) and LangChain's
ChatOpenAI (with and without ``use_responses_api``), routed to the chat stand-ins and to a Responses deployment."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from agents import (
    Agent,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    RunConfig,
    Runner,
    function_tool,
    set_tracing_disabled,
)
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

from tests.conftest import OPENAI_KEY, GatewayFactory, Upstreams
from tests.factories import deployment, small_policy, tenant

KEY = "open-key"


@pytest.fixture(scope="module")
def gateway(
    _upstreams: Upstreams, make_gateway: GatewayFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    urls = _upstreams.v1()
    frontier = deployment(
        "frontier", urls["c"], self_hosted=False, operator="Frontier Inc", api="responses", api_key_env="OPENAI_API_KEY"
    )
    deployments = {"us-open-a": deployment("us-open", urls["a"]), "frontier-api": frontier}
    routes = {"auto": {"tiers": {"simple": ["us-open"], "standard": ["us-open"], "complex": ["frontier"]}}}
    directory = small_policy(
        tmp_path_factory.mktemp("clients"), urls, deployments=deployments, tenants={"open": tenant(KEY)}, routes=routes
    )
    with make_gateway(directory, {"OPENAI_API_KEY": OPENAI_KEY}) as url:
        yield url


@pytest.fixture(autouse=True)
def _no_tracing() -> Iterator[None]:
    set_tracing_disabled(True)
    yield


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"18C and sunny in {city}"


@pytest.mark.anyio
@pytest.mark.parametrize("model", ["us-open", "frontier"])
@pytest.mark.parametrize("kind", ["responses", "chat"])
async def test_agent_with_a_function_tool_completes_a_run(
    gateway: str, upstreams: Upstreams, model: str, kind: str
) -> None:
    client = openai.AsyncOpenAI(base_url=gateway + "/v1", api_key=KEY, max_retries=0)
    chosen: Any = (
        OpenAIResponsesModel(model, client) if kind == "responses" else OpenAIChatCompletionsModel(model, client)
    )
    agent = Agent(name="weather", instructions="Answer with the tool.", tools=[get_weather], model=chosen)
    result = await Runner.run(agent, "What is the weather in Paris?", run_config=RunConfig(tracing_disabled=True))
    await client.close()
    assert isinstance(result.final_output, str) and result.final_output
    kinds = [item.type for item in result.new_items]
    assert kinds[:2] == ["tool_call_item", "tool_call_output_item"] and kinds[-1] == "message_output_item"
    stand_in = upstreams.controls["c" if model == "frontier" else "a"]
    paths = {call.path for call in stand_in.calls()}
    expected = "/v1/responses" if kind == "responses" and model == "frontier" else "/v1/chat/completions"
    assert paths == {expected}, "a Responses deployment is passed the body through, any other gets chat"


class City(BaseModel):
    name: str
    country: str


@pytest.mark.parametrize("responses_api", [True, False])
def test_langchain_chat_openai(gateway: str, upstreams: Upstreams, responses_api: bool) -> None:
    llm = ChatOpenAI(
        model="us-open", base_url=gateway + "/v1", api_key=KEY, use_responses_api=responses_api, max_retries=0
    )  # type: ignore[call-arg]
    answer = llm.invoke("What is the capital of France?")
    assert "capital of France" in answer.text
    if responses_api:
        assert answer.response_metadata.get("id", "").startswith("resp_")
    assert answer.usage_metadata and answer.usage_metadata["output_tokens"] > 0

    with_tools = llm.bind_tools([get_weather_schema()])
    question = HumanMessage("Weather in Paris?")
    first = with_tools.invoke([question])
    assert first.tool_calls and first.tool_calls[0]["name"] == "get_weather"
    call = first.tool_calls[0]
    second = with_tools.invoke([question, first, ToolMessage("18C", tool_call_id=call["id"])])
    assert second.text and not second.tool_calls

    city = llm.with_structured_output(City).invoke("Name a city.")
    assert isinstance(city, City)
    chats = [c for c in upstreams.controls["a"].calls() if c.path == "/v1/chat/completions"]
    assert any(c.body.get("response_format", {}).get("type") == "json_schema" for c in chats)


def get_weather_schema() -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
