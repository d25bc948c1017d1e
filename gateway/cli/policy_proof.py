"""``gateway policy verify`` (the compliance proof) and ``gateway policy diff`` (what a change would reroute)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import orjson

from gateway.policy.policy_set import PolicySet

BAD_INPUT = 2  # a directory that does not load, a revision git does not know: nothing was proved


def add_proof_commands(policy: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    verify = policy.add_parser(
        "verify", help="prove each tenant's guarantees over every deployment it could ever reach (exit 1 if broken)"
    )
    verify.add_argument("directory", type=Path, help="policy directory")
    verify.add_argument("--json", action="store_true", help="the whole proof as JSON on stdout")
    verify.set_defaults(run=_verify)


def load(directory: Path) -> PolicySet | None:
    """The policy set, or None after printing every problem on stderr."""
    from gateway.policyfiles.loader import PolicyError, load_policy_dir

    try:
        return load_policy_dir(directory, os.environ)
    except PolicyError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) in {directory}: nothing verified", file=sys.stderr)
        return None


def _verify(args: argparse.Namespace) -> int:
    from gateway.policy.proof_report import render, to_json
    from gateway.policy.verify import prove

    policy = load(args.directory)
    if policy is None:
        return BAD_INPUT
    proof = prove(policy)
    if args.json:
        sys.stdout.write(orjson.dumps(to_json(proof), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(render(proof))
    return 0 if proof.ok else 1
