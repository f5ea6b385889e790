"""Alerts: a training job's transition rendered for every SNS protocol, and published once with filterable attributes.

One SNS publish with `MessageStructure=json` carries every format (see docs/alerts.md):
- `default`, `email`, `email-json`'s fallback, `sms`: readable text;
- `sqs`, `lambda`, `http`, `firehose`: the versioned JSON document (`"schema": "sagepush.alert.v1"`);
- `https`: an AWS Chatbot custom notification. Chatbot subscribes to a topic over HTTPS, and SNS hands each
  subscriber the message under its own protocol's key, so the chat format lives there. An HTTPS webhook that wants
  the JSON document reads it from the notification's `metadata.additionalContext.alert` or subscribes over SQS.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from sagepush.events import PROJECT_TAG

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_sns import SNSClient

    from sagepush.events import TrainingStateChange
    from sagepush.ledger import LedgerEntry

logger = logging.getLogger(__name__)

SCHEMA = "sagepush.alert.v1"
LOG_GROUP = "/aws/sagemaker/TrainingJobs"
LOG_LINES = 20
MAX_SUBJECT = 100
_MAX_LOG_LINE = 500
_MAX_TEXT = 2000

Severity = Literal["info", "warning", "error"]
SEVERITY: dict[str, Severity] = {
    "Failed": "error",
    "MaxRuntimeExceeded": "error",
    "MaxWaitTimeExceeded": "error",
    "SubmitFailed": "error",
    "Interrupted": "warning",
    "Stopping": "warning",
    "Stopped": "warning",
}
WITH_LOGS = frozenset({"Failed", "MaxRuntimeExceeded", "MaxWaitTimeExceeded"})
"""Transitions whose alert carries the tail of the job's log."""
HEADLINES = {
    "Starting": "job started",
    "Pending": "job pending",
    "LaunchingMLInstances": "launching instances",
    "PreparingTrainingStack": "preparing the training stack",
    "Downloading": "downloading input data",
    "DownloadingTrainingImage": "downloading the training image",
    "Training": "training started",
    "Interrupted": "spot interruption",
    "Restarting": "restarting after an interruption",
    "Uploading": "uploading the model",
    "Stopping": "stopping",
    "Updating": "updating",
    "Completed": "completed",
    "Failed": "failed",
    "Stopped": "stopped",
    "MaxRuntimeExceeded": "stopped: maximum runtime exceeded",
    "MaxWaitTimeExceeded": "stopped: maximum spot wait exceeded",
}
_CONSOLE = {
    "aws": "console.aws.amazon.com",
    "aws-cn": "console.amazonaws.cn",
    "aws-us-gov": "console.amazonaws-us-gov.com",
}


