"""`sagepush local demo`: push a project into the local stack and follow it, as a person would, to its end."""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sagepush_cli.project import archive_directory, project_name

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sagepush_cli.local.stack import LocalStack

CREATE_DEADLINE_SECONDS = 60
"""From the upload to its CreateTrainingJob."""
JOB_DEADLINE_SECONDS = 900
"""From CreateTrainingJob to the job's end, including building its environment on first use."""
SETTLE_DEADLINE_SECONDS = 30
"""From the job's end to its execution's end and its last alert."""
_POLL_SECONDS = 0.1
LOG_TAIL_LINES = 10


@dataclass
class Transition:
    """One secondary status the job passed through."""

    status: str
    start: str
    message: str = ""


@dataclass
class DemoResult:
    """What one push through the local stack produced."""

    project: str
    key: str
    job_name: str | None = None
    execution_arn: str | None = None
    request: dict[str, Any] = field(default_factory=dict)
    code_uri: str | None = None
    code_reused: bool = False  # the staged code was already in the artifact bucket before this push
    seconds_to_create: float | None = None
    status: str | None = None
    secondary_status: str | None = None
    failure_reason: str | None = None
    transitions: list[Transition] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    model_uri: str | None = None
    log_tail: list[str] = field(default_factory=list)
    execution_status: str | None = None
    execution_error: str | None = None
    execution_cause: str | None = None
    alerts: list[dict[str, str]] = field(default_factory=list)
    seconds_total: float | None = None
    staged_before: set[str] = field(default_factory=set, repr=False)

    @property
    def completed(self) -> bool:
        """True when the training job completed."""
        return self.status == "Completed"

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, `completed` included."""
        document = {**asdict(self), "completed": self.completed}
        del document["staged_before"]
        return document


def push(
    stack: LocalStack, path: Path, *, project: str | None = None, metadata: dict[str, str] | None = None
) -> DemoResult:
    """Upload `path` (a directory, archive or script) to the stack's ingest bucket, as `sagepush push` would."""
    import boto3

    name = project or project_name(path)
    s3 = boto3.client("s3")
    artifacts = stack.outputs["ArtifactBucketName"]
    code_prefix = stack.function("StageFunction").environment["CODE_PREFIX"]
    staged_before = {
        f"s3://{artifacts}/{item['Key']}"
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=artifacts, Prefix=f"{code_prefix}{name}/")
        for item in page.get("Contents", [])
    }
    with tempfile.TemporaryDirectory(prefix="sagepush-push-") as workdir:
        source = archive_directory(path, Path(workdir) / f"{name}.tar") if path.is_dir() else path
        key = f"incoming/{name}/{source.name}"
        s3.upload_file(str(source), stack.outputs["IngestBucketName"], key, ExtraArgs={"Metadata": metadata or {}})
    return DemoResult(project=name, key=key, staged_before=staged_before)


def subscribe_alerts(stack: LocalStack, name: str = "sagepush-local-alerts") -> str:
    """Subscribe a new SQS queue to the stack's AlertsTopic; return the queue URL."""
    import boto3

    sqs, sns = boto3.client("sqs"), boto3.client("sns")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=stack.outputs["AlertsTopicArn"], Protocol="sqs", Endpoint=arn)
    return url


def receive_alerts(queue_url: str) -> list[dict[str, str]]:
    """Take every alert waiting on the queue: each one's subject and text, in the order they arrived."""
    import boto3

    sqs = boto3.client("sqs")
    alerts: list[dict[str, str]] = []
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return alerts
        for message in messages:
            envelope = json.loads(message["Body"])
            alerts.append({"subject": envelope.get("Subject") or "", "text": envelope.get("Message") or ""})
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def wait_for_job(stack: LocalStack, result: DemoResult, started: float) -> DemoResult:
    """Wait (deadline-bounded) until the upload's execution has created its training job; fill `result`."""
    import boto3
    from botocore.exceptions import ClientError

    sfn = boto3.client("stepfunctions")
    sagemaker = boto3.client("sagemaker")
    deadline = time.monotonic() + CREATE_DEADLINE_SECONDS
    stack.drain()
    machine = stack.outputs["TrainingStateMachineArn"]
    while time.monotonic() < deadline:
        for execution in sfn.list_executions(stateMachineArn=machine)["executions"]:
            if not execution["name"].startswith(f"{result.project}-"):
                continue
            result.job_name, result.execution_arn = execution["name"], execution["executionArn"]
            try:
                job = sagemaker.describe_training_job(TrainingJobName=execution["name"])
            except ClientError:
                break  # the execution has not created its job yet (SageMaker answers ValidationException)
            result.seconds_to_create = time.monotonic() - started
            result.code_uri = job["HyperParameters"]["sagemaker_submit_directory"].strip('"')
            result.code_reused = result.code_uri in result.staged_before
            result.request = _request_of(job)
            return result
        time.sleep(_POLL_SECONDS)  # polling the local server for a job created on another thread
    raise TimeoutError(f"no training job for {result.key} within {CREATE_DEADLINE_SECONDS}s")


