"""A manifest's `[strategy]`: several training jobs from one push, as a matrix of manifest values.

`[strategy.matrix]` behaves as GitHub Actions documents `strategy.matrix`: each leaf is a list of alternatives for one
manifest field (a table field's entries by name: `hyperparameters = { lr = [0.1, 0.01] }`), the jobs are every
combination, `exclude` removes the combinations it matches (a partial match is enough), then each `include` entry is
added to every combination whose original matrix values it does not change, or becomes a job of its own when there is
none. `max_parallel`, `fail_fast` and the objective (`objective_metric_name`, `objective_type`) say how the jobs run
and which one is best.
"""

from __future__ import annotations

import copy
import itertools
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from sagepush.events import MATRIX_TAG_PREFIX, PUSH_TAG
from sagepush.jobs import tag_value
from sagepush.spec import MANIFEST_KEYS, V3_KEYS, Manifest, SpecError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

STRATEGY_KEY: Final = "strategy"
DEFAULT_MAX_PARALLEL: Final = 4
OBJECTIVE_TYPES: Final = ("Maximize", "Minimize")
# Manifest fields that are tables of named entries: a matrix varies one entry of them by name.
_NAMED_ENTRIES: Final = frozenset({"hyperparameters", "environment", "tags"})
_V3_GROUPS: Final = frozenset(key.split(".")[0] for key in V3_KEYS if "." in key)
# Fields that lay out the staged code (`spec.code_layout`): one push stages one code for every job.
_STAGED_FIELDS: Final = frozenset({"source_dir", "source_code.source_dir", "dependencies"})
_KEYS: Final = frozenset({"matrix", "max_parallel", "fail_fast", "objective_metric_name", "objective_type"})

Values = dict[str, Any]
"""One job's matrix values, by dotted manifest path (`instance_type`, `hyperparameters.lr`)."""


