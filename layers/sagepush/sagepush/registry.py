"""A job's model in the Model Registry and on an endpoint: the manifest's `[model]` and `[endpoint]`, the approval gate,
and the SageMaker requests that register, create and deploy the model, encoded as the SageMaker Python SDK v2 does."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import operator
import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, cast

from sagepush import request, specfields
from sagepush.errors import InputError
from sagepush.specmodel import SpecError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from botocore.model import Shape

MODEL_KEY: Final = "model"
ENDPOINT_KEY: Final = "endpoint"
APPROVED: Final = "Approved"
PENDING: Final = "PendingManualApproval"
REJECTED: Final = "Rejected"
DEFAULT_TYPES: Final = ("text/csv", "application/json")
"""The content and response types a package declares unless `[model]` names its own."""
VARIANT: Final = "AllTraffic"
"""The production variant's name, as the SDK's `deploy()` names it."""
DEFAULT_MAX_CONCURRENCY: Final = 5
"""Serverless MaxConcurrency when `[endpoint]` sets none: the SDK's `ServerlessInferenceConfig` default."""
ROLLBACK_WAIT_SECONDS: Final = 300
"""How long a blue/green update watches its alarms before it shifts traffic for good (when there are alarms)."""
METRIC_PREFIX: Final = "metric:"
METRICS_FILE: Final = "model-metrics.json"
"""The statistics document of a job's final metrics, written next to its model.tar.gz (`metrics_statistics`)."""
METRICS_CONTENT_TYPE: Final = "application/json"
PROJECT_PROPERTY: Final = "sagepush:project"
"""The CustomerMetadataProperties key naming a package's project: sagepush acts only on packages that have one."""
JOB_PROPERTY: Final = "sagepush:job"
"""The CustomerMetadataProperties key naming the training job a package's model came from."""
ENDPOINT_PROPERTY: Final = "sagepush:endpoint"
"""The CustomerMetadataProperties key naming the endpoint an approved version is deployed to."""
SOURCE_PROPERTIES: Final[Mapping[str, str]] = {
    "commit": "sagepush:commit",
    "branch": "sagepush:branch",
    "repo": "sagepush:repository",
}
"""The CustomerMetadataProperties keys of a package's lineage, by upload source field (`jobs.SOURCE_FIELDS`)."""
ENDPOINT_PREFIX: Final = "sagepush:endpoint:"
OPERATIONS: Final = (
    "CreateModelPackageGroup",
    "CreateModelPackage",
    "CreateModel",
    "CreateEndpointConfig",
    "CreateEndpoint",
    "UpdateEndpoint",
)
PACKAGED_MODEL: Final = request.PACKAGED_MODELS / "sagemaker-hosting.json"
"""The cut botocore model of OPERATIONS (scripts/cut_botocore_model.py writes it)."""

# sagemaker/model.py: the environment a framework model's container reads its inference code from.
PROGRAM_ENV: Final = "SAGEMAKER_PROGRAM"
SUBMIT_DIRECTORY_ENV: Final = "SAGEMAKER_SUBMIT_DIRECTORY"
CONTAINER_LOG_LEVEL_ENV: Final = "SAGEMAKER_CONTAINER_LOG_LEVEL"
REGION_ENV: Final = "SAGEMAKER_REGION"

_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_NAME_MAX = 63
_CLIENT_TOKEN_MAX = 36
_METADATA_MAX = 50  # CustomerMetadataProperties entries
_METADATA_VALUE_MAX = 256
_CONDITION = re.compile(
    r"^\s*(?P<metric>[^<>=!\s](?:[^<>=!]*[^<>=!\s])?)\s*(?P<operator>>=|<=|==|!=|>|<)\s*(?P<threshold>[^<>=!\s]+)\s*$"
)
_OPERATORS: Final[Mapping[str, Callable[[float, float], bool]]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}
_MODEL_KEYS = ("register", "group", "approve_if", "inference_entry_point", "content_types", "response_types")
_ENDPOINT_KEYS = ("name", "instance_type", "initial_instance_count", "memory_size_in_mb", "max_concurrency", "alarms")
_MIME = re.compile(r"^[-\w]+/.+$")
_SERVERLESS_MEMORY = range(1024, 6144 + 1, 1024)
_MAX_ALARMS = 10
# The SDK models whose register() names the framework's version in the package (sagemaker/pytorch, tensorflow).
_VERSIONED_FRAMEWORKS = frozenset({"pytorch", "tensorflow"})


class RegistryError(InputError):
    """A registry or hosting request SageMaker would refuse; `where` names the operation and the request path."""


