"""Refusals: an event that can never succeed is parked in the dead-letter queue and told to its project, not retried.

Lambda retries a failed asynchronous invocation whatever the error, so a handler that raised on a bad upload would
stage it three times and then park it with no word to anyone who pushed it. Instead the handler catches the
`InputError`, calls `refuse`, and returns: the event lands in the dead-letter queue once, in the record shape of a
Lambda on-failure destination (`requestContext.condition` is `InputRefused`), and when the event names a project, one
`upload-refused` alert goes to the alerts topic in the formats of docs/alerts.md.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sagepush import alerts, naming

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

    from sagepush.errors import InputError

logger = logging.getLogger(__name__)

CONDITION = "InputRefused"
"""`requestContext.condition` of a parked record: retrying cannot help, the input must change."""
STATUS = "UploadRefused"
_CONSOLE = {
    "aws": "console.aws.amazon.com",
    "aws-cn": "console.amazonaws.cn",
    "aws-us-gov": "console.amazonaws-us-gov.com",
}
_MAX_PAYLOAD = 200_000  # SQS takes 256 KiB a message; an event bigger than this is parked cut, with a note


@dataclass(frozen=True, slots=True)
class RefusedUpload:
    """An upload StageFunction will not stage, and why; rendered for every SNS protocol like a job's alert."""

    project: str
    bucket: str
    key: str
    where: str
    problem: str
    error: str
    region: str
    time: str

    @property
    def reason(self) -> str:
        return f"{self.where}: {self.problem}"

    @property
    def subject(self) -> str:
        return _ascii_line(
            f"[sagepush] {self.project}: upload refused: {self.key.rpartition('/')[2]}", alerts.MAX_SUBJECT
        )

    def console_url(self) -> str:
        partition = alerts.partition_of(self.region)
        host = f"{self.region}.{_CONSOLE[partition]}" if partition == "aws" else _CONSOLE[partition]
        prefix = quote(self.key.rpartition("/")[0] + "/")
        return f"https://{host}/s3/buckets/{self.bucket}?region={self.region}&prefix={prefix}"

    def document(self) -> dict[str, Any]:
        """Return the `sagepush.alert.v1` document, kind `upload-refused` (no job exists, so `job_name` is null)."""
        return {
            "schema": alerts.SCHEMA,
            "kind": "upload-refused",
            "job_name": None,
            "project": self.project,
            "status": STATUS,
            "job_status": None,
            "severity": "error",
            "headline": "upload refused",
            "time": self.time,
            "region": self.region,
            "latest": True,
            "failure_reason": self.reason,
            "status_message": None,
            "error": self.error,
            "cause": self.reason,
            "upload": {"bucket": self.bucket, "key": self.key},
            "source": {},
            "code_uri": None,
            "duration_seconds": None,
            "billable_seconds": None,
            "model_artifacts": None,
            "final_metrics": {},
            "log_tail": [],
            "links": {"console": self.console_url(), "logs": ""},
        }

    def messages(self) -> dict[str, str]:
        """Return the per-protocol messages of one `MessageStructure=json` publish."""
        document = json.dumps(self.document(), separators=(",", ":"))
        text = "\n".join(
            [
                f"sagepush refused an upload to project {self.project}: nothing was staged and no job started.",
                "",
                f"Upload: s3://{self.bucket}/{self.key}",
                f"Reason: {self.reason}",
                "",
                "Fix the upload and push again.",
                f"Console: {self.console_url()}",
            ]
        )
        chat = {
            "version": "1.0",
            "source": "custom",
            "content": {
                "textType": "client-markdown",
                "title": f":x: {self.project}: upload refused",
                "description": _cut(f"*Upload:* `{self.key}`\n*Reason:* {self.reason}", 2000),
                "nextSteps": [f"<{self.console_url()}|Open the upload>"],
                "keywords": [self.project, STATUS, "error"],
            },
            "metadata": {"summary": f"{self.project}: upload refused", "eventType": STATUS},
        }
        return {
            "default": text,
            "email": text,
            "sms": _ascii_line(f"sagepush {self.project} upload refused: {self.reason}", 140),
            "sqs": document,
            "lambda": document,
            "http": document,
            "firehose": document,
            "https": json.dumps(chat, separators=(",", ":")),
        }

    def attributes(self) -> dict[str, str]:
        return {"project": self.project, "status": STATUS, "severity": "error"}


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


def project_of(event: Any, *, prefix: str) -> str | None:
    """Return the project an S3 Object Created event's key names, or None when it names none validly."""
    obj = event.get("detail", {}).get("object", {}) if isinstance(event, dict) else {}
    key = obj.get("key") if isinstance(obj, dict) else None
    if not isinstance(key, str):
        return None
    try:
        return naming.project_from_key(key, prefix=prefix)
    except naming.NamingError:
        return None


def refuse(
    event: Any,
    error: InputError,
    *,
    function_arn: str,
    queue_url: str,
    topic_arn: str,
    region: str,
    ingest_prefix: str,
    sqs: SQSClient,
    sns: SNSClient,
) -> Refusal:
    """Park `event` in the dead-letter queue with `error`, then alert the project the event names, if any.

    Parking comes first: should the alert fail, the invocation fails and is retried, and the retry parks a second
    record rather than the project missing its alert.
    """
    park(event, error, function_arn=function_arn, queue_url=queue_url, sqs=sqs)
    project = project_of(event, prefix=ingest_prefix)
    alert_id = None
    if project is not None:
        detail = event["detail"]
        refused = RefusedUpload(
            project=project,
            bucket=str(detail.get("bucket", {}).get("name", "")),
            key=str(detail["object"]["key"]),
            where=error.where,
            problem=error.message,
            error=type(error).__name__,
            region=region,
            time=event.get("time") if isinstance(event.get("time"), str) else _now(),
        )
        alert_id = alerts.publish_messages(
            refused.subject, refused.messages(), refused.attributes(), topic_arn=topic_arn, sns=sns
        )
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


def _ascii_line(text: str, limit: int) -> str:
    line = "".join(c if 32 <= ord(c) < 127 else "?" for c in " ".join(text.split()))
    return _cut(line, limit, ellipsis="...")


def _cut(text: str, limit: int, *, ellipsis: str = "…") -> str:
    return text if len(text) <= limit else text[: limit - len(ellipsis)] + ellipsis


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
