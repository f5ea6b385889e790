"""Alerts: a training job's transition rendered for every SNS protocol, and published once with filterable attributes.

One SNS publish with `MessageStructure=json` carries every format (see docs/alerts.md):
- `default`, `email`, `email-json`'s fallback, `sms`: readable text;
- `sqs`, `lambda`, `http`, `firehose`: the versioned JSON document (`"schema": "sagepush.alert.v1"`);
- `https`: an AWS Chatbot custom notification. Chatbot subscribes to a topic over HTTPS, and SNS hands each
  subscriber the message under its own protocol's key, so the chat format lives there. An HTTPS webhook that wants
  the JSON document reads it from the notification's `metadata.additionalContext.alert` or subscribes over SQS.

The same `Alert` also renders an upload StageFunction refused (`kind` upload-refused, see `sagepush.refusals`), a job
waiting for capacity, a submission that failed for good (`kind` submit-failed, sent by NotifyFunction) and the end of
a `[strategy]` push (`kind` push-summary: every job of its matrix in one alert, see `sagepush.pushes`). A job of a
matrix is alerted like any other, with its push and matrix values (from its tags).
Each protocol's value is its own string in the publish, so the document travels five times and the text twice:
`fit` measures the whole publish as SNS counts it and cuts the log tail, then the free text (a push summary's job
failure reasons, then job rows), until it fits.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from sagepush.events import (
    FAILED_SECONDARY_STATUSES,
    MATRIX_TAG_PREFIX,
    PROJECT_TAG,
    PUSH_TAG,
    SecondaryStatus,
    TrainingJobStatus,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_sns import SNSClient

    from sagepush.events import TrainingStateChange
    from sagepush.ledger import Claim, Ledger, LedgerEntry

logger = logging.getLogger(__name__)

SCHEMA = "sagepush.alert.v1"
LOG_GROUP = "/aws/sagemaker/TrainingJobs"
LOG_LINES = 20
MAX_SUBJECT = 100
MAX_PUBLISH_BYTES = 262_144
"""SNS's limit on one publish: the UTF-8 bytes of `Message` plus every attribute's name, type and value.

https://docs.aws.amazon.com/sns/latest/api/API_Publish.html and API_MessageAttributeValue.html
"""
PUBLISH_BUDGET = MAX_PUBLISH_BYTES - 16_384
"""What `fit` lets one alert take; the margin covers the Subject (100 bytes at most) and any accounting SNS does not
document."""
_MAX_LOG_LINE = 500
_MAX_TEXT = 2000
_MINIMAL_REASON = 200
# SNS's codes for a publish it refuses as invalid ("Message too long", a bad attribute): InvalidParameterException,
# InvalidParameterValueException (code ParameterValueInvalid), and the query protocol's common InvalidParameterValue.
_INVALID = frozenset({"InvalidParameter", "ParameterValueInvalid", "InvalidParameterValue"})
_STRING = "String"
# Code points that are not valid in UTF-8 (lone surrogates) or that SQS refuses in a raw-delivered body.
_UNENCODABLE = re.compile("[\ud800-\udfff\ufffe\uffff]")
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

Severity = Literal["info", "warning", "error"]
Kind = Literal[
    "training-state",
    "submit-failed",
    "upload-refused",
    "waiting-for-capacity",
    "push-summary",
    "model-registered",
    "model-approval",
    "endpoint-state",
]
SEVERITY: dict[str, Severity] = {
    **dict.fromkeys(FAILED_SECONDARY_STATUSES, "error"),
    "SubmitFailed": "error",
    "UploadRefused": "error",
    "PushCompleted": "info",
    "PushFailed": "error",
    "ModelRegistered": "info",
    "ModelApproved": "info",
    "ModelRejected": "warning",
    "EndpointDeploying": "info",
    "EndpointInService": "info",
    "EndpointFailed": "error",
    "EndpointRolledBack": "error",
    SecondaryStatus.INTERRUPTED: "warning",
    "WaitingForCapacity": "warning",
    SecondaryStatus.STOPPING: "warning",
    SecondaryStatus.STOPPED: "warning",
}
WITH_LOGS = FAILED_SECONDARY_STATUSES
"""Transitions whose alert carries the tail of the job's log."""
HEADLINES: dict[str, str] = {
    SecondaryStatus.STARTING: "job started",
    SecondaryStatus.PENDING: "job pending",
    SecondaryStatus.LAUNCHING_ML_INSTANCES: "launching instances",
    SecondaryStatus.PREPARING_TRAINING_STACK: "preparing the training stack",
    SecondaryStatus.DOWNLOADING: "downloading input data",
    SecondaryStatus.DOWNLOADING_TRAINING_IMAGE: "downloading the training image",
    SecondaryStatus.TRAINING: "training started",
    SecondaryStatus.INTERRUPTED: "spot interruption",
    SecondaryStatus.RESTARTING: "restarting after an interruption",
    SecondaryStatus.UPLOADING: "uploading the model",
    SecondaryStatus.STOPPING: "stopping",
    SecondaryStatus.UPDATING: "updating",
    SecondaryStatus.COMPLETED: "completed",
    SecondaryStatus.FAILED: "failed",
    SecondaryStatus.STOPPED: "stopped",
    SecondaryStatus.MAX_RUNTIME_EXCEEDED: "stopped: maximum runtime exceeded",
    SecondaryStatus.MAX_WAIT_TIME_EXCEEDED: "stopped: maximum spot wait exceeded",
    "SubmitFailed": "could not submit",
    "UploadRefused": "upload refused",
    "WaitingForCapacity": "waiting for capacity",
    "PushCompleted": "every job completed",
    "PushFailed": "not every job completed",
    "ModelRegistered": "registered",
    "ModelApproved": "approved",
    "ModelRejected": "rejected",
    "EndpointDeploying": "deploying",
    "EndpointInService": "in service",
    "EndpointFailed": "deployment failed",
    "EndpointRolledBack": "deployment rolled back",
}
_CONSOLE = {
    "aws": "console.aws.amazon.com",
    "aws-cn": "console.amazonaws.cn",
    "aws-us-gov": "console.amazonaws-us-gov.com",
}