@dataclass(frozen=True, slots=True)
class Condition:
    """One `approve_if` condition: `<metric> <operator> <threshold>`, as `text` spells it."""

    metric: str
    operator: str
    threshold: float
    text: str

    def holds(self, value: float | None) -> bool:
        """Whether the metric's final `value` satisfies the condition; a missing (or NaN) metric never does."""
        if value is None or math.isnan(value):
            return False
        return _OPERATORS[self.operator](value, self.threshold)


@dataclass(frozen=True, slots=True)
class Verdict:
    """A condition and what the job's final metric made of it."""

    condition: Condition
    value: float | None
    holds: bool

    def document(self) -> dict[str, Any]:
        """Return the verdict JSON-ready, as alerts carry it."""
        return {"condition": self.condition.text, "value": self.value, "holds": self.holds}


@dataclass(frozen=True, slots=True)
class EndpointSettings:
    """The endpoint every Approved version of the group is deployed to: instances, or serverless memory."""

    name: str
    instance_type: str | None = None
    initial_instance_count: int = 1
    memory_size_in_mb: int | None = None
    max_concurrency: int | None = None
    alarms: tuple[str, ...] = ()

    @property
    def serverless(self) -> bool:
        return self.memory_size_in_mb is not None


@dataclass(frozen=True, slots=True)
class ModelSettings:
    """What the manifest's `[model]` (and `[endpoint]`) ask for a job's model."""

    register: Literal["best", "all"]
    group: str
    approve_if: tuple[Condition, ...] = ()
    inference_entry_point: str | None = None
    content_types: tuple[str, ...] = DEFAULT_TYPES
    response_types: tuple[str, ...] = DEFAULT_TYPES
    endpoint: EndpointSettings | None = None


# ---- the manifest


def read_model(table: Mapping[str, Any], *, project: str, origin: str) -> ModelSettings | None:
    """Read the `[model]` and `[endpoint]` tables of a manifest `table` (`metric_definitions` names the metrics a gate
    may test); None when there is no `[model]` or it says `register = false`.

    `origin` is the manifest's label in errors (`sagepush.toml`, or a matrix job's `strategy.job_source`).

    Raises:
        SpecError: an unknown key, a value of the wrong type or out of range, a malformed condition or one on a
            metric no `metric_definitions` entry defines, an `[endpoint]` without a registered model, or a name
            SageMaker would refuse; `where` names the field (`sagepush.toml: model.approve_if[1]`).
    """
    at = f"{origin}: {MODEL_KEY}"
    if MODEL_KEY not in table:
        if ENDPOINT_KEY in table:
            raise SpecError(
                f"{origin}: {ENDPOINT_KEY}", "deploys the registered model: add [model] with register = true"
            )
        return None
    model = _known(specfields.table_of(table[MODEL_KEY], at), _MODEL_KEYS, at)
    register = model.get("register", True)
    if register not in (True, False, "all"):
        raise SpecError(f"{at}.register", f'must be true, false or "all", found {specfields.quote(register)}')
    group = _name(model, "group", project, f"{at}.group")
    conditions = _conditions(model.get("approve_if", []), f"{at}.approve_if", _metric_names(table))
    entry_point = model.get("inference_entry_point")
    if entry_point is not None:  # like entry_point: a path in the staged code (relative to source_dir)
        entry_point = specfields.relative_path(entry_point, f"{at}.inference_entry_point")
    content_types = _types(model.get("content_types", list(DEFAULT_TYPES)), f"{at}.content_types", mime=False)
    response_types = _types(model.get("response_types", list(DEFAULT_TYPES)), f"{at}.response_types", mime=True)
    endpoint = _endpoint(table[ENDPOINT_KEY], project, f"{origin}: {ENDPOINT_KEY}") if ENDPOINT_KEY in table else None
    if register is False:
        if endpoint is not None:
            raise SpecError(f"{origin}: {ENDPOINT_KEY}", "deploys the registered model, but model.register is false")
        return None
    return ModelSettings(
        register="all" if register == "all" else "best",
        group=group,
        approve_if=conditions,
        inference_entry_point=entry_point,
        content_types=content_types,
        response_types=response_types,
        endpoint=endpoint,
    )


def parse_condition(text: object, where: str) -> Condition:
    """Parse `<metric> <operator> <number>` (operator one of >=, >, <=, <, ==, !=).

    Raises:
        SpecError: not a string of that form, or a threshold that is not a finite number.
    """
    if not isinstance(text, str):
        raise SpecError(where, f'must be a string like "validation:accuracy >= 0.9", found {specfields.quote(text)}')
    match = _CONDITION.match(text)
    if match is None:
        raise SpecError(
            where,
            f"{specfields.quote(text)} is not a condition (use <metric> <operator> <number>, operator one of "
            f"{', '.join(_OPERATORS)})",
        )
    try:
        threshold = float(match.group("threshold"))
    except ValueError:
        threshold = math.nan
    if not math.isfinite(threshold):
        raise SpecError(where, f"{specfields.quote(text)}: {match.group('threshold')!r} is not a finite number")
    return Condition(match.group("metric"), match.group("operator"), threshold, " ".join(text.split()))