@dataclass(frozen=True, slots=True)
class Alert:
    """Everything an alert says about one transition, independent of how it is rendered."""

    job_name: str
    project: str
    status: str
    job_status: str
    severity: Severity
    time: str
    region: str
    latest: bool = True
    failure_reason: str | None = None
    status_message: str | None = None
    source: Mapping[str, str] = field(default_factory=dict)
    code_uri: str | None = None
    duration_seconds: int | None = None
    billable_seconds: int | None = None
    model_artifacts: str | None = None
    final_metrics: Mapping[str, float] = field(default_factory=dict)
    log_tail: tuple[str, ...] = ()
    console_url: str = ""
    logs_url: str = ""

    @property
    def headline(self) -> str:
        """A few words for the transition: "training started", "failed", ..."""
        return HEADLINES.get(self.status, self.status)

    @property
    def subject(self) -> str:
        """The SNS subject: printable ASCII, one line, at most 100 characters (SNS's rules)."""
        return _ascii_line(f"[sagepush] {self.project}: {self.job_name} {self.headline}", MAX_SUBJECT)

    def document(self) -> dict[str, Any]:
        """Return the `sagepush.alert.v1` JSON document."""
        return {
            "schema": SCHEMA,
            "kind": "training-state",
            "job_name": self.job_name,
            "project": self.project,
            "status": self.status,
            "job_status": self.job_status,
            "severity": self.severity,
            "headline": self.headline,
            "time": self.time,
            "region": self.region,
            "latest": self.latest,
            "failure_reason": self.failure_reason,
            "status_message": self.status_message,
            "source": dict(self.source),
            "code_uri": self.code_uri,
            "duration_seconds": self.duration_seconds,
            "billable_seconds": self.billable_seconds,
            "model_artifacts": self.model_artifacts,
            "final_metrics": dict(self.final_metrics),
            "log_tail": list(self.log_tail),
            "links": {"console": self.console_url, "logs": self.logs_url},
        }

    def text(self) -> str:
        """Return the readable text for email and the `default` key."""
        lines = [f"sagepush training job {self.job_name} (project {self.project}): {self.headline}.", ""]
        if not self.latest:
            lines += ["This transition was reported late; a later state has already been recorded.", ""]
        facts = [
            ("Status", f"{self.job_status} / {self.status}"),
            ("Time", self.time),
            ("Reason", self.failure_reason),
            ("Message", self.status_message),
            ("Commit", self.source.get("commit")),
            ("Branch", self.source.get("branch")),
            ("Repository", self.source.get("repo")),
            ("Author", self.source.get("author")),
            ("Duration", _duration(self.duration_seconds)),
            ("Billable", _duration(self.billable_seconds)),
            ("Model", self.model_artifacts),
            ("Code", self.code_uri),
        ]
        lines += [f"{label}: {value}" for label, value in facts if value]
        lines += [f"Metric {name}: {value:g}" for name, value in sorted(self.final_metrics.items())]
        if self.log_tail:
            lines += ["", f"Last {len(self.log_tail)} log lines:", *(f"  {line}" for line in self.log_tail)]
        lines += ["", f"Console: {self.console_url}", f"Logs: {self.logs_url}"]
        return "\n".join(lines)

    def sms(self) -> str:
        """Return a short text for SMS."""
        reason = f": {self.failure_reason}" if self.failure_reason else ""
        return _ascii_line(f"sagepush {self.job_name} {self.headline}{reason}", 140)

    def chat(self) -> dict[str, Any]:
        """Return an AWS Chatbot custom notification (https://docs.aws.amazon.com/chatbot/latest/adminguide/custom-notifs.html)."""
        icon = {"error": ":x:", "warning": ":warning:", "info": ":white_check_mark:"}[self.severity]
        commit = self.source.get("commit")
        facts = {
            "Status": f"{self.job_status} / {self.status}",
            "Reason": self.failure_reason,
            "Commit": f"`{commit[:12]}`" if commit else None,
            "Duration": _duration(self.duration_seconds),
            "Billable": _duration(self.billable_seconds),
        }
        details = [f"*{label}:* {value}" for label, value in facts.items() if value]
        if self.log_tail:
            details.append("```\n" + "\n".join(self.log_tail[-10:]) + "\n```")
        return {
            "version": "1.0",
            "source": "custom",
            "id": f"{self.job_name}:{self.status}",
            "content": {
                "textType": "client-markdown",
                "title": f"{icon} {self.project}: {self.job_name} {self.headline}",
                "description": _cut("\n".join(details), _MAX_TEXT),
                "nextSteps": [f"<{self.console_url}|Open the job>", f"<{self.logs_url}|Open the logs>"],
                "keywords": [self.project, self.status, self.severity],
            },
            "metadata": {
                "threadId": self.job_name,
                "summary": f"{self.project}: {self.job_name} {self.headline}",
                "eventType": self.status,
                "relatedResources": [self.job_name],
                "additionalContext": {"alert": json.dumps(self.document(), separators=(",", ":"))},
            },
        }

    def messages(self) -> dict[str, str]:
        """Return the per-protocol messages of one `MessageStructure=json` publish."""
        document = json.dumps(self.document(), separators=(",", ":"))
        text = self.text()
        return {
            "default": text,
            "email": text,
            "sms": self.sms(),
            "sqs": document,
            "lambda": document,
            "http": document,
            "firehose": document,
            "https": json.dumps(self.chat(), separators=(",", ":")),
        }

    def attributes(self) -> dict[str, str]:
        """Return the message attributes subscribers filter on."""
        return {"project": self.project, "status": self.status, "severity": self.severity}


