"""`sagepush local demo`: push a project into the local stack and follow it, as a person would, to its end.

The job is found and followed as `sagepush push --wait` does it (`sagepush_cli.follow`): the job tag StageFunction
puts on the upload, then `follow.watch` until the job ends.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sagepush_cli import follow
from sagepush_cli.project import archive_directory, project_name

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mypy_boto3_stepfunctions import SFNClient

    from sagepush_cli.local.stack import LocalStack

CREATE_DEADLINE_SECONDS = 60
"""From the upload to its CreateTrainingJob."""
JOB_DEADLINE_SECONDS = 900
"""From CreateTrainingJob to the job's end, including building its environment on first use."""
SETTLE_DEADLINE_SECONDS = 30
"""From the job's end to its execution's end and its last alert."""
SERVE_DEADLINE_SECONDS = 600
"""From the execution's end to the endpoint serving the registered version, including building its environment."""
_POLL_SECONDS = 0.1
LOG_TAIL_LINES = 10


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
    job: follow.JobView | None = None
    """The job as `follow.watch` last saw it: its end, once `wait_for_end` has returned."""
    log_tail: list[str] = field(default_factory=list)
    execution_status: str | None = None
    execution_error: str | None = None
    execution_cause: str | None = None
    alerts: list[dict[str, str]] = field(default_factory=list)
    model: dict[str, Any] | None = None
    """The version registered from the job ([model]): group, version, approval status, and its endpoint if any."""
    prediction: str | None = None
    """The endpoint's answer to the row `run` was asked to predict, once it served the registered version."""
    seconds_total: float | None = None
    staged_before: set[str] = field(default_factory=set, repr=False)

    @property
    def completed(self) -> bool:
        """True when the training job completed."""
        return self.job is not None and self.job.completed

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the push, the job's view (`follow.JobView.as_dict`) and `completed`."""
        document = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("job", "staged_before")}
        return {**document, **(self.job.as_dict() if self.job else {}), "completed": self.completed}


def push(
    stack: LocalStack, path: Path, *, project: str | None = None, metadata: dict[str, str] | None = None
) -> DemoResult:
    """Upload `path` (a directory, archive or script) to the stack's ingest bucket, as `sagepush push` would."""
    from sagepush import aws

    name = project or project_name(path)
    s3 = aws.new_client("s3")
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
    from sagepush import aws

    sqs, sns = aws.new_client("sqs"), aws.new_client("sns")
    url = str(sqs.create_queue(QueueName=name)["QueueUrl"])
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=stack.outputs["AlertsTopicArn"], Protocol="sqs", Endpoint=arn)
    return url


def receive_alerts(queue_url: str) -> list[dict[str, str]]:
    """Take every alert waiting on the queue: each one's subject and text, in the order they arrived."""
    from sagepush import aws

    sqs = aws.new_client("sqs")
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
    """Wait (deadline-bounded) until the upload's job exists, found as `push --wait` finds it; fill `result`.

    Raises:
        follow.FollowError: the upload was refused, or its job was not created within CREATE_DEADLINE_SECONDS.
    """
    from sagepush import aws

    s3, sagemaker = aws.new_client("s3"), aws.new_client("sagemaker")
    bucket = stack.outputs["IngestBucketName"]
    version = follow.upload_version(s3, bucket=bucket, key=result.key)
    result.job_name = follow.job_of_upload(
        s3, bucket=bucket, key=result.key, version_id=version, timeout=CREATE_DEADLINE_SECONDS, poll=_POLL_SECONDS
    )
    left = max(0.0, CREATE_DEADLINE_SECONDS - (time.monotonic() - started))
    next(follow.watch(sagemaker, result.job_name, timeout=left, poll=_POLL_SECONDS))  # its first view: it exists
    result.seconds_to_create = time.monotonic() - started
    job = sagemaker.describe_training_job(TrainingJobName=result.job_name)
    result.code_uri = job["HyperParameters"]["sagemaker_submit_directory"].strip('"')
    result.code_reused = result.code_uri in result.staged_before
    result.request = _request_of(job)
    machine = stack.outputs["TrainingStateMachineArn"]
    result.execution_arn = _execution_arn(aws.new_client("stepfunctions"), machine, result.job_name)
    return result


