"""Typed views of the events sagepush receives, built from raw dicts; errors name the JSON path that is wrong."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote_plus

from sagepush.errors import InputError, shorten
from sagepush.naming import UploadIdentity

if TYPE_CHECKING:
    from collections.abc import Mapping

S3_SOURCE = "aws.s3"
OBJECT_CREATED = "Object Created"


class EventError(InputError):
    """An event does not have the shape sagepush expects; `where` is the JSON path."""


def _get(document: Mapping[str, Any], path: str, kind: type | tuple[type, ...] = str) -> Any:
    """Return the value at dotted `path`, checking its type; raise EventError naming the path otherwise."""
    value: Any = document
    walked = "$"
    for part in path.split("."):
        walked = f"{walked}.{part}"
        if not isinstance(value, dict) or part not in value:
            raise EventError(walked, "is missing")
        value = value[part]
    if not isinstance(value, kind):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise EventError(walked, f"is {shorten(value)}, expected {expected}")
    return value


def _optional(document: Mapping[str, Any], path: str) -> str | None:
    value: Any = document
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True, slots=True)
class ObjectCreated:
    """An S3 "Object Created" event delivered by EventBridge."""

    event_id: str
    time: str
    bucket: str
    key: str
    raw_key: str
    size: int | None
    etag: str | None
    version_id: str | None
    sequencer: str | None

    @property
    def candidate_keys(self) -> tuple[str, ...]:
        """The decoded key, then the key exactly as delivered when it differs.

        S3 notifications form-encode keys (a space arrives as '+'); some deliveries carry the key raw. Reading the
        decoded key first and falling back to the raw one on NoSuchKey handles both without guessing.
        """
        return (self.key,) if self.key == self.raw_key else (self.key, self.raw_key)

    @property
    def identity(self) -> UploadIdentity:
        """What makes this upload unique, for the job name."""
        version = self.version_id if self.version_id != "null" else None
        return UploadIdentity(
            bucket=self.bucket,
            key=self.raw_key,
            version_id=version,
            etag=self.etag,
            sequencer=self.sequencer,
            event_time=self.time,
        )


def object_created(event: Mapping[str, Any]) -> ObjectCreated:
    """Build an ObjectCreated view of an EventBridge S3 event.

    Raises:
        EventError: naming the JSON path that is missing or of the wrong type.
    """
    if not isinstance(event, dict):
        raise EventError("$", f"is {shorten(event)}, expected an EventBridge event object")
    if _get(event, "source") != S3_SOURCE:
        raise EventError("$.source", f"is {shorten(event['source'])}, expected {S3_SOURCE!r}")
    if _get(event, "detail-type") != OBJECT_CREATED:
        raise EventError("$.detail-type", f"is {shorten(event['detail-type'])}, expected {OBJECT_CREATED!r}")
    raw_key = _get(event, "detail.object.key")
    size = _get(event, "detail.object.size", int) if "size" in event["detail"]["object"] else None
    if isinstance(size, bool) or (size is not None and size < 0):
        raise EventError("$.detail.object.size", f"is {shorten(size)}, expected a byte count (a whole number >= 0)")
    return ObjectCreated(
        event_id=_get(event, "id"),
        time=str(_get(event, "time", (str, int, float))),
        bucket=_get(event, "detail.bucket.name"),
        # S3 form-encodes keys in its notifications (a space arrives as '+'), as Powertools' S3 data classes decode.
        key=unquote_plus(raw_key),
        raw_key=raw_key,
        size=size,
        # AWS spells it "etag"; some emitters (moto) send "eTag".
        etag=_optional(event, "detail.object.etag") or _optional(event, "detail.object.eTag"),
        # Powertools raises KeyError for these when absent (moto omits them): read them as optional.
        version_id=_optional(event, "detail.object.version-id"),
        sequencer=_optional(event, "detail.object.sequencer"),
    )


def object_named(event: object) -> ObjectCreated | None:
    """What can still be read of an S3 event `object_created` refused: its bucket and key (decoded), the rest when
    well-formed; None when it names no object. A refusal tells the project the key names, even for a broken event.
    """
    if not isinstance(event, dict):
        return None
    bucket, raw_key = _optional(event, "detail.bucket.name"), _optional(event, "detail.object.key")
    if bucket is None or raw_key is None:
        return None
    return ObjectCreated(
        event_id=_optional(event, "id") or "",
        time=_optional(event, "time") or "",
        bucket=bucket,
        key=unquote_plus(raw_key),
        raw_key=raw_key,
        size=None,
        etag=_optional(event, "detail.object.etag") or _optional(event, "detail.object.eTag"),
        version_id=_optional(event, "detail.object.version-id"),
        sequencer=_optional(event, "detail.object.sequencer"),
    )


@dataclass(frozen=True, slots=True)
class SubmitTask:
    """A request to submit one training job: from the state machine (with or without a task token) or a direct invoke.

    `spec` is the manifest table (the same keys as `[tool.sagepush]`), so a caller writes what a user would.
    """

    project: str
    code_uri: str
    spec: Mapping[str, Any]
    job_name: str | None = None
    code_digest: str | None = None
    task_token: str | None = None
    source: Mapping[str, str] = field(default_factory=dict)
    attempt: int = 0
    """The state machine's retry count of this task ($$.State.RetryCount): orders the tokens of a task's attempts."""
    push: str | None = None
    """The push this job belongs to, when it is one job of a `[strategy]` matrix."""
    matrix: Mapping[str, Any] = field(default_factory=dict)
    """Its matrix values, by dotted manifest path (tagged on the job)."""


def submit_task(event: Mapping[str, Any]) -> SubmitTask:
    """Build a SubmitTask view of a submit payload.

    Raises:
        EventError: naming the JSON path that is missing or of the wrong type.
    """
    if not isinstance(event, dict):
        raise EventError("$", f"is {shorten(event)}, expected a JSON object")
    source = _source(event)
    return SubmitTask(
        project=_get(event, "project"),
        code_uri=_get(event, "code_uri"),
        spec=_get(event, "spec", dict) if "spec" in event else {},
        job_name=_get(event, "job_name") if event.get("job_name") is not None else None,
        code_digest=_get(event, "code_digest") if event.get("code_digest") is not None else None,
        task_token=_get(event, "task_token") if event.get("task_token") is not None else None,
        source=source,
        attempt=_attempt(event),
        **_matrix(event),
    )


def _matrix(event: Mapping[str, Any]) -> dict[str, Any]:
    """`push` and `matrix` of a job of a `[strategy]` push, from the payload's `matrix` object (null or empty for a job
    of no push)."""
    if not event.get("matrix"):
        return {}
    return {"push": _get(event, "matrix.push"), "matrix": _get(event, "matrix.values", dict)}


def _source(event: Mapping[str, Any]) -> dict[str, str]:
    """The `source` object of a submit or start payload: commit, branch, ... as strings."""
    source = event.get("source", {})
    if not isinstance(source, dict) or not all(isinstance(v, str) for v in source.values()):
        raise EventError("$.source", f"is {shorten(source)}, expected an object of strings (commit, branch, ...)")
    return source


def _attempt(event: Mapping[str, Any]) -> int:
    attempt = event.get("attempt", 0)
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 0:
        raise EventError("$.attempt", f"is {shorten(attempt)}, expected the task's retry count (a whole number >= 0)")
    return attempt


@dataclass(frozen=True, slots=True)
class DirectStart:
    """TrainingStateMachine started by hand (console, another state machine, `aws stepfunctions start-execution`):
    staged code, a manifest table and `set`, dotted manifest keys overriding it (`hyperparameters.lr`)."""

    project: str
    code_uri: str
    spec: Mapping[str, Any] = field(default_factory=dict)
    set: Mapping[str, Any] = field(default_factory=dict)
    source: Mapping[str, str] = field(default_factory=dict)


def direct_start(event: Mapping[str, Any]) -> DirectStart:
    """Build a DirectStart view of an execution's own input.

    Raises:
        EventError: naming the JSON path that is missing or of the wrong type.
    """
    if not isinstance(event, dict):
        raise EventError("$", f"is {shorten(event)}, expected a JSON object")
    settings = event.get("set", {})
    if not isinstance(settings, dict) or not all(isinstance(k, str) and k for k in settings):
        raise EventError("$.set", f"is {shorten(settings)}, expected an object of manifest keys (hyperparameters.lr)")
    source = _source(event)
    return DirectStart(
        project=_get(event, "project"),
        code_uri=_get(event, "code_uri") if "code_uri" in event else "",
        spec=_get(event, "spec", dict) if "spec" in event else {},
        set=settings,
        source=source,
    )


@dataclass(frozen=True, slots=True)
class SubmitFailure:
    """A submission that failed for good, as the state machine hands it to NotifyFunction."""

    job_name: str
    project: str
    execution_arn: str
    error: str
    cause: str | None
    time: str
    code_uri: str | None = None
    source: Mapping[str, str] = field(default_factory=dict)


def submit_failure(event: Mapping[str, Any]) -> SubmitFailure:
    """Build a SubmitFailure view of the NotifySubmitFailed payload (statemachine/training.asl.json).

    The execution is named after its job, so a hand-started execution with an odd input still names its job; an
    input without a project is alerted to project `unknown` rather than not at all.

    Raises:
        EventError: the execution ARN or the time is missing or not a string, naming the JSON path.
    """
    if not isinstance(event, dict):
        raise EventError("$", f"is {shorten(event)}, expected a JSON object")
    execution_arn = _get(event, "execution_arn")
    execution: dict[str, Any] = event["input"] if isinstance(event.get("input"), dict) else {}
    failure: dict[str, Any] = event["error"] if isinstance(event.get("error"), dict) else {}
    source = execution.get("source")
    cause = failure.get("Cause")
    return SubmitFailure(
        job_name=_optional(execution, "job_name") or execution_arn.rpartition(":")[2],
        project=_optional(execution, "project") or "unknown",
        execution_arn=execution_arn,
        error=_optional(failure, "Error") or "States.Unknown",
        cause=cause if isinstance(cause, str) else None,
        time=_get(event, "time"),
        code_uri=_optional(execution, "code_uri"),
        source={k: v for k, v in source.items() if isinstance(v, str)} if isinstance(source, dict) else {},
    )


SAGEMAKER_SOURCE = "aws.sagemaker"
TRAINING_STATE_CHANGE = "SageMaker Training Job State Change"
PROJECT_TAG = "sagepush:project"
PUSH_TAG = "sagepush:push"
"""Tag on each job of a `[strategy]` matrix: the push (the matrix execution) it belongs to."""
MATRIX_TAG_PREFIX = "sagepush:matrix:"
"""Tags on each job of a `[strategy]` matrix, one per matrix value: `sagepush:matrix:<dotted manifest path>`."""


class TrainingJobStatus(StrEnum):
    """SageMaker's TrainingJobStatus values (a member equals its string: events and answers carry plain strings)."""

    IN_PROGRESS = "InProgress"
    STOPPING = "Stopping"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPED = "Stopped"


