"""``gateway policy test`` (run the example cases, JUnit XML for CI) and ``gateway policy schema``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.cli.policy_load import POLICIES_DEFAULT, load

if TYPE_CHECKING:
    from gateway.policyfiles.cases import CaseOutcome


def add_policy_tools(policy: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    test = policy.add_parser("test", help="run the policy's example cases (DIR/cases/*.yaml), calling nothing")
    test.add_argument("directory", type=Path, nargs="?", default=None, help=f"(default: {POLICIES_DEFAULT})")
    test.add_argument("--junit", type=Path, default=None, metavar="FILE", help="also write JUnit XML for CI")
    test.set_defaults(run=_test)
    schema = policy.add_parser("schema", help="print the JSON Schema of the policy files (or of the case files)")
    schema.add_argument("--out", type=Path, default=None, metavar="FILE", help="write it to FILE instead")
    schema.add_argument("--cases", action="store_true", help="the case files' schema (DIR/cases/*.yaml)")
    schema.set_defaults(run=_schema)


def _test(args: argparse.Namespace) -> int:
    from gateway.policyfiles.cases import CASES_DIR, run_case_files

    policy = load(args.directory, ": no case was run")
    if policy is None:
        return 1
    outcomes = run_case_files(policy, args.directory / CASES_DIR)
    failed = [o for o in outcomes if o.problems]
    for outcome in failed:
        print(f"FAIL {outcome.where}: {outcome.name}", file=sys.stderr)
        for line in [*(f"- {p}" for p in outcome.problems), *outcome.reasons]:
            print(f"    {line}", file=sys.stderr)
    if args.junit is not None and not _write_junit(args, outcomes):
        return 2
    if not outcomes:
        print(f"no cases in {args.directory / CASES_DIR}/*.yaml: nothing tested", file=sys.stderr)
        return 1
    files = len({o.file for o in outcomes})
    summary = (
        f"{len(outcomes) - len(failed)} passed, {len(failed)} failed ({files} case file(s), revision {policy.revision})"
    )
    print(f"{'FAILED' if failed else 'ok'}: {args.directory}: {summary}")
    return 1 if failed else 0


def _write_junit(args: argparse.Namespace, outcomes: list[CaseOutcome]) -> bool:
    from gateway.policyfiles.junit import junit_xml

    try:
        args.junit.write_text(junit_xml(outcomes, f"policy test {args.directory}"), encoding="utf-8")
    except OSError as exc:
        print(f"error: cannot write {args.junit}: {exc}", file=sys.stderr)
        return False
    return True


def _schema(args: argparse.Namespace) -> int:
    from gateway.policyfiles.json_schema import render

    text = render("cases.schema.json" if args.cases else "policy.schema.json")
    if args.out is None:
        sys.stdout.write(text)
        return 0
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    except OSError as exc:
        print(f"error: cannot write {args.out}: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}")
    return 0
