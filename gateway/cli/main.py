"""The ``gateway`` command: serve, policy check/explain, router train/score/eval, keys hash."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

import orjson

from gateway.cli.policy_import import add_import_command
from gateway.cli.policy_load import POLICIES_DEFAULT, load
from gateway.cli.policy_proof import add_proof_commands
from gateway.cli.policy_tools import add_policy_tools
from gateway.observe.audit_sample import STRATA
from gateway.routing.auth import hash_key
from gateway.settings import EXAMPLE_POLICIES, Settings, default_policies

DEMO_AUDIT_LOG = "/dev/stderr"  # the demo's banner and curl line keep stdout to themselves


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    for name in ("policies", "directory"):
        if hasattr(args, name) and getattr(args, name) is None:
            setattr(args, name, _default_policies(quiet=args.run is _serve))
    result: int = args.run(args)
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="Switchyard: an OpenAI-compatible LLM gateway.")
    commands = parser.add_subparsers(title="commands")

    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--policies", type=Path, default=None, help=f"policy directory (default: {POLICIES_DEFAULT})")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--demo", action="store_true", help="start stand-in upstreams in process (no keys, no network)")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument(
        "--audit-log",
        default=None,
        metavar="PATH",
        help=f"audit trail: a file, '-' for stdout (the default; with --demo {DEMO_AUDIT_LOG}), 'off'",
    )
    serve.add_argument(
        "--audit-flush-seconds", type=float, default=1.0, metavar="S",
        help="longest an audit line waits before it is written (default 1); 0 writes each line at once",
    )  # fmt: skip
    serve.add_argument("--reload-seconds", type=float, default=5.0, help="policy change check interval; 0 = off")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (metrics: docs/observability.md)")
    serve.add_argument(
        "--drain-seconds", type=float, default=Settings().drain_seconds, metavar="S",
        help="on SIGTERM, how long requests in flight get before streams are cut (default %(default)g)",
    )  # fmt: skip
    _edge_arguments(serve)
    serve.set_defaults(run=_serve)

    audit = commands.add_parser("audit", help="read the audit trail").add_subparsers(title="audit commands")
    summarize = audit.add_parser("summarize", help="traffic, cost and savings by tenant, tier, vendor and origin")
    summarize.add_argument("file", type=Path)
    summarize.set_defaults(run=_summarize)
    sample = audit.add_parser(
        "sample", help="the prompts to grade for the router's per-pair calibration (needs audit_content)"
    )
    sample.add_argument("file", type=Path)
    sample.add_argument("--n", type=int, default=500, help="how many prompts (default %(default)s)")
    sample.add_argument("--seed", type=int, default=0, help="which of the equally spread picks (default 0)")
    sample.add_argument(
        "--stratum", choices=STRATA, default="tenant",
        help="what keeps requests together in the out-of-fold estimate (default %(default)s)",
    )  # fmt: skip
    sample.add_argument("--out", default="-", help="JSON lines to this file (default stdout)")
    sample.set_defaults(run=_sample)

    policy = commands.add_parser("policy", help="check or explain policies").add_subparsers(title="policy commands")
    check = policy.add_parser("check", help="validate a policy directory and run its example cases")
    check.add_argument("directory", type=Path, nargs="?", default=None, help=f"(default: {POLICIES_DEFAULT})")
    check.set_defaults(run=_check)
    explain = policy.add_parser("explain", help="print the routing decision for a request, calling nothing")
    explain.add_argument("--policies", type=Path, default=None, help=f"(default: {POLICIES_DEFAULT})")
    explain.add_argument("--tenant", required=True)
    explain.add_argument("--request", type=Path, required=True, help="a chat completion request body (JSON)")
    explain.add_argument("--data-class", default=None)
    explain.set_defaults(run=_explain)
    add_policy_tools(policy)  # test, schema
    add_proof_commands(policy)  # verify, diff
    add_import_command(policy)  # import-litellm

    _router_parser(commands)

    keys = commands.add_parser("keys", help="API key helpers").add_subparsers(title="keys commands")
    hash_cmd = keys.add_parser("hash", help="print the sha256 of a key for tenants.*.keys (reads stdin or a prompt)")
    hash_cmd.add_argument("key", nargs="?", help="the key (prefer stdin so it stays out of shell history)")
    hash_cmd.set_defaults(run=_hash)
    return parser


EDGE_FLAGS: tuple[tuple[str, type[int] | type[float], str], ...] = (  # Settings field, type, what it limits
    ("max_header_bytes", int, "request target and headers, in bytes; over it: 431"),
    ("max_headers", int, "header lines; over it: 431"),
    ("idle_timeout_seconds", float, "close a connection with no request begun for this long"),
    ("header_timeout_seconds", float, "a request's headers must arrive within this; else 408"),
    ("body_timeout_seconds", float, "close a connection whose request body pauses for this long"),
    ("min_body_bytes_per_second", int, "after the body timeout, close a body slower than this on average"),
    ("max_connections", int, "open connections; beyond them a new one gets 503"),
)


def _edge_arguments(serve: argparse.ArgumentParser) -> None:
    """Limits at the HTTP edge (docs/edge-limits.md); the defaults are Settings'."""
    edge = serve.add_argument_group("limits at the HTTP edge (per worker process)")
    defaults = Settings()
    for field, kind, text in EDGE_FLAGS:
        default = getattr(defaults, field)
        edge.add_argument(
            "--" + field.replace("_", "-"), type=kind, default=default, metavar="N" if kind is int else "S",
            help=f"{text} (default {default:g})",
        )  # fmt: skip