class EndpointStatus(StrEnum):
    """SageMaker's EndpointStatus values (DescribeEndpoint, "SageMaker Endpoint State Change")."""

    OUT_OF_SERVICE = "OutOfService"
    CREATING = "Creating"
    UPDATING = "Updating"
    SYSTEM_UPDATING = "SystemUpdating"
    ROLLING_BACK = "RollingBack"
    IN_SERVICE = "InService"
    DELETING = "Deleting"
    FAILED = "Failed"
    UPDATE_ROLLBACK_FAILED = "UpdateRollbackFailed"


class SecondaryStatus(StrEnum):
    """SageMaker's SecondaryStatus values, in the order a job normally passes through them."""

    STARTING = "Starting"
    PENDING = "Pending"
    LAUNCHING_ML_INSTANCES = "LaunchingMLInstances"
    PREPARING_TRAINING_STACK = "PreparingTrainingStack"
    DOWNLOADING = "Downloading"
    DOWNLOADING_TRAINING_IMAGE = "DownloadingTrainingImage"
    TRAINING = "Training"
    INTERRUPTED = "Interrupted"
    RESTARTING = "Restarting"
    UPLOADING = "Uploading"
    STOPPING = "Stopping"
    UPDATING = "Updating"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPED = "Stopped"
    MAX_RUNTIME_EXCEEDED = "MaxRuntimeExceeded"
    MAX_WAIT_TIME_EXCEEDED = "MaxWaitTimeExceeded"


