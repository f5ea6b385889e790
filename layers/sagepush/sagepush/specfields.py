"""The manifest's field parsers: each takes a raw value and the `file: field` label its errors carry, and returns the
typed value (`PARSERS`, by TrainingSpec field), or raises SpecError naming the field and what it expected."""

from __future__ import annotations

import difflib
import json
import math
import re
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from sagepush.specmodel import (
    FRAMEWORKS,
    INPUT_MODES,
    MAX_RUN_LIMIT,
    MIN_PENDING_TIME,
    Channel,
    MetricDefinition,
    SpecError,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

_DURATION = re.compile(r"^\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+)\s*s)?\s*$")
_S3_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$")
_INSTANCE_TYPE = re.compile(r"^ml\.[a-z0-9\-]+\.[a-z0-9]+$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z\-]*:iam::\d{12}:role/[\w+=,.@\-/]+$")
_CHANNEL_NAME = re.compile(r"^[A-Za-z0-9.\-_]{1,64}$")
_TRAINING_PLAN = re.compile(r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:training-plan/[^/\s]+$")
_MLFLOW_RESOURCE = re.compile(
    r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:(mlflow-tracking-server|mlflow-app)/[^/\s]+$"
)
_VERSION = re.compile(r"^\d+(\.\d+)*(-\d+)?$")
_DRIVE = re.compile(r"^[A-Za-z]:")
_ALGORITHM_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_ALGORITHM_ARN = re.compile(
    r"^arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]+:\d{12}:algorithm/[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$"
)
_LOG_LEVELS = {"CRITICAL": 50, "ERROR": 40, "WARNING": 30, "INFO": 20, "DEBUG": 10, "NOTSET": 0}


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
    raise SpecError(where, f"{quote(value)} is not a duration (use 90m, 2h or seconds)")


def plain(value: Any) -> Any:
    if isinstance(value, dict | MappingProxyType):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def quote(value: object, limit: int = 60) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except ValueError:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def did_you_mean(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""


def type_name(value: object) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list"}.get(
        type(value), "a table" if isinstance(value, dict) else type(value).__name__
    )


def string(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise SpecError(where, f"must be a string, found {type_name(value)} {quote(value)}")
    if not value.strip():
        raise SpecError(where, "must not be empty")
    return value


def _choice(options: tuple[str, ...]) -> Callable[[object, str], str]:
    def parse(value: object, where: str) -> str:
        text = string(value, where)
        if text not in options:
            listed = ", ".join(options)
            raise SpecError(where, f"{quote(value)} is not one of {listed}{did_you_mean(text, options)}")
        return text

    return parse


def _algorithm(value: object, where: str) -> str:
    """A built-in algorithm with an image of its own, or "xgboost" (its framework image, run without a script)."""
    from sagepush import images  # the image data is read only when a manifest names an algorithm

    return _choice((*images.algorithms(), "xgboost"))(value, where)


def _algorithm_name(value: object, where: str) -> str:
    """An algorithm resource: its name in this account, or its ARN (a subscribed AWS Marketplace algorithm)."""
    text = string(value, where)
    if not _ALGORITHM_NAME.match(text) and not _ALGORITHM_ARN.match(text):
        raise SpecError(
            where,
            f"{quote(value)} is not an algorithm name or ARN (arn:aws:sagemaker:<region>:<account>:algorithm/<name>)",
        )
    return text


def _boolean(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise SpecError(where, f"must be true or false, found {quote(value)}")
    return value


def _integer(low: int, high: int) -> Callable[[object, str], int]:
    def parse(value: object, where: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(where, f"must be an integer, found {type_name(value)} {quote(value)}")
        if not low <= value <= high:
            raise SpecError(where, f"{value} is out of range ({low} to {high})")
        return value

    return parse


def _duration(value: object, where: str) -> int:
    seconds = parse_duration(value, where)
    if not 1 <= seconds <= MAX_RUN_LIMIT:
        raise SpecError(where, f"{quote(value)} is out of range (1 second to 28 days)")
    return seconds


def _pending_time(value: object, where: str) -> int:
    """StoppingCondition.MaxPendingTimeInSeconds: 30 minutes to 28 days in botocore's model."""
    seconds = parse_duration(value, where)
    if not MIN_PENDING_TIME <= seconds <= MAX_RUN_LIMIT:
        raise SpecError(where, f"{quote(value)} is out of range (30 minutes to 28 days)")
    return seconds


def strings(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        raise SpecError(where, f"must be a list of strings, found {type_name(value)} {quote(value)}")
    return tuple(string(item, f"{where}[{i}]") for i, item in enumerate(value))


def s3_uri(value: object, where: str) -> str:
    text = string(value, where)
    if not _S3_URI.match(text):
        raise SpecError(where, f"{quote(value)} is not an S3 URI (use s3://bucket/prefix)")
    return text


def _version(value: object, where: str) -> str:
    if isinstance(value, float | int) and not isinstance(value, bool):
        raise SpecError(where, f'must be a string, found the number {value} (quote it: "{value}")')
    text = string(value, where)
    if not _VERSION.match(text):
        raise SpecError(where, f'{quote(value)} is not a version (use digits and dots, like "2.5")')
    return text


def _instance_type(value: object, where: str) -> str:
    text = string(value, where)
    if not _INSTANCE_TYPE.match(text):
        raise SpecError(where, f"{quote(value)} is not a SageMaker instance type (like ml.m5.xlarge)")
    return text


def _role(value: object, where: str) -> str:
    text = string(value, where)
    if not _ROLE_ARN.match(text):
        raise SpecError(where, f"{quote(value)} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)")
    return text


def relative_path(value: object, where: str) -> str:
    text = string(value, where)
    parts = text.replace("\\", "/").split("/")
    if text.startswith("/") or ".." in parts or "://" in text:
        raise SpecError(where, f"{quote(value)} must be a path relative to the upload's root")
    return text


def project_path(value: object, where: str) -> str:
    """A path inside the project, relative to its root and normalised (no `./`, empty parts or trailing `/`); the
    root itself is ""."""
    text = string(value, where)
    parts = [p for p in text.replace("\\", "/").split("/") if p not in ("", ".")]
    if text.startswith(("/", "\\")) or _DRIVE.match(text) or ".." in parts or "://" in text:
        raise SpecError(
            where, f"{quote(value)} is outside the project: paths are relative to the project root, inside it"
        )
    return "/".join(parts)


def dependencies(value: object, where: str) -> tuple[str, ...]:
    """The SDK's `dependencies`: files and folders of the project, each staged at the code's root by its name."""
    if not isinstance(value, list | tuple):
        example = f" (write [{quote(value)}])" if isinstance(value, str) else ""
        raise SpecError(
            where,
            f"must be a list of paths (files or folders, relative to the project root), found {type_name(value)} "
            f"{quote(value)}{example}",
        )
    paths: list[str] = []
    for i, item in enumerate(value):
        string(item, f"{where}[{i}]")
        path = project_path(item, where)
        if not path:
            raise SpecError(where, f"{quote(item)} is the project root itself: name a file or folder in it")
        if path in paths:
            raise SpecError(where, f"{quote(item)} is listed twice")
        paths.append(path)
    return tuple(paths)


def table_of(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict | MappingProxyType):
        raise SpecError(where, f"must be a table, found {type_name(value)} {quote(value)}")
    return value


def _hyperparameters(value: object, where: str) -> Mapping[str, Any]:
    table = table_of(value, where)
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
        raise SpecError(where, f"{type_name(value)} {quote(value)} has no JSON form (quote it as a string)")


def _environment(value: object, where: str) -> Mapping[str, str]:
    table = table_of(value, where)
    result: dict[str, str] = {}
    for key, item in table.items():
        if not isinstance(item, str):
            raise SpecError(f"{where}.{key}", f'must be a string, found {type_name(item)} (quote it: "{item}")')
        result[key] = item
    return MappingProxyType(result)


def _tags(value: object, where: str) -> Mapping[str, str]:
    table = table_of(value, where)
    result: dict[str, str] = {}
    for key, item in table.items():
        if key.startswith(("aws:", "sagepush:")):
            raise SpecError(
                f"{where}.{key}", f"is reserved: tag keys starting with `{key.split(':')[0]}:` are not yours"
            )
        if not isinstance(item, str):
            raise SpecError(f"{where}.{key}", f"must be a string, found {type_name(item)} {quote(item)}")
        result[key] = item
    return MappingProxyType(result)


def merge_tags(previous: tuple[Any, str], value: object, where: str) -> Mapping[str, Any]:
    return {**table_of(previous[0], f"{previous[1]}: tags"), **table_of(value, where)}


def _json_table(value: object, where: str) -> Mapping[str, Any]:
    table = table_of(value, where)
    _check_json(dict(table), where)
    return MappingProxyType(plain(table))


def _log_level(value: object, where: str) -> int:
    if isinstance(value, str) and value.upper() in _LOG_LEVELS:
        return _LOG_LEVELS[value.upper()]
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 50:
        return value
    raise SpecError(where, f"{quote(value)} is not a log level (use DEBUG, INFO, WARNING, ERROR or 10-50)")


def _model_dir(value: object, where: str) -> str | bool:
    if value is False:
        return False
    return string(value, where)


CHANNEL_KEYS = {
    "s3_uri": s3_uri,
    "input_mode": _choice(INPUT_MODES),
    "distribution": _choice(("FullyReplicated", "ShardedByS3Key")),
    "content_type": string,
    "compression": _choice(("None", "Gzip")),
    "s3_data_type": _choice(("S3Prefix", "ManifestFile", "AugmentedManifestFile", "Converse")),
    "record_wrapping": _choice(("None", "RecordIO")),
    "attribute_names": strings,
    "shuffle_seed": _integer(0, 2**63 - 1),
}
_CHANNEL_ALIASES = {"s3_data": "s3_uri", "record_wrapper_type": "record_wrapping"}


def _channels(value: object, where: str) -> tuple[Channel, ...]:
    table = table_of(value, where)
    channels = []
    for name, item in table.items():
        at = f"{where}.{name}"
        if not _CHANNEL_NAME.match(name):
            raise SpecError(at, "is not a channel name (letters, digits, '.', '-', '_'; at most 64)")
        if isinstance(item, str):
            channels.append(Channel(name=name, s3_uri=s3_uri(item, at)))
            continue
        options: dict[str, Any] = {}
        for raw_key, option in table_of(item, at).items():
            key = _CHANNEL_ALIASES.get(raw_key, raw_key)
            if key not in CHANNEL_KEYS:
                known = [*CHANNEL_KEYS, *_CHANNEL_ALIASES]
                raise SpecError(f"{at}.{raw_key}", f"unknown channel option{did_you_mean(raw_key, known)}")
            options[key] = CHANNEL_KEYS[key](option, f"{at}.{raw_key}")
        if "s3_uri" not in options:
            raise SpecError(f"{at}.s3_uri", "is required (the S3 location of the channel's data)")
        channels.append(Channel(name=name, **options))
    return tuple(channels)


def _metric_definitions(value: object, where: str) -> tuple[MetricDefinition, ...]:
    if not isinstance(value, list | tuple):
        raise SpecError(where, f"must be a list of {{ Name, Regex }} tables, found {type_name(value)}")
    result = []
    for i, item in enumerate(value):
        at = f"{where}[{i}]"
        table = {k.lower(): v for k, v in table_of(item, at).items()}
        unknown = sorted(set(table) - {"name", "regex"})
        if unknown or not {"name", "regex"} <= set(table):
            raise SpecError(at, "must hold exactly `Name` and `Regex`")
        regex = string(table["regex"], f"{at}.Regex")
        try:
            re.compile(regex)
        except re.error as exc:
            raise SpecError(f"{at}.Regex", f"{quote(regex)} is not a regular expression ({exc})") from exc
        result.append(MetricDefinition(name=string(table["name"], f"{at}.Name"), regex=regex))
    return tuple(result)


STRATEGY_OPTIONS: dict[str, dict[str, Callable[[object, str], object]]] = {
    "torch_distributed": {"enabled": _boolean},
    "pytorchddp": {"enabled": _boolean},
    "parameter_server": {"enabled": _boolean},
    "multi_worker_mirrored_strategy": {"enabled": _boolean},
    "mpi": {"enabled": _boolean, "processes_per_host": _integer(1, 1024), "custom_mpi_options": string},
}
_SMDDP_OPTIONS: dict[str, Callable[[object, str], object]] = {"enabled": _boolean, "custom_mpi_options": string}


def _distribution(value: object, where: str) -> Mapping[str, Any]:
    table = table_of(value, where)
    known = [*STRATEGY_OPTIONS, "smdistributed"]
    result: dict[str, Any] = {}
    for strategy, options in table.items():
        at = f"{where}.{strategy}"
        if strategy == "smdistributed":
            inner = table_of(options, at)
            if set(inner) - {"dataparallel"}:
                raise SpecError(at, "supports only `dataparallel` (model parallelism needs request_overrides)")
            result[strategy] = {
                "dataparallel": _options(inner.get("dataparallel", {}), f"{at}.dataparallel", _SMDDP_OPTIONS)
            }
        elif strategy in STRATEGY_OPTIONS:
            result[strategy] = _options(options, at, STRATEGY_OPTIONS[strategy])
        else:
            raise SpecError(at, f"is not a distribution strategy{did_you_mean(strategy, known)}")
    return MappingProxyType(result)


def _tensorboard(value: object, where: str) -> Mapping[str, str]:
    """The SDK's TensorBoardOutputConfig: `s3_output_path` (required) and `container_local_output_path`."""
    parsed = _options(value, where, {"s3_output_path": s3_uri, "container_local_output_path": string})
    if "s3_output_path" not in parsed:
        raise SpecError(f"{where}.s3_output_path", "is required (where SageMaker uploads the TensorBoard data)")
    return MappingProxyType(parsed)


def _channel_name(value: object, where: str) -> str:
    text = string(value, where)
    if not _CHANNEL_NAME.match(text):
        raise SpecError(where, f"{quote(value)} is not a channel name (letters, digits, '.', '-', '_'; 1 to 64)")
    return text


def _training_plan(value: object, where: str) -> str:
    """ResourceConfig.TrainingPlanArn: a SageMaker training plan (reserved capacity), by ARN."""
    text = string(value, where)
    if not _TRAINING_PLAN.match(text):
        raise SpecError(
            where, f"{quote(value)} is not a training plan ARN (arn:aws:sagemaker:REGION:ACCOUNT:training-plan/NAME)"
        )
    return text


def _mlflow(value: object, where: str) -> Mapping[str, str]:
    """MlflowConfig: `mlflow_resource_arn` (required: a SageMaker MLflow tracking server or app), the experiment and
    run names."""
    parsed = _options(
        value, where, {"mlflow_resource_arn": string, "mlflow_experiment_name": string, "mlflow_run_name": string}
    )
    arn = parsed.get("mlflow_resource_arn")
    if arn is None:
        raise SpecError(f"{where}.mlflow_resource_arn", "is required (the MLflow tracking server or app to log to)")
    if not _MLFLOW_RESOURCE.match(arn):
        raise SpecError(
            f"{where}.mlflow_resource_arn",
            f"{quote(arn)} is not a SageMaker MLflow ARN (arn:aws:sagemaker:REGION:ACCOUNT:mlflow-tracking-server/NAME "
            "or mlflow-app/NAME)",
        )
    return MappingProxyType(parsed)


def _options(value: object, where: str, schema: Mapping[str, Callable[[object, str], object]]) -> dict[str, Any]:
    table = table_of(value, where)
    result = {}
    for key, item in table.items():
        if key not in schema:
            raise SpecError(f"{where}.{key}", f"unknown option{did_you_mean(key, schema)}")
        result[key] = schema[key](item, f"{where}.{key}")
    return result


PARSERS: dict[str, Callable[[object, str], Any]] = {
    "entry_point": relative_path,
    "source_dir": relative_path,
    "dependencies": dependencies,
    "framework": _choice(FRAMEWORKS),
    "framework_version": _version,
    "py_version": string,
    "image_uri": string,
    "algorithm": _algorithm,
    "algorithm_name": _algorithm_name,
    "pytorch_version": _version,
    "tensorflow_version": _version,
    "role": _role,
    "instance_type": _instance_type,
    "instance_count": _integer(1, 1000),
    "volume_size": _integer(1, 16384),
    "volume_kms_key": string,
    "max_run": _duration,
    "input_mode": _choice(INPUT_MODES),
    "hyperparameters": _hyperparameters,
    "environment": _environment,
    "channels": _channels,
    "metric_definitions": _metric_definitions,
    "use_spot_instances": _boolean,
    "max_wait": _duration,
    "max_pending_time": _pending_time,
    "checkpoint_s3_uri": s3_uri,
    "checkpoint_local_path": string,
    "tensorboard_output_config": _tensorboard,
    "subnets": strings,
    "security_group_ids": strings,
    "enable_network_isolation": _boolean,
    "encrypt_inter_container_traffic": _boolean,
    "output_path": s3_uri,
    "output_kms_key": string,
    "disable_output_compression": _boolean,
    "distribution": _distribution,
    "tags": _tags,
    "container_log_level": _log_level,
    "max_retry_attempts": _integer(1, 30),
    "keep_alive_period_in_seconds": _integer(0, 3600),
    "training_plan": _training_plan,
    "enable_session_tag_chaining": _boolean,
    "mlflow_config": _mlflow,
    "model_dir": _model_dir,
    "model_uri": s3_uri,
    "enable_sagemaker_metrics": _boolean,
    "enable_infra_check": _boolean,
    "container_entry_point": strings,
    "code_channel": _channel_name,
    "container_arguments": strings,
    "allow_secrets": strings,
    "request_overrides": _json_table,
}
