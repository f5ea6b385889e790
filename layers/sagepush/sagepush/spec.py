"""What the user declares: the manifest in the upload, read into a TrainingSpec."""

from __future__ import annotations

import difflib
import json
import math
import re
import tomllib
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from sagepush.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

MANIFEST_NAMES = ("sagepush.toml", "pyproject.toml")
"""Root-level files that may hold the manifest, in the order they are looked for."""

FRAMEWORKS = ("pytorch", "tensorflow", "sklearn", "xgboost", "huggingface")
INPUT_MODES = ("File", "Pipe", "FastFile")
MAX_RUN_LIMIT = 28 * 24 * 3600
"""SageMaker's ceiling for MaxRuntimeInSeconds and MaxWaitTimeInSeconds (and MaxPendingTimeInSeconds): 28 days."""
MIN_PENDING_TIME = 1800
"""The shortest StoppingCondition.MaxPendingTimeInSeconds SageMaker accepts (30 minutes)."""
MAX_NESTING = 32
"""Deepest nesting of arrays and tables a manifest may use; deeper is refused before anything walks it."""

DEFAULTS_SOURCE = "defaults"
OVERRIDES_SOURCE = "overrides"

_EMPTY: Mapping[str, Any] = MappingProxyType({})

# PEP 723 reference regex: https://peps.python.org/pep-0723/#reference-implementation
_SCRIPT_BLOCK = re.compile(r"(?m)^# /// (?P<type>[a-zA-Z0-9-]+)$\s(?P<content>(^#(| .*)$\s)+)^# ///$")
_DURATION = re.compile(r"^\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+)\s*s)?\s*$")
_S3_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$")
_INSTANCE_TYPE = re.compile(r"^ml\.[a-z0-9\-]+\.[a-z0-9]+$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z\-]*:iam::\d{12}:role/[\w+=,.@\-/]+$")
_CHANNEL_NAME = re.compile(r"^[A-Za-z0-9.\-_]{1,64}$")
_VERSION = re.compile(r"^\d+(\.\d+)*(-\d+)?$")
_LOG_LEVELS = {"CRITICAL": 50, "ERROR": 40, "WARNING": 30, "INFO": 20, "DEBUG": 10, "NOTSET": 0}


class SpecError(InputError):
    """The manifest is wrong; `where` names the file and field."""


@dataclass(frozen=True, slots=True)
class Manifest:
    """The raw `[tool.sagepush]` table and the file it came from."""

    source: str
    table: Mapping[str, Any]
    dependencies: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Channel:
    """One input channel of the job, as `fit()` takes it: a name and an S3 location with its options."""

    name: str
    s3_uri: str
    input_mode: str | None = None
    distribution: str | None = None
    content_type: str | None = None
    compression: str | None = None
    s3_data_type: str = "S3Prefix"
    record_wrapping: str | None = None
    attribute_names: tuple[str, ...] | None = None
    shuffle_seed: int | None = None


@dataclass(frozen=True, slots=True)
class MetricDefinition:
    """A metric SageMaker scrapes from the job's logs."""

    name: str
    regex: str


@dataclass(frozen=True, slots=True)
class Defaults:
    """Deployment defaults: what fills a field the manifest leaves out."""

    role: str | None = None
    instance_type: str | None = None
    instance_count: int = 1
    volume_size: int = 30
    max_run: int = 24 * 3600
    output_path: str | None = None
    output_kms_key: str | None = None
    volume_kms_key: str | None = None
    subnets: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    framework: str | None = None
    framework_version: str | None = None
    py_version: str | None = None
    entry_point: str | None = None


@dataclass(frozen=True, slots=True)
class TrainingSpec:
    """Everything a training job is built from, keyed by the SageMaker Python SDK estimator argument names.

    Durations are seconds. `source` names the manifest file (or `defaults`); `declared` holds the fields the
    manifest set, so later errors can say which file to fix.
    """

    entry_point: str
    role: str
    instance_type: str
    output_path: str
    framework: str | None = None
    framework_version: str | None = None
    py_version: str | None = None
    image_uri: str | None = None
    pytorch_version: str | None = None
    tensorflow_version: str | None = None
    source_dir: str | None = None
    instance_count: int = 1
    volume_size: int = 30
    volume_kms_key: str | None = None
    max_run: int = 24 * 3600
    input_mode: str = "File"
    hyperparameters: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    environment: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    channels: tuple[Channel, ...] = ()
    metric_definitions: tuple[MetricDefinition, ...] = ()
    use_spot_instances: bool = False
    max_wait: int | None = None
    max_pending_time: int | None = None
    checkpoint_s3_uri: str | None = None
    checkpoint_local_path: str | None = None
    subnets: tuple[str, ...] = ()
    security_group_ids: tuple[str, ...] = ()
    enable_network_isolation: bool = False
    encrypt_inter_container_traffic: bool = False
    output_kms_key: str | None = None
    disable_output_compression: bool = False
    distribution: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    tags: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    container_log_level: int = 20
    max_retry_attempts: int | None = None
    keep_alive_period_in_seconds: int | None = None
    model_dir: str | bool | None = None
    model_uri: str | None = None
    enable_sagemaker_metrics: bool | None = None
    enable_infra_check: bool | None = None
    container_entry_point: tuple[str, ...] | None = None
    container_arguments: tuple[str, ...] | None = None
    allow_secrets: tuple[str, ...] = ()
    request_overrides: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    dependencies: tuple[str, ...] = ()
    source: str = field(default=DEFAULTS_SOURCE, compare=False)
    declared: frozenset[str] = field(default=frozenset(), compare=False)

    @property
    def transformers_version(self) -> str | None:
        """The HuggingFace transformers version, which is the framework version of a huggingface spec."""
        return self.framework_version if self.framework == "huggingface" else None

    def where(self, name: str) -> str:
        """Return the file-and-field label an error about manifest field `name` should carry."""
        top = re.split(r"[.\[]", name, maxsplit=1)[0]
        return f"{self.source if top in self.declared else DEFAULTS_SOURCE}: {name}"