TERMINAL_STATUSES: Final = frozenset({TrainingJobStatus.COMPLETED, TrainingJobStatus.FAILED, TrainingJobStatus.STOPPED})
"""The TrainingJobStatus values a job never leaves."""
SECONDARY_STATUSES: Final = tuple(SecondaryStatus)
"""SageMaker's SecondaryStatus values, in the order a job normally passes through them."""
FAILED_SECONDARY_STATUSES: Final = frozenset(
    {SecondaryStatus.FAILED, SecondaryStatus.MAX_RUNTIME_EXCEEDED, SecondaryStatus.MAX_WAIT_TIME_EXCEEDED}
)
"""How a job ends that did not finish its work (its own limits included): its execution fails, its alert shows
the log tail."""
# Epoch values above this are milliseconds (1e11 seconds is the year 5138; 1e11 ms is 1973).
_MILLIS_THRESHOLD = 10**11


@dataclass(frozen=True, slots=True)
class TrainingStateChange:
    """One observed state of a training job: a "Training Job State Change" event or a DescribeTrainingJob answer.

    Times are epoch milliseconds (UTC).
    """

    job_name: str
    status: str
    secondary_status: str
    last_modified_ms: int
    region: str
    job_arn: str | None = None
    event_id: str | None = None
    creation_ms: int | None = None
    training_start_ms: int | None = None
    training_end_ms: int | None = None
    failure_reason: str | None = None
    status_message: str | None = None
    model_artifacts: str | None = None
    billable_seconds: int | None = None
    max_runtime_seconds: int | None = None
    max_wait_seconds: int | None = None
    final_metrics: Mapping[str, float] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        """True when the job has ended (Completed, Failed or Stopped)."""
        return self.status in TERMINAL_STATUSES

    @property
    def project(self) -> str | None:
        """The `sagepush:project` tag, when the job carries one."""
        return self.tags.get(PROJECT_TAG)