@dataclass(frozen=True, slots=True)
class Publication:
    """One SNS publish as sagepush sends it: the subject, the `MessageStructure=json` message, string attributes."""

    subject: str
    message: str
    attributes: Mapping[str, str]

    @property
    def size(self) -> int:
        """Return the bytes SNS counts: the message's, and each attribute's name, type and value."""
        counted = sum(
            len(name.encode()) + len(_STRING) + len(value.encode()) for name, value in self.attributes.items()
        )
        return len(self.message.encode()) + counted


@dataclass(frozen=True, slots=True)
class MatrixJob:
    """One job of a push's matrix as the summary shows it.

    `matrix` holds the job's matrix values by dotted manifest path (JSON values: str, int, float, bool). `status` is
    SageMaker's TrainingJobStatus (Completed, Failed, Stopped, InProgress, Stopping), or NotCreated for a job SageMaker
    never created; `objective` is the objective metric's final value, when the job reported it.
    """

    job_name: str
    matrix: Mapping[str, Any]
    status: str
    secondary_status: str | None = None
    duration_seconds: int | None = None
    billable_seconds: int | None = None
    objective: float | None = None
    failure_reason: str | None = None

    def document(self) -> dict[str, Any]:
        """Return the job's row of the summary's JSON document."""
        return {
            "job_name": self.job_name,
            "matrix": dict(self.matrix),
            "status": self.status,
            "secondary_status": self.secondary_status,
            "duration_seconds": self.duration_seconds,
            "billable_seconds": self.billable_seconds,
            "objective": self.objective,
            "failure_reason": self.failure_reason,
        }

    @property
    def shown_status(self) -> str:
        """The status, with the secondary status when it says more (Stopped (MaxRuntimeExceeded))."""
        if self.secondary_status in (None, self.status):
            return self.status
        return f"{self.status} ({self.secondary_status})"


@dataclass(frozen=True, slots=True)
class ModelFacts:
    """What a registry or hosting alert says about a model version and, when deployed, its endpoint.

    `gate` holds the verdict of each `approve_if` condition (`registry.Verdict.document()`); `endpoint_config` is the
    configuration being deployed (or, after a rollback, still serving).
    """

    group: str
    version: int | None = None
    package_arn: str | None = None
    approval_status: str | None = None
    approval_description: str | None = None
    gate: tuple[Mapping[str, Any], ...] = ()
    endpoint: str | None = None
    endpoint_config: str | None = None
    endpoint_status: str | None = None

    def document(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "version": self.version,
            "package_arn": self.package_arn,
            "approval_status": self.approval_status,
            "approval_description": self.approval_description,
            "gate": [dict(verdict) for verdict in self.gate],
            "endpoint": self.endpoint,
            "endpoint_config": self.endpoint_config,
            "endpoint_status": self.endpoint_status,
        }

    @property
    def label(self) -> str:
        """ "iris v3", or the group alone before a version is known."""
        return f"{self.group} v{self.version}" if self.version is not None else self.group

    def gate_lines(self) -> list[str]:
        """One line per condition: "validation:accuracy >= 0.9: 0.95, holds"."""
        lines = []
        for verdict in self.gate:
            value = verdict.get("value")
            shown = "no value reported" if value is None else f"{value:g}"
            lines.append(f"{verdict.get('condition')}: {shown}, {'holds' if verdict.get('holds') else 'fails'}")
        return lines


