"""Read a policy directory into a :class:`PolicySet`, or report every problem at once.

Problems name the file, the line, the path inside the file and what is wrong, e.g.
``policies/tenants.yaml:12: tenants.acme.deny_origins[0]: 'UK' is not an ISO 3166 country code (did you mean 'GB'?)``.
Schema errors do not hide reference errors: the entries that validate are cross-checked in the same run.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gateway.classify.learned import Calibration, LearnedClassifier, RouterModel
from gateway.classify.loader import load_default_classifier, load_router_model, parse_router_model
from gateway.policy.aliases import Aliases
from gateway.policy.detect import Detection
from gateway.policy.detect_custom import compile_custom
from gateway.policy.guards_schema import StateSpec
from gateway.policy.hints import did_you_mean
from gateway.policy.policy_set import Deployment, PolicySet
from gateway.policy.schema import DataClassSpec, Limits, PolicyFile, Price, RouteSpec
from gateway.policy.validate import cross_check
from gateway.policyfiles.field_names import fields_at
from gateway.policyfiles.yaml_lines import LineMap, dotted, load_with_lines
from gateway.upstream.providers.network import tls_problem

SECTIONS = ("models", "deployments", "tenants", "data_classes", "routes", "aliases", "detectors")
SINGLETONS = ("limits", "state", "admin")  # sections that are one object, written in at most one file
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
DEFAULT_DATA_CLASSES = {"public": DataClassSpec(description="implicit: no data_classes defined")}
ROUTER_ARTIFACT = "router.json.gz"  # a policy directory's own learned router, beside its YAML files


class PolicyError(Exception):
    """The policy directory is invalid; ``problems`` lists every one found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def policy_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


@dataclass(frozen=True)
class _Parsed:
    """One file: what validated (all of it, or the entries that did), where each path is written, and
    the (section, id) entries that did not validate (reference checks must not blame their absence)."""

    path: Path
    policy: PolicyFile | None
    lines: LineMap
    broken: frozenset[tuple[str, str]] = frozenset()


def load_policy_dir(directory: Path | str, env: Mapping[str, str]) -> PolicySet:
    directory = Path(directory)
    if not directory.is_dir():
        raise PolicyError([f"{directory}: not a directory"])
    files = policy_files(directory)
    if not files:
        raise PolicyError([f"{directory}: no *.yaml policy files"])
    problems: list[str] = []
    contents = _read_all(files, problems)  # read once: the revision is the hash of exactly what was parsed
    parsed = [_parse_file(path, data, env, problems) for path, data in contents.items()]
    merged, defined_in = _merge(parsed, problems)
    lines = {p.path: p.lines for p in parsed}
    if all(p.policy is not None for p in parsed):  # references into an unreadable file cannot be judged
        broken = frozenset().union(*(p.broken for p in parsed))
        problems.extend(
            located(defined_in[section, key], lines[defined_in[section, key]], message)
            for section, key, message in cross_check(merged)
            if not _follows_from(message, broken)
        )
    for dep_id, spec in merged.deployments.items():
        if spec.tls is not None and (problem := tls_problem(spec.tls)) is not None:
            path = defined_in["deployments", dep_id]
            problems.append(located(path, lines[path], f"deployments.{dep_id}.tls: {problem}"))
    router, artifact = _read_router(directory, problems)
    if problems:
        raise PolicyError(problems)
    if artifact is not None:
        contents = {**contents, directory / ROUTER_ARTIFACT: artifact}
    return _compile(merged, directory, _revision(contents), env, router)


def _read_router(directory: Path, problems: list[str]) -> tuple[RouterModel | None, bytes | None]:
    """The directory's own router artifact (``gateway router train --outcomes ... --out DIR/router.json.gz``),
    and its bytes for the revision; (None, None) when there is none and the packaged router scores."""
    path = directory / ROUTER_ARTIFACT
    if not path.is_file():
        return None, None
    try:
        raw = path.read_bytes()
        model = parse_router_model(raw)
    except (OSError, EOFError, ValueError, KeyError, TypeError, AttributeError) as exc:
        problems.append(f"{path}: not a router artifact (write one with gateway router train --out): {exc!r}")
        return None, None
    return model, raw


def located(path: Path, lines: LineMap, message: str) -> str:
    """``file:line: path.in.file: message`` (``file: ...`` when the line is not known)."""
    where = lines.line_of(message.partition(": ")[0])
    return f"{path}:{where}: {message}" if where else f"{path}: {message}"


def _follows_from(message: str, broken: frozenset[tuple[str, str]]) -> bool:
    """Whether a reference problem only repeats that an entry reported invalid was left out."""
    if any(section in ("models", "deployments") for section, _ in broken) and "has a deployment" in message:
        return True
    return "unknown " in message and any(f"{key!r}" in message for _, key in broken)