def wait_for_end(stack: LocalStack, result: DemoResult, *, queue_url: str | None = None) -> DemoResult:
    """Follow the job with `follow.watch` to its end, then wait (deadline-bounded) for its execution to end.

    Raises:
        follow.FollowError: the job did not end within JOB_DEADLINE_SECONDS.
    """
    from sagepush import aws

    assert result.job_name is not None
    for view in follow.watch(
        aws.new_client("sagemaker"), result.job_name, timeout=JOB_DEADLINE_SECONDS, poll=_POLL_SECONDS
    ):
        result.job = view
    result.log_tail = follow.log_tail(aws.new_client("logs"), result.job_name, LOG_TAIL_LINES)
    if result.execution_arn:
        sfn = aws.new_client("stepfunctions")
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


def run(
    stack: LocalStack,
    path: Path,
    *,
    project: str | None = None,
    metadata: dict[str, str] | None = None,
    predict: str | None = None,
    content_type: str = "text/csv",
) -> DemoResult:
    """Push `path`, follow its job to the end and collect the alerts it raised; with `predict`, wait for the
    endpoint to serve the version registered from the job and ask it for a prediction of that body."""
    queue_url = subscribe_alerts(stack, name=f"sagepush-local-alerts-{int(time.time() * 1000)}")
    started = time.monotonic()
    result = push(stack, path, project=project, metadata=metadata)
    wait_for_job(stack, result, started)
    wait_for_end(stack, result, queue_url=queue_url)
    result.model = registered_model(result)
    if predict is not None and result.model is not None and result.model.get("endpoint"):
        serve(stack, result, predict, content_type=content_type)
        result.alerts += receive_alerts(queue_url)
    result.seconds_total = time.monotonic() - started
    return result


def registered_model(result: DemoResult) -> dict[str, Any] | None:
    """The version of the registry whose model came from the job (`sagepush:job`), or None."""
    from sagepush import aws, registry

    if not result.completed or result.job_name is None:
        return None
    sagemaker = aws.new_client("sagemaker")
    for page in sagemaker.get_paginator("list_model_package_groups").paginate():
        for group in page["ModelPackageGroupSummaryList"]:
            name = group["ModelPackageGroupName"]
            for summary in sagemaker.list_model_packages(ModelPackageGroupName=name)["ModelPackageSummaryList"]:
                package = sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
                if package.get("CustomerMetadataProperties", {}).get(registry.JOB_PROPERTY) == result.job_name:
                    endpoint = registry.endpoint_of_package(package)
                    return {
                        "group": name,
                        "version": package["ModelPackageVersion"],
                        "status": package["ModelApprovalStatus"],
                        "endpoint": endpoint.name if endpoint else None,
                    }
    return None


def serve(stack: LocalStack, result: DemoResult, body: str, *, content_type: str) -> None:
    """Wait (deadline-bounded) for the registered version's endpoint to serve it, then ask it to predict `body`.

    Raises:
        follow.FollowError: the version is not approved, or its endpoint did not serve it within the deadline.
    """
    from sagepush import aws, registry
    from sagepush.events import EndpointStatus

    assert result.model is not None
    if result.model["status"] != registry.APPROVED:
        raise follow.FollowError(
            f"{result.model['group']} v{result.model['version']} is {result.model['status']}: nothing is deployed "
            f"until `sagepush approve {result.model['version']} --group {result.model['group']}`"
        )
    name, config = (
        result.model["endpoint"],
        registry.endpoint_config_name(result.model["endpoint"], result.model["version"]),
    )
    sagemaker = aws.new_client("sagemaker")
    deadline = time.monotonic() + SERVE_DEADLINE_SECONDS
    while True:
        stack.drain()
        try:
            endpoint = sagemaker.describe_endpoint(EndpointName=name)
        except sagemaker.exceptions.ClientError:
            endpoint = {}
        status = endpoint.get("EndpointStatus")
        if status == EndpointStatus.IN_SERVICE and endpoint.get("EndpointConfigName") == config:
            break
        if status == EndpointStatus.FAILED or time.monotonic() > deadline:
            reason = endpoint.get("FailureReason") or f"still {status or 'not created'}"
            raise follow.FollowError(f"endpoint {name} does not serve {config}: {reason}")
        time.sleep(_POLL_SECONDS)  # the endpoint starts its model in the background
    answer = aws.new_client("sagemaker-runtime").invoke_endpoint(
        EndpointName=name, Body=body.encode(), ContentType=content_type, Accept=content_type
    )
    result.prediction = answer["Body"].read().decode().strip()


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


def _execution_arn(sfn: SFNClient, machine: str, name: str) -> str | None:
    """The ARN of the state machine's execution named `name` (a job's execution bears the job's name)."""
    for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=machine):
        for execution in page["executions"]:
            if execution["name"] == name:
                return execution["executionArn"]
    return None
