"""``gateway router grade``: both models' answers and a judge's scores for the prompts ``gateway audit sample`` picked.

Steps 3 and 4 of collecting an operator's outcomes (docs/router-evaluation.md). For each line: the weak and
the strong model's answers (the one the audit line holds is reused when that model wrote it), each rated by
a judge model from 1 to 10 in the way of MT-Bench's single-answer grading, divided by 10: the ``weak_score``
and ``strong_score`` that ``gateway router train --outcomes`` reads. Everything goes through one
OpenAI-compatible endpoint, normally this gateway, with the models named (not a route), so that no routing
decides who answers.

Nothing is lost to a failure: every input line is written out, in order, as soon as it is done; a line whose
answers or rating could not be had is written without scores and with ``grade_error``, and a line that has
both scores is passed through untouched, so running again on the output retries only what failed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from gateway.training.train import SCORES, missing_scores

JUDGE_SYSTEM = "You are an impartial judge of the answers AI assistants give. You rate; you do not answer."
JUDGE_TEMPLATE = """Rate the quality of the assistant's answer to the user's request below. Consider first whether \
it is correct, then how helpful, relevant, deep and detailed it is, and whether it does what was asked. Judge the \
answer, not its length, and be as objective as you can. Explain your judgement in a few sentences, then give \
your rating from 1 to 10 in exactly this format: "Rating: [[5]]".

[The user's request]
{prompt}
[End of the request]

[The assistant's answer]
{answer}
[End of the answer]"""
RATING = re.compile(r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]")
RETRIED_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
GIVE_UP_AFTER = 5  # when the first lines all fail, the endpoint, key or model names are wrong: stop asking


class GradeError(Exception):
    """An answer or a rating that could not be had; the line is written with this as its ``grade_error``."""


def judge_messages(prompt: str, answer: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": JUDGE_SYSTEM},
        {"role": "user", "content": JUDGE_TEMPLATE.format(prompt=prompt, answer=answer)},
    ]


def rating(verdict: str) -> float | None:
    """The judge's last ``[[n]]`` as a score in [0.1, 1.0]; None when it gave none from 1 to 10."""
    found = RATING.findall(verdict)
    if not found:
        return None
    value = float(found[-1])
    return value / 10 if 1 <= value <= 10 else None


@dataclass(frozen=True)
class Pair:
    weak: str
    strong: str
    judge: str


Complete = Callable[[str, list[dict[str, str]], dict[str, Any]], str]
"""``complete(model, messages, extra)``: the text of the model's answer."""


def grade_line(line: dict[str, Any], pair: Pair, complete: Complete, judge_attempts: int = 2) -> dict[str, Any]:
    """The line with both answers and both scores, or with ``grade_error`` and no scores."""
    if not missing_scores(line):
        return line
    out = {k: v for k, v in line.items() if k != "grade_error"}
    try:
        prompt = line.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise GradeError("the line has no prompt")
        for side, model in (("weak", pair.weak), ("strong", pair.strong)):
            answer = out.get(f"{side}_answer")
            if not isinstance(answer, str):
                reused = line.get("answered_by") == model and isinstance(line.get("answer"), str)
                answer = line["answer"] if reused else complete(model, [{"role": "user", "content": prompt}], {})
                out[f"{side}_answer"] = answer
            out[f"{side}_score"] = _rate(prompt, answer, pair.judge, complete, judge_attempts)
    except GradeError as exc:
        for name in SCORES:
            out.pop(name, None)
        out["grade_error"] = str(exc)
    return out


def _rate(prompt: str, answer: str, judge: str, complete: Complete, attempts: int) -> float:
    verdict = ""
    for _ in range(attempts):
        verdict = complete(judge, judge_messages(prompt, answer), {"temperature": 0})
        if (value := rating(verdict)) is not None:
            return value
    raise GradeError(f"the judge {judge!r} gave no rating from 1 to 10 in {attempts} tries: {verdict[-200:]!r}")


def grade_all(
    lines: Iterable[dict[str, Any]], pair: Pair, complete: Complete, concurrency: int = 4
) -> Generator[dict[str, Any]]:
    """Each line graded, in input order, ``concurrency`` at a time. Closing the iterator early cancels the
    lines not started (those under way finish)."""
    pool = ThreadPoolExecutor(max_workers=concurrency)
    try:
        for future in [pool.submit(grade_line, line, pair, complete) for line in lines]:
            yield future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class OpenAIEndpoint:
    """Chat completions of an OpenAI-compatible endpoint (this gateway, usually), with retries on the
    statuses and network errors that pass. Proxies and CA bundles come from the environment (``HTTPS_PROXY``,
    ``SSL_CERT_FILE``), as for any httpx client."""

    def __init__(self, base_url: str, api_key: str | None, timeout: float = 120.0, attempts: int = 4) -> None:
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=base_url.rstrip("/") + "/", headers=headers, timeout=timeout)
        self._retrying = Retrying(  # its state is per call (and per thread): one for every call
            retry=retry_if_exception(_passes),
            stop=stop_after_attempt(attempts),
            wait=wait_random_exponential(multiplier=0.5, max=20),
            reraise=True,
        )

    def __enter__(self) -> OpenAIEndpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.close()

    def complete(self, model: str, messages: list[dict[str, str]], extra: dict[str, Any]) -> str:
        try:
            response = self._retrying(self._post, {"model": model, "messages": messages, **extra})
        except httpx.HTTPStatusError as exc:
            raise GradeError(f"{model}: HTTP {exc.response.status_code}: {_message(exc.response)}") from None
        except httpx.HTTPError as exc:
            raise GradeError(f"{model}: {type(exc).__name__}: {exc}") from None
        try:
            content = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise GradeError(f"{model}: not a chat completion: {response.text[:200]!r}") from None
        if not isinstance(content, str) or not content.strip():
            raise GradeError(f"{model}: an empty answer")
        return content

    def _post(self, body: dict[str, Any]) -> httpx.Response:
        response = self._client.post("chat/completions", json=body)
        response.raise_for_status()
        return response


def _passes(exc: BaseException) -> bool:
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code in RETRIED_STATUSES
    return isinstance(exc, httpx.TransportError)


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])[:300]
    except (ValueError, KeyError, TypeError):
        return response.text[:300]