def follow(stack: LocalStack, result: DemoResult, *, queue_url: str | None = None) -> DemoResult:
    """Wait (deadline-bounded) for the job and its execution to end; fill in how it went."""
    import boto3

    assert result.job_name is not None
    sagemaker, sfn = boto3.client("sagemaker"), boto3.client("stepfunctions")
    deadline = time.monotonic() + JOB_DEADLINE_SECONDS
    job = sagemaker.describe_training_job(TrainingJobName=result.job_name)
    while job["TrainingJobStatus"] not in {"Completed", "Failed", "Stopped"}:
        if time.monotonic() > deadline:
            raise TimeoutError(f"training job {result.job_name} did not end within {JOB_DEADLINE_SECONDS}s")
        time.sleep(_POLL_SECONDS)  # polling the local server for a job running on another thread
        job = sagemaker.describe_training_job(TrainingJobName=result.job_name)
    result.status, result.secondary_status = job["TrainingJobStatus"], job.get("SecondaryStatus")
    result.failure_reason = job.get("FailureReason")
    result.transitions = [
        Transition(t["Status"], t["StartTime"].isoformat(timespec="milliseconds"), t.get("StatusMessage", ""))
        for t in job.get("SecondaryStatusTransitions", [])
    ]
    result.metrics = {m["MetricName"]: m["Value"] for m in job.get("FinalMetricDataList", [])}
    result.model_uri = job.get("ModelArtifacts", {}).get("S3ModelArtifacts")
    result.log_tail = log_tail(result.job_name)
    if result.execution_arn:
        settle = time.monotonic() + SETTLE_DEADLINE_SECONDS
        execution = sfn.describe_execution(executionArn=result.execution_arn)
        while execution["status"] == "RUNNING" and time.monotonic() < settle:
            stack.drain()
            time.sleep(_POLL_SECONDS)  # the execution ends when the status function settles its task token
            execution = sfn.describe_execution(executionArn=result.execution_arn)
        result.execution_status = execution["status"]
        result.execution_error, result.execution_cause = execution.get("error"), execution.get("cause")
    stack.drain()
    if queue_url:
        result.alerts = receive_alerts(queue_url)
    return result


def log_tail(job_name: str, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last lines of the job's log in CloudWatch Logs."""
    import boto3

    from sagepush_cli import follow

    return follow.log_tail(boto3.client("logs"), job_name, lines)


def run(
    stack: LocalStack, path: Path, *, project: str | None = None, metadata: dict[str, str] | None = None
) -> DemoResult:
    """Push `path`, follow its job to the end and collect the alerts it raised."""
    queue_url = subscribe_alerts(stack, name=f"sagepush-local-alerts-{int(time.time() * 1000)}")
    started = time.monotonic()
    result = push(stack, path, project=project, metadata=metadata)
    wait_for_job(stack, result, started)
    follow(stack, result, queue_url=queue_url)
    result.seconds_total = time.monotonic() - started
    return result


_REQUEST_FIELDS = (
    "TrainingJobName",
    "AlgorithmSpecification",
    "RoleArn",
    "HyperParameters",
    "InputDataConfig",
    "OutputDataConfig",
    "ResourceConfig",
    "StoppingCondition",
    "VpcConfig",
    "EnableNetworkIsolation",
    "EnableInterContainerTrafficEncryption",
    "EnableManagedSpotTraining",
    "CheckpointConfig",
    "Environment",
    "RetryStrategy",
)


def _request_of(job: Mapping[str, Any]) -> dict[str, Any]:
    """The CreateTrainingJob fields DescribeTrainingJob echoes back."""
    return {name: job[name] for name in _REQUEST_FIELDS if name in job}