def _read_all(files: list[Path], problems: list[str]) -> dict[Path, bytes]:
    contents = {}
    for path in files:
        try:
            contents[path] = path.read_bytes()
        except OSError as exc:
            problems.append(f"{path}: cannot read: {exc}")
    return contents


def _parse_file(path: Path, data: bytes, env: Mapping[str, str], problems: list[str]) -> _Parsed:
    try:
        raw, lines = load_with_lines(data.decode("utf-8"))
    except yaml.MarkedYAMLError as exc:
        line = f":{exc.problem_mark.line + 1}" if exc.problem_mark else ""
        problems.append(f"{path}{line}: cannot read YAML: {exc.problem or exc}")
        return _Parsed(path, None, LineMap())
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        problems.append(f"{path}: cannot read YAML: {exc}")
        return _Parsed(path, None, LineMap())
    problems.extend(f"{path}:{line}: {key}: written twice in this file (YAML keeps only the last)"
                    for key, line in lines.duplicates)  # fmt: skip
    if raw is None:
        return _Parsed(path, PolicyFile(), lines)
    if not isinstance(raw, dict):
        problems.append(f"{path}: the top level must be a mapping of sections ({', '.join(SECTIONS + SINGLETONS)})")
        return _Parsed(path, None, lines)
    raw = _substitute(raw, env, (path, lines), (), problems)
    try:
        return _Parsed(path, PolicyFile.model_validate(raw), lines)
    except ValidationError as exc:
        problems.extend(located(path, lines, f"{dotted(err['loc'])}: {_msg(err)}") for err in exc.errors())
        policy, broken = _salvage(raw)
        return _Parsed(path, policy, lines, broken)


def _salvage(raw: dict[str, Any]) -> tuple[PolicyFile, frozenset[tuple[str, str]]]:
    """The entries of a file that validate one by one, so the reference checks still run on them."""
    kept: dict[str, Any] = {}
    broken: set[tuple[str, str]] = set()
    for section in SECTIONS:
        entries = raw.get(section)
        if not isinstance(entries, dict):
            continue
        kept[section] = {}
        for key, value in entries.items():
            if _valid({section: {key: value}}):
                kept[section][key] = value
            else:
                broken.add((section, str(key)))
    kept.update({name: raw[name] for name in SINGLETONS if name in raw and _valid({name: raw[name]})})
    return PolicyFile.model_validate(kept), frozenset(broken)


def _valid(raw: dict[str, Any]) -> bool:
    try:
        PolicyFile.model_validate(raw)
    except ValidationError:
        return False
    return True


