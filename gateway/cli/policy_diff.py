"""``gateway policy diff OLD NEW`` (or ``--git REV1 REV2``): what would route differently, and for whom."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO
from pathlib import Path
from typing import Any

import orjson

from gateway.cli.policy_load import BAD_INPUT, load
from gateway.policy.policy_set import PolicySet
from gateway.policy.proof_diff import CellChange, diff_cells
from gateway.policy.verify import prove
from gateway.policyfiles.replay import Replay, replay_audit, replay_cases

TEXT_CELLS = 200  # changed plain-chat cells printed in text (--json has them all)


class GitError(Exception):
    pass


def run_diff(args: argparse.Namespace) -> int:
    if (args.git is None) == (args.old is None or args.new is None) or (args.git and args.old):
        print("error: give OLD_DIR NEW_DIR, or --git REV1 REV2 (with --path)", file=sys.stderr)
        return BAD_INPUT
    if args.replay is not None and not args.replay.is_file():
        print(f"error: --replay {args.replay}: no such file", file=sys.stderr)
        return BAD_INPUT
    try:
        with _directories(args) as (old_dir, new_dir):
            return _compare(args, old_dir, new_dir)
    except GitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return BAD_INPUT


@contextmanager
def _directories(args: argparse.Namespace) -> Iterator[tuple[Path, Path]]:
    if args.git is None:
        yield args.old, args.new
        return
    with tempfile.TemporaryDirectory(prefix="gateway-diff-") as tmp:
        dirs = [git_checkout(args.repo, rev, args.path, Path(tmp) / str(i)) for i, rev in enumerate(args.git)]
        yield dirs[0], dirs[1]


def git_checkout(repo: Path, rev: str, path: str, into: Path) -> Path:
    """``path`` as of ``rev`` (git archive), extracted under ``into``; the policy directory inside it."""
    try:
        result = subprocess.run(
            ["git", "-C", str(repo), "archive", "--format=tar", rev, "--", path],
            capture_output=True, check=False, timeout=60,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GitError(f"cannot run git: {exc}") from exc
    if result.returncode != 0:
        raise GitError(f"git archive {rev} -- {path}: {result.stderr.decode(errors='replace').strip()}")
    into.mkdir(parents=True)
    with tarfile.open(fileobj=BytesIO(result.stdout)) as archive:
        archive.extractall(into, filter="data")
    return into / path


def _compare(args: argparse.Namespace, old_dir: Path, new_dir: Path) -> int:
    old, new = load(old_dir, ": nothing compared"), load(new_dir, ": nothing compared")
    if old is None or new is None:
        return BAD_INPUT
    changes = diff_cells(prove(old).cells, prove(new).cells)
    cases = replay_cases(old, new, [old_dir, new_dir])
    audit = _audit(old, new, args.replay)
    if args.json:
        out = _json(old, new, changes, cases, audit)
        sys.stdout.write(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(_text(old, new, changes, cases, audit))
    changed = bool(changes or cases.changed or (audit and audit.changed))
    return 1 if changed and args.fail_on_change else 0


def _audit(old: PolicySet, new: PolicySet, path: Path | None) -> Replay | None:
    if path is None:
        return None
    with path.open("rb") as lines:
        return replay_audit(old, new, lines)


def _json(
    old: PolicySet, new: PolicySet, changes: list[CellChange], cases: Replay, audit: Replay | None
) -> dict[str, Any]:
    return {
        "old_revision": old.revision,
        "new_revision": new.revision,
        "changed_cells": [c.to_json() for c in changes],
        "cases": cases.to_json(),
        "audit": audit.to_json() if audit else None,
    }


def _text(old: PolicySet, new: PolicySet, changes: list[CellChange], cases: Replay, audit: Replay | None) -> str:
    lines = [f"policy diff: revision {old.revision} -> {new.revision}"]
    if not changes:
        lines.append("reachable sets and first choices: no change for any tenant")
    by_tenant: dict[str, list[CellChange]] = {}
    for change in changes:
        by_tenant.setdefault(change.tenant, []).append(change)
    shown = 0
    for tenant, mine in by_tenant.items():
        if tenant not in old.tenants or tenant not in new.tenants:
            lines.append(f"tenant {tenant}: {'added' if tenant in new.tenants else 'removed'} ({len(mine)} cells)")
            continue
        plain = [c for c in mine if c.plain]
        lines.append(f"tenant {tenant}: {len(mine)} cell(s) change ({len(plain)} plain chat, the rest with needs)")
        for change in plain[: max(TEXT_CELLS - shown, 0)]:
            lines.append("  " + change.describe())
        shown += len(plain)
    if shown > TEXT_CELLS:
        lines.append(f"  ... {shown - TEXT_CELLS} more plain cells; --json lists every cell")
    lines.extend(_replay_text("case files", cases))
    if audit is not None:
        lines.extend(_replay_text("audit trail", audit))
    return "\n".join(lines)


def _replay_text(what: str, replay: Replay) -> list[str]:
    skipped = f", {replay.skipped} skipped" if replay.skipped else ""
    lines = [f"{what}: {replay.changed} of {replay.replayed} decisions change{skipped}"]
    lines.extend(f"  {count:6d}  {transition}" for transition, count in replay.transitions.most_common(20))
    lines.extend(f"  e.g. {example}" for example in replay.examples[:5])
    return lines