def _conditions(value: object, at: str, defined: Sequence[str]) -> tuple[Condition, ...]:
    if not isinstance(value, list | tuple):
        raise SpecError(
            at, f"must be a list of conditions, found {specfields.type_name(value)} {specfields.quote(value)}"
        )
    conditions = []
    for index, item in enumerate(value):
        where = f"{at}[{index}]"
        condition = parse_condition(item, where)
        if condition.metric not in defined:
            known = f"defined: {', '.join(defined)}" if defined else "the manifest defines no metric_definitions"
            raise SpecError(
                where, f"{specfields.quote(condition.metric)} is not a metric metric_definitions defines ({known})"
            )
        conditions.append(condition)
    return tuple(conditions)


def _metric_names(table: Mapping[str, Any]) -> list[str]:
    defined = table.get("metric_definitions", [])
    if not isinstance(defined, list | tuple):
        return []
    return sorted({str(m["Name"]) for m in defined if isinstance(m, dict) and isinstance(m.get("Name"), str)})


def _types(value: object, at: str, *, mime: bool) -> tuple[str, ...]:
    types = specfields.strings(value, at)
    if not types:
        raise SpecError(at, "is empty: name at least one type")
    for index, text in enumerate(types):
        if mime and not _MIME.match(text):
            raise SpecError(f"{at}[{index}]", f"{specfields.quote(text)} is not a MIME type (like text/csv)")
        if len(text) > 256:
            raise SpecError(f"{at}[{index}]", f"is {len(text)} characters long, above the maximum 256")
    return types


def _endpoint(value: object, project: str, at: str) -> EndpointSettings:
    endpoint = _known(specfields.table_of(value, at), _ENDPOINT_KEYS, at)
    name = _name(endpoint, "name", project, f"{at}.name")
    has_type, has_memory = "instance_type" in endpoint, "memory_size_in_mb" in endpoint
    if has_type == has_memory:
        problem = "sets both" if has_type else "sets neither"
        raise SpecError(
            at, f"{problem} of instance_type (instances) and memory_size_in_mb (serverless): set exactly one"
        )
    if has_memory:
        return _serverless(endpoint, name, at)
    return _instances(endpoint, name, at)


def _serverless(endpoint: Mapping[str, Any], name: str, at: str) -> EndpointSettings:
    for key, reason in (
        ("initial_instance_count", "a serverless endpoint has no instances"),
        ("alarms", "a serverless endpoint is updated without a blue/green deployment to roll back"),
    ):
        if key in endpoint:
            raise SpecError(f"{at}.{key}", f"does not apply with memory_size_in_mb ({reason})")
    memory = _integer(endpoint["memory_size_in_mb"], f"{at}.memory_size_in_mb")
    if memory not in _SERVERLESS_MEMORY:
        raise SpecError(f"{at}.memory_size_in_mb", f"{memory} is not one of 1024, 2048, 3072, 4096, 5120, 6144")
    concurrency = _integer(endpoint.get("max_concurrency", DEFAULT_MAX_CONCURRENCY), f"{at}.max_concurrency")
    if not 1 <= concurrency <= 200:
        raise SpecError(f"{at}.max_concurrency", f"{concurrency} is not between 1 and 200")
    return EndpointSettings(name=name, memory_size_in_mb=memory, max_concurrency=concurrency)


def _instances(endpoint: Mapping[str, Any], name: str, at: str) -> EndpointSettings:
    if "max_concurrency" in endpoint:
        raise SpecError(f"{at}.max_concurrency", "applies to a serverless endpoint (memory_size_in_mb) only")
    instance_type = specfields.string(endpoint["instance_type"], f"{at}.instance_type")
    known_types: list[str] = getattr(_shape("ProductionVariantInstanceType"), "enum", None) or []
    if known_types and instance_type not in known_types:
        raise SpecError(
            f"{at}.instance_type",
            f"{specfields.quote(instance_type)} is not a hosting instance type"
            f"{specfields.did_you_mean(instance_type, known_types)}",
        )
    count = _integer(endpoint.get("initial_instance_count", 1), f"{at}.initial_instance_count")
    if count < 1:
        raise SpecError(f"{at}.initial_instance_count", f"must be at least 1, found {count}")
    alarms = specfields.strings(endpoint.get("alarms", []), f"{at}.alarms")
    if len(alarms) > _MAX_ALARMS:
        raise SpecError(f"{at}.alarms", f"names {len(alarms)} alarms, above the maximum {_MAX_ALARMS}")
    for index, alarm in enumerate(alarms):
        if " " in alarm or not _fits_metadata(alarm):
            raise SpecError(
                f"{at}.alarms[{index}]",
                f"{specfields.quote(alarm)}: sagepush records alarm names in the model package, which allows "
                "letters, digits and _.:/=+-@ only",
            )
    if len(" ".join(alarms)) > _METADATA_VALUE_MAX:
        raise SpecError(f"{at}.alarms", f"are longer than {_METADATA_VALUE_MAX} characters together")
    return EndpointSettings(name=name, instance_type=instance_type, initial_instance_count=count, alarms=alarms)