# Keys a manifest may use that are not TrainingSpec fields (or are spelled differently there).
_ALIASES = {"transformers_version": "framework_version"}
_NOT_MANIFEST_KEYS = frozenset({"dependencies", "source", "declared"})
MANIFEST_KEYS = tuple(
    sorted({f.name for f in fields(TrainingSpec)} - _NOT_MANIFEST_KEYS | set(_ALIASES)),
)
"""Every key a `[tool.sagepush]` table accepts."""

_REQUIRED = ("entry_point", "role", "instance_type", "output_path")


def read_script_metadata(script: str, *, source: str) -> dict[str, Any] | None:
    """Return the PEP 723 `script` block of `script` as a dict, or None when it has none.

    Raises:
        SpecError: more than one block, or TOML that does not parse.
    """
    blocks = [m for m in _SCRIPT_BLOCK.finditer(script) if m.group("type") == "script"]
    if not blocks:
        return None
    if len(blocks) > 1:
        raise SpecError(source, "more than one `# /// script` block (PEP 723 allows one)")
    content = "".join(
        line[2:] if line.startswith("# ") else line[1:] for line in blocks[0].group("content").splitlines(keepends=True)
    )
    return _load_toml(content, source, "the `# /// script` block ")


def find_manifest(files: Mapping[str, bytes], *, script: str | None = None) -> Manifest | None:
    """Find the manifest among root-level `files` (name → bytes), or in the PEP 723 block of `script`.

    `script` names the single uploaded script when the upload was a `.py` file; its bytes are in `files`. A script
    always yields a manifest, whose `entry_point` defaults to the script. Returns None when an archive has no
    manifest at all: deployment defaults then fill the spec.

    Raises:
        SpecError: a manifest file exists but is not valid TOML, or its table is not a table.
    """
    if script is not None:
        metadata = read_script_metadata(_decode(files[script], script), source=script) or {}
        tool = _table(metadata.get("tool", {}), f"{script}: tool")
        table = _table(tool.get("sagepush", {}), f"{script}: [tool.sagepush]")
        deps = metadata.get("dependencies", [])
        if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
            raise SpecError(f"{script}: dependencies", "must be a list of requirement strings")
        # The script is the entry point unless its block says otherwise; the table then stands on its own.
        return Manifest(source=script, table={"entry_point": script, **table}, dependencies=tuple(deps))
    for name in MANIFEST_NAMES:
        if name not in files:
            continue
        document = _load_toml(_decode(files[name], name), name)
        tool = document.get("tool", {})
        if name == "sagepush.toml":
            # a `tool` that is not a table is then an unknown key of the manifest itself, and named as such
            nested = isinstance(tool, dict) and "sagepush" in tool
            table = tool["sagepush"] if nested else document
            return Manifest(source=name, table=_table(table, f"{name}: [tool.sagepush]" if nested else name))
        if "sagepush" in _table(tool, f"{name}: tool"):
            return Manifest(source=name, table=_table(tool["sagepush"], f"{name}: [tool.sagepush]"))
    return None


def parse_duration(value: object, where: str) -> int:
    """Return `value` (seconds as an int, or a string like `90m`, `2h`, `1h30m`, `45s`, `3d`) in seconds.

    Raises:
        SpecError: the value is not a duration.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return int(text)
        match = _DURATION.match(value)
        if match and any(match.groups()):
            days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
            return ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    raise SpecError(where, f"{_quote(value)} is not a duration (use 90m, 2h or seconds)")


def resolve_spec(
    manifest: Manifest | None,
    defaults: Defaults,
    *,
    overrides: Mapping[str, Any] | None = None,
) -> TrainingSpec:
    """Merge deployment `defaults`, the `manifest` table and `overrides` (in that order) into a checked TrainingSpec.

    Raises:
        SpecError: an unknown key, a value of the wrong type or out of range, a missing required field, or
            fields that contradict each other; `where` names the file and field.
    """
    source = manifest.source if manifest is not None else DEFAULTS_SOURCE
    labels: dict[str, str] = {}
    values, declared = _gather(manifest, defaults, overrides or _EMPTY, labels)
    parsed: dict[str, Any] = {}
    for key, (value, origin) in values.items():
        parser = _PARSERS.get(key)
        if parser is not None:
            parsed[key] = parser(value, f"{origin}: {labels.get(key, key)}")
    if parsed.get("use_spot_instances") and "max_wait" not in parsed:
        # Managed spot needs MaxWaitTimeInSeconds; waiting as long as the job may run is the least surprising.
        parsed["max_wait"] = parsed.get("max_run", defaults.max_run)
    for key in _REQUIRED:
        if key not in parsed:
            raise SpecError(f"{source}: {key}", "is required (set it in the manifest or as a deployment default)")
    spec = TrainingSpec(
        **parsed,
        dependencies=manifest.dependencies if manifest else (),
        source=source,
        declared=frozenset(declared),
    )
    origins = {key: origin for key, (_, origin) in values.items()}
    v3 = any(label != key and label.split(".")[0] in _V3_SPELLINGS for key, label in labels.items())
    spelled = {field: label for label, field in V3_NAMES.items()} if v3 else {}

    def name(field: str) -> str:
        """The key the manifest set `field` with, else its spelling in the manifest's vocabulary (v2 or v3)."""
        return labels.get(field) or spelled.get(field, field)

    _check_spec(spec, lambda field: f"{origins.get(field.split('.')[0], source)}: {name(field)}", name)
    return spec