def build_alert(
    state: TrainingStateChange, entry: LedgerEntry | None, *, latest: bool = True, log_tail: tuple[str, ...] = ()
) -> Alert:
    """Return the alert for `state`, with what the ledger knows about the job's origin."""
    start = state.training_start_ms or state.creation_ms
    end = state.training_end_ms or (state.last_modified_ms if state.terminal else None)
    project = state.project or (entry.project if entry else None) or state.tags.get(PROJECT_TAG) or "unknown"
    console_url, logs_url = links(state.region, state.job_name)
    return Alert(
        job_name=state.job_name,
        project=project,
        status=state.secondary_status,
        job_status=state.status,
        severity=SEVERITY.get(state.secondary_status, "info"),
        time=iso_time(state.last_modified_ms),
        region=state.region,
        latest=latest,
        failure_reason=state.failure_reason,
        status_message=state.status_message,
        source=entry.source if entry else _source_from_tags(state.tags),
        code_uri=entry.code_uri if entry else None,
        duration_seconds=(end - start) // 1000 if start and end and end >= start else None,
        billable_seconds=state.billable_seconds,
        model_artifacts=state.model_artifacts,
        final_metrics=state.final_metrics,
        log_tail=log_tail,
        console_url=console_url,
        logs_url=logs_url,
    )


def publish_alert(alert: Alert, *, topic_arn: str, sns: SNSClient) -> str:
    """Publish `alert` in every format at once; return the SNS message id."""
    return publish_messages(alert.subject, alert.messages(), alert.attributes(), topic_arn=topic_arn, sns=sns)


def publish_messages(
    subject: str, messages: Mapping[str, str], attributes: Mapping[str, str], *, topic_arn: str, sns: SNSClient
) -> str:
    """Publish per-protocol `messages` with string message `attributes`; return the SNS message id."""
    response = sns.publish(
        TopicArn=topic_arn,
        Subject=subject,
        Message=json.dumps(messages),
        MessageStructure="json",
        MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items() if v},
    )
    return response["MessageId"]


def last_log_lines(job_name: str, *, logs: CloudWatchLogsClient, limit: int = LOG_LINES) -> tuple[str, ...]:
    """Return the last `limit` lines of the job's first host's log stream (`<job>/algo-1-<epoch>`), if it exists.

    A job that failed before its container started has no stream (and a new account may lack the log group): that
    is an empty tail, not an error.
    """
    try:
        streams = logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix=f"{job_name}/algo-1-")
        names = sorted(s["logStreamName"] for s in streams.get("logStreams", []) if "logStreamName" in s)
        if not names:
            return ()
        events = logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=names[-1], startFromHead=False, limit=limit)
    except logs.exceptions.ResourceNotFoundException:
        return ()
    lines = [_cut(e.get("message", "").rstrip("\n"), _MAX_LOG_LINE) for e in events.get("events", [])]
    return tuple(lines[-limit:])


def partition_of(region: str) -> str:
    """Return the AWS partition of `region`: aws, aws-cn or aws-us-gov."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def links(region: str, job_name: str) -> tuple[str, str]:
    """Return the console links to the job and to its log streams, on the console domain of the region's partition."""
    partition = partition_of(region)
    domain = _CONSOLE[partition]
    host = f"{region}.{domain}" if partition == "aws" else domain
    console = f"https://{host}/sagemaker/home?region={region}#/jobs/{job_name}"
    # The CloudWatch console escapes '/' in the fragment as $252F and '?'/'=' as $3F/$3D.
    group = LOG_GROUP.replace("/", "$252F")
    logs = f"https://{host}/cloudwatch/home?region={region}#logsV2:log-groups/log-group/{group}$3FlogStreamNameFilter$3D{job_name}"
    return console, logs


def iso_time(epoch_ms: int) -> str:
    """Return epoch milliseconds as ISO 8601 UTC text."""
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _source_from_tags(tags: Mapping[str, str]) -> dict[str, str]:
    return {name: tags[f"sagepush:{name}"] for name in ("commit", "branch", "repo") if tags.get(f"sagepush:{name}")}


def _duration(seconds: int | None) -> str | None:
    if seconds is None:
        return None
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def _ascii_line(text: str, limit: int) -> str:
    line = " ".join(text.split())
    line = "".join(c if 32 <= ord(c) < 127 else "?" for c in line)
    return _cut(line, limit, ellipsis="...")


def _cut(text: str, limit: int, *, ellipsis: str = "…") -> str:
    return text if len(text) <= limit else text[: limit - len(ellipsis)] + ellipsis
