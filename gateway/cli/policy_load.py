"""Loading a policy directory for the policy commands: the set, or every problem printed and None."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.policy.policy_set import PolicySet

POLICIES_DEFAULT = "./policies, else the example policies shipped in the package"
BAD_INPUT = 2  # a directory that does not load, a revision git does not know: nothing was proved


def load(directory: Path, consequence: str = "") -> PolicySet | None:
    """The policy set, or None after printing every problem on stderr, then ``N problem(s) in DIR`` and
    ``consequence`` (what the command could not do)."""
    from gateway.policyfiles.loader import PolicyError, load_policy_dir

    try:
        return load_policy_dir(directory, os.environ)
    except PolicyError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) in {directory}{consequence}", file=sys.stderr)
        return None
