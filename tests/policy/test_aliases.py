"""Aliases: client model names and patterns -> routes or catalog models, resolved in normalize (pure)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from gateway.classify.heuristic import HeuristicClassifier
from gateway.policy.aliases import Aliases, Resolved, alias_problems
from gateway.policy.decide import decide
from gateway.policyfiles.loader import PolicyError, load_policy_dir
from gateway.routing.normalize import normalize
from tests.factories import example_policy, small_policy, write_policy

ROUTES = {"auto": object(), "auto-fast": object()}
MODELS = {"claude-sonnet-4": object(), "gpt-4.1": object()}
TABLE = Aliases.of(
    {"claude-*": "auto", "claude-haiku-*": "auto-fast", "claude-opus-4-1": "gpt-4.1", "gpt-?": "auto-fast"},
    [*ROUTES, *MODELS],
)


def test_a_pattern_resolves_a_dated_model_id() -> None:
    assert TABLE.resolve("claude-sonnet-4-5-20250929") == Resolved("auto", "claude-*")


def test_exact_catalog_ids_and_routes_are_never_resolved() -> None:
    assert TABLE.resolve("claude-sonnet-4") is None  # a catalog model that claude-* would match
    assert TABLE.resolve("auto") is None


def test_an_exact_alias_wins_over_a_pattern_written_before_it() -> None:
    assert TABLE.resolve("claude-opus-4-1") == Resolved("gpt-4.1", "claude-opus-4-1")


def test_the_first_matching_pattern_in_order_wins() -> None:
    assert TABLE.resolve("claude-haiku-4-5") == Resolved("auto", "claude-*")  # claude-* is written first
    later_first = Aliases.of({"claude-haiku-*": "auto-fast", "claude-*": "auto"}, ROUTES)
    assert later_first.resolve("claude-haiku-4-5") == Resolved("auto-fast", "claude-haiku-*")


def test_glob_syntax_and_no_match() -> None:
    assert TABLE.resolve("gpt-5") == Resolved("auto-fast", "gpt-?")
    assert TABLE.resolve("gpt-5-codex") is None  # ? is one character
    assert TABLE.resolve("Claude-sonnet") is None  # case-sensitive
    assert TABLE.resolve("xclaude-1") is None  # anchored at both ends
    assert not Aliases() and Aliases().resolve("anything") is None


def test_problems_name_the_alias_and_the_unknown_target() -> None:
    problems = dict(alias_problems({"claude-*": "autoo", "gpt-4.1": "auto", "ok-*": "auto"}, ROUTES, MODELS))
    assert set(problems) == {"claude-*", "gpt-4.1"}
    assert "unknown route or model 'autoo'" in problems["claude-*"] and "auto, auto-fast" in problems["claude-*"]
    assert "shadows the model" in problems["gpt-4.1"]


def test_normalize_resolves_and_keeps_the_clients_name() -> None:
    body = orjson.dumps({"model": "claude-sonnet-4-5-20250929", "messages": [{"role": "user", "content": "hi"}]})
    request = normalize("chat", body, {}, aliases=TABLE)
    assert (request.model, request.requested_model, request.alias) == ("auto", "claude-sonnet-4-5-20250929", "claude-*")
    plain = normalize("chat", body.replace(b"claude-sonnet-4-5-20250929", b"gpt-4.1"), {}, aliases=TABLE)
    assert (plain.model, plain.requested_model, plain.alias) == ("gpt-4.1", None, None)
    prompt = normalize("completions", orjson.dumps({"model": "gpt-7", "prompt": "hi"}), {}, aliases=TABLE)
    assert prompt.model == "auto-fast"


def test_the_decision_shows_the_requested_name_the_alias_and_its_target() -> None:
    policy = example_policy()
    body = orjson.dumps({"model": "claude-sonnet-4-5-20250929", "messages": [{"role": "user", "content": "hi"}]})
    decision = decide(policy, "demo", normalize("chat", body, {}, aliases=policy.aliases), HeuristicClassifier())
    shown = decision.to_json()
    assert shown["requested_model"] == "claude-sonnet-4-5-20250929"
    assert (shown["alias"], shown["resolved_model"], shown["route"]) == ("claude-*", "auto", "auto")
    assert decision.tier is not None and decision.ranked


def test_the_shipped_aliases_do_not_shadow_catalog_models() -> None:
    policy = example_policy()
    assert policy.aliases, "policies/aliases.yaml ships aliases"
    assert all(policy.aliases.resolve(name) is None for name in (*policy.models, *policy.routes))
    assert policy.aliases.resolve("claude-sonnet-4-5-20250929") == Resolved("auto", "claude-*")
    assert policy.aliases.resolve("gpt-5-codex") is not None


def test_the_loader_names_the_file_and_key_of_a_bad_alias(tmp_path: Path) -> None:
    directory = small_policy(tmp_path, {"a": "http://a", "b": "http://b", "c": "http://c"})
    (directory / "aliases.yaml").write_text("aliases:\n  claude-*: nowhere\n  us-open: auto\n")
    with pytest.raises(PolicyError) as raised:
        load_policy_dir(directory, {})
    problems = raised.value.problems
    assert any(
        p.startswith(f"{directory / 'aliases.yaml'}:2: aliases.claude-*: unknown route or model") for p in problems
    )
    assert any("aliases.us-open: shadows the model" in p for p in problems)


def test_the_loader_refuses_a_malformed_alias_name_and_a_repeated_one(tmp_path: Path) -> None:
    directory = small_policy(tmp_path, {"a": "http://a", "b": "http://b", "c": "http://c"})
    (directory / "aliases.yaml").write_text("aliases:\n  'bad name': auto\n  'x': {route: auto}\n")
    with pytest.raises(PolicyError) as raised:
        load_policy_dir(directory, {})
    assert any("aliases.bad name" in p for p in raised.value.problems)
    assert any("aliases.x" in p for p in raised.value.problems)
    (directory / "aliases.yaml").write_text("aliases:\n  claude-*: auto\n")
    write_policy(directory, more={})
    (directory / "more.yaml").write_text("aliases:\n  claude-*: auto\n")
    with pytest.raises(PolicyError, match=r"aliases.claude-\*: already defined in"):
        load_policy_dir(directory, {})


def test_patterns_keep_file_order_across_files(tmp_path: Path) -> None:
    directory = small_policy(tmp_path, {"a": "http://a", "b": "http://b", "c": "http://c"})
    (directory / "a-aliases.yaml").write_text("aliases:\n  claude-*: auto\n")
    (directory / "b-aliases.yaml").write_text("aliases:\n  claude-haiku-*: us-open\n  gpt-*: frontier\n")
    aliases = load_policy_dir(directory, {}).aliases
    assert aliases.resolve("claude-haiku-4-5") == Resolved("auto", "claude-*")
    assert aliases.resolve("gpt-5") == Resolved("frontier", "gpt-*")