def _known(table: Mapping[str, Any], keys: Sequence[str], at: str) -> Mapping[str, Any]:
    for key in table:
        if key not in keys:
            raise SpecError(f"{at}.{key}", f"unknown key{specfields.did_you_mean(key, keys)}")
    return table


def _integer(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(where, f"must be an integer, found {specfields.type_name(value)} {specfields.quote(value)}")
    return value


def _name(table: Mapping[str, Any], key: str, project: str, where: str) -> str:
    """The SageMaker name `table[key]` gives, by default the project's."""
    text = specfields.string(table[key], where) if key in table else project
    if not _NAME.match(text):
        what = specfields.quote(text) if key in table else f"the project name {specfields.quote(text)} (the default)"
        raise SpecError(
            where,
            f"{what} is not a SageMaker name (at most {_NAME_MAX} letters, digits and hyphens, starting and ending "
            "with a letter or digit)",
        )
    return text


# ---- the gate


def gate(conditions: Sequence[Condition], metrics: Mapping[str, float]) -> tuple[Verdict, ...]:
    """Return each condition's verdict on a job's final `metrics` (by metric name)."""
    verdicts = []
    for condition in conditions:
        value = metrics.get(condition.metric)
        verdicts.append(Verdict(condition, value, condition.holds(value)))
    return tuple(verdicts)


def approval_status(verdicts: Sequence[Verdict]) -> str:
    """`Approved` when there are verdicts and every one holds, else `PendingManualApproval` (a person decides)."""
    return APPROVED if verdicts and all(verdict.holds for verdict in verdicts) else PENDING


# ---- the requests


def inference_environment(
    *,
    program: str,
    submit_directory: str,
    region: str,
    container_log_level: int = logging.INFO,
    framework: str | None = None,
) -> dict[str, str]:
    """Return the environment a framework model's serving container finds its inference code by, as the SDK's
    `Model._script_mode_env_vars` sets it: the script, the code (the staged sourcedir.tar.gz, or
    `/opt/ml/model/code` when the code is packed into the model), the log level and the region.

    TensorFlow is the exception: TensorFlow Serving's container reads `code/inference.py` from the (repacked) model
    and none of these variables, and the SDK's `TensorFlowModel` sets none of them."""
    if framework == "tensorflow":
        return {}
    return {
        PROGRAM_ENV: program,
        SUBMIT_DIRECTORY_ENV: submit_directory,
        CONTAINER_LOG_LEVEL_ENV: str(container_log_level),
        REGION_ENV: region,
    }


def model_package_group_request(*, group: str, project: str, tags: Mapping[str, str]) -> dict[str, Any]:
    """Return the CreateModelPackageGroup request for a project's group.

    Raises:
        RegistryError: the request does not satisfy SageMaker's model.
    """
    built: dict[str, Any] = {
        "ModelPackageGroupName": group,
        "ModelPackageGroupDescription": f"Models of the sagepush project {project}",
    }
    if tags:
        built["Tags"] = _tags(tags)
    return validate("CreateModelPackageGroup", built)


def model_package_request(
    *,
    settings: ModelSettings,
    image: str,
    model_data_url: str,
    environment: Mapping[str, str],
    approval_status: str,
    metrics: Mapping[str, float],
    verdicts: Sequence[Verdict],
    job_name: str,
    project: str,
    source: Mapping[str, str],
    tags: Mapping[str, str],
    framework: str | None = None,
    framework_version: str | None = None,
    metrics_uri: str | None = None,
) -> dict[str, Any]:
    """Return the CreateModelPackage request of a job's model: what the SDK's `Model.register()` sends for the
    framework model, plus the lineage (MetadataProperties, CustomerMetadataProperties, tags), the gate's verdicts
    in the description, and a ClientToken derived from the job, so a retry registers nothing twice.

    An endpoint on instances is declared as the package's real-time instance type. `source` holds the upload's
    `commit`, `branch` and `repo` (as `jobs.SOURCE_FIELDS`); `framework` (sklearn, xgboost, pytorch, ...) and its
    version are named in the container as the SDK's framework models name them (the version for PyTorch and
    TensorFlow only). `metrics_uri`, the S3 address of the job's `metrics_statistics` document, becomes the
    package's model quality statistics (`ModelMetrics.ModelQuality.Statistics`, as `register(model_metrics=…)`).

    Raises:
        RegistryError: the request does not satisfy SageMaker's model.
    """
    container = {"Image": image, "Environment": dict(environment), "ModelDataUrl": model_data_url}
    if framework:
        container["Framework"] = framework.upper()
        if framework in _VERSIONED_FRAMEWORKS and framework_version:
            container["FrameworkVersion"] = framework_version
    built: dict[str, Any] = {
        "ModelPackageGroupName": settings.group,
        "InferenceSpecification": {
            "Containers": [container],
            "SupportedContentTypes": list(settings.content_types),
            "SupportedResponseMIMETypes": list(settings.response_types),
        },
        "CertifyForMarketplace": False,
        "ModelApprovalStatus": approval_status,
        "SkipModelValidation": "None",
        "ClientToken": client_token(job_name),
        "CustomerMetadataProperties": customer_metadata(
            project=project, job_name=job_name, source=source, endpoint=settings.endpoint, metrics=metrics
        ),
    }
    if settings.endpoint is not None and settings.endpoint.instance_type is not None:
        built["InferenceSpecification"]["SupportedRealtimeInferenceInstanceTypes"] = [settings.endpoint.instance_type]
    if metrics_uri is not None:
        statistics = {"ContentType": METRICS_CONTENT_TYPE, "S3Uri": metrics_uri}
        # The SDK's ModelMetrics always sends Bias and Explainability, empty when it has no report for them.
        built["ModelMetrics"] = {"ModelQuality": {"Statistics": statistics}, "Bias": {}, "Explainability": {}}
    if verdicts:
        built["ModelPackageDescription"] = gate_description(verdicts)
    lineage = {
        "CommitId": source.get("commit", ""),
        "Repository": source.get("repo", ""),
        "GeneratedBy": job_name,
    }
    built["MetadataProperties"] = {key: value for key, value in lineage.items() if value}
    if tags:
        built["Tags"] = _tags(tags)
    return validate("CreateModelPackage", built)


def metrics_uri(model_data_url: str) -> str:
    """The S3 address of a job's metrics document: METRICS_FILE under the prefix of its model data
    (`s3://…/<job>/output/model.tar.gz` → `s3://…/<job>/output/model-metrics.json`).

    Raises:
        RegistryError: `model_data_url` is not an S3 object's address.
    """
    bucket, _, key = model_data_url.removeprefix("s3://").partition("/")
    if not model_data_url.startswith("s3://") or not bucket or not key or key.endswith("/"):
        raise RegistryError("ModelDataUrl", f"{specfields.quote(model_data_url)} is not an S3 object's address")
    prefix = key.rpartition("/")[0]
    return f"s3://{bucket}/{prefix}/{METRICS_FILE}" if prefix else f"s3://{bucket}/{METRICS_FILE}"


def metrics_statistics(job_name: str, metrics: Mapping[str, float]) -> bytes:
    """The model quality statistics document of a job's final metrics, as the package's ModelMetrics points at it:

    `{"sagepush": {"job_name": …, "metrics": {"<name>": {"value": <number>}}}}`

    Each metric is `{"value": …}` as in SageMaker Model Monitor's model quality statistics; they sit under
    `sagepush` rather than Model Monitor's `regression_metrics` or `…_classification_metrics` because sagepush does
    not know the problem type, and the names are the job's own (`metric_definitions`). A value JSON cannot hold
    (NaN, infinities) is written as a string ("NaN", "Infinity", "-Infinity"), as Model Monitor writes it. The bytes
    depend on the job and its metrics only (keys sorted), so a retried write leaves the same object.
    """

    def value(number: float) -> float | str:
        number = float(number)
        if math.isfinite(number):
            return number
        return "NaN" if math.isnan(number) else ("Infinity" if number > 0 else "-Infinity")

    document = {
        "sagepush": {"job_name": job_name, "metrics": {name: {"value": value(v)} for name, v in metrics.items()}}
    }
    return (json.dumps(document, sort_keys=True, indent=2, allow_nan=False) + "\n").encode()


def client_token(job_name: str) -> str:
    """The CreateModelPackage ClientToken of a job's model: the job name, cut (with a digest of it) to 36."""
    if len(job_name) <= _CLIENT_TOKEN_MAX:
        return job_name
    digest = hashlib.sha256(job_name.encode()).hexdigest()[:8]
    return f"{job_name[: _CLIENT_TOKEN_MAX - 9]}-{digest}"


def gate_description(verdicts: Sequence[Verdict]) -> str:
    """The package's description: the gate's verdict on each condition (`approve_if: validation:loss < 0.2 holds
    (0.13); …`)."""
    parts = []
    for verdict in verdicts:
        value = "missing" if verdict.value is None else f"{verdict.value:g}"
        parts.append(f"{verdict.condition.text} {'holds' if verdict.holds else 'fails'} ({value})")
    text = "approve_if: " + "; ".join(parts)
    return text if len(text) <= 1024 else text[:1023] + "…"


def customer_metadata(
    *,
    project: str,
    job_name: str,
    source: Mapping[str, str],
    endpoint: EndpointSettings | None,
    metrics: Mapping[str, float],
) -> dict[str, str]:
    """The package's CustomerMetadataProperties: lineage, the endpoint to deploy to, one `metric:<name>` per metric.

    SageMaker allows letters, digits, spaces and `_.:/=+-@` in keys and values, at most 256 characters a value and 50
    entries: other characters in source values become `_`; a metric whose name does not fit, or beyond the 50, is
    left out (the gate's verdicts are in the description whatever happens here).
    """
    properties = {PROJECT_PROPERTY: project, JOB_PROPERTY: job_name}
    for field, key in SOURCE_PROPERTIES.items():
        value = _metadata_value(source.get(field, ""))
        if value:
            properties[key] = value
    if endpoint is not None:
        properties |= _endpoint_properties(endpoint)
    for name, metric in metrics.items():
        key = f"{METRIC_PREFIX}{name}"
        if len(properties) >= _METADATA_MAX:
            break
        if len(key) <= 128 and _fits_metadata(key):
            properties[key] = repr(float(metric))
    return properties


def _endpoint_properties(endpoint: EndpointSettings) -> dict[str, str]:
    properties = {ENDPOINT_PROPERTY: endpoint.name}
    if endpoint.serverless:
        properties[f"{ENDPOINT_PREFIX}memory_size_in_mb"] = str(endpoint.memory_size_in_mb)
        properties[f"{ENDPOINT_PREFIX}max_concurrency"] = str(endpoint.max_concurrency)
    else:
        properties[f"{ENDPOINT_PREFIX}instance_type"] = str(endpoint.instance_type)
        properties[f"{ENDPOINT_PREFIX}initial_instance_count"] = str(endpoint.initial_instance_count)
    if endpoint.alarms:
        properties[f"{ENDPOINT_PREFIX}alarms"] = " ".join(endpoint.alarms)
    return properties


def endpoint_of_package(description: Mapping[str, Any]) -> EndpointSettings | None:
    """The endpoint a package (DescribeModelPackage, or its state-change event's detail) is to be deployed to; None
    when it names none."""
    properties = description.get("CustomerMetadataProperties") or {}
    name = properties.get(ENDPOINT_PROPERTY)
    if not name:
        return None

    def number(key: str) -> int | None:
        value = properties.get(f"{ENDPOINT_PREFIX}{key}")
        return int(value) if value else None

    return EndpointSettings(
        name=name,
        instance_type=properties.get(f"{ENDPOINT_PREFIX}instance_type"),
        initial_instance_count=number("initial_instance_count") or 1,
        memory_size_in_mb=number("memory_size_in_mb"),
        max_concurrency=number("max_concurrency"),
        alarms=tuple(properties.get(f"{ENDPOINT_PREFIX}alarms", "").split()),
    )


def source_of_package(description: Mapping[str, Any]) -> dict[str, str]:
    """The lineage a package carries: the upload's commit, branch and repo (the keys of `jobs.SOURCE_FIELDS`)."""
    properties = description.get("CustomerMetadataProperties") or {}
    return {field: properties[key] for field, key in SOURCE_PROPERTIES.items() if properties.get(key)}


def metrics_of_package(description: Mapping[str, Any]) -> dict[str, float]:
    """The final metrics a package carries (`metric:<name>` CustomerMetadataProperties); unreadable values skipped."""
    metrics = {}
    for key, value in (description.get("CustomerMetadataProperties") or {}).items():
        if key.startswith(METRIC_PREFIX):
            try:
                metrics[key.removeprefix(METRIC_PREFIX)] = float(value)
            except (TypeError, ValueError):
                continue
    return metrics


def model_name(group: str, version: int) -> str:
    """The SageMaker model of version `version` of `group`: `<group>-v<version>`, cut to 63 characters."""
    return _versioned(group, version)


def endpoint_config_name(endpoint: str, version: int) -> str:
    """The endpoint configuration that serves version `version`: `<endpoint>-v<version>`, cut to 63 characters."""
    return _versioned(endpoint, version)


def _versioned(base: str, version: int) -> str:
    suffix = f"-v{version}"
    name = f"{base}{suffix}"
    if len(name) <= _NAME_MAX:
        return name
    # Cut, and keep a digest of the whole name: two long bases sharing a prefix still get different names.
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    head = base[: _NAME_MAX - len(suffix) - len(digest) - 1].rstrip("-")
    return f"{head}-{digest}{suffix}"


def model_request(
    *,
    name: str,
    image: str,
    model_data_url: str,
    environment: Mapping[str, str],
    role_arn: str,
    tags: Mapping[str, str],
) -> dict[str, Any]:
    """Return the CreateModel request the SDK's `Model.deploy()` (`Model.create()`) sends for a framework model.

    Raises:
        RegistryError: the request does not satisfy SageMaker's model.
    """
    built: dict[str, Any] = {
        "ModelName": name,
        "ExecutionRoleArn": role_arn,
        "PrimaryContainer": {"Image": image, "Environment": dict(environment), "ModelDataUrl": model_data_url},
    }
    if tags:
        built["Tags"] = _tags(tags)
    return validate("CreateModel", built)


def endpoint_config_request(
    *, name: str, model_name: str, endpoint: EndpointSettings, tags: Mapping[str, str]
) -> dict[str, Any]:
    """Return the CreateEndpointConfig request of one model on `endpoint`, one variant as `deploy()` makes it.

    Raises:
        RegistryError: the request does not satisfy SageMaker's model.
    """
    variant: dict[str, Any] = {"ModelName": model_name, "VariantName": VARIANT, "InitialVariantWeight": 1}
    if endpoint.serverless:
        variant["ServerlessConfig"] = {
            "MemorySizeInMB": endpoint.memory_size_in_mb,
            "MaxConcurrency": endpoint.max_concurrency,
        }
    else:
        variant["InitialInstanceCount"] = endpoint.initial_instance_count
        variant["InstanceType"] = endpoint.instance_type
    built: dict[str, Any] = {"EndpointConfigName": name, "ProductionVariants": [variant]}
    if tags:
        built["Tags"] = _tags(tags)
    return validate("CreateEndpointConfig", built)


def create_endpoint_request(*, endpoint: EndpointSettings, config_name: str, tags: Mapping[str, str]) -> dict[str, Any]:
    """Return the CreateEndpoint request of a new endpoint.

    Raises:
        RegistryError: the request does not satisfy SageMaker's model.
    """
    built: dict[str, Any] = {"EndpointName": endpoint.name, "EndpointConfigName": config_name}
    if tags:
        built["Tags"] = _tags(tags)
    return validate("CreateEndpoint", built)


def update_endpoint_request(*, endpoint: EndpointSettings, config_name: str) -> dict[str, Any]:
    """Return the UpdateEndpoint request that moves `endpoint` to `config_name`: on instances a blue/green deployment
    (all traffic at once, after watching the alarms for ROLLBACK_WAIT_SECONDS when there are any) that rolls back
    when one of them fires; a serverless endpoint is simply updated (SageMaker has no blue/green for it).

    Raises:
        RegistryError: the request does not satisfy SageMaker's model.
    """
    built: dict[str, Any] = {"EndpointName": endpoint.name, "EndpointConfigName": config_name}
    if not endpoint.serverless:
        wait = ROLLBACK_WAIT_SECONDS if endpoint.alarms else 0
        deployment: dict[str, Any] = {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": wait},
            }
        }
        if endpoint.alarms:
            deployment["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": alarm} for alarm in endpoint.alarms]}
        built["DeploymentConfig"] = deployment
    return validate("UpdateEndpoint", built)