def _gather(
    manifest: Manifest | None, defaults: Defaults, overrides: Mapping[str, Any], labels: dict[str, str]
) -> tuple[dict[str, tuple[Any, str]], set[str]]:
    """Return each field's raw value with the source it came from, and the fields the manifest or overrides set.

    `labels` receives, for each field set, the key it was set with (`volume_size` or `compute.volume_size_in_gb`).
    """
    source = manifest.source if manifest is not None else DEFAULTS_SOURCE
    values: dict[str, tuple[Any, str]] = {}
    for f in fields(Defaults):
        value = getattr(defaults, f.name)
        if value is not None:
            values[f.name] = (value, DEFAULTS_SOURCE)
    declared: set[str] = set()
    for table, origin in ((manifest.table if manifest else _EMPTY, source), (overrides, OVERRIDES_SOURCE)):
        spelled: dict[str, str] = {}
        for label, key, value in _spellings(table, origin):
            if key in spelled:
                raise SpecError(
                    f"{origin}: {label}", f"sets the same field as `{spelled[key]}`; keep one of the two spellings"
                )
            spelled[key] = label
            merged = _merge_tags(values["tags"], value, f"{origin}: tags") if key == "tags" else value
            values[key] = (merged, origin)
            labels[key] = label
            declared.add(key)
    return values, declared


def spec_to_manifest(spec: TrainingSpec) -> dict[str, Any]:
    """Return `spec` as a JSON-ready manifest table; `resolve_spec` on it (with empty defaults) gives `spec` back.

    This is how a resolved spec travels between functions (the state machine carries JSON, not objects).
    """
    table: dict[str, Any] = {}
    for f in fields(TrainingSpec):
        if f.name in _NOT_MANIFEST_KEYS:
            continue
        value = getattr(spec, f.name)
        if value is None or value == () or (isinstance(value, MappingProxyType) and not value):
            continue
        if f.name == "channels":
            value = {c.name: _channel_table(c) for c in value}
        elif f.name == "metric_definitions":
            value = [{"Name": m.name, "Regex": m.regex} for m in value]
        table[f.name] = _plain(value)
    return table


def _plain(value: Any) -> Any:
    if isinstance(value, dict | MappingProxyType):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _channel_table(channel: Channel) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for f in fields(Channel):
        value = getattr(channel, f.name)
        if f.name != "name" and value is not None and not (f.name == "s3_data_type" and value == "S3Prefix"):
            table[f.name] = list(value) if isinstance(value, tuple) else value
    return table


# ---- the SageMaker Python SDK v3 spelling: ModelTrainer's arguments and their config attributes

# ModelTrainer argument, or `argument.attribute` of its config objects, to the TrainingSpec field it sets. A manifest
# may spell each field either way, never both; values mean what they mean to the v3 SDK.
V3_NAMES: Mapping[str, str] = MappingProxyType(
    {
        "training_image": "image_uri",
        "training_input_mode": "input_mode",
        "source_code.source_dir": "source_dir",
        "source_code.entry_script": "entry_point",
        "compute.instance_type": "instance_type",
        "compute.instance_count": "instance_count",
        "compute.volume_size_in_gb": "volume_size",
        "compute.volume_kms_key_id": "volume_kms_key",
        "compute.keep_alive_period_in_seconds": "keep_alive_period_in_seconds",
        "compute.enable_managed_spot_training": "use_spot_instances",
        "stopping_condition.max_runtime_in_seconds": "max_run",
        "stopping_condition.max_wait_time_in_seconds": "max_wait",
        "stopping_condition.max_pending_time_in_seconds": "max_pending_time",
        "input_data_config": "channels",
        "output_data_config.s3_output_path": "output_path",
        "output_data_config.kms_key_id": "output_kms_key",
        "output_data_config.compression_type": "disable_output_compression",
        "checkpoint_config.s3_uri": "checkpoint_s3_uri",
        "checkpoint_config.local_path": "checkpoint_local_path",
        "networking.subnets": "subnets",
        "networking.security_group_ids": "security_group_ids",
        "networking.enable_network_isolation": "enable_network_isolation",
        "networking.enable_inter_container_traffic_encryption": "encrypt_inter_container_traffic",
        "distributed": "distribution",
    }
)
# The framework containers install requirements.txt from the code's root themselves: the only file v3 may name here.
_V3_REQUIREMENTS = "source_code.requirements"
_V3_GROUPS = frozenset(name.split(".")[0] for name in [*V3_NAMES, _V3_REQUIREMENTS] if "." in name)
V3_KEYS = tuple(sorted([*V3_NAMES, _V3_REQUIREMENTS]))
_V3_SPELLINGS = frozenset(name.split(".")[0] for name in V3_KEYS)
"""Every v3 (ModelTrainer) key a manifest accepts beside MANIFEST_KEYS, nested ones dotted."""
_V3_CHANNEL_OPTIONS = {
    "content_type": "content_type",
    "compression_type": "compression",
    "record_wrapper_type": "record_wrapping",
    "input_mode": "input_mode",
}
_V3_S3_SOURCE = {
    "s3_uri": "s3_uri",
    "s3_data_type": "s3_data_type",
    "s3_data_distribution_type": "distribution",
    "attribute_names": "attribute_names",
}


def _spellings(table: Mapping[str, Any], origin: str) -> Iterable[tuple[str, str, Any]]:
    """Yield (key as written, TrainingSpec field, value in the field's own terms) for each key of a manifest table.

    Raises:
        SpecError: an unknown key, or a v3 value with no meaning in the v2 estimator encoding sagepush sends.
    """
    for raw_key, value in table.items():
        if raw_key in MANIFEST_KEYS:
            yield raw_key, _ALIASES.get(raw_key, raw_key), value
        elif raw_key in _V3_GROUPS:
            group = _table_of(value, f"{origin}: {raw_key}")
            for attribute, item in group.items():
                label = f"{raw_key}.{attribute}"
                if label == _V3_REQUIREMENTS:
                    _v3_requirements(item, f"{origin}: {label}")
                elif label in V3_NAMES:
                    yield label, V3_NAMES[label], _from_v3(label, item, f"{origin}: {label}")
                else:
                    known = [k.split(".", 1)[1] for k in V3_KEYS if k.startswith(f"{raw_key}.")]
                    raise SpecError(f"{origin}: {label}", f"unknown key{_did_you_mean(attribute, known)}")
        elif raw_key in V3_NAMES:
            yield raw_key, V3_NAMES[raw_key], _from_v3(raw_key, value, f"{origin}: {raw_key}")
        elif raw_key == "strategy":  # read by sagepush.strategy, which hands each job its table without it
            raise SpecError(
                f"{origin}: strategy",
                "a matrix of jobs is rendered by `sagepush render` but not yet run by a push: "
                "push each combination on its own (`--set`)",
            )
        else:
            known = [*MANIFEST_KEYS, *_V3_GROUPS, *(k for k in V3_NAMES if "." not in k)]
            raise SpecError(f"{origin}: {raw_key}", f"unknown key{_did_you_mean(raw_key, known)}")


