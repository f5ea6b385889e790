"""A project's registered models: the versions of its Model Package Group, their approval, and calls to an endpoint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from sagepush import registry
from sagepush.errors import InputError, SagepushError
from sagepush.registry import PENDING

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from pathlib import Path

    from mypy_boto3_sagemaker import SageMakerClient

_NOT_FOUND: Final = ("ValidationException", "ValidationError", "ResourceNotFound")
"""SageMaker's answers for a package or group that does not exist."""


class ModelsError(InputError):
    """A group, version or endpoint that is not there, or a VERSION that names none."""


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One version of a Model Package Group, as DescribeModelPackage tells it."""

    group: str
    version: int
    arn: str
    status: str
    metrics: Mapping[str, float]
    commit: str | None
    branch: str | None
    job: str | None
    endpoint: str | None
    created: str | None
    description: str | None
    approval_description: str | None

    @classmethod
    def from_description(cls, description: Mapping[str, Any]) -> ModelVersion:
        """Read a DescribeModelPackage answer (its sagepush keys in CustomerMetadataProperties)."""
        properties = description.get("CustomerMetadataProperties") or {}
        try:
            endpoint = registry.endpoint_of_package(description)
        except ValueError:  # endpoint settings edited by hand: the listing still shows the version
            endpoint = None
        created: Any = description.get("CreationTime")
        return cls(
            group=str(description.get("ModelPackageGroupName") or ""),
            version=int(description.get("ModelPackageVersion") or 0),
            arn=str(description["ModelPackageArn"]),
            status=str(description.get("ModelApprovalStatus") or PENDING),
            metrics=registry.metrics_of_package(description),
            commit=properties.get(registry.SOURCE_PROPERTIES["commit"]),
            branch=properties.get(registry.SOURCE_PROPERTIES["branch"]),
            job=properties.get(registry.JOB_PROPERTY),
            endpoint=endpoint.name if endpoint else None,
            created=created.isoformat() if hasattr(created, "isoformat") else created,
            description=description.get("ModelPackageDescription"),
            approval_description=description.get("ApprovalDescription"),
        )

    def as_dict(self) -> dict[str, Any]:
        """Return the version as `models --json` prints it."""
        return {
            "group": self.group,
            "version": self.version,
            "status": self.status,
            "metrics": dict(self.metrics),
            "commit": self.commit,
            "branch": self.branch,
            "job": self.job,
            "endpoint": self.endpoint,
            "created": self.created,
            "description": self.description,
            "approval_description": self.approval_description,
            "arn": self.arn,
        }


def default_group(project: str | None, group: str | None, directory: Path) -> str:
    """Return the group to work on: `group`, else `project`, else `[model] group` of the manifest in `directory`, else
    the project name `directory` gives (as `push` names the project).

    Raises:
        SpecError: the manifest in `directory` does not parse.
    """
    from sagepush import spec
    from sagepush.specmodel import MANIFEST_NAMES
    from sagepush_cli.project import project_name

    if group:
        return group
    if project:
        return project
    files = {name: (directory / name).read_bytes() for name in MANIFEST_NAMES if (directory / name).is_file()}
    manifest = spec.find_manifest(files)
    table = manifest.table.get("model") if manifest else None
    if isinstance(table, dict) and isinstance(table.get("group"), str) and table["group"]:
        return str(table["group"])
    return project_name(directory)


def list_versions(sagemaker: SageMakerClient, group: str, *, limit: int) -> list[ModelVersion]:
    """Return the group's newest `limit` versions, newest first, each described.

    Raises:
        ModelsError: the group does not exist.
    """
    summaries = []
    for summary in _summaries(sagemaker, group):
        summaries.append(summary)
        if len(summaries) >= limit:
            break
    if not summaries:
        _check_group(sagemaker, group)
    described = [_describe(sagemaker, str(summary["ModelPackageArn"])) for summary in summaries]
    versions = [ModelVersion.from_description(d) for d in described if d is not None]
    return sorted(versions, key=lambda v: v.version, reverse=True)


def find_version(sagemaker: SageMakerClient, group: str, version: str) -> ModelVersion:
    """Return the version VERSION names: a version number of `group`, or a model package ARN (of any group).

    Raises:
        ModelsError: VERSION is neither, or names no package.
    """
    if version.startswith("arn:"):
        described = _describe(sagemaker, version)
        if described is None:
            raise ModelsError("VERSION", f"no model package {version}")
        return ModelVersion.from_description(described)
    number = _version_number(version)
    seen = []
    for summary in _summaries(sagemaker, group):
        seen.append(int(summary.get("ModelPackageVersion") or 0))
        if seen[-1] == number:
            described = _describe(sagemaker, str(summary["ModelPackageArn"]))
            if described is not None:
                return ModelVersion.from_description(described)
    if not seen:
        _check_group(sagemaker, group)
    known = f"its versions are {_ranges(seen)}" if seen else "it has no versions yet"
    raise ModelsError("VERSION", f"no version {number} in model package group {group!r} ({known})")


def set_status(sagemaker: SageMakerClient, version: ModelVersion, status: str, *, reason: str | None = None) -> None:
    """Set the version's ModelApprovalStatus (with `reason` as its ApprovalDescription)."""
    extra = {"ApprovalDescription": reason} if reason is not None else {}
    sagemaker.update_model_package(ModelPackageArn=version.arn, ModelApprovalStatus=status, **extra)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Prediction:
    """An endpoint's answer: the body as the model wrote it, and its content type."""

    body: bytes
    content_type: str | None
    variant: str | None


