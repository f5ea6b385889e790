"""Typed views of the events sagepush receives, built from raw dicts; errors name the JSON path that is wrong."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.data_classes import S3EventBridgeNotificationEvent

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
    if _get(event, "source") != S3_SOURCE or _get(event, "detail-type") != OBJECT_CREATED:
        raise EventError("$.detail-type", f"is {event.get('detail-type')!r}, expected {OBJECT_CREATED!r} from aws.s3")
    raw_key = _get(event, "detail.object.key")
    size = _get(event, "detail.object.size", int) if "size" in event["detail"]["object"] else None
    notification = S3EventBridgeNotificationEvent(event)
    return ObjectCreated(
        event_id=_get(event, "id"),
        time=str(_get(event, "time", (str, int, float))),
        bucket=_get(event, "detail.bucket.name"),
        key=notification.detail.object.key,
        raw_key=raw_key,
        size=size,
        # AWS spells it "etag"; some emitters (moto) send "eTag".
        etag=_optional(event, "detail.object.etag") or _optional(event, "detail.object.eTag"),
        # Powertools raises KeyError for these when absent (moto omits them): read them as optional.
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


def submit_task(event: Mapping[str, Any]) -> SubmitTask:
    """Build a SubmitTask view of a submit payload.

    Raises:
        EventError: naming the JSON path that is missing or of the wrong type.
    """
    if not isinstance(event, dict):
        raise EventError("$", f"is {shorten(event)}, expected a JSON object")
    source = event.get("source", {})
    if not isinstance(source, dict) or not all(isinstance(v, str) for v in source.values()):
        raise EventError("$.source", f"is {shorten(source)}, expected an object of strings (commit, branch, ...)")
    return SubmitTask(
        project=_get(event, "project"),
        code_uri=_get(event, "code_uri"),
        spec=_get(event, "spec", dict) if "spec" in event else {},
        job_name=_get(event, "job_name") if event.get("job_name") is not None else None,
        code_digest=_get(event, "code_digest") if event.get("code_digest") is not None else None,
        task_token=_get(event, "task_token") if event.get("task_token") is not None else None,
        source=source,
    )