def _from_v3(label: str, value: object, where: str) -> object:
    if label == "output_data_config.compression_type":
        if value not in ("GZIP", "NONE"):
            raise SpecError(where, f"{_quote(value)} is not one of GZIP, NONE")
        return value == "NONE"
    if label == "input_data_config":
        return _v3_input_data_config(value, where)
    if label == "distributed":
        return _v3_distributed(value, where)
    return value


def _v3_requirements(value: object, where: str) -> None:
    path = _relative_path(value, where)
    if path.removeprefix("./") != "requirements.txt":
        raise SpecError(
            where, f"{_quote(value)}: the framework containers install requirements.txt at the code's root (rename it)"
        )


def _v3_input_data_config(value: object, where: str) -> dict[str, Any]:
    """Return v3's list of channels (`InputData` or `Channel`) as the `channels` table."""
    if not isinstance(value, list | tuple):
        raise SpecError(where, f"must be a list of {{ channel_name, data_source }} tables, found {_type_name(value)}")
    channels: dict[str, Any] = {}
    for i, item in enumerate(value):
        at = f"{where}[{i}]"
        table = dict(_table_of(item, at))
        if "channel_name" not in table or "data_source" not in table:
            missing = "channel_name" if "channel_name" not in table else "data_source"
            raise SpecError(f"{at}.{missing}", "is required")
        name = _string(table.pop("channel_name"), f"{at}.channel_name")
        if name in channels:
            raise SpecError(f"{at}.channel_name", f"{_quote(name)} names a channel twice")
        options = _v3_data_source(table.pop("data_source"), f"{at}.data_source")
        for key, option in table.items():
            if key == "shuffle_config":
                shuffle = _table_of(option, f"{at}.{key}")
                if set(shuffle) != {"seed"}:
                    raise SpecError(f"{at}.{key}", "must hold exactly `seed`")
                options["shuffle_seed"] = _CHANNEL_KEYS["shuffle_seed"](shuffle["seed"], f"{at}.{key}.seed")
            elif key in _V3_CHANNEL_OPTIONS:
                options[_V3_CHANNEL_OPTIONS[key]] = _CHANNEL_KEYS[_V3_CHANNEL_OPTIONS[key]](option, f"{at}.{key}")
            else:
                known = ["channel_name", "data_source", "shuffle_config", *_V3_CHANNEL_OPTIONS]
                raise SpecError(f"{at}.{key}", f"unknown channel option{_did_you_mean(key, known)}")
        channels[name] = options
    return channels


def _v3_data_source(value: object, where: str) -> dict[str, Any]:
    if isinstance(value, str):
        return {"s3_uri": _s3_uri(value, where)}
    source = _table_of(value, where)
    if set(source) != {"s3_data_source"}:
        raise SpecError(
            where, "supports an S3 URI or `s3_data_source` only (file systems and datasets need request_overrides)"
        )
    options: dict[str, Any] = {}
    for key, option in _table_of(source["s3_data_source"], f"{where}.s3_data_source").items():
        if key not in _V3_S3_SOURCE:
            raise SpecError(f"{where}.s3_data_source.{key}", f"unknown option{_did_you_mean(key, _V3_S3_SOURCE)}")
        field = _V3_S3_SOURCE[key]
        options[field] = _CHANNEL_KEYS[field](option, f"{where}.s3_data_source.{key}")
    return options


def _v3_distributed(value: object, where: str) -> dict[str, Any]:
    """Return `distributed = { Torchrun = {...} }` or `{ MPI = {...} }` as the v2 `distribution` it runs as."""
    table = _table_of(value, where)
    if len(table) != 1 or next(iter(table)) not in ("Torchrun", "MPI"):
        raise SpecError(where, "must hold one runner: Torchrun or MPI")
    runner, options = next(iter(table.items()))
    at = f"{where}.{runner}"
    options = _table_of(options, at)
    if runner == "Torchrun":
        for key in options:
            if key == "process_count_per_node":
                reason = "torchrun starts one process per GPU or Neuron core, as the SDK's torch_distributed does"
            elif key == "smp":
                reason = "model parallelism needs request_overrides"
            else:
                raise SpecError(f"{at}.{key}", f"unknown option{_did_you_mean(key, ['process_count_per_node'])}")
            raise SpecError(f"{at}.{key}", f"is not supported ({reason})")
        return {"torch_distributed": {"enabled": True}}
    mpi: dict[str, Any] = {"enabled": True}
    for key, option in options.items():
        if key == "process_count_per_node":
            mpi["processes_per_host"] = _STRATEGY_OPTIONS["mpi"]["processes_per_host"](option, f"{at}.{key}")
        elif key == "mpi_additional_options":
            mpi["custom_mpi_options"] = " ".join(_strings(option, f"{at}.{key}"))
        else:
            known = ["process_count_per_node", "mpi_additional_options"]
            raise SpecError(f"{at}.{key}", f"unknown option{_did_you_mean(key, known)}")
    return {"mpi": mpi}