DEV_DATA = Path("../shared/routing/dev.jsonl")


def _router_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    data = DEV_DATA
    router = commands.add_parser("router", help="train, score with and evaluate the learned complexity router")
    sub = router.add_subparsers(title="router commands")
    train = sub.add_parser("train", help="train the router and write its artifact (needs the router extra)")
    train.add_argument("--data", type=Path, default=data, help=f"JSON lines (default {data})")
    train.add_argument("--out", type=Path, default=None, help="artifact path (default: the packaged one)")
    train.add_argument(
        "--outcomes",
        type=Path,
        default=None,
        help="your model pair's outcomes (JSON lines, same shape); without the default --data, trained on them alone",
    )
    train.set_defaults(run=_router, router_command="train")
    score = sub.add_parser("score", help="score requests exactly as the auto route does; JSON lines out")
    score.add_argument("--input", type=Path, required=True, help="JSON lines: uid and prompt or messages; - = stdin")
    score.add_argument("--policies", type=Path, default=None, help=f"(default: {POLICIES_DEFAULT})")
    score.add_argument("--route", default="auto", help="route whose thresholds give the tier (default: auto)")
    score.add_argument("--classifier", choices=["learned", "heuristic"], default="learned")
    score.set_defaults(run=_router, router_command="score")
    evaluate = sub.add_parser("eval", help="cross-validated APGR, CPT50/80 and C95 beside random and oracle")
    evaluate.add_argument("--data", type=Path, default=data, help=f"JSON lines (default {data})")
    evaluate.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="fold assignments to average")
    evaluate.add_argument("--folds", type=int, default=5)
    evaluate.add_argument("--limit", type=int, default=None, help="at most this many requests per benchmark")
    evaluate.add_argument("--no-lobo", action="store_true", help="skip the leave-one-benchmark-out table")
    evaluate.set_defaults(run=_router, router_command="eval")
    grade = sub.add_parser(
        "grade", help="both models' answers and a judge's 1-10 scores for the lines `gateway audit sample` wrote"
    )
    grade.add_argument("input", type=Path, help="JSON lines from `gateway audit sample` (or an earlier grade's output)")
    grade.add_argument("--out", type=Path, required=True, help="the graded JSON lines (not the input)")
    grade.add_argument("--base-url", required=True, help="an OpenAI-compatible endpoint, e.g. http://gateway:8080/v1")
    grade.add_argument("--weak", required=True, help="the model that takes the simple work (by name, not a route)")
    grade.add_argument("--strong", required=True, help="the model that takes the complex work")
    grade.add_argument("--judge", required=True, help="the model that rates both answers (a strong one)")
    grade.add_argument(
        "--key-env", default="OPENAI_API_KEY", help="the environment variable with the API key (default %(default)s)"
    )
    grade.add_argument("--concurrency", type=int, default=4, help="lines graded at once (default %(default)s)")
    grade.add_argument("--timeout", type=float, default=120.0, help="seconds per call (default %(default)g)")
    grade.set_defaults(run=_router, router_command="grade")


def _default_policies(quiet: bool) -> Path:
    """The policy directory when none is named; a note on stderr when it is the packaged examples
    (``gateway serve`` logs its own, once logging is set up)."""
    policies = default_policies()
    if policies == EXAMPLE_POLICIES and not quiet:
        print(
            f"note: no ./policies here; using the example policies shipped in the package: {policies}", file=sys.stderr
        )
    return policies


def _router(args: argparse.Namespace) -> int:
    from gateway.training.cli import run

    data: Path | None = getattr(args, "data", None)  # train and eval read a data set
    if data is not None and not data.is_file():
        if getattr(args, "outcomes", None) is not None and data == DEV_DATA:  # an operator's outcomes alone
            args.data = None
            return run(args)
        print(f"error: no data set at {data}: pass one with --data PATH (JSON lines)", file=sys.stderr)
        return 2
    return run(args)