def _tags(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in tags.items()]


# ---- validation against botocore's model


def validate(operation: str, built: dict[str, Any]) -> dict[str, Any]:
    """Return `built` when it satisfies botocore's model of `operation` (one of OPERATIONS): required fields, types,
    minimum and maximum lengths and sizes, enums, and the patterns SageMaker checks.

    Raises:
        RegistryError: for the first problem, `where` being `<operation>.<request path>`.
    """
    from botocore.validate import ParamValidator

    shape = _input_shape(operation)
    report = ParamValidator().validate(built, shape)
    if report.has_errors():
        raise RegistryError(operation, report.generate_report().splitlines()[-1].strip())
    for path, message in _problems(built, shape, ""):
        raise RegistryError(f"{operation}.{path}", message)
    return built


def _problems(value: Any, shape: Shape, path: str) -> Iterator[tuple[str, str]]:
    """What ParamValidator leaves to the service: enums, maximum lengths, sizes and values, and patterns."""
    node = cast("Any", shape)
    maximum = shape.metadata.get("max")
    if shape.type_name == "structure" and isinstance(value, dict):
        for name, item in value.items():
            yield from _problems(item, node.members[name], f"{path}.{name}" if path else name)
    elif shape.type_name in ("list", "map") and isinstance(value, list | dict):
        if maximum is not None and len(value) > maximum:
            yield path, f"has {len(value)} entries, above the maximum {maximum}"
        if isinstance(value, list):
            for index, item in enumerate(value):
                yield from _problems(item, node.member, f"{path}[{index}]")
        else:
            for key, item in value.items():
                yield from _problems(key, node.key, f"{path}.{key}")
                yield from _problems(item, node.value, f"{path}.{key}")
    else:
        yield from _scalar_problems(value, shape, path, maximum)