# ---- field parsers: each takes the raw value and the `file: field` label, returns the typed value


def _quote(value: object, limit: int = 60) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except ValueError:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _did_you_mean(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""


def _type_name(value: object) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list"}.get(
        type(value), "a table" if isinstance(value, dict) else type(value).__name__
    )


def _string(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise SpecError(where, f"must be a string, found {_type_name(value)} {_quote(value)}")
    if not value.strip():
        raise SpecError(where, "must not be empty")
    return value


def _choice(options: tuple[str, ...]) -> Callable[[object, str], str]:
    def parse(value: object, where: str) -> str:
        text = _string(value, where)
        if text not in options:
            listed = ", ".join(options)
            raise SpecError(where, f"{_quote(value)} is not one of {listed}{_did_you_mean(text, options)}")
        return text

    return parse


def _boolean(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise SpecError(where, f"must be true or false, found {_quote(value)}")
    return value


def _integer(low: int, high: int) -> Callable[[object, str], int]:
    def parse(value: object, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(where, f"must be an integer, found {_type_name(value)} {_quote(value)}")
        if not low <= value <= high:
            raise SpecError(where, f"{value} is out of range ({low} to {high})")
        return value

    return parse


def _duration(value: object, where: str) -> int:
    seconds = parse_duration(value, where)
    if not 1 <= seconds <= MAX_RUN_LIMIT:
        raise SpecError(where, f"{_quote(value)} is out of range (1 second to 28 days)")
    return seconds


def _pending_time(value: object, where: str) -> int:
    """StoppingCondition.MaxPendingTimeInSeconds: 30 minutes to 28 days in botocore's model."""
    seconds = parse_duration(value, where)
    if not MIN_PENDING_TIME <= seconds <= MAX_RUN_LIMIT:
        raise SpecError(where, f"{_quote(value)} is out of range (30 minutes to 28 days)")
    return seconds


def _strings(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        raise SpecError(where, f"must be a list of strings, found {_type_name(value)} {_quote(value)}")
    return tuple(_string(item, f"{where}[{i}]") for i, item in enumerate(value))


def _s3_uri(value: object, where: str) -> str:
    text = _string(value, where)
    if not _S3_URI.match(text):
        raise SpecError(where, f"{_quote(value)} is not an S3 URI (use s3://bucket/prefix)")
    return text


def _version(value: object, where: str) -> str:
    if isinstance(value, float | int) and not isinstance(value, bool):
        raise SpecError(where, f'must be a string, found the number {value} (quote it: "{value}")')
    text = _string(value, where)
    if not _VERSION.match(text):
        raise SpecError(where, f'{_quote(value)} is not a version (use digits and dots, like "2.5")')
    return text


def _instance_type(value: object, where: str) -> str:
    text = _string(value, where)
    if not _INSTANCE_TYPE.match(text):
        raise SpecError(where, f"{_quote(value)} is not a SageMaker instance type (like ml.m5.xlarge)")
    return text


def _role(value: object, where: str) -> str:
    text = _string(value, where)
    if not _ROLE_ARN.match(text):
        raise SpecError(where, f"{_quote(value)} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)")
    return text


def _relative_path(value: object, where: str) -> str:
    text = _string(value, where)
    parts = text.replace("\\", "/").split("/")
    if text.startswith("/") or ".." in parts or "://" in text:
        raise SpecError(where, f"{_quote(value)} must be a path relative to the upload's root")
    return text


def _table_of(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict | MappingProxyType):
        raise SpecError(where, f"must be a table, found {_type_name(value)} {_quote(value)}")
    return value


def _hyperparameters(value: object, where: str) -> Mapping[str, Any]:
    table = _table_of(value, where)
    for key, item in table.items():
        if key.startswith("sagemaker_"):
            raise SpecError(f"{where}.{key}", "is reserved: sagepush sets the `sagemaker_` hyperparameters itself")
        _check_json(item, f"{where}.{key}")
    return MappingProxyType(dict(table))


def _check_json(value: object, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise SpecError(where, f"{value} has no JSON form (use a finite number or a string)")
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_json(item, f"{where}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_json(item, f"{where}.{key}")
    elif not isinstance(value, str | int | float | bool):
        raise SpecError(where, f"{_type_name(value)} {_quote(value)} has no JSON form (quote it as a string)")


def _environment(value: object, where: str) -> Mapping[str, str]:
    table = _table_of(value, where)
    result: dict[str, str] = {}
    for key, item in table.items():
        if not isinstance(item, str):
            raise SpecError(f"{where}.{key}", f'must be a string, found {_type_name(item)} (quote it: "{item}")')
        result[key] = item
    return MappingProxyType(result)


def _tags(value: object, where: str) -> Mapping[str, str]:
    table = _table_of(value, where)
    result: dict[str, str] = {}
    for key, item in table.items():
        if key.startswith(("aws:", "sagepush:")):
            raise SpecError(
                f"{where}.{key}", f"is reserved: tag keys starting with `{key.split(':')[0]}:` are not yours"
            )
        if not isinstance(item, str):
            raise SpecError(f"{where}.{key}", f"must be a string, found {_type_name(item)} {_quote(item)}")
        result[key] = item
    return MappingProxyType(result)


def _merge_tags(previous: tuple[Any, str], value: object, where: str) -> Mapping[str, Any]:
    return {**_table_of(previous[0], f"{previous[1]}: tags"), **_table_of(value, where)}


def _json_table(value: object, where: str) -> Mapping[str, Any]:
    table = _table_of(value, where)
    _check_json(dict(table), where)
    return MappingProxyType(_plain(table))


def _log_level(value: object, where: str) -> int:
    if isinstance(value, str) and value.upper() in _LOG_LEVELS:
        return _LOG_LEVELS[value.upper()]
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 50:
        return value
    raise SpecError(where, f"{_quote(value)} is not a log level (use DEBUG, INFO, WARNING, ERROR or 10-50)")


def _model_dir(value: object, where: str) -> str | bool:
    if value is False:
        return False
    return _string(value, where)


_CHANNEL_KEYS = {
    "s3_uri": _s3_uri,
    "input_mode": _choice(INPUT_MODES),
    "distribution": _choice(("FullyReplicated", "ShardedByS3Key")),
    "content_type": _string,
    "compression": _choice(("None", "Gzip")),
    "s3_data_type": _choice(("S3Prefix", "ManifestFile", "AugmentedManifestFile", "Converse")),
    "record_wrapping": _choice(("None", "RecordIO")),
    "attribute_names": _strings,
    "shuffle_seed": _integer(0, 2**63 - 1),
}
_CHANNEL_ALIASES = {"s3_data": "s3_uri", "record_wrapper_type": "record_wrapping"}


def _channels(value: object, where: str) -> tuple[Channel, ...]:
    table = _table_of(value, where)
    channels = []
    for name, item in table.items():
        at = f"{where}.{name}"
        if not _CHANNEL_NAME.match(name):
            raise SpecError(at, "is not a channel name (letters, digits, '.', '-', '_'; at most 64)")
        if isinstance(item, str):
            channels.append(Channel(name=name, s3_uri=_s3_uri(item, at)))
            continue
        options: dict[str, Any] = {}
        for raw_key, option in _table_of(item, at).items():
            key = _CHANNEL_ALIASES.get(raw_key, raw_key)
            if key not in _CHANNEL_KEYS:
                known = [*_CHANNEL_KEYS, *_CHANNEL_ALIASES]
                raise SpecError(f"{at}.{raw_key}", f"unknown channel option{_did_you_mean(raw_key, known)}")
            options[key] = _CHANNEL_KEYS[key](option, f"{at}.{raw_key}")
        if "s3_uri" not in options:
            raise SpecError(f"{at}.s3_uri", "is required (the S3 location of the channel's data)")
        channels.append(Channel(name=name, **options))
    return tuple(channels)


def _metric_definitions(value: object, where: str) -> tuple[MetricDefinition, ...]:
    if not isinstance(value, list | tuple):
        raise SpecError(where, f"must be a list of {{ Name, Regex }} tables, found {_type_name(value)}")
    result = []
    for i, item in enumerate(value):
        at = f"{where}[{i}]"
        table = {k.lower(): v for k, v in _table_of(item, at).items()}
        unknown = sorted(set(table) - {"name", "regex"})
        if unknown or not {"name", "regex"} <= set(table):
            raise SpecError(at, "must hold exactly `Name` and `Regex`")
        regex = _string(table["regex"], f"{at}.Regex")
        try:
            re.compile(regex)
        except re.error as exc:
            raise SpecError(f"{at}.Regex", f"{_quote(regex)} is not a regular expression ({exc})") from exc
        result.append(MetricDefinition(name=_string(table["name"], f"{at}.Name"), regex=regex))
    return tuple(result)


_STRATEGY_OPTIONS: dict[str, dict[str, Callable[[object, str], object]]] = {
    "torch_distributed": {"enabled": _boolean},
    "pytorchddp": {"enabled": _boolean},
    "parameter_server": {"enabled": _boolean},
    "multi_worker_mirrored_strategy": {"enabled": _boolean},
    "mpi": {"enabled": _boolean, "processes_per_host": _integer(1, 1024), "custom_mpi_options": _string},
}
_SMDDP_OPTIONS: dict[str, Callable[[object, str], object]] = {"enabled": _boolean, "custom_mpi_options": _string}


def _distribution(value: object, where: str) -> Mapping[str, Any]:
    table = _table_of(value, where)
    known = [*_STRATEGY_OPTIONS, "smdistributed"]
    result: dict[str, Any] = {}
    for strategy, options in table.items():
        at = f"{where}.{strategy}"
        if strategy == "smdistributed":
            inner = _table_of(options, at)
            if set(inner) - {"dataparallel"}:
                raise SpecError(at, "supports only `dataparallel` (model parallelism needs request_overrides)")
            result[strategy] = {
                "dataparallel": _options(inner.get("dataparallel", {}), f"{at}.dataparallel", _SMDDP_OPTIONS)
            }
        elif strategy in _STRATEGY_OPTIONS:
            result[strategy] = _options(options, at, _STRATEGY_OPTIONS[strategy])
        else:
            raise SpecError(at, f"is not a distribution strategy{_did_you_mean(strategy, known)}")
    return MappingProxyType(result)


def _options(value: object, where: str, schema: Mapping[str, Callable[[object, str], object]]) -> dict[str, Any]:
    table = _table_of(value, where)
    result = {}
    for key, item in table.items():
        if key not in schema:
            raise SpecError(f"{where}.{key}", f"unknown option{_did_you_mean(key, schema)}")
        result[key] = schema[key](item, f"{where}.{key}")
    return result


_PARSERS: dict[str, Callable[[object, str], Any]] = {
    "entry_point": _relative_path,
    "source_dir": _relative_path,
    "framework": _choice(FRAMEWORKS),
    "framework_version": _version,
    "py_version": _string,
    "image_uri": _string,
    "pytorch_version": _version,
    "tensorflow_version": _version,
    "role": _role,
    "instance_type": _instance_type,
    "instance_count": _integer(1, 1000),
    "volume_size": _integer(1, 16384),
    "volume_kms_key": _string,
    "max_run": _duration,
    "input_mode": _choice(INPUT_MODES),
    "hyperparameters": _hyperparameters,
    "environment": _environment,
    "channels": _channels,
    "metric_definitions": _metric_definitions,
    "use_spot_instances": _boolean,
    "max_wait": _duration,
    "max_pending_time": _pending_time,
    "checkpoint_s3_uri": _s3_uri,
    "checkpoint_local_path": _string,
    "subnets": _strings,
    "security_group_ids": _strings,
    "enable_network_isolation": _boolean,
    "encrypt_inter_container_traffic": _boolean,
    "output_path": _s3_uri,
    "output_kms_key": _string,
    "disable_output_compression": _boolean,
    "distribution": _distribution,
    "tags": _tags,
    "container_log_level": _log_level,
    "max_retry_attempts": _integer(1, 30),
    "keep_alive_period_in_seconds": _integer(0, 3600),
    "model_dir": _model_dir,
    "model_uri": _s3_uri,
    "enable_sagemaker_metrics": _boolean,
    "enable_infra_check": _boolean,
    "container_entry_point": _strings,
    "container_arguments": _strings,
    "allow_secrets": _strings,
    "request_overrides": _json_table,
}


# ---- checks across fields, mirroring the SageMaker Python SDK's own estimator checks

# sagemaker/fw_utils.py: the versions smdistributed dataparallel and torch_distributed accept.
_SMDDP_VERSIONS = {
    "tensorflow": frozenset(
        [
            "2.3",
            "2.3.1",
            "2.3.2",
            "2.4",
            "2.4.1",
            "2.4.3",
            "2.5",
            "2.5.0",
            "2.5.1",
            "2.6",
            "2.6.0",
            "2.6.2",
            "2.6.3",
            "2.7",
            "2.7.1",
            "2.8",
            "2.8.0",
            "2.9",
            "2.9.1",
            "2.9.2",
            "2.10",
            "2.10.1",
            "2.11",
            "2.11.0",
        ]
    ),
    "pytorch": frozenset(
        [
            "1.6",
            "1.6.0",
            "1.7",
            "1.7.1",
            "1.8",
            "1.8.0",
            "1.8.1",
            "1.9",
            "1.9.0",
            "1.9.1",
            "1.10",
            "1.10.0",
            "1.10.2",
            "1.11",
            "1.11.0",
            "1.12",
            "1.12.0",
            "1.12.1",
            "1.13.1",
            "2.0.0",
            "2.0.1",
            "2.1.0",
            "2.1.2",
            "2.2.0",
        ]
    ),
}
_TORCH_DISTRIBUTED_GPU_VERSIONS = frozenset(
    [
        "1.13.1",
        "2.0.0",
        "2.0.1",
        "2.1.0",
        "2.1.2",
        "2.2.0",
        "2.3.0",
        "2.3.1",
        "2.4.1",
        "2.5.1",
        "2.6.0",
        "2.7.1",
        "2.8.0",
    ]
)
_TORCH_DISTRIBUTED_TRN_VERSIONS = frozenset(["1.11", "1.11.0", "1.12", "1.12.0", "1.12.1", "1.13.1", "2.0.0"])
_STRATEGIES = {
    "pytorch": ("torch_distributed", "pytorchddp", "mpi", "smdistributed"),
    "huggingface": ("torch_distributed", "pytorchddp", "mpi", "smdistributed", "parameter_server"),
    "tensorflow": ("parameter_server", "mpi", "smdistributed", "multi_worker_mirrored_strategy"),
    "sklearn": (),
    "xgboost": (),
}


def _check_spec(spec: TrainingSpec, where: Callable[[str], str], name: Callable[[str], str] = str) -> None:
    """Check what no single field can: `where(field)` locates a field in the error, `name(field)` names another one
    in the message, each as the manifest spells it (`max_wait` or `stopping_condition.max_wait_time_in_seconds`)."""
    _check_framework(spec, where)
    if spec.max_wait is not None and not spec.use_spot_instances:
        raise SpecError(where("max_wait"), f"applies only with {name('use_spot_instances')} = true")
    if spec.max_wait is not None and spec.max_wait < spec.max_run:
        raise SpecError(where("max_wait"), f"{spec.max_wait}s is shorter than {name('max_run')} ({spec.max_run}s)")
    if spec.checkpoint_local_path and not spec.checkpoint_s3_uri:
        raise SpecError(where("checkpoint_local_path"), f"needs {name('checkpoint_s3_uri')} (where the checkpoints go)")
    if bool(spec.subnets) != bool(spec.security_group_ids):
        present, missing = ("subnets", "security_group_ids") if spec.subnets else ("security_group_ids", "subnets")
        raise SpecError(where(present), f"needs {name(missing)} too: a VPC job needs both")
    reserved = {"code"} if spec.enable_network_isolation else set()
    reserved |= {"model"} if spec.model_uri else set()
    for channel in spec.channels:
        if channel.name in reserved:
            raise SpecError(where(f"channels.{channel.name}"), "is reserved for the code or model sagepush delivers")
    if spec.distribution:
        _check_distribution(spec, where)


def _check_framework(spec: TrainingSpec, where: Callable[[str], str]) -> None:
    if spec.framework is None:
        if spec.image_uri is None:
            raise SpecError(where("framework"), f"is required unless image_uri is set (one of {', '.join(FRAMEWORKS)})")
        return
    if spec.framework != "huggingface" and (spec.pytorch_version or spec.tensorflow_version):
        name = "pytorch_version" if spec.pytorch_version else "tensorflow_version"
        raise SpecError(where(name), 'applies only to framework = "huggingface"')
    if spec.image_uri is not None:
        return
    version_key = "transformers_version" if spec.framework == "huggingface" else "framework_version"
    if spec.framework_version is None:
        raise SpecError(where(version_key), f"is required for framework = {_quote(spec.framework)} without image_uri")
    if spec.framework in ("sklearn", "xgboost"):
        if spec.py_version not in (None, "py3"):
            raise SpecError(
                where("py_version"), f"{_quote(spec.py_version)} is not available for {spec.framework} (use py3)"
            )
    elif spec.py_version is None:
        raise SpecError(where("py_version"), f'is required for framework = {_quote(spec.framework)} (like "py311")')
    if spec.framework == "sklearn" and spec.instance_count != 1:
        raise SpecError(where("instance_count"), "must be 1: scikit-learn does not train distributed")
    if spec.framework == "huggingface":
        _check_huggingface(spec, spec.framework_version, where)


def _check_huggingface(spec: TrainingSpec, version: str, where: Callable[[str], str]) -> None:
    if (spec.pytorch_version is None) == (spec.tensorflow_version is None):
        raise SpecError(
            where("pytorch_version"), "huggingface needs exactly one of pytorch_version or tensorflow_version"
        )
    base = spec.pytorch_version or spec.tensorflow_version or ""
    if len(base.split(".")) != len(version.split(".")):
        raise SpecError(
            where("transformers_version"),
            "and the base framework version must both be full (4.28.1) or both be short (4.28)",
        )


def _enabled(options: object) -> bool:
    return isinstance(options, dict) and options.get("enabled", False) is True


def _check_distribution(spec: TrainingSpec, where: Callable[[str], str]) -> None:
    distribution = spec.distribution
    framework = spec.framework
    if framework is not None:
        allowed = _STRATEGIES[framework]
        for strategy in distribution:
            if strategy not in allowed:
                hint = f"use one of {', '.join(allowed)}" if allowed else f"{framework} does not train distributed"
                raise SpecError(where(f"distribution.{strategy}"), f"is not available for {framework} ({hint})")
    family = spec.instance_type.split(".")[1]
    if family.startswith("trn") and (len(distribution) > 1 or set(distribution) - {"torch_distributed"}):
        raise SpecError(where("distribution"), "Trainium instances support only torch_distributed")
    base_framework, base_version = framework, spec.framework_version
    if framework == "huggingface":
        base_framework = "tensorflow" if spec.tensorflow_version else "pytorch"
        base_version = spec.tensorflow_version or spec.pytorch_version
    py3 = "py3" in (spec.py_version or "")
    torch_distributed = _enabled(distribution.get("torch_distributed"))
    if _enabled(distribution.get("smdistributed", {}).get("dataparallel")):
        _check_smddp(spec, base_framework, base_version, py3, torch_distributed, where("distribution.smdistributed"))
    if torch_distributed and base_framework == "pytorch":
        _check_torch_distributed(spec, family, base_version, py3, where("distribution.torch_distributed"))
    if _enabled(distribution.get("multi_worker_mirrored_strategy")):
        at = where("distribution.multi_worker_mirrored_strategy")
        if spec.framework_version and _version_tuple(spec.framework_version) < (2, 9):
            raise SpecError(at, f"needs tensorflow 2.9 or later, found {spec.framework_version}")
        if {"smdistributed", "parameter_server"} & set(distribution):
            raise SpecError(at, "cannot be combined with smdistributed or parameter_server")


def _check_smddp(
    spec: TrainingSpec, framework: str | None, version: str | None, py3: bool, torch_distributed: bool, at: str
) -> None:
    supported = _SMDDP_VERSIONS.get(framework or "", frozenset())
    if spec.image_uri is None and version not in supported:
        listed = ", ".join(sorted(supported, key=_version_tuple))
        raise SpecError(at, f"needs a framework version among {listed} (or an image_uri), found {_quote(version)}")
    if spec.image_uri is None and not py3:
        raise SpecError(at, "needs py_version py3 or later")
    if "p5.48xlarge" in spec.instance_type and not torch_distributed:
        raise SpecError(at, "does not support p5 instances")


def _check_torch_distributed(spec: TrainingSpec, family: str, version: str | None, py3: bool, at: str) -> None:
    if spec.image_uri is None:
        if not py3:
            raise SpecError(at, "needs py_version py3 or later")
        if family.startswith(("p", "g")):
            if version not in _TORCH_DISTRIBUTED_GPU_VERSIONS:
                listed = ", ".join(sorted(_TORCH_DISTRIBUTED_GPU_VERSIONS, key=_version_tuple))
                raise SpecError(at, f"on GPU needs a full framework version among {listed}, found {_quote(version)}")
        elif family.startswith("trn"):
            if version not in _TORCH_DISTRIBUTED_TRN_VERSIONS:
                listed = ", ".join(sorted(_TORCH_DISTRIBUTED_TRN_VERSIONS, key=_version_tuple))
                raise SpecError(at, f"on Trainium needs a framework version among {listed}, found {_quote(version)}")
        else:
            raise SpecError(at, f"runs only on GPU or Trainium instances, not {spec.instance_type}")
    if not spec.entry_point.endswith(".py"):
        raise SpecError(at, f"needs a Python entry point (*.py), not {_quote(spec.entry_point)}")


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def _decode(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(source, f"is not UTF-8 text (byte {exc.start})") from exc


def _load_toml(text: str, where: str, what: str = "") -> dict[str, Any]:
    """Parse TOML, refusing what does not parse and what nests deeper than MAX_NESTING."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(where, f"{what}is not valid TOML ({exc})") from exc
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        raise SpecError(where, f"{what}nests arrays or tables more than {MAX_NESTING} levels deep") from None
    pending: list[tuple[object, int]] = [(document, 0)]
    while pending:  # iteratively: the point is to refuse what recursive code downstream could not walk
        value, depth = pending.pop()
        if depth > MAX_NESTING:
            raise SpecError(where, f"{what}nests arrays or tables more than {MAX_NESTING} levels deep")
        if isinstance(value, dict):
            pending.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            pending.extend((item, depth + 1) for item in value)
    return document


def _table(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise SpecError(where, f"must be a table, found {type(value).__name__}")
    return value


__all__ = [
    "FRAMEWORKS",
    "MANIFEST_KEYS",
    "MANIFEST_NAMES",
    "V3_KEYS",
    "V3_NAMES",
    "Channel",
    "Defaults",
    "Manifest",
    "MetricDefinition",
    "SpecError",
    "TrainingSpec",
    "find_manifest",
    "parse_duration",
    "read_script_metadata",
    "resolve_spec",
    "spec_to_manifest",
]
