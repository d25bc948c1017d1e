"""``gateway router train | score | eval``: the learned router's three commands."""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from importlib import resources
from pathlib import Path
from typing import IO, Any

import orjson

from gateway.classify.learned import to_json
from gateway.classify.loader import ARTIFACT, ClassifierName, load_classifier, load_router_model
from gateway.errors import GatewayError
from gateway.policy.decide import tier_for
from gateway.policy.policy_set import PolicySet
from gateway.policy.schema import Thresholds
from gateway.policyfiles.loader import PolicyError, load_policy_dir
from gateway.settings import DEFAULT_POLICIES
from gateway.training.params import Params
from gateway.training.train import chat_request, dataset, read_dataset, train


def default_artifact() -> Path:
    return Path(str(resources.files("gateway.classify").joinpath(ARTIFACT)))


def run_train(args: argparse.Namespace) -> int:
    from gateway.training.outcomes import OPERATOR, train_with_outcomes

    started = time.perf_counter()
    data = dataset([]) if args.data is None else read_dataset(args.data)  # None: the outcomes alone
    advice = None
    outcomes_path: Path | None = getattr(args, "outcomes", None)
    if outcomes_path is None:
        model, trained_on = train(data, Params()), f"{len(data.examples)} requests from {args.data}"
    else:
        outcomes = read_dataset(outcomes_path, default_bench=OPERATOR)
        model, advice = train_with_outcomes(data, outcomes, Params())
        trained_on = (
            f"{len(data.examples)} requests from {args.data} and {len(outcomes.examples)} outcomes from "
            f"{outcomes_path} (the calibration: the outcomes only)"
        )
        if args.data is None:
            trained_on = f"your {len(outcomes.examples)} outcomes from {outcomes_path} alone"
            print(
                "note: no dev data at ../shared/routing/dev.jsonl; training on your outcomes alone "
                "(--data PATH adds RouteLLM's published evaluations, github.com/lm-sys/RouteLLM)",
                file=sys.stderr,
            )
    out: Path = args.out or default_artifact()
    write_artifact(to_json(model), out)
    took = time.perf_counter() - started
    print(f"trained on {trained_on} in {took:.1f} s; wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
    for line in advice.lines() if advice else ():
        print(line)
    return 0


def write_artifact(data: dict[str, Any], path: Path) -> None:
    text = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    path.write_bytes(gzip.compress(text, compresslevel=9, mtime=0) if path.suffix == ".gz" else text)


PACKAGED_SHARES = (0.3, 0.4)  # strong_share, standard_share of the example policy's ``auto`` route


def packaged_thresholds(shares: tuple[float, float] = PACKAGED_SHARES) -> Thresholds:
    """Tier thresholds without a policy: the shares turned into scores by the packaged router's calibration."""
    calibration = load_router_model().calibration
    strong, standard = shares
    return Thresholds(
        complex=calibration.threshold_for_share(strong), standard=calibration.threshold_for_share(strong + standard)
    )


def route_thresholds(args: argparse.Namespace) -> tuple[Thresholds, PolicySet | None] | int:
    """The thresholds of ``--route`` in ``--policies`` and the policy; outside a policy directory (the default
    ``./policies`` absent), the packaged calibration's and None. An exit code when the policy is broken or lacks
    the route."""
    if args.policies == DEFAULT_POLICIES and not args.policies.is_dir():
        strong, standard = PACKAGED_SHARES
        print(
            f"note: no {DEFAULT_POLICIES}/ here; tiers from the packaged router's calibration "
            f"(strong_share {strong}, standard_share {standard}); --policies DIR for a policy's route",
            file=sys.stderr,
        )
        return packaged_thresholds(), None
    try:
        policy = load_policy_dir(args.policies, {})
    except PolicyError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return 1
    route = policy.routes.get(args.route)
    if route is None:
        print(f"unknown route {args.route!r}; known: {', '.join(policy.routes)}", file=sys.stderr)
        return 2
    return route.thresholds, policy


def run_score(args: argparse.Namespace) -> int:
    name: ClassifierName = args.classifier
    found = route_thresholds(args)
    if isinstance(found, int):
        return found
    thresholds, policy = found
    # the learned router the gateway would use: the policy directory's own artifact, else the packaged one
    classifier = policy.classifier if policy is not None and name == "learned" else load_classifier(name)
    source: IO[bytes] = sys.stdin.buffer if str(args.input) == "-" else args.input.open("rb")
    with source:
        for number, line in enumerate(source, 1):
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
                request = chat_request(row.get("prompt"), row.get("messages"))
            except (orjson.JSONDecodeError, AttributeError, GatewayError) as exc:
                print(f"{args.input}:{number}: {exc}", file=sys.stderr)
                return 1
            score = classifier.classify(request).score
            out = {"uid": row.get("uid"), "score": score, "tier": tier_for(score, thresholds)}
            sys.stdout.write(orjson.dumps(out).decode() + "\n")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from gateway.training import evaluate

    data = read_dataset(args.data, args.limit)
    params = Params()
    print(f"# router eval: {len(data.examples)} requests from {args.data} (sha256 {data.digest})\n")
    if not args.no_lobo and len(data.benches) > 1:  # the honest splits first: they are the headline
        print(evaluate.format_report(evaluate.leave_one_out_report(data, params)) + "\n", flush=True)
        groups = evaluate.mmlu_group_report(data, params)
        if groups is not None:
            print(evaluate.format_report(groups) + "\n", flush=True)
    print(evaluate.format_report(evaluate.grouped_report(data, params, args.seeds, args.folds)))
    return 0


def run_grade(args: argparse.Namespace) -> int:
    import os

    from gateway.training.grade import GIVE_UP_AFTER, OpenAIEndpoint, Pair, grade_all

    if args.concurrency < 1:
        print(f"error: --concurrency must be at least 1, not {args.concurrency}", file=sys.stderr)
        return 2
    if args.out.resolve() == args.input.resolve():
        print("error: --out must not be the input (write elsewhere, then run again on it to retry)", file=sys.stderr)
        return 2
    try:
        lines = [orjson.loads(line) for line in args.input.read_bytes().splitlines() if line.strip()]
    except (OSError, orjson.JSONDecodeError) as exc:
        print(f"error: {args.input}: {exc}", file=sys.stderr)
        return 1
    if not all(isinstance(line, dict) for line in lines):
        print(f"error: {args.input}: every line must be a JSON object", file=sys.stderr)
        return 1
    if not args.base_url.startswith(("http://", "https://")):
        print(f"error: --base-url must start with http:// or https://, not {args.base_url!r}", file=sys.stderr)
        return 2
    pair = Pair(args.weak, args.strong, args.judge)
    done = failed = written = 0
    endpoint = OpenAIEndpoint(args.base_url, os.environ.get(args.key_env), args.timeout)
    with endpoint, args.out.open("wb") as out:
        graded = grade_all(lines, pair, endpoint.complete, args.concurrency)
        for line in graded:
            out.write(orjson.dumps(line) + b"\n")
            out.flush()
            written += 1
            if "grade_error" in line:
                failed += 1
                print(f"not graded: {line.get('uid')}: {line['grade_error']}", file=sys.stderr)
            else:
                done += 1
            if done == 0 and failed == GIVE_UP_AFTER and written < len(lines):
                graded.close()  # the lines not started are not asked
                out.write(b"".join(orjson.dumps(rest) + b"\n" for rest in lines[written:]))  # kept, as they were
                print(
                    f"stopped: the first {failed} lines all failed; check --base-url, the key and the model names",
                    file=sys.stderr,
                )
                break
    print(
        f"graded {done} of {len(lines)} lines into {args.out}"
        + (f"; {len(lines) - done} not: run again on {args.out} to grade them" if done < len(lines) else ""),
        file=sys.stderr,
    )
    return 1 if done < len(lines) else 0


COMMANDS = {"train": run_train, "score": run_score, "eval": run_eval, "grade": run_grade}


def run(args: argparse.Namespace) -> int:
    return COMMANDS[args.router_command](args)