def _scalar_problems(value: Any, shape: Shape, path: str, maximum: int | None) -> Iterator[tuple[str, str]]:
    if shape.type_name == "string" and isinstance(value, str):
        enum: list[str] = getattr(shape, "enum", None) or []
        pattern = shape.metadata.get("pattern")
        if enum and value not in enum:
            yield path, f"{specfields.quote(value)} is not a value SageMaker accepts"
        elif maximum is not None and len(value) > maximum:
            yield path, f"{specfields.quote(value)} is {len(value)} characters long, above the maximum {maximum}"
        elif pattern and not _matches(pattern, value):
            yield path, f"{specfields.quote(value)} does not match SageMaker's pattern {pattern}"
    elif shape.type_name in ("integer", "long") and isinstance(value, int) and maximum is not None and value > maximum:
        yield path, f"{value} is above the maximum {maximum}"


_CLASS_ONLY = re.compile(r"^\(?\[(?P<body>[^\]]*)\]\*\)?(\$(\{\d+,\d+\})?)?$")
_UNICODE_CLASS = re.compile(r"\\p\{(\w+)\}")


def _matches(pattern: str, value: str) -> bool:
    """Whether `value` matches a botocore `pattern` as a whole, as SageMaker checks it.

    Python's `re` has no `\\p{…}` classes: a pattern that is one such character class repeated (tag and metadata
    values) is checked character by character; any other pattern with them is not checked here.
    """
    if "\\p{" in pattern:
        match = _CLASS_ONLY.match(pattern)
        if match is None:
            return True
        body = match.group("body")
        categories = tuple(_UNICODE_CLASS.findall(body))
        literals = re.sub(r"\\(.)", r"\1", _UNICODE_CLASS.sub("", body))
        return all(c in literals or unicodedata.category(c).startswith(categories) for c in value)
    return re.fullmatch(re.sub(r"\$\{\d+,\d+\}", "$", pattern), value, flags=re.DOTALL) is not None


