"""``gateway policy verify`` (the compliance proof) and ``gateway policy diff`` (what a change would reroute)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

from gateway.cli.policy_load import BAD_INPUT, load


def add_proof_commands(policy: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    verify = policy.add_parser(
        "verify", help="prove each tenant's guarantees over every deployment it could ever reach (exit 1 if broken)"
    )
    verify.add_argument("directory", type=Path, help="policy directory")
    verify.add_argument("--json", action="store_true", help="the whole proof as JSON on stdout")
    verify.set_defaults(run=_verify)
    diff = policy.add_parser("diff", help="what would route differently between two policy sets")
    diff.add_argument("old", type=Path, nargs="?", help="the policy directory before (not with --git)")
    diff.add_argument("new", type=Path, nargs="?", help="the policy directory after (not with --git)")
    diff.add_argument("--git", nargs=2, metavar=("REV1", "REV2"), help="compare two git revisions instead")
    diff.add_argument("--path", default="policies", help="the policy directory inside the repository (with --git)")
    diff.add_argument("--repo", type=Path, default=Path("."), help="the git repository (with --git; default .)")
    diff.add_argument("--replay", type=Path, metavar="AUDIT.jsonl", help="replay recorded decisions of an audit trail")
    diff.add_argument("--json", action="store_true", help="the diff as JSON on stdout")
    diff.add_argument("--fail-on-change", action="store_true", help="exit 1 when anything would route differently")
    diff.set_defaults(run=_diff)


def _verify(args: argparse.Namespace) -> int:
    from gateway.policy.proof_report import render, to_json
    from gateway.policy.verify import prove

    policy = load(args.directory, ": nothing verified")
    if policy is None:
        return BAD_INPUT
    proof = prove(policy)
    if args.json:
        sys.stdout.write(orjson.dumps(to_json(proof), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(render(proof))
    return 0 if proof.ok else 1


def _diff(args: argparse.Namespace) -> int:
    from gateway.cli.policy_diff import run_diff

    result: int = run_diff(args)
    return result