def epoch_ms(value: Any, where: str) -> int:
    """Return `value` as epoch milliseconds: epoch ms or seconds (number or digits), ISO 8601 text, or a datetime.

    Raises:
        EventError: naming `where` when the value is none of those.
    """
    from datetime import UTC, datetime

    if isinstance(value, datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=UTC)
        return round(stamp.timestamp() * 1000)
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
            except ValueError:
                raise EventError(
                    where, f"is {shorten(value)}, expected epoch milliseconds or an ISO 8601 time"
                ) from None
            return epoch_ms(parsed, where)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise EventError(where, f"is {shorten(value)}, expected epoch milliseconds or an ISO 8601 time")
    return round(value) if value >= _MILLIS_THRESHOLD else round(value * 1000)


def _optional_ms(detail: Mapping[str, Any], key: str, where: str) -> int | None:
    value = detail.get(key)
    return None if value in (None, "") else epoch_ms(value, f"{where}.{key}")


def _optional_int(detail: Mapping[str, Any], path: str, where: str) -> int | None:
    value: Any = detail
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EventError(f"{where}.{path}", f"is {shorten(value)}, expected a number")
    return int(value)


def _tags_of(value: Any, where: str) -> dict[str, str]:
    """Read tags as a map (AWS's sample event) or a list of {Key, Value} (its schema registry)."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(value, list):
        tags = {}
        for index, item in enumerate(value):
            if not isinstance(item, dict) or not isinstance(item.get("Key"), str):
                raise EventError(f"{where}[{index}]", f"is {shorten(item)}, expected {{Key, Value}}")
            tags[item["Key"]] = str(item.get("Value", ""))
        return tags
    raise EventError(where, f"is {shorten(value)}, expected a map of tags or a list of {{Key, Value}}")


def _metrics_of(value: Any, where: str) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, list):
        raise EventError(where, f"is {shorten(value)}, expected a list of {{MetricName, Value}}")
    metrics = {}
    for index, item in enumerate(value):
        name, number = (item.get("MetricName"), item.get("Value")) if isinstance(item, dict) else (None, None)
        if not isinstance(name, str) or isinstance(number, bool) or not isinstance(number, int | float):
            raise EventError(f"{where}[{index}]", f"is {shorten(item)}, expected {{MetricName, Value}}")
        metrics[name] = float(number)
    return metrics


def _training_state(detail: Mapping[str, Any], *, where: str, region: str, event_id: str | None) -> TrainingStateChange:
    job_name = _get(detail, "TrainingJobName")
    status = _get(detail, "TrainingJobStatus")
    # Absent, it is the primary status; present, it must be a status name: a null, number or list is a bad event,
    # not a cue to alert and order the job by its primary status instead.
    secondary = detail.get("SecondaryStatus", status)
    if not isinstance(secondary, str) or not secondary:
        raise EventError(f"{where}.SecondaryStatus", f"is {shorten(secondary)}, expected a secondary status name")
    last_modified = detail.get("LastModifiedTime")
    if last_modified is None:
        raise EventError(f"{where}.LastModifiedTime", "is missing")
    transitions = detail.get("SecondaryStatusTransitions")
    message = None
    if isinstance(transitions, list) and transitions and isinstance(transitions[-1], dict):
        message = (
            transitions[-1].get("StatusMessage") if isinstance(transitions[-1].get("StatusMessage"), str) else None
        )
    artifacts = detail.get("ModelArtifacts")
    return TrainingStateChange(
        job_name=job_name,
        status=status,
        secondary_status=secondary,
        last_modified_ms=epoch_ms(last_modified, f"{where}.LastModifiedTime"),
        region=region,
        job_arn=detail.get("TrainingJobArn") if isinstance(detail.get("TrainingJobArn"), str) else None,
        event_id=event_id,
        creation_ms=_optional_ms(detail, "CreationTime", where),
        training_start_ms=_optional_ms(detail, "TrainingStartTime", where),
        training_end_ms=_optional_ms(detail, "TrainingEndTime", where),
        failure_reason=_optional(detail, "FailureReason"),
        status_message=message,
        model_artifacts=_optional(artifacts, "S3ModelArtifacts") if isinstance(artifacts, dict) else None,
        billable_seconds=_optional_int(detail, "BillableTimeInSeconds", where),
        max_runtime_seconds=_optional_int(detail, "StoppingCondition.MaxRuntimeInSeconds", where),
        max_wait_seconds=_optional_int(detail, "StoppingCondition.MaxWaitTimeInSeconds", where),
        final_metrics=_metrics_of(detail.get("FinalMetricDataList"), f"{where}.FinalMetricDataList"),
        tags=_tags_of(detail.get("Tags"), f"{where}.Tags"),
    )


def training_state_change(event: Mapping[str, Any]) -> TrainingStateChange:
    """Build a TrainingStateChange view of a SageMaker "Training Job State Change" event.

    Tags may be a map or a list of {Key, Value}; times may be epoch milliseconds or seconds, or ISO 8601 text.

    Raises:
        EventError: naming the JSON path that is missing or of the wrong type.
    """
    if not isinstance(event, dict):
        raise EventError("$", f"is {shorten(event)}, expected an EventBridge event object")
    if _get(event, "source") != SAGEMAKER_SOURCE or _get(event, "detail-type") != TRAINING_STATE_CHANGE:
        raise EventError(
            "$.detail-type", f"is {event.get('detail-type')!r}, expected {TRAINING_STATE_CHANGE!r} from aws.sagemaker"
        )
    detail = _get(event, "detail", dict)
    try:
        return _training_state(detail, where="$.detail", region=_get(event, "region"), event_id=_optional(event, "id"))
    except EventError as exc:
        if exc.where.startswith("$.") and not exc.where.startswith("$.detail"):
            raise EventError("$.detail" + exc.where[1:], exc.message) from exc
        raise


def described_training_job(
    description: Mapping[str, Any], *, region: str, tags: Mapping[str, str]
) -> TrainingStateChange:
    """Build a TrainingStateChange from a DescribeTrainingJob answer (which carries no tags: pass the known ones).

    Raises:
        EventError: the answer lacks the job name, status or LastModifiedTime.
    """
    return _training_state(
        {**description, "Tags": dict(tags)}, where="DescribeTrainingJob", region=region, event_id=None
    )