class ModelAnswerError(SagepushError):
    """The model itself answered with an error (InvokeEndpoint's ModelError): its status, message and log stream."""

    def __init__(self, endpoint: str, status: int | None, message: str, log_stream: str | None) -> None:
        self.endpoint = endpoint
        self.status = status
        self.message = message
        self.log_stream = log_stream
        super().__init__(f"the model behind endpoint {endpoint!r} answered {status or 'an error'}: {message}")


def predict(runtime: Any, endpoint: str, body: bytes, *, content_type: str, accept: str | None) -> Prediction:
    """Send `body` to `endpoint` (InvokeEndpoint) and return its answer.

    Raises:
        ModelAnswerError: the model answered with an error (the container ran, and refused or failed).
        ModelsError: SageMaker refused the request itself (no such endpoint, a body it does not take).
    """
    from botocore.exceptions import ClientError

    extra = {"Accept": accept} if accept else {}
    try:
        answer = runtime.invoke_endpoint(EndpointName=endpoint, Body=body, ContentType=content_type, **extra)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") == "ModelError":
            answered: Mapping[str, Any] = exc.response
            status = answered.get("OriginalStatusCode")
            message = answered.get("OriginalMessage") or error.get("Message") or ""
            log_stream = answered.get("LogStreamArn")
            raise ModelAnswerError(endpoint, int(status) if status else None, str(message), log_stream) from exc
        if error.get("Code") in _NOT_FOUND:
            raise ModelsError("ENDPOINT", f"{endpoint}: {error.get('Message', 'refused')}") from exc
        raise
    return Prediction(
        body=answer["Body"].read(),
        content_type=answer.get("ContentType"),
        variant=answer.get("InvokedProductionVariant"),
    )


def _summaries(sagemaker: SageMakerClient, group: str) -> Iterator[Mapping[str, Any]]:
    """The group's package summaries, newest first, page by page as they are read."""
    pages = sagemaker.get_paginator("list_model_packages").paginate(
        ModelPackageGroupName=group, SortBy="CreationTime", SortOrder="Descending"
    )
    for page in pages:
        yield from page.get("ModelPackageSummaryList", [])


def _describe(sagemaker: SageMakerClient, name: str) -> Mapping[str, Any] | None:
    from botocore.exceptions import ClientError

    try:
        return sagemaker.describe_model_package(ModelPackageName=name)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in _NOT_FOUND:
            return None
        raise


def _check_group(sagemaker: SageMakerClient, group: str) -> None:
    """Raise ModelsError when `group` does not exist (ListModelPackages answers an empty list for it)."""
    from botocore.exceptions import ClientError

    try:
        sagemaker.describe_model_package_group(ModelPackageGroupName=group)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in _NOT_FOUND:
            raise
        raise ModelsError(
            "--group", f"no model package group {group!r} (a project's first registered model creates it)"
        ) from exc


def _version_number(version: str) -> int:
    try:
        number = int(version)
    except ValueError:
        number = 0
    if number < 1:
        raise ModelsError("VERSION", f"{version!r} is neither a version number (1, 2, …) nor a model package ARN")
    return number


def _ranges(numbers: list[int]) -> str:
    """`1-3, 5` for [5, 3, 2, 1]."""
    ordered = sorted(set(numbers))
    spans: list[list[int]] = []
    for number in ordered:
        if spans and number == spans[-1][1] + 1:
            spans[-1][1] = number
        else:
            spans.append([number, number])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)