@dataclass(frozen=True, slots=True)
class Strategy:
    """The jobs a push becomes and how they run."""

    jobs: tuple[Values, ...]  # each job's matrix values, in matrix order
    max_parallel: int = DEFAULT_MAX_PARALLEL
    fail_fast: bool = False
    objective_metric_name: str | None = None
    objective_type: str = "Maximize"

    def as_input(self) -> dict[str, Any]:
        """How the jobs run, as the matrix execution's input carries it."""
        return {
            "max_parallel": self.max_parallel,
            "fail_fast": self.fail_fast,
            "objective_metric_name": self.objective_metric_name,
            "objective_type": self.objective_type,
        }

    def manifests(self, table: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Each job's manifest table: `table` without `[strategy]`, with the job's values set at their paths."""
        base = {key: value for key, value in table.items() if key != STRATEGY_KEY}
        return [_with_values(base, values) for values in self.jobs]


def of_manifest(manifest: Manifest | None, *, max_jobs: int) -> Strategy | None:
    """Read the `[strategy]` of a found manifest (its objective checked against its `metric_definitions`); None when
    there is no manifest or it has no `[strategy]`.

    Raises:
        SpecError: as `read_strategy`.
    """
    if manifest is None:
        return None
    defined = manifest.table.get("metric_definitions", [])
    names = [str(m.get("Name")) for m in defined if isinstance(m, dict)] if isinstance(defined, list) else []
    return read_strategy(manifest.table, source=manifest.source, max_jobs=max_jobs, metric_names=names)


def read_strategy(
    table: Mapping[str, Any], *, source: str, max_jobs: int, metric_names: Iterable[str] = ()
) -> Strategy | None:
    """Read the manifest's `[strategy]` table; None when it has none.

    `max_jobs` is the deployment's limit on jobs per push (its job policy); `max_parallel` is capped by it.

    Raises:
        SpecError: an unknown key or field, an empty list or a leaf that is not one, a malformed include or exclude
            entry, more jobs than `max_jobs`, an objective no `metric_definitions` entry defines; `where` names it.
    """
    if STRATEGY_KEY not in table:
        return None
    at = f"{source}: {STRATEGY_KEY}"
    strategy = _table(table[STRATEGY_KEY], at)
    for key in strategy:
        if key not in _KEYS:
            raise SpecError(f"{at}.{key}", f"unknown key (one of {', '.join(sorted(_KEYS))})")
    matrix = _table(strategy.get("matrix", {}), f"{at}.matrix")
    include = _entries(matrix.get("include", []), f"{at}.matrix.include")
    exclude = _entries(matrix.get("exclude", []), f"{at}.matrix.exclude")
    leaves = dict(_leaves({k: v for k, v in matrix.items() if k not in ("include", "exclude")}, f"{at}.matrix"))
    if not leaves and not include:
        raise SpecError(f"{at}.matrix", "must name at least one field with a list of values, or an include entry")
    jobs = combinations(leaves, include=include, exclude=exclude)
    if not jobs:
        raise SpecError(f"{at}.matrix", "leaves no job: exclude removes every combination")
    if len(jobs) > max_jobs:
        raise SpecError(
            f"{at}.matrix", f"makes {len(jobs)} jobs, more than the deployment's policy allows per push ({max_jobs})"
        )
    max_parallel = strategy.get("max_parallel", DEFAULT_MAX_PARALLEL)
    if isinstance(max_parallel, bool) or not isinstance(max_parallel, int) or max_parallel < 1:
        raise SpecError(f"{at}.max_parallel", f"must be a positive integer, found {json.dumps(max_parallel)}")
    fail_fast = strategy.get("fail_fast", False)
    if not isinstance(fail_fast, bool):
        raise SpecError(f"{at}.fail_fast", f"must be true or false, found {json.dumps(fail_fast)}")
    objective = strategy.get("objective_metric_name")
    defined = sorted(set(metric_names))
    if objective is not None and objective not in defined:
        known = f"defined: {', '.join(defined)}" if defined else "the manifest defines no metric_definitions"
        raise SpecError(f"{at}.objective_metric_name", f"{json.dumps(objective)} is not a metric it defines ({known})")
    objective_type = strategy.get("objective_type", "Maximize")
    if objective_type not in OBJECTIVE_TYPES:
        raise SpecError(f"{at}.objective_type", f"{json.dumps(objective_type)} is not one of Maximize, Minimize")
    return Strategy(
        jobs=tuple(jobs),
        max_parallel=min(max_parallel, max_jobs),
        fail_fast=fail_fast,
        objective_metric_name=objective,
        objective_type=objective_type,
    )


def job_source(source: str, index: int, values: Values) -> str:
    """Where one job of a matrix comes from, as its errors name it: `sagepush.toml (matrix job 2: lr=0.1)`."""
    shown = ", ".join(
        f"{path}={json.dumps(value) if not isinstance(value, str) else value}" for path, value in values.items()
    )
    return f"{source} (matrix job {index}: {shown})"


def job_tags(push: str | None, values: Mapping[str, Any]) -> dict[str, str]:
    """The tags of one job of push `push` (none when it is no matrix's): `sagepush:push`, and `sagepush:matrix:<path>`
    = each matrix value as a tag value allows (a string as it is, any other value as JSON)."""
    if push is None:
        return {}
    return {PUSH_TAG: push} | {
        f"{MATRIX_TAG_PREFIX}{path}": tag_value(value if isinstance(value, str) else json.dumps(value))
        for path, value in values.items()
    }


def combinations(
    matrix: Mapping[str, Sequence[Any]], *, include: Sequence[Values] = (), exclude: Sequence[Values] = ()
) -> list[Values]:
    """The jobs of a matrix, as GitHub Actions builds `strategy.matrix`: the product of the leaves in their order,
    less every combination an `exclude` entry matches in all its keys; then each `include` entry is added to every
    original combination whose matrix values it keeps (values it added before may change), and is a combination of
    its own when it fits none."""
    names = list(matrix)
    original = [dict(zip(names, chosen, strict=True)) for chosen in itertools.product(*matrix.values())]
    kept = [combo for combo in original if not any(_matches(combo, entry) for entry in exclude)]
    jobs = [(dict(combo), combo) for combo in kept]  # (the job's values, its original matrix values)
    extra: list[Values] = []
    for entry in include:
        fits = [job for job, own in jobs if all(own[key] == value for key, value in entry.items() if key in own)]
        for job in fits:
            job.update(entry)
        if not fits:
            extra.append(dict(entry))
    return [job for job, _ in jobs] + extra


def _matches(combo: Values, entry: Values) -> bool:
    return all(key in combo and combo[key] == value for key, value in entry.items())


def _leaves(table: Mapping[str, Any], at: str, prefix: str = "") -> Iterable[tuple[str, list[Any]]]:
    """(path, alternatives) for each leaf of the matrix; every path names a manifest field."""
    for key, value in table.items():
        path = f"{prefix}{key}"
        where = f"{at}.{key}"
        if isinstance(value, dict) and _nests(path):
            yield from _leaves(value, where, f"{path}.")
            continue
        _check_path(path, where)
        if not isinstance(value, list):
            raise SpecError(where, f"must be a list of values to try, found {json.dumps(value, default=str)}")
        if not value:
            raise SpecError(where, "is an empty list: give at least one value")
        yield path, value


def _entries(value: object, at: str) -> list[Values]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise SpecError(at, "must be a list of tables of manifest values")
    return [dict(_flat(item, f"{at}[{index}]")) for index, item in enumerate(value)]


def _flat(table: Mapping[str, Any], at: str, prefix: str = "") -> Iterable[tuple[str, Any]]:
    if not table:
        raise SpecError(at, "is empty: name at least one field")
    for key, value in table.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and _nests(path):
            yield from _flat(value, f"{at}.{key}", f"{path}.")
        else:
            _check_path(path, f"{at}.{key}")
            yield path, value


def _nests(path: str) -> bool:
    """Whether a table at `path` holds further paths (a named-entry field or a v3 group), not one value."""
    return "." not in path and (path in _NAMED_ENTRIES or path in _V3_GROUPS)


def _check_path(path: str, where: str) -> None:
    top = path.split(".")[0]
    known = top in MANIFEST_KEYS if "." not in path else (top in _NAMED_ENTRIES or path in V3_KEYS)
    if not known or top in (STRATEGY_KEY, "request_overrides", "allow_secrets"):
        raise SpecError(where, "is not a manifest field a matrix can vary")
    if path in _STAGED_FIELDS:
        raise SpecError(where, "decides what is staged, and a push stages its code once for all its jobs")


def _with_values(base: Mapping[str, Any], values: Values) -> dict[str, Any]:
    table = copy.deepcopy(dict(base))
    for path, value in values.items():
        top, _, rest = path.partition(".")
        if rest:
            table[top] = {**table.get(top, {}), rest: value}
        else:
            table[top] = value
    return table


def _table(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise SpecError(where, f"must be a table, found {json.dumps(value, default=str)}")
    return value