def _substitute(
    value: Any, env: Mapping[str, str], where: tuple[Path, LineMap], loc: tuple[Any, ...], problems: list[str]
) -> Any:
    """Replace ``${NAME}`` and ``${NAME:-default}`` in every string value."""
    if isinstance(value, dict):
        return {k: _substitute(v, env, where, (*loc, k), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, env, where, (*loc, i), problems) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env and env[name] != "":
            return env[name]
        if default is not None:
            return default
        problems.append(located(*where, f"{dotted(loc)}: environment variable {name} is not set"))
        return ""

    return _ENV_REF.sub(replace, value)


def _msg(err: Mapping[str, Any]) -> str:
    if err["type"] == "extra_forbidden":
        *parent, name = err["loc"]
        known = fields_at(parent)
        hint = did_you_mean(str(name), known) or (f" (allowed here: {', '.join(known)})" if known else "")
        return f"unknown field {str(name)!r}{hint}"
    message = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if err["type"] not in ("value_error", "missing") and "input" in err:
        message += f" (got {err['input']!r})"
    return message


def _merge(files: list[_Parsed], problems: list[str]) -> tuple[PolicyFile, dict[tuple[str, str], Path]]:
    sections: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    origin: dict[tuple[str, str], Path] = {}
    singletons: dict[str, Any] = {}
    lines = {f.path: f.lines for f in files}
    for parsed in files:
        path, policy_file = parsed.path, parsed.policy
        if policy_file is None:
            continue
        for name in SECTIONS:
            for key, spec in getattr(policy_file, name).items():
                if (name, key) in origin:
                    first = origin[name, key]
                    at = lines[first].line_of(f"{name}.{key}")
                    problems.append(located(path, parsed.lines, f"{name}.{key}: already defined in {first}:{at}"))
                    continue
                origin[name, key] = path
                sections[name][key] = spec
        for name in SINGLETONS:
            value = getattr(policy_file, name)
            if value is None:
                continue
            if name in singletons:
                problems.append(located(path, parsed.lines, f"{name}: already defined in {origin['', name]}"))
                continue
            singletons[name], origin["", name] = value, path
    return PolicyFile(**sections, **singletons), origin


def _revision(contents: Mapping[Path, bytes]) -> str:
    digest = hashlib.sha256()
    for path, data in contents.items():
        digest.update(path.name.encode())
        digest.update(data)
    return digest.hexdigest()[:12]


def _compile(
    merged: PolicyFile, directory: Path, revision: str, env: Mapping[str, str], router: RouterModel | None = None
) -> PolicySet:
    warnings: list[str] = []
    deployments = {}
    for dep_id, spec in merged.deployments.items():
        model = merged.models[spec.model]
        price = spec.price or model.price or _bundled(spec.provider, spec.upstream_model or spec.model)
        if price is None:
            warnings.append(f"deployments.{dep_id}: no price in the policy or litellm's price map; counted as free")
            price = Price(input=0.0, output=0.0)
        unavailable = None
        if spec.api_key_env and not env.get(spec.api_key_env):
            unavailable = f"credentials missing: environment variable {spec.api_key_env} is not set"
            warnings.append(f"deployments.{dep_id}: {unavailable}")
        if spec.tls is not None and not spec.tls.verify:
            warnings.append(f"deployments.{dep_id}.tls.verify is false: its certificate is not checked")
        deadline = (merged.limits or Limits()).request_deadline_seconds
        if "timeout_seconds" in spec.model_fields_set and spec.timeout_seconds >= deadline:  # written, not default
            warnings.append(
                f"deployments.{dep_id}.timeout_seconds: {spec.timeout_seconds:g} is not below "
                f"limits.request_deadline_seconds ({deadline:g}); when {dep_id} hangs and has fallbacks, it is given "
                "up after three quarters of the deadline (at most 30 s kept back) so that they still get a try"
            )
        deployments[dep_id] = Deployment(dep_id, spec, spec.model, model, price, unavailable)
    by_model: dict[str, list[str]] = {}
    for dep in deployments.values():
        by_model.setdefault(dep.model_id, []).append(dep.id)
    data_classes = dict(merged.data_classes) or DEFAULT_DATA_CLASSES
    rank = {name: index for index, name in enumerate(data_classes)}
    detection = Detection.of(
        {name: compile_custom(pattern) for name, pattern in merged.detectors.items()},
        {name: spec.detect for name, spec in data_classes.items()},
        rank,
    )
    calibration = (router or load_router_model()).calibration
    return PolicySet(
        revision=revision,
        source=str(directory),
        models=dict(merged.models),
        deployments=deployments,
        deployments_by_model={m: tuple(ids) for m, ids in by_model.items()},
        tenants=dict(merged.tenants),
        tenant_by_key_hash={k.sha256: t for t, spec in merged.tenants.items() for k in spec.keys},
        data_classes=data_classes,
        data_class_rank=rank,
        routes={route_id: _resolve_shares(route, calibration) for route_id, route in merged.routes.items()},
        classifier=load_default_classifier() if router is None else LearnedClassifier(router),
        baseline_prices={
            name: price
            for name, route in merged.routes.items()
            if route.baseline_model and (price := merged.models[route.baseline_model].price) is not None
        },
        aliases=Aliases.of(merged.aliases, [*merged.routes, *merged.models]),
        limits=merged.limits or Limits(),
        state=merged.state or StateSpec(),
        key_limits={k.sha256: k.limits for t in merged.tenants.values() for k in t.keys if k.limits is not None},
        admin_key_hashes=frozenset(k.sha256 for k in merged.admin.keys) if merged.admin else frozenset(),
        metrics_key_hashes=frozenset(k.sha256 for k in merged.admin.metrics_keys) if merged.admin else frozenset(),
        warnings=tuple(warnings),
        detection=detection,
    )


def _resolve_shares(route: RouteSpec, calibration: Calibration) -> RouteSpec:
    """Turn ``strong_share`` / ``standard_share`` into score thresholds from the calibration curve of the
    router that scores."""
    given = route.thresholds
    if not given.by_share or given.strong_share is None:
        return route
    complex_ = calibration.threshold_for_share(given.strong_share)
    standard = min(given.standard, complex_)
    if given.standard_share is not None:
        standard = calibration.threshold_for_share(given.strong_share + given.standard_share)
    thresholds = given.model_copy(update={"complex": complex_, "standard": standard})
    return route.model_copy(update={"thresholds": thresholds})


def _bundled(provider: str, model: str) -> Price | None:
    from gateway.upstream.providers.litellm_prices import bundled_price  # reads a large file once

    found = bundled_price(provider, model)
    return None if found is None else Price(input=found[0], output=found[1])