def _metadata_value(text: str) -> str:
    """`text` as a metadata value allows it: whitespace runs made one space, other characters it refuses `_`."""
    cleaned = "".join(c if _fits_metadata(c) else "_" for c in " ".join(text.split()))
    return cleaned[:_METADATA_VALUE_MAX]


def _fits_metadata(text: str) -> bool:
    return bool(text) and all(c in "_.:/=+-@" or unicodedata.category(c)[0] in "LZN" for c in text)


@cache
def _input_shape(operation: str) -> Shape:
    from botocore.model import ServiceModel

    shape = ServiceModel(hosting_model(), "sagemaker").operation_model(operation).input_shape
    if shape is None:
        raise AssertionError(f"botocore's sagemaker model has no {operation} input")
    return shape


@cache
def _shape(name: str) -> Shape:
    from botocore.model import ServiceModel

    return ServiceModel(hosting_model(), "sagemaker").shape_for(name)


@cache
def hosting_model() -> dict[str, Any]:
    """botocore's SageMaker model cut down to OPERATIONS and the shapes their inputs reach, without documentation.

    The cut of the locked botocore ships as PACKAGED_MODEL; with another botocore, or models under ~/.aws/models
    (botocore reads those first), it is cut from botocore's own model, once per process.
    """
    import botocore

    custom = (Path.home() / ".aws" / "models" / "sagemaker").exists()
    if not custom and PACKAGED_MODEL.exists():
        shipped: dict[str, Any] = json.loads(PACKAGED_MODEL.read_bytes())
        if shipped.get("botocore") == botocore.__version__:
            model: dict[str, Any] = shipped["model"]
            return model
    from botocore.loaders import create_loader

    return cut_hosting_model(create_loader().load_service_model("sagemaker", "service-2"))


def cut_hosting_model(whole: Mapping[str, Any]) -> dict[str, Any]:
    """Return the SageMaker model `whole` with only OPERATIONS and their input shapes, documentation dropped."""
    cut: dict[str, Any] = {"operations": {}, "shapes": {}}
    for operation in OPERATIONS:
        one = request.cut_model(whole, operation)
        cut["operations"].update(one["operations"])
        cut["shapes"].update(one["shapes"])
    return {
        "version": whole.get("version"),
        "metadata": whole["metadata"],
        "operations": cut["operations"],
        "shapes": _undocumented(cut["shapes"]),
    }


def _undocumented(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _undocumented(item) for key, item in value.items() if key != "documentation"}
    if isinstance(value, list):
        return [_undocumented(item) for item in value]
    return value
