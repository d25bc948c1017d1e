"""Read a policy directory into a :class:`PolicySet`, or report every problem at once.

Problems name the file, the path inside it and what is wrong, e.g.
``policies/tenants.yaml: tenants.acme.deny_origins[0]: 'CNN' is not an ISO 3166 country code``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gateway.policy.aliases import Aliases
from gateway.policy.guards_schema import StateSpec
from gateway.policy.policy_set import Deployment, PolicySet
from gateway.policy.schema import DataClassSpec, Limits, PolicyFile, Price, RouteSpec
from gateway.policy.validate import cross_check
from gateway.upstream.providers.network import tls_problem

SECTIONS = ("models", "deployments", "tenants", "data_classes", "routes", "aliases")
SINGLETONS = ("limits", "state", "admin")  # sections that are one object, written in at most one file
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
DEFAULT_DATA_CLASSES = {"public": DataClassSpec(description="implicit: no data_classes defined")}


class PolicyError(Exception):
    """The policy directory is invalid; ``problems`` lists every one found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def policy_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def load_policy_dir(directory: Path | str, env: Mapping[str, str]) -> PolicySet:
    directory = Path(directory)
    if not directory.is_dir():
        raise PolicyError([f"{directory}: not a directory"])
    files = policy_files(directory)
    if not files:
        raise PolicyError([f"{directory}: no *.yaml policy files"])
    problems: list[str] = []
    contents = _read_all(files, problems)  # read once: the revision is the hash of exactly what was parsed
    parsed = [(path, _parse_file(path, text, env, problems)) for path, text in contents.items()]
    merged, defined_in = _merge([(p, f) for p, f in parsed if f is not None], problems)
    if problems:
        raise PolicyError(problems)
    problems.extend(f"{defined_in[section, key]}: {message}" for section, key, message in cross_check(merged))
    for dep_id, spec in merged.deployments.items():
        if spec.tls is not None and (problem := tls_problem(spec.tls)) is not None:
            problems.append(f"{defined_in['deployments', dep_id]}: deployments.{dep_id}.tls: {problem}")
    if problems:
        raise PolicyError(problems)
    return _compile(merged, directory, _revision(contents), env)


def _read_all(files: list[Path], problems: list[str]) -> dict[Path, bytes]:
    contents = {}
    for path in files:
        try:
            contents[path] = path.read_bytes()
        except OSError as exc:
            problems.append(f"{path}: cannot read: {exc}")
    return contents


def _parse_file(path: Path, data: bytes, env: Mapping[str, str], problems: list[str]) -> PolicyFile | None:
    try:
        raw = yaml.safe_load(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        problems.append(f"{path}: cannot read YAML: {exc}")
        return None
    if raw is None:
        return PolicyFile()
    if not isinstance(raw, dict):
        problems.append(f"{path}: the top level must be a mapping of sections ({', '.join(SECTIONS + SINGLETONS)})")
        return None
    raw = _substitute(raw, env, path, (), problems)
    try:
        return PolicyFile.model_validate(raw)
    except ValidationError as exc:
        problems.extend(f"{path}: {_loc(err['loc'])}: {_msg(err)}" for err in exc.errors())
        return None


def _substitute(value: Any, env: Mapping[str, str], path: Path, loc: tuple[Any, ...], problems: list[str]) -> Any:
    """Replace ``${NAME}`` and ``${NAME:-default}`` in every string value."""
    if isinstance(value, dict):
        return {k: _substitute(v, env, path, (*loc, k), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, env, path, (*loc, i), problems) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env and env[name] != "":
            return env[name]
        if default is not None:
            return default
        problems.append(f"{path}: {_loc(loc)}: environment variable {name} is not set")
        return ""

    return _ENV_REF.sub(replace, value)


def _loc(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _msg(err: Mapping[str, Any]) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown field (check the spelling)"
    message = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if err["type"] not in ("value_error", "missing") and "input" in err:
        message += f" (got {err['input']!r})"
    return message


def _merge(files: list[tuple[Path, PolicyFile]], problems: list[str]) -> tuple[PolicyFile, dict[tuple[str, str], Path]]:
    sections: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    origin: dict[tuple[str, str], Path] = {}
    singletons: dict[str, Any] = {}
    for path, policy_file in files:
        for name in SECTIONS:
            for key, spec in getattr(policy_file, name).items():
                if (name, key) in origin:
                    problems.append(f"{path}: {name}.{key}: already defined in {origin[name, key]}")
                    continue
                origin[name, key] = path
                sections[name][key] = spec
        for name in SINGLETONS:
            value = getattr(policy_file, name)
            if value is None:
                continue
            if name in singletons:
                problems.append(f"{path}: {name}: already defined in {origin['', name]}")
                continue
            singletons[name], origin["", name] = value, path
    return PolicyFile(**sections, **singletons), origin


def _revision(contents: Mapping[Path, bytes]) -> str:
    digest = hashlib.sha256()
    for path, data in contents.items():
        digest.update(path.name.encode())
        digest.update(data)
    return digest.hexdigest()[:12]


def _compile(merged: PolicyFile, directory: Path, revision: str, env: Mapping[str, str]) -> PolicySet:
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
    return PolicySet(
        revision=revision,
        source=str(directory),
        models=dict(merged.models),
        deployments=deployments,
        deployments_by_model={m: tuple(ids) for m, ids in by_model.items()},
        tenants=dict(merged.tenants),
        tenant_by_key_hash={k.sha256: t for t, spec in merged.tenants.items() for k in spec.keys},
        data_classes=data_classes,
        data_class_rank={name: rank for rank, name in enumerate(data_classes)},
        routes={route_id: _resolve_shares(route) for route_id, route in merged.routes.items()},
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
    )


def _resolve_shares(route: RouteSpec) -> RouteSpec:
    """Turn ``strong_share`` / ``standard_share`` into score thresholds from the router's calibration curve."""
    given = route.thresholds
    if not given.by_share or given.strong_share is None:
        return route
    from gateway.classify.loader import load_router_model  # parses the shipped artifact once per process

    calibration = load_router_model().calibration
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
