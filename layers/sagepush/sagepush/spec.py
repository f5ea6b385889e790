"""What the user declares: the manifest in the upload (a sagepush.toml, a pyproject.toml table or a script's PEP 723
block), found, read in either SDK vocabulary (v2 estimator or v3 ModelTrainer names) and resolved into a TrainingSpec.

The types live in `specmodel`, the per-field parsers in `specfields`, the cross-field checks in `sdkchecks`.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import fields
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from sagepush import sdkchecks, specfields
from sagepush.specfields import parse_duration
from sagepush.specmodel import (
    DEFAULTS_SOURCE,
    EMPTY,
    FRAMEWORKS,
    MANIFEST_NAMES,
    MAX_NESTING,
    OVERRIDES_SOURCE,
    Channel,
    CodeLayout,
    Defaults,
    Manifest,
    MetricDefinition,
    SpecError,
    TrainingSpec,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

# PEP 723 reference regex: https://peps.python.org/pep-0723/#reference-implementation
_SCRIPT_BLOCK = re.compile(r"(?m)^# /// (?P<type>[a-zA-Z0-9-]+)$\s(?P<content>(^#(| .*)$\s)+)^# ///$")


# Keys a manifest may use that are not TrainingSpec fields (or are spelled differently there).
_ALIASES = {"transformers_version": "framework_version"}
_NOT_MANIFEST_KEYS = frozenset({"requirements", "source", "declared"})
MANIFEST_KEYS = tuple(
    sorted({f.name for f in fields(TrainingSpec)} - _NOT_MANIFEST_KEYS | set(_ALIASES)),
)
"""Every key a `[tool.sagepush]` table accepts."""

_REQUIRED = ("role", "instance_type", "output_path")
# Tables of the manifest that are not the training job's: sagepush.registry reads them (the model and its endpoint).
_REGISTRY_KEYS = frozenset({"model", "endpoint"})


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
        # PEP 723's `dependencies` are requirements (staged as requirements.txt), not the manifest key of that name
        requirements = metadata.get("dependencies", [])
        if not isinstance(requirements, list) or not all(isinstance(d, str) for d in requirements):
            raise SpecError(f"{script}: dependencies", "must be a list of requirement strings")
        # The script is the entry point unless its block says otherwise; the table then stands on its own.
        return Manifest(source=script, table={"entry_point": script, **table}, requirements=tuple(requirements))
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


def code_layout(manifest: Manifest | None) -> CodeLayout:
    """Return what `manifest` says is staged: `source_dir` (or v3's `source_code.source_dir`) and `dependencies`.

    Staging reads them before the spec is resolved: they decide the staged code, and so its digest.

    Raises:
        SpecError: a value that is not a path inside the project (or a list of them); `where` names the field.
    """
    if manifest is None:
        return CodeLayout()
    table, source = manifest.table, manifest.source
    group = table.get("source_code")
    spelled = [("source_dir", table["source_dir"])] if "source_dir" in table else []
    if isinstance(group, dict) and "source_dir" in group:
        spelled.append(("source_code.source_dir", group["source_dir"]))
    if len(spelled) > 1:
        raise SpecError(
            f"{source}: source_code.source_dir", "sets the same field as `source_dir`; keep one of the two spellings"
        )
    source_dir, where_source_dir = None, f"{source}: source_dir"
    if spelled:
        label, value = spelled[0]
        where_source_dir = f"{source}: {label}"
        specfields.relative_path(value, where_source_dir)
        source_dir = specfields.project_path(value, where_source_dir) or None  # "." is the project root
    where_dependencies = f"{source}: dependencies"
    found = specfields.dependencies(table["dependencies"], where_dependencies) if "dependencies" in table else ()
    return CodeLayout(source_dir, found, where_source_dir, where_dependencies)


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
    values, declared = _gather(manifest, defaults, overrides or EMPTY, labels)
    parsed: dict[str, Any] = {}
    for key, (value, origin) in values.items():
        parser = specfields.PARSERS.get(key)
        if parser is not None:
            parsed[key] = parser(value, f"{origin}: {labels.get(key, key)}")
    if parsed.get("use_spot_instances") and "max_wait" not in parsed:
        # Managed spot needs MaxWaitTimeInSeconds; waiting as long as the job may run is the least surprising.
        parsed["max_wait"] = parsed.get("max_run", defaults.max_run)
    if "entry_point" not in parsed:
        if not {"image_uri", "algorithm", "algorithm_name"} & set(parsed) or "framework" in parsed:
            # Only an image of one's own runs without a script: a framework image needs one.
            raise SpecError(f"{source}: entry_point", "is required (set it in the manifest or as a deployment default)")
        parsed["entry_point"] = None
    for key in _REQUIRED:
        if key not in parsed:
            raise SpecError(f"{source}: {key}", "is required (set it in the manifest or as a deployment default)")
    spec = TrainingSpec(
        **parsed,
        requirements=manifest.requirements if manifest else (),
        source=source,
        declared=frozenset(declared),
    )
    origins = {key: origin for key, (_, origin) in values.items()}
    v3 = any(label != key and label.split(".")[0] in _V3_SPELLINGS for key, label in labels.items())
    spelled = {field: label for label, field in V3_NAMES.items()} if v3 else {}

    def name(field: str) -> str:
        """The key the manifest set `field` with, else its spelling in the manifest's vocabulary (v2 or v3)."""
        return labels.get(field) or spelled.get(field, field)

    sdkchecks.check_spec(spec, lambda field: f"{origins.get(field.split('.')[0], source)}: {name(field)}", name)
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
    for table, origin in ((manifest.table if manifest else EMPTY, source), (overrides, OVERRIDES_SOURCE)):
        spelled: dict[str, str] = {}
        for label, key, value in _spellings(table, origin):
            if key in spelled:
                raise SpecError(
                    f"{origin}: {label}", f"sets the same field as `{spelled[key]}`; keep one of the two spellings"
                )
            spelled[key] = label
            merged = specfields.merge_tags(values["tags"], value, f"{origin}: tags") if key == "tags" else value
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
        table[f.name] = specfields.plain(value)
    return table


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
        "compute.training_plan_arn": "training_plan",
        "session_chaining_config.enable_session_tag_chaining": "enable_session_tag_chaining",
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
            group = specfields.table_of(value, f"{origin}: {raw_key}")
            for attribute, item in group.items():
                label = f"{raw_key}.{attribute}"
                if label == _V3_REQUIREMENTS:
                    _v3_requirements(item, f"{origin}: {label}")
                elif label in V3_NAMES:
                    yield label, V3_NAMES[label], _from_v3(label, item, f"{origin}: {label}")
                else:
                    known = [k.split(".", 1)[1] for k in V3_KEYS if k.startswith(f"{raw_key}.")]
                    raise SpecError(f"{origin}: {label}", f"unknown key{specfields.did_you_mean(attribute, known)}")
        elif raw_key in V3_NAMES:
            yield raw_key, V3_NAMES[raw_key], _from_v3(raw_key, value, f"{origin}: {raw_key}")
        elif raw_key in _REGISTRY_KEYS:  # `[model]` and `[endpoint]`: read by sagepush.registry
            continue
        elif raw_key == "strategy":  # read by sagepush.strategy, which hands each job its table without it
            raise SpecError(
                f"{origin}: strategy",
                "a matrix of jobs runs from a push (StageFunction starts one execution for all its jobs); one job's "
                "manifest cannot hold one: give each combination's values instead",
            )
        else:
            known = [*MANIFEST_KEYS, *_V3_GROUPS, *(k for k in V3_NAMES if "." not in k), *sorted(_REGISTRY_KEYS)]
            raise SpecError(f"{origin}: {raw_key}", f"unknown key{specfields.did_you_mean(raw_key, known)}")


def _from_v3(label: str, value: object, where: str) -> object:
    if label == "output_data_config.compression_type":
        if value not in ("GZIP", "NONE"):
            raise SpecError(where, f"{specfields.quote(value)} is not one of GZIP, NONE")
        return value == "NONE"
    if label == "input_data_config":
        return _v3_input_data_config(value, where)
    if label == "distributed":
        return _v3_distributed(value, where)
    return value


def _v3_requirements(value: object, where: str) -> None:
    path = specfields.relative_path(value, where)
    if path.removeprefix("./") != "requirements.txt":
        raise SpecError(
            where,
            f"{specfields.quote(value)}: the framework containers install requirements.txt at the code's root (rename it)",
        )


def _v3_input_data_config(value: object, where: str) -> dict[str, Any]:
    """Return v3's list of channels (`InputData` or `Channel`) as the `channels` table."""
    if not isinstance(value, list | tuple):
        raise SpecError(
            where, f"must be a list of {{ channel_name, data_source }} tables, found {specfields.type_name(value)}"
        )
    channels: dict[str, Any] = {}
    for i, item in enumerate(value):
        at = f"{where}[{i}]"
        table = dict(specfields.table_of(item, at))
        if "channel_name" not in table or "data_source" not in table:
            missing = "channel_name" if "channel_name" not in table else "data_source"
            raise SpecError(f"{at}.{missing}", "is required")
        name = specfields.string(table.pop("channel_name"), f"{at}.channel_name")
        if name in channels:
            raise SpecError(f"{at}.channel_name", f"{specfields.quote(name)} names a channel twice")
        options = _v3_data_source(table.pop("data_source"), f"{at}.data_source")
        for key, option in table.items():
            if key == "shuffle_config":
                shuffle = specfields.table_of(option, f"{at}.{key}")
                if set(shuffle) != {"seed"}:
                    raise SpecError(f"{at}.{key}", "must hold exactly `seed`")
                options["shuffle_seed"] = specfields.CHANNEL_KEYS["shuffle_seed"](shuffle["seed"], f"{at}.{key}.seed")
            elif key in _V3_CHANNEL_OPTIONS:
                options[_V3_CHANNEL_OPTIONS[key]] = specfields.CHANNEL_KEYS[_V3_CHANNEL_OPTIONS[key]](
                    option, f"{at}.{key}"
                )
            else:
                known = ["channel_name", "data_source", "shuffle_config", *_V3_CHANNEL_OPTIONS]
                raise SpecError(f"{at}.{key}", f"unknown channel option{specfields.did_you_mean(key, known)}")
        channels[name] = options
    return channels


def _v3_data_source(value: object, where: str) -> dict[str, Any]:
    if isinstance(value, str):
        return {"s3_uri": specfields.s3_uri(value, where)}
    source = specfields.table_of(value, where)
    if set(source) != {"s3_data_source"}:
        raise SpecError(
            where, "supports an S3 URI or `s3_data_source` only (file systems and datasets need request_overrides)"
        )
    options: dict[str, Any] = {}
    for key, option in specfields.table_of(source["s3_data_source"], f"{where}.s3_data_source").items():
        if key not in _V3_S3_SOURCE:
            raise SpecError(
                f"{where}.s3_data_source.{key}", f"unknown option{specfields.did_you_mean(key, _V3_S3_SOURCE)}"
            )
        field = _V3_S3_SOURCE[key]
        options[field] = specfields.CHANNEL_KEYS[field](option, f"{where}.s3_data_source.{key}")
    return options


def _v3_distributed(value: object, where: str) -> dict[str, Any]:
    """Return `distributed = { Torchrun = {...} }` or `{ MPI = {...} }` as the v2 `distribution` it runs as."""
    table = specfields.table_of(value, where)
    if len(table) != 1 or next(iter(table)) not in ("Torchrun", "MPI"):
        raise SpecError(where, "must hold one runner: Torchrun or MPI")
    runner, options = next(iter(table.items()))
    at = f"{where}.{runner}"
    options = specfields.table_of(options, at)
    if runner == "Torchrun":
        for key in options:
            if key == "process_count_per_node":
                reason = "torchrun starts one process per GPU or Neuron core, as the SDK's torch_distributed does"
            elif key == "smp":
                reason = "model parallelism needs request_overrides"
            else:
                raise SpecError(
                    f"{at}.{key}", f"unknown option{specfields.did_you_mean(key, ['process_count_per_node'])}"
                )
            raise SpecError(f"{at}.{key}", f"is not supported ({reason})")
        return {"torch_distributed": {"enabled": True}}
    mpi: dict[str, Any] = {"enabled": True}
    for key, option in options.items():
        if key == "process_count_per_node":
            mpi["processes_per_host"] = specfields.STRATEGY_OPTIONS["mpi"]["processes_per_host"](option, f"{at}.{key}")
        elif key == "mpi_additional_options":
            mpi["custom_mpi_options"] = " ".join(specfields.strings(option, f"{at}.{key}"))
        else:
            known = ["process_count_per_node", "mpi_additional_options"]
            raise SpecError(f"{at}.{key}", f"unknown option{specfields.did_you_mean(key, known)}")
    return {"mpi": mpi}


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
    "CodeLayout",
    "Defaults",
    "Manifest",
    "MetricDefinition",
    "SpecError",
    "TrainingSpec",
    "code_layout",
    "find_manifest",
    "parse_duration",
    "read_script_metadata",
    "resolve_spec",
    "spec_to_manifest",
]
