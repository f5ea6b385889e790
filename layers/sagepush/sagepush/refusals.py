"""Refusals: an event that can never succeed is parked in the dead-letter queue and told to its project, not retried.

Lambda retries a failed asynchronous invocation whatever the error, so a handler that raised on a bad upload would
stage it three times and then park it with no word to anyone who pushed it. Instead the handler catches the
`InputError`, calls `refuse`, and returns: the event lands in the dead-letter queue once, in the record shape of a
Lambda on-failure destination (`requestContext.condition` is `InputRefused`), and when the event names a project, one
`upload-refused` alert goes to the alerts topic in the formats of docs/alerts.md, built and published by
`sagepush.alerts` as a job's alert is.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sagepush import alerts, naming
from sagepush.ledger import RefusedUpload

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

    from sagepush.errors import InputError
    from sagepush.events import ObjectCreated
    from sagepush.ledger import Ledger

logger = logging.getLogger(__name__)

CONDITION = "InputRefused"
"""`requestContext.condition` of a parked record: retrying cannot help, the input must change."""
STATUS = "UploadRefused"
_MAX_PAYLOAD = 200_000  # SQS takes 256 KiB a message; an event bigger than this is parked cut, with a note


def refused_alert(*, project: str, bucket: str, key: str, error: InputError, region: str, time: str) -> alerts.Alert:
    """Return the `upload-refused` alert for an upload StageFunction will not stage (no job exists, so no job name)."""
    reason = f"{error.where}: {error.message}"
    prefix = quote(key.rpartition("/")[0] + "/")
    return alerts.Alert(
        job_name=None,
        project=project,
        status=STATUS,
        job_status=None,
        severity="error",
        time=time,
        region=region,
        failure_reason=reason,
        console_url=f"https://{alerts.console_host(region)}/s3/buckets/{bucket}?region={region}&prefix={prefix}",
        kind="upload-refused",
        error=type(error).__name__,
        cause=reason,
        upload={"bucket": bucket, "key": key},
    )


@dataclass(frozen=True, slots=True)
class Refusal:
    """What `refuse` did: the record parked, and the alert's message id when one was sent."""

    where: str
    problem: str
    project: str | None
    alert_id: str | None

    def as_dict(self) -> dict[str, Any]:
        """Return the handler's JSON-ready result."""
        return {
            "refused": True,
            "where": self.where,
            "problem": self.problem,
            "project": self.project,
            "alerted": self.alert_id is not None,
        }


def project_of(upload: ObjectCreated | None, *, prefix: str) -> str | None:
    """Return the project an upload's key names, or None when the event could not be read or names none validly."""
    if upload is None:
        return None
    try:
        return naming.project_from_key(upload.key, prefix=prefix)
    except naming.NamingError:
        return None


def refuse(
    event: Any,
    error: InputError,
    upload: ObjectCreated | None,
    *,
    function_arn: str,
    queue_url: str,
    topic_arn: str,
    region: str,
    ingest_prefix: str,
    sqs: SQSClient,
    sns: SNSClient,
    ledger: Ledger | None = None,
) -> Refusal:
    """Park `event` in the dead-letter queue with `error`, then record the refusal in `ledger` (so `sagepush status`
    lists it) and alert the project the upload names, if any.

    `upload` is the event as `events.object_created` read it (or, for a broken event, `events.object_named`), None when
    it names no object: then it is parked and nobody is alerted. The raw `event` is what is parked, to be redriven.

    Parking comes first: should the ledger or the alert fail, the invocation fails and is retried, and the retry
    parks a second record rather than the project missing its alert.
    """
    park(event, error, function_arn=function_arn, queue_url=queue_url, sqs=sqs)
    project = project_of(upload, prefix=ingest_prefix)
    alert_id = None
    if upload is not None and project is not None:
        if ledger is not None:
            recorded = RefusedUpload(project=project, upload_uri=_upload_uri(upload), reason=str(error))
            ledger.record_refusal(recorded, now_ms=int(time.time() * 1000))
        refused = refused_alert(
            project=project,
            bucket=upload.bucket,
            key=upload.key,
            error=error,
            region=region,
            time=upload.time if "T" in upload.time else _now(),  # EventBridge's ISO time; anything else is replaced
        )
        alert_id = alerts.publish_alert(refused, topic_arn=topic_arn, sns=sns)
    logger.warning(
        "input refused and parked",
        extra={"where": error.where, "problem": error.message, "project": project, "alerted": alert_id is not None},
    )
    return Refusal(where=error.where, problem=error.message, project=project, alert_id=alert_id)


def park(event: Any, error: InputError, *, function_arn: str, queue_url: str, sqs: SQSClient) -> str:
    """Send `event` and `error` to the dead-letter queue as a Lambda on-failure record; return the message id."""
    payload: Any = event
    if len(json.dumps(event, default=str)) > _MAX_PAYLOAD:
        payload = {"truncated": True, "head": json.dumps(event, default=str)[:_MAX_PAYLOAD]}
    record: Mapping[str, Any] = {
        "version": "1.0",
        "timestamp": _now(),
        "requestContext": {"functionArn": function_arn, "condition": CONDITION, "approximateInvokeCount": 1},
        "requestPayload": payload,
        "responseContext": {"statusCode": 200, "functionError": None},
        "responsePayload": {"errorType": type(error).__name__, "errorMessage": str(error), "where": error.where},
    }
    response = sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(record, default=str))
    return response["MessageId"]


def _upload_uri(upload: ObjectCreated) -> str:
    """s3://bucket/key of the refused upload, with its version when the bucket keeps versions."""
    uri = f"s3://{upload.bucket}/{upload.key}"
    return f"{uri}?versionId={upload.version_id}" if upload.version_id not in (None, "", "null") else uri


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