def _serve(args: argparse.Namespace) -> int:
    from gateway.http.serve import run

    if args.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return 2
    if not 0 <= args.audit_flush_seconds <= 60:
        print("error: --audit-flush-seconds must be between 0 and 60", file=sys.stderr)
        return 2
    if args.drain_seconds < 0:
        print("error: --drain-seconds must be 0 or more", file=sys.stderr)
        return 2
    edge = {field: getattr(args, field) for field, _, _ in EDGE_FLAGS}
    for field, value in edge.items():
        if value <= 0:
            print(f"error: --{field.replace('_', '-')} must be greater than 0", file=sys.stderr)
            return 2
    settings = Settings(
        policies=args.policies, host=args.host, port=args.port, demo=args.demo, log_level=args.log_level,
        audit_log=_audit_log(args.audit_log, args.demo), reload_seconds=args.reload_seconds,
        workers=args.workers, audit_flush_seconds=args.audit_flush_seconds, drain_seconds=args.drain_seconds, **edge,
    )  # fmt: skip
    try:
        return run(settings)
    except KeyboardInterrupt:  # Ctrl-C before the server took over SIGINT (while loading), or with --workers
        print("gateway: stopped (Ctrl-C)", file=sys.stderr)
        return 0


def _audit_log(given: str | None, demo: bool) -> str | None:
    if given is None:
        return DEMO_AUDIT_LOG if demo else "-"
    return None if given == "off" else given


def _summarize(args: argparse.Namespace) -> int:
    from gateway.observe.audit_summary import Entries, render, summarize

    entries = Entries(args.file)  # one line at a time: a trail of any size
    try:
        tables = summarize(entries)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(render(tables))
    if entries.bad:
        print(f"warning: {entries.bad} line(s) of {args.file} are not audit entries and were skipped", file=sys.stderr)
    return 0


def _sample(args: argparse.Namespace) -> int:
    from gateway.observe.audit_sample import BINS, Tally, eligible, outcome_line, sample, score_bin
    from gateway.observe.audit_summary import Entries

    if args.n < 1:
        print(f"error: --n must be at least 1, not {args.n}", file=sys.stderr)
        return 2
    entries, tally = Entries(args.file), Tally()
    try:
        picked = sample(eligible(entries, tally), args.n, args.seed)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not picked:
        print(
            f"error: none of the {tally.read} audit entries of {args.file} is an answered, scored request with its "
            "prompt: set audit_content: true for the tenants to sample (docs/router-evaluation.md)",
            file=sys.stderr,
        )
        return 1
    text = b"".join(orjson.dumps(outcome_line(e, args.stratum)) + b"\n" for e in picked)
    if args.out == "-":
        sys.stdout.buffer.write(text)
        sys.stdout.flush()
    else:
        Path(args.out).write_bytes(text)
    spread = [0] * BINS
    for entry in picked:
        spread[score_bin(entry)] += 1
    print(
        f"picked {len(picked)} of {tally.eligible} answered requests with a prompt ({tally.repeats} repeated prompts "
        f"dropped, {tally.read - tally.eligible - tally.repeats} entries without content, score or success skipped); "
        f"per score tenth: {' '.join(map(str, spread))}. Grade both models' answers, add weak_score and "
        "strong_score, then: gateway router train --outcomes FILE",
        file=sys.stderr,
    )
    if entries.bad:
        print(f"warning: {entries.bad} line(s) of {args.file} are not audit entries and were skipped", file=sys.stderr)
    return 0


def _check(args: argparse.Namespace) -> int:
    from gateway.policyfiles.cases import run_cases

    policy = load(args.directory)
    if policy is None:
        return 1
    for warning in policy.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    failures = run_cases(policy, args.directory / "cases")
    for failure in failures:
        print(failure, file=sys.stderr)
    if failures:
        return 1
    print(
        f"ok: {args.directory} revision {policy.revision}: {len(policy.models)} models, {len(policy.deployments)} "
        f"deployments, {len(policy.tenants)} tenants, {len(policy.routes)} routes"
    )
    return 0


def _explain(args: argparse.Namespace) -> int:
    from gateway.errors import GatewayError
    from gateway.policy.decide import decide, refusal
    from gateway.policyfiles.loader import PolicyError, load_policy_dir
    from gateway.routing.normalize import normalize

    try:
        policy = load_policy_dir(args.policies, os.environ)
        if args.tenant not in policy.tenants:
            print(f"unknown tenant {args.tenant!r}; known: {', '.join(policy.tenants)}", file=sys.stderr)
            return 2
        headers = {"x-gateway-data-class": args.data_class} if args.data_class else {}
        request = normalize("chat", args.request.read_bytes(), headers, aliases=policy.aliases)
        decision = decide(policy, args.tenant, request, policy.classifier)
    except PolicyError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return 1
    except (OSError, GatewayError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    error = refusal(decision)
    out = {"decision": decision.to_json(), "error": error.body()["error"] if error else None}
    sys.stdout.write(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0 if error is None else 3


def _hash(args: argparse.Namespace) -> int:
    key = args.key
    if key is None:
        key = sys.stdin.readline().strip() if not sys.stdin.isatty() else getpass.getpass("API key: ")
    if not key:
        print("error: empty key", file=sys.stderr)
        return 2
    print(hash_key(key))
    return 0
