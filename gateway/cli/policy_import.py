"""``gateway policy import-litellm CONFIG OUT_DIR``: a LiteLLM proxy config -> a policy directory.

The conversion is pure (``gateway/policyfiles/litellm_*.py``); this module reads the config and the catalog,
writes every file or none, and prints the summary: models imported, known from the catalog, left to fill.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.cli.policy_load import BAD_INPUT

if TYPE_CHECKING:
    from gateway.policy.schema import ModelSpec
    from gateway.policyfiles.litellm_import import Imported
    from gateway.policyfiles.litellm_names import CatalogIndex


def add_import_command(policy: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = policy.add_parser(
        "import-litellm", help="turn a LiteLLM proxy config (model_list) into a policy directory"
    )
    command.add_argument("config", type=Path, help="the LiteLLM proxy config.yaml")
    command.add_argument("out_dir", type=Path, help="where to write the policy files (new or empty)")
    command.add_argument("--force", action="store_true", help="write into OUT_DIR even when it is not empty")
    command.add_argument(
        "--catalog", type=Path, default=None, metavar="DIR",
        help="policy directory whose models.yaml gives known models' provenance (default: the shipped catalog)",
    )  # fmt: skip
    command.add_argument(
        "--jurisdiction", action="append", default=[], metavar="KEY=CC",
        help="country for deployments whose jurisdiction is not certain: KEY is a LiteLLM provider prefix "
        "(azure, bedrock, ...) or self-hosted; repeatable",
    )  # fmt: skip
    command.add_argument(
        "--replace-literal-keys", action="store_true",
        help="instead of refusing a literal api_key, drop it and read the key from a new environment variable",
    )  # fmt: skip
    command.set_defaults(run=_import)


def _import(args: argparse.Namespace) -> int:
    from gateway.policyfiles.litellm_config import ConfigProblems
    from gateway.policyfiles.litellm_import import convert
    from gateway.policyfiles.litellm_render import render

    problems: list[str] = []
    jurisdictions = _jurisdictions(args.jurisdiction, problems)
    raw = _read_config(args.config, problems)
    target = _target_problem(args.out_dir, args.force)
    if target:
        problems.append(target)
    catalog = _catalog(args.catalog, problems)
    if problems or catalog is None:
        return _refuse(problems)
    try:
        from gateway.policyfiles.litellm_config import read_config

        imported = convert(read_config(raw, args.replace_literal_keys), *catalog, jurisdictions)
    except ConfigProblems as exc:
        return _refuse([f"{args.config}: {p}" for p in exc.problems])
    files = render(imported)
    try:
        _write(args.out_dir, files)
    except OSError as exc:
        return _refuse([f"cannot write {args.out_dir}: {exc}"])
    _summary(imported, args, set(files))
    return 0


def _refuse(problems: list[str]) -> int:
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    print("nothing written", file=sys.stderr)
    return BAD_INPUT


def _jurisdictions(given: list[str], problems: list[str]) -> dict[str, str]:
    from gateway.policy.countries import ISO_3166_ALPHA2, country_hint

    found = {}
    for item in given:
        key, equals, country = item.partition("=")
        if not equals or not key or country not in ISO_3166_ALPHA2:
            hint = country_hint(country) if equals else ""
            problems.append(f"--jurisdiction {item!r}: write KEY=CC with an ISO 3166 country code{hint}")
            continue
        found[key] = country
    return found


def _read_config(path: Path, problems: list[str]) -> object:
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"cannot read {path}: {exc}")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problems.append(f"{path}{line}: not YAML: {getattr(exc, 'problem', None) or exc}")
    return None


def _target_problem(out_dir: Path, force: bool) -> str | None:
    if out_dir.exists() and not out_dir.is_dir():
        return f"{out_dir} exists and is not a directory"
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        return f"{out_dir} is not empty: choose a new directory, or pass --force to write into it"
    return None


def _catalog(directory: Path | None, problems: list[str]) -> tuple[dict[str, ModelSpec], CatalogIndex] | None:
    from gateway.policyfiles.litellm_names import CatalogIndex
    from gateway.policyfiles.loader import PolicyError, load_policy_dir
    from gateway.settings import EXAMPLE_POLICIES

    try:
        policy = load_policy_dir(directory or EXAMPLE_POLICIES, os.environ)
    except PolicyError as exc:
        problems.extend(f"--catalog: {p}" for p in exc.problems)
        return None
    upstream = {d.spec.upstream_model: d.model_id for d in policy.deployments.values() if d.spec.upstream_model}
    return dict(policy.models), CatalogIndex.of(policy.models, upstream)


def _write(out_dir: Path, files: dict[str, str]) -> None:
    """Every file or none: written to a directory beside OUT_DIR, then moved into place."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        for name, text in files.items():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            (staging / name).write_text(text, encoding="utf-8")
        if not out_dir.exists() or not any(out_dir.iterdir()):
            if out_dir.exists():
                out_dir.rmdir()
            staging.rename(out_dir)
            return
        for name in files:  # --force: replace the importer's files, leave the others
            (out_dir / name).parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / name, out_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _summary(imported: Imported, args: argparse.Namespace, written: set[str]) -> None:
    models = imported.models.entries
    unknown = [m for m in models if m not in imported.known]
    print(
        f"{len(models)} models imported, {len(imported.known)} known from the catalog, {len(unknown)} need "
        f"provenance{': ' + ', '.join(unknown) if unknown else ''}"
    )
    print(
        f"{len(imported.deployments.entries)} deployments, {len(imported.routes.entries)} routes, "
        f"{len(imported.cases)} client model names; written to {args.out_dir}"
    )
    if imported.unfilled:
        print(f"fill in (FILL-ME), then `gateway policy check {args.out_dir}`:")
        print("\n".join(f"  {line}" for line in imported.unfilled))
    if imported.env:
        print("environment variables the set reads:")
        print("\n".join(f"  {line}" for line in imported.env))
    others = sorted(p.name for p in args.out_dir.glob("*.y*ml") if p.name not in written)
    if others:
        print(f"note: {args.out_dir} also holds {', '.join(others)}: the policy set includes them", file=sys.stderr)
    for note in imported.notes:
        print(f"note: {note}", file=sys.stderr)
