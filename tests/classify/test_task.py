"""Agent requests are scored on their task; the system prompt, tools and history are bounded context."""

from __future__ import annotations

import heapq
from typing import Any

import orjson

from gateway.classify import load_default_classifier, load_router_model
from gateway.classify.learned import LearnedClassifier
from gateway.classify.task import split, strip_agent_blocks
from gateway.policy.decide import tier_for
from gateway.request import ChatRequest
from gateway.routing.normalize import normalize
from gateway.translate.anthropic_messages import to_openai
from tests.classify.agent import HARD, REMINDER, SYSTEM, TOOLS, TRIVIAL, agent_body
from tests.factories import chat, example_policy


def request(body: dict[str, Any]) -> ChatRequest:
    return normalize("chat", orjson.dumps(body), {})


def tier(req: ChatRequest) -> str:
    return tier_for(load_default_classifier().classify(req).score, example_policy().routes["auto"].thresholds)


def test_a_trivial_agent_task_routes_below_the_complex_tier_and_a_hard_one_does_not() -> None:
    for history in (False, True):
        assert tier(request(agent_body(TRIVIAL, history=history))) in ("simple", "standard")
        assert tier(request(agent_body("fix the typo in the README", history=history))) != "complex"
        assert tier(request(agent_body(HARD, history=history))) == "complex"


def test_the_agent_boilerplate_alone_no_longer_decides_the_score() -> None:
    classifier = load_default_classifier()
    trivial = classifier.classify(request(agent_body(TRIVIAL))).score
    hard = classifier.classify(request(agent_body(HARD))).score
    assert trivial < 0.7 < hard  # before: 0.992 and 1.0, the system prompt drove both


def test_an_anthropic_messages_request_from_an_agent_is_scored_on_its_task() -> None:
    tools = [{"name": t["function"]["name"], "description": t["function"]["description"],
              "input_schema": t["function"]["parameters"]} for t in TOOLS]  # fmt: skip
    body = {
        "model": "claude-sonnet-4-5-20250929",
        "max_tokens": 32000,
        "system": [{"type": "text", "text": SYSTEM}],
        "tools": tools,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": REMINDER}, {"type": "text", "text": TRIVIAL}]}
        ],
    }
    translated = request(to_openai(body))
    assert tier(translated) != "complex"
    task = split(translated)
    assert task is not None and task.request.text == TRIVIAL and task.context_tokens > 1500


def test_explain_shows_what_the_task_and_the_context_gave() -> None:
    result = load_default_classifier().classify(request(agent_body(TRIVIAL)))
    assert {"task", "context"} <= set(result.features)
    assert result.features["raw"] == round(result.features["task"] + result.features["context"], 4)
    assert "context" in dict(result.top) and "prior:brief" in dict(result.top)  # the brief task pulled it down


def test_context_weight_is_bounded_however_long_the_system_prompt() -> None:
    model = load_router_model()
    short = request(agent_body(TRIVIAL))
    body = agent_body(TRIVIAL)
    body["messages"][0]["content"] = SYSTEM * 30
    huge = request(body)
    classifier = LearnedClassifier(model)
    contexts = [classifier.classify(r).features["context"] for r in (short, huge)]
    assert 0.0 < contexts[0] <= contexts[1] == round(model.context_cap, 4)
    assert model.context_cap > 0


def test_a_single_prompt_is_its_own_task() -> None:
    for text in ("What is the capital of France?", "x < 3 and y > 4: solve", "Prove that 2 < 3."):
        assert split(chat(text)) is None
    assert split(chat("hi", tools=TOOLS)) is None  # one prompt with tools: scored as before, tools in the prior


def test_the_task_is_the_latest_user_turn_that_is_not_only_reminders() -> None:
    body = agent_body(HARD, history=True)
    body["messages"].append({"role": "user", "content": REMINDER})  # an agent's reminder-only turn
    task = split(request(body))
    assert task is not None and task.request.text == HARD
    assert task.request.turns == 1 and not task.request.needs_tools and task.request.max_tokens is None
    later = agent_body(HARD, history=True)
    later["messages"].append({"role": "user", "content": "now also add a README section"})
    assert split(request(later)).request.text == "now also add a README section"  # type: ignore[union-attr]


def test_agent_blocks_are_removed_with_their_content() -> None:
    text = "<environment_context>cwd: /x</environment_context>\n<user_instructions>be brief</user_instructions>\nhi"
    assert strip_agent_blocks(text) == "hi"
    assert strip_agent_blocks("keep <b>this</b> markup") == "keep <b>this</b> markup"


def test_the_fast_scorer_matches_the_reference_terms_on_agent_requests() -> None:
    model = load_router_model()
    classifier = LearnedClassifier(model)
    for body in (agent_body(TRIVIAL), agent_body(HARD, history=True)):
        req = request(body)
        result = classifier.classify(req)
        _, terms = model.terms(req)
        assert result.features["terms"] == len(terms)
        top = heapq.nlargest(6, terms, key=lambda term: abs(term[1]))
        assert result.top == tuple((name, round(c, 4)) for name, c in top)


def test_the_task_is_scored_exactly_as_the_same_prompt_alone() -> None:
    classifier = load_default_classifier()
    for task in (TRIVIAL, HARD, "y" * 20000):
        alone = classifier.classify(chat(task))
        agent = classifier.classify(request(agent_body(task)))
        assert agent.features["task"] == alone.features["raw"]