@dataclass(frozen=True, slots=True)
class Alert:
    """Everything an alert says about one transition (or one refused upload), independent of how it is rendered.

    A refused upload has no job: `job_name` and `job_status` are None and `upload` names the refused object.
    A job of a `[strategy]` matrix names its `push` and its `matrix` values (dotted manifest path to value, as tagged).
    A push summary (`kind` push-summary) has no job either: `push` names it, `jobs` holds a row per job in matrix
    order, `best` names the best job by the objective. `log_lines_cut` counts the earlier lines of the log tail left
    out, `jobs_cut` the job rows left out (see `shown_jobs`); `abridged` marks an alert cut short to fit.
    """

    job_name: str | None
    project: str
    status: str
    job_status: str | None
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
    kind: Kind = "training-state"
    error: str | None = None
    cause: str | None = None
    upload: Mapping[str, str] | None = None
    push: str | None = None
    matrix: Mapping[str, str] = field(default_factory=dict)
    jobs: tuple[MatrixJob, ...] = ()
    objective_metric_name: str | None = None
    objective_type: str | None = None
    best: str | None = None
    log_lines_cut: int = 0
    jobs_cut: int = 0
    abridged: bool = False
    model: ModelFacts | None = None

    @property
    def headline(self) -> str:
        """A few words for the transition: "training started", "failed", ..."""
        return HEADLINES.get(self.status, self.status)

    @property
    def subject(self) -> str:
        """The SNS subject: printable ASCII, one line, at most 100 characters (SNS's rules)."""
        if self.model is not None:
            return _ascii_line(f"[sagepush] {self.project}: {self._model_subject} {self.headline}", MAX_SUBJECT)
        if self.job_name is None and self.push is not None:
            return _ascii_line(f"[sagepush] {self.project}: push {self.push} {self.headline}", MAX_SUBJECT)
        if self.job_name is None:
            name = (self.upload or {}).get("key", "").rpartition("/")[2]
            return _ascii_line(f"[sagepush] {self.project}: {self.headline}: {name}", MAX_SUBJECT)
        return _ascii_line(f"[sagepush] {self.project}: {self.job_name} {self.headline}", MAX_SUBJECT)

    @property
    def _model_subject(self) -> str:
        """What a model alert is about: "model iris v3", or "endpoint iris (model iris v3)"."""
        model = self.model
        if model is None:
            return self.project
        if self.kind == "endpoint-state" and model.endpoint:
            return f"endpoint {model.endpoint} (model {model.label})"
        return f"model {model.label}"

    @property
    def _title(self) -> str:
        if self.model is not None:
            return f"{self.project}: {self._model_subject} {self.headline}"
        if self.job_name:
            return f"{self.project}: {self.job_name} {self.headline}"
        if self.push:
            return f"{self.project}: push {self.push} {self.headline}"
        return f"{self.project}: {self.headline}"

    @property
    def shown_jobs(self) -> tuple[MatrixJob, ...]:
        """The job rows rendered, in matrix order: all of `jobs` but `jobs_cut` of them.

        The rows left out are completed jobs first, the last in matrix order first; the best job's row is left out last.
        """
        if not self.jobs_cut:
            return self.jobs
        ranked = sorted(
            range(len(self.jobs)),
            key=lambda i: (
                self.jobs[i].job_name != self.best,
                self.jobs[i].status == TrainingJobStatus.COMPLETED,
                i,
            ),
        )
        return tuple(self.jobs[i] for i in sorted(ranked[: max(len(self.jobs) - self.jobs_cut, 0)]))

    def document(self) -> dict[str, Any]:
        """Return the `sagepush.alert.v1` JSON document."""
        # error and cause: the Step Functions error of a submission (submit-failed), the refusal of an upload.
        failure = {"error": self.error, "cause": self.cause} if self.error is not None else {}
        refused = {"upload": dict(self.upload)} if self.upload is not None else {}
        objective = (
            {"metric_name": self.objective_metric_name, "type": self.objective_type}
            if self.objective_metric_name is not None
            else None
        )
        return {
            "schema": SCHEMA,
            "kind": self.kind,
            "job_name": self.job_name,
            "push": self.push,
            "matrix": dict(self.matrix),
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
            **failure,
            **refused,
            "source": dict(self.source),
            "code_uri": self.code_uri,
            "duration_seconds": self.duration_seconds,
            "billable_seconds": self.billable_seconds,
            "model_artifacts": self.model_artifacts,
            "final_metrics": dict(self.final_metrics),
            "log_tail": list(self.log_tail),
            "log_lines_cut": self.log_lines_cut,
            "jobs": [job.document() for job in self.shown_jobs],
            "jobs_cut": self.jobs_cut,
            "objective": objective,
            "best": self.best,
            "model": self.model.document() if self.model is not None else None,
            "links": {"console": self.console_url, "logs": self.logs_url},
        }

    def text(self) -> str:
        """Return the readable text for email and the `default` key."""
        lines = [self._opening(), ""]
        if not self.latest:
            lines += ["This transition was reported late; a later state has already been recorded.", ""]
        if self.abridged:
            lines += ["This alert was cut short to what SNS accepts; the console has the details.", ""]
        if self.kind == "push-summary":
            lines += [*self._job_lines(), ""]
        if self.model is not None and self.model.gate:
            lines += ["Gate (approve_if):", *(f"  {line}" for line in self.model.gate_lines()), ""]
        model = self.model
        upload = f"s3://{self.upload.get('bucket', '')}/{self.upload.get('key', '')}" if self.upload else None
        facts = [
            ("Upload", upload),
            ("Status", f"{self.job_status} / {self.status}" if self.job_status else None),
            ("Model package", model.package_arn if model else None),
            ("Approval", model.approval_status if model else None),
            ("Approval note", model.approval_description if model else None),
            ("Endpoint", model.endpoint if model else None),
            ("Endpoint config", model.endpoint_config if model else None),
            ("Endpoint status", model.endpoint_status if model else None),
            ("Training job", self.job_name if model else None),
            ("Push", self.push if self.job_name else None),
            ("Matrix", _values(self.matrix)),
            ("Time", self.time),
            ("Error", self.error if self.kind == "submit-failed" else None),
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
        if self.log_tail or self.log_lines_cut:
            lines += ["", f"Last {len(self.log_tail)} log lines:"]
            if self.log_lines_cut:
                lines.append(f"  … {self.log_lines_cut} earlier lines cut")
            lines += [f"  {line}" for line in self.log_tail]
        lines.append("")
        if self.upload is not None:
            lines.append("Fix the upload and push again.")
        lines.append(f"Console: {self.console_url}")
        if self.logs_url:
            lines.append(f"Logs: {self.logs_url}")
        return "\n".join(lines)

    def _opening(self) -> str:
        if self.upload is not None:
            return f"sagepush refused an upload to project {self.project}: nothing was staged and no job started."
        if self.kind == "push-summary":
            return f"sagepush push {self.push} (project {self.project}): {self._outcome()}."
        if self.model is not None:
            return f"sagepush {self._model_subject} (project {self.project}): {self.headline}."
        return f"sagepush training job {self.job_name} (project {self.project}): {self.headline}."

    def _outcome(self) -> str:
        """How the push ended: "3 of 4 jobs completed; best <job> (<metric> = <value>)"."""
        completed = sum(job.status == TrainingJobStatus.COMPLETED for job in self.jobs)
        outcome = f"{completed} of {len(self.jobs)} jobs completed"
        best = next((job for job in self.jobs if job.job_name == self.best), None)
        if best is not None and best.objective is not None and self.objective_metric_name:
            return f"{outcome}; best {best.job_name} ({self.objective_metric_name} = {best.objective:g})"
        if self.best:
            return f"{outcome}; best {self.best}"
        if self.objective_metric_name:
            return f"{outcome}; no completed job reported {self.objective_metric_name}"
        return outcome

    def _job_lines(self) -> list[str]:
        """One line per job row (its failure reason on the next), and how many rows were left out."""
        shown = self.shown_jobs
        name_width = max((len(job.job_name) for job in shown), default=0)
        status_width = max((len(job.shown_status) for job in shown), default=0)
        lines = []
        for job in shown:
            billable = _duration(job.billable_seconds)
            parts = [
                job.job_name.ljust(name_width),
                job.shown_status.ljust(status_width),
                _values(job.matrix),
                _duration(job.duration_seconds),
                f"billable {billable}" if billable else None,
                _objective(self.objective_metric_name, job),
            ]
            lines.append("  " + "  ".join(part for part in parts if part).rstrip())
            if job.failure_reason:
                lines.append("      " + " ".join(job.failure_reason.split()))
        if self.jobs_cut:
            lines.append(f"  … {self.jobs_cut} more jobs cut; the console has them all")
        return lines

    def sms(self) -> str:
        """Return a short text for SMS."""
        if self.kind == "push-summary":
            completed = sum(job.status == TrainingJobStatus.COMPLETED for job in self.jobs)
            best = f", best {self.best}" if self.best else ""
            return _ascii_line(f"sagepush push {self.push}: {completed}/{len(self.jobs)} completed{best}", 140)
        reason = f": {self.failure_reason}" if self.failure_reason else ""
        if self.model is not None:
            return _ascii_line(f"sagepush {self._model_subject} {self.headline}{reason}", 140)
        return _ascii_line(f"sagepush {self.job_name or self.project} {self.headline}{reason}", 140)

    def chat(self, document: str | None = None) -> dict[str, Any]:
        """Return an AWS Chatbot custom notification (https://docs.aws.amazon.com/chatbot/latest/adminguide/custom-notifs.html).

        `document` is the compact JSON document to carry in `metadata.additionalContext.alert`, when already rendered.
        """
        icon = {"error": ":x:", "warning": ":warning:", "info": ":white_check_mark:"}[self.severity]
        commit = self.source.get("commit")
        facts = {
            "Upload": f"`{self.upload.get('key', '')}`" if self.upload else None,
            "Jobs": self._outcome() if self.kind == "push-summary" else None,
            "Status": f"{self.job_status} / {self.status}" if self.job_status else None,
            "Approval": self.model.approval_status if self.model else None,
            "Gate": "; ".join(self.model.gate_lines()) if self.model else None,
            "Job": f"`{self.job_name}`" if self.model and self.job_name else None,
            "Matrix": _values(self.matrix),
            "Error": f"`{self.error}`" if self.kind == "submit-failed" else None,
            "Reason": self.failure_reason,
            "Commit": f"`{commit[:12]}`" if commit else None,
            "Duration": _duration(self.duration_seconds),
            "Billable": _duration(self.billable_seconds),
        }
        details = [f"*{label}:* {value}" for label, value in facts.items() if value]
        if self.log_tail:
            details.append("```\n" + "\n".join(self.log_tail[-10:]) + "\n```")
        if self.kind == "push-summary":
            details += self._chat_jobs(_MAX_TEXT - len("\n".join(details)))
        target = {
            "upload-refused": "upload",
            "submit-failed": "execution",
            "push-summary": "execution",
            "model-registered": "model version",
            "model-approval": "model version",
            "endpoint-state": "endpoint",
        }.get(self.kind, "job")
        steps = [f"<{self.console_url}|Open the {target}>"]
        if self.logs_url:
            steps.append(f"<{self.logs_url}|Open the logs>")
        thread = (self.model.label if self.model else None) or self.job_name or self.push
        if self.model is not None:
            identity = f"{self.model.label}:{self.model.endpoint_config or ''}:{self.status}"
        else:
            identity = f"{self.job_name}:{self.status}" if self.job_name else f"{self.push}:summary"
        return {
            "version": "1.0",
            "source": "custom",
            **({"id": identity} if thread else {}),
            "content": {
                "textType": "client-markdown",
                "title": f"{icon} {self._title}",
                "description": _cut("\n".join(details), _MAX_TEXT),
                "nextSteps": steps,
                "keywords": [self.project, self.status, self.severity],
            },
            "metadata": {
                **({"threadId": thread} if thread else {}),
                "summary": self._title,
                "eventType": self.status,
                **({"relatedResources": [thread]} if thread else {}),
                "additionalContext": {"alert": document if document is not None else _compact(self.document())},
            },
        }

    def _chat_jobs(self, room: int) -> list[str]:
        """A line per job row, the best starred, as many as `room` characters hold; then how many are not listed."""
        lines: list[str] = []
        shown = self.shown_jobs
        for listed, job in enumerate(shown):
            mark = ":star: " if job.job_name == self.best else ""
            parts = [
                f"{mark}`{job.job_name}` {job.shown_status}",
                _values(job.matrix),
                _duration(job.duration_seconds),
                _objective(self.objective_metric_name, job),
            ]
            line = "• " + " · ".join(part for part in parts if part)
            # Keep room for the closing line, whichever job ends the list.
            if sum(len(kept) + 1 for kept in lines) + len(line) + 1 > room - 40:
                return [*lines, f"… {len(shown) - listed + self.jobs_cut} more jobs: open the execution"]
            lines.append(line)
        if self.jobs_cut:
            lines.append(f"… {self.jobs_cut} more jobs: open the execution")
        return lines

    def messages(self) -> dict[str, str]:
        """Return the per-protocol messages of one `MessageStructure=json` publish."""
        document = _compact(self.document())
        text = self.text()
        return {
            "default": text,
            "email": text,
            "sms": self.sms(),
            "sqs": document,
            "lambda": document,
            "http": document,
            "firehose": document,
            "https": _compact(self.chat(document)),
        }

    def attributes(self) -> dict[str, str]:
        """Return the message attributes subscribers filter on."""
        return {"project": self.project, "status": self.status, "severity": self.severity}

    def publication(self) -> Publication:
        """Return this alert as one publish, exactly as it is sent (see `fit` for one that fits SNS's limit)."""
        attributes = {name: _encodable(value) for name, value in self.attributes().items() if value}
        return Publication(self.subject, _encodable(_compact(self.messages())), attributes)

    def minimal(self) -> Alert:
        """Return the alert cut to job, project, status, links and the reason cut short: no log, no other text.

        A job's push and matrix values are kept; a push summary keeps its job rows, without their failure reasons.
        """
        return replace(
            self,
            failure_reason=_cut_optional(self.failure_reason, _MINIMAL_REASON),
            cause=_cut_optional(self.cause, _MINIMAL_REASON),
            status_message=None,
            source={},
            code_uri=None,
            model_artifacts=None,
            final_metrics={},
            log_tail=(),
            log_lines_cut=self.log_lines_cut + len(self.log_tail),
            jobs=_with_reasons(self.jobs, 0),
            abridged=True,
        )


def fit(alert: Alert, *, budget: int = PUBLISH_BUDGET) -> Publication:
    """Return `alert` as one publish whose size, as SNS counts it, is at most `budget` bytes.

    Whatever the log holds, the alert is cut in this order, each step only as far as it must: the tail to its newest
    `LOG_LINES` lines of at most 500 characters; then its oldest lines; then the newest line's length (cut at a
    character, never inside one); then the tail altogether; then the failure reason, status message and cause; and
    last `Alert.minimal`. The text says how many earlier lines were cut (the document's `log_lines_cut`). A push
    summary is cut as `_fit_jobs` says.
    """
    lines = tuple(_cut(line, _MAX_LOG_LINE) for line in alert.log_tail[-LOG_LINES:])
    cut = alert.log_lines_cut + len(alert.log_tail) - len(lines)
    alert = replace(alert, log_tail=lines, log_lines_cut=cut)
    whole = alert.publication()
    if whole.size <= budget:
        return whole

    def keeping(count: int, newest: str | None = None) -> Alert:
        kept = lines[len(lines) - count :] if count else ()
        if newest is not None:
            kept = (*kept[:-1], newest)
        return replace(alert, log_tail=kept, log_lines_cut=cut + len(lines) - count)

    def shortened(limit: int) -> Alert:
        return replace(
            keeping(0),
            failure_reason=_cut_optional(alert.failure_reason, limit),
            status_message=_cut_optional(alert.status_message, limit),
            cause=_cut_optional(alert.cause, limit),
        )

    bare = keeping(0).publication()
    if bare.size <= budget:
        found = _largest_fitting(1, len(lines) - 1, lambda n: keeping(n).publication(), budget)
        if found is None and lines:
            newest = lines[-1]
            found = _largest_fitting(1, len(newest) - 1, lambda n: keeping(1, _cut(newest, n)).publication(), budget)
        return found or bare
    if alert.jobs:
        return _fit_jobs(keeping(0), budget)
    # Without its log the alert is still too big: the free text is. Each character of it costs a byte or more in
    # each of several copies, so no cut longer than a quarter of the budget can fit.
    longest = max(len(alert.failure_reason or ""), len(alert.status_message or ""), len(alert.cause or ""))
    found = _largest_fitting(1, min(longest - 1, budget // 4), lambda n: shortened(n).publication(), budget)
    if found is not None:
        return found
    logger.warning("alert cut to its minimal form to fit sns", extra={"job_name": alert.job_name})
    return alert.minimal().publication()


def _fit_jobs(alert: Alert, budget: int) -> Publication:
    """Return push summary `alert` as one publish within `budget`, abridged.

    Each job's failure reason is cut to the longest length that fits (the same for every job); then the reasons are
    dropped; then job rows are left out (`Alert.shown_jobs` says which) as few as must be; and last `Alert.minimal`
    with as many rows as fit. The counts and the best job are always those of every job.
    """
    longest = max(len(job.failure_reason or "") for job in alert.jobs)

    def shortened(limit: int) -> Alert:
        return replace(alert, jobs=_with_reasons(alert.jobs, limit), abridged=True)

    found = _largest_fitting(1, min(longest - 1, budget // 4), lambda n: shortened(n).publication(), budget)
    found = found or _fewest_rows_cut(shortened(0), budget) or _fewest_rows_cut(alert.minimal(), budget)
    if found is not None:
        return found
    logger.warning("push summary cut to its minimal form without job rows to fit sns", extra={"push": alert.push})
    return replace(alert.minimal(), jobs_cut=len(alert.jobs)).publication()


def _fewest_rows_cut(alert: Alert, budget: int) -> Publication | None:
    """Return `alert` with as few job rows left out as lets it fit `budget`; None when it does not fit without any."""
    rows = len(alert.jobs)
    return _largest_fitting(0, rows, lambda shown: replace(alert, jobs_cut=rows - shown).publication(), budget)


def push_summary_alert(
    *,
    push: str,
    project: str,
    region: str,
    jobs: Sequence[MatrixJob],
    objective_metric_name: str | None,
    objective_type: str,
    best: str | None,
    source: Mapping[str, str],
    code_uri: str | None,
    execution_arn: str,
    time: str,
) -> Alert:
    """Return the one `push-summary` alert of a `[strategy]` push, sent when the last job of its matrix has ended.

    `jobs` are the push's jobs in matrix order; `best` names the completed job with the best value of the objective
    metric (`objective_type` Maximize or Minimize), if any. The status is PushCompleted when every job completed,
    else PushFailed. The link opens the push's execution on the console domain of the region's partition.
    """
    status = "PushCompleted" if all(job.status == TrainingJobStatus.COMPLETED for job in jobs) else "PushFailed"
    return Alert(
        job_name=None,
        project=project,
        status=status,
        job_status=None,
        severity=SEVERITY[status],
        time=time,
        region=region,
        source=source,
        code_uri=code_uri,
        console_url=f"https://{console_host(region)}/states/home?region={region}#/v2/executions/details/{execution_arn}",
        kind="push-summary",
        push=push,
        jobs=tuple(jobs),
        objective_metric_name=objective_metric_name,
        objective_type=objective_type,
        best=best,
    )


def model_alert(
    *,
    status: str,
    project: str,
    model: ModelFacts,
    region: str,
    time: str,
    job_name: str | None = None,
    source: Mapping[str, str] | None = None,
    final_metrics: Mapping[str, float] | None = None,
    model_artifacts: str | None = None,
    failure_reason: str | None = None,
) -> Alert:
    """Return a registry or hosting alert: a version registered (ModelRegistered, with the gate's verdicts), approved
    or rejected (ModelApproved, ModelRejected), or its endpoint deploying, in service, failed or rolled back
    (Endpoint*). `job_name` is the training job the model came from."""
    kind: Kind = (
        "model-registered"
        if status == "ModelRegistered"
        else "model-approval"
        if status.startswith("Model")
        else "endpoint-state"
    )
    host = console_host(region)
    if kind == "endpoint-state" and model.endpoint:
        console_url = f"https://{host}/sagemaker/home?region={region}#/endpoints/{model.endpoint}"
    else:
        console_url = f"https://{host}/sagemaker/home?region={region}#/model-registry/{model.group}"
    return Alert(
        job_name=job_name,
        project=project,
        status=status,
        job_status=None,
        severity=SEVERITY[status],
        time=time,
        region=region,
        failure_reason=failure_reason,
        source=dict(source or {}),
        model_artifacts=model_artifacts,
        final_metrics=dict(final_metrics or {}),
        console_url=console_url,
        kind=kind,
        model=model,
    )


def waiting_for_capacity_alert(
    *,
    job_name: str,
    project: str,
    region: str,
    reason: str,
    give_up_after_seconds: int,
    source: Mapping[str, str],
    code_uri: str,
    time: str,
) -> Alert:
    """Return the one `waiting-for-capacity` alert of a job SageMaker has no capacity for yet (ResourceLimitExceeded).

    The job is not failed: Submit is retried with backoff until capacity frees up, for at most `give_up_after_seconds`.
    """
    hours = give_up_after_seconds / 3600
    console, logs = links(region, job_name)
    return Alert(
        job_name=job_name,
        project=project,
        status="WaitingForCapacity",
        job_status=None,
        severity="warning",
        time=time,
        region=region,
        status_message=f"{reason}; retrying with backoff for up to {hours:g} h before giving up",
        source=source,
        code_uri=code_uri,
        console_url=console,
        logs_url=logs,
        kind="waiting-for-capacity",
    )


def submit_failed_alert(
    *,
    job_name: str,
    project: str,
    error: str,
    cause: str | None,
    execution_arn: str,
    region: str,
    log_group: str,
    source: Mapping[str, str],
    code_uri: str | None,
    time: str,
) -> Alert:
    """Return the `submit-failed` alert of an execution whose Submit task failed for good.

    `error` and `cause` are the task's, as Step Functions reports them (a cause may be 32,768 characters: `fit` cuts
    it); the reason shown is a Lambda error's `errorMessage` when the cause is one. The links open the execution and
    `log_group` (SubmitFunction's) on the console domain of the region's partition.
    """
    host = console_host(region)
    return Alert(
        job_name=job_name,
        project=project,
        status="SubmitFailed",
        job_status=None,
        severity=SEVERITY["SubmitFailed"],
        time=time,
        region=region,
        failure_reason=_error_message(cause),
        source=source,
        code_uri=code_uri,
        console_url=f"https://{host}/states/home?region={region}#/v2/executions/details/{execution_arn}",
        logs_url=f"https://{host}/cloudwatch/home?region={region}#logsV2:log-groups/log-group/{_escaped(log_group)}",
        kind="submit-failed",
        error=error,
        cause=cause,
    )


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
        push=state.tags.get(PUSH_TAG) or None,
        matrix=_matrix_of(state.tags),
    )


def publish_alert(alert: Alert, *, topic_arn: str, sns: SNSClient) -> str:
    """Publish `alert` in every format at once, fitted to SNS's size limit; return the SNS message id.

    When SNS still refuses the publish as invalid, publishing it again cannot help: the minimal alert goes out
    instead. Other errors (throttling, SNS unavailable) propagate, so the invocation is retried.
    """
    try:
        return _publish(fit(alert), topic_arn=topic_arn, sns=sns)
    except sns.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code not in _INVALID:
            raise
        logger.warning(
            "sns refused the alert, publishing the minimal one",
            extra={"job_name": alert.job_name, "status": alert.status, "code": code, "error": str(exc)},
        )
    return _publish(fit(alert.minimal()), topic_arn=topic_arn, sns=sns)


def publish_claimed(
    alert: Alert, *, claim: Claim | None, ledger: Ledger, topic_arn: str, sns: SNSClient, clock: Callable[[], int]
) -> str:
    """Publish `alert` under a claim taken with `ledger.claim_alert` (None: it has no ledger item to claim on); return
    the SNS message id. A failed publish gives the claim back, so a retry claims it at once; a published one is marked
    sent. See DynamoDBLedger.claim_alert for why claim, publish, mark-sent gives one alert per transition."""
    try:
        message_id = publish_alert(alert, topic_arn=topic_arn, sns=sns)
    except BaseException:
        if claim is not None:
            ledger.release_alert(claim)
        raise
    if claim is not None:
        ledger.mark_alert_sent(claim, message_id=message_id, now_ms=clock())
    return message_id


def _publish(publication: Publication, *, topic_arn: str, sns: SNSClient) -> str:
    response = sns.publish(
        TopicArn=topic_arn,
        Subject=publication.subject,
        Message=publication.message,
        MessageStructure="json",
        MessageAttributes={k: {"DataType": _STRING, "StringValue": v} for k, v in publication.attributes.items()},
    )
    return response["MessageId"]


def last_log_lines(job_name: str, *, logs: CloudWatchLogsClient, limit: int = LOG_LINES) -> tuple[str, ...]:
    """Return the last `limit` lines of the job's first host's log stream (`<job>/algo-1-<epoch>`), if it exists.

    Each line is shown as a terminal would show it (see `_as_shown`), at most 500 characters. A job that failed
    before its container started has no stream (and a new account may lack the log group): that is an empty tail,
    not an error.
    """
    try:
        streams = logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix=f"{job_name}/algo-1-")
        names = sorted(s["logStreamName"] for s in streams.get("logStreams", []) if "logStreamName" in s)
        if not names:
            return ()
        events = logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=names[-1], startFromHead=False, limit=limit)
    except logs.exceptions.ResourceNotFoundException:
        return ()
    lines = [_cut(_as_shown(e.get("message", "")), _MAX_LOG_LINE) for e in events.get("events", [])]
    return tuple(lines[-limit:])


def partition_of(region: str) -> str:
    """Return the AWS partition of `region`: aws, aws-cn or aws-us-gov."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def console_host(region: str) -> str:
    """Return the console's host name for `region`, on its partition's console domain."""
    partition = partition_of(region)
    return f"{region}.{_CONSOLE[partition]}" if partition == "aws" else _CONSOLE[partition]


def links(region: str, job_name: str) -> tuple[str, str]:
    """Return the console links to the job and to its log streams, on the console domain of the region's partition."""
    host = console_host(region)
    console = f"https://{host}/sagemaker/home?region={region}#/jobs/{job_name}"
    group = _escaped(LOG_GROUP)
    logs = f"https://{host}/cloudwatch/home?region={region}#logsV2:log-groups/log-group/{group}$3FlogStreamNameFilter$3D{job_name}"
    return console, logs


def _error_message(cause: str | None) -> str | None:
    # A Lambda function's error reaches Step Functions as the JSON of its error: {"errorMessage", "errorType", ...}.
    if cause is None or not cause.startswith("{"):
        return cause
    try:
        reported = json.loads(cause)
    except ValueError:
        return cause
    message = reported.get("errorMessage") if isinstance(reported, dict) else None
    return message if isinstance(message, str) and message else cause


def _escaped(log_group: str) -> str:
    # The CloudWatch console escapes '/' in the fragment as $252F and '?'/'=' as $3F/$3D.
    return log_group.replace("/", "$252F")


def iso_time(epoch_ms: int) -> str:
    """Return epoch milliseconds as ISO 8601 UTC text."""
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _largest_fitting(low: int, high: int, render: Callable[[int], Publication], budget: int) -> Publication | None:
    """Return `render(n)` for the largest n in [low, high] that fits `budget`, or None; its size grows with n."""
    best = None
    while low <= high:
        middle = (low + high) // 2
        candidate = render(middle)
        if candidate.size <= budget:
            best, low = candidate, middle + 1
        else:
            high = middle - 1
    return best


def _compact(value: Any) -> str:
    # Compact, and UTF-8 rather than \u escapes: an emoji costs 4 bytes instead of 12, and 14 once escaped again.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _encodable(text: str) -> str:
    return _UNENCODABLE.sub("\ufffd", text)


def _as_shown(message: str) -> str:
    # As a terminal shows it: a progress bar's last state (after each row's last carriage return), no colour codes.
    rows = (row.rstrip("\r").rpartition("\r")[2] for row in message.rstrip("\r\n").split("\n"))
    return _CONTROL.sub("\ufffd", _ANSI.sub("", "\n".join(rows)))


def _source_from_tags(tags: Mapping[str, str]) -> dict[str, str]:
    return {name: tags[f"sagepush:{name}"] for name in ("commit", "branch", "repo") if tags.get(f"sagepush:{name}")}


def _matrix_of(tags: Mapping[str, str]) -> dict[str, str]:
    """A matrix job's values by dotted manifest path, from its `sagepush:matrix:<path>` tags, sorted by path."""
    return {
        name.removeprefix(MATRIX_TAG_PREFIX): tags[name] for name in sorted(tags) if name.startswith(MATRIX_TAG_PREFIX)
    }


def _values(matrix: Mapping[str, Any]) -> str:
    # `hyperparameters.lr=0.1, instance_type=ml.m5.large`: a string as it is, any other value as JSON (as tagged).
    return ", ".join(
        f"{path}={value if isinstance(value, str) else json.dumps(value)}" for path, value in matrix.items()
    )


def _objective(metric: str | None, job: MatrixJob) -> str | None:
    return f"{metric}={job.objective:g}" if metric and job.objective is not None else None


def _with_reasons(jobs: tuple[MatrixJob, ...], limit: int) -> tuple[MatrixJob, ...]:
    """`jobs` with each failure reason cut to `limit` characters; none at all when `limit` is 0."""
    if not any(job.failure_reason for job in jobs):
        return jobs
    return tuple(
        replace(job, failure_reason=_cut_optional(job.failure_reason, limit) if limit else None) for job in jobs
    )


def _duration(seconds: int | None) -> str | None:
    if seconds is None:
        return None
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def _ascii_line(text: str, limit: int) -> str:
    # Only the head can show: folding whitespace in a whole 100 KB reason for 140 characters would cost milliseconds.
    head = text[: 4 * limit]
    line = " ".join(head.split()) + (" ..." if len(head) < len(text) else "")
    line = "".join(c if 32 <= ord(c) < 127 else "?" for c in line)
    return _cut(line, limit, ellipsis="...")


def _cut(text: str, limit: int, *, ellipsis: str = "…") -> str:
    return text if len(text) <= limit else text[: max(limit - len(ellipsis), 0)] + ellipsis


def _cut_optional(text: str | None, limit: int) -> str | None:
    return None if text is None else _cut(text, limit)
