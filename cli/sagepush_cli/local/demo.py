"""`sagepush local demo`: push a project into the local stack and follow it to its CreateTrainingJob."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sagepush_cli.project import archive_directory, project_name

if TYPE_CHECKING:
    from sagepush_cli.local.stack import LocalStack

_DEADLINE_SECONDS = 60


@dataclass
class DemoResult:
    """What one push through the local stack produced."""

    project: str
    key: str
    job_name: str | None = None
    execution_arn: str | None = None
    request: dict[str, Any] = field(default_factory=dict)
    code_uri: str | None = None
    seconds_to_create: float | None = None


def push(
    stack: LocalStack, path: Path, *, project: str | None = None, metadata: dict[str, str] | None = None
) -> DemoResult:
    """Upload `path` (a directory, archive or script) to the stack's ingest bucket, as `sagepush push` would."""
    import boto3

    name = project or project_name(path)
    s3 = boto3.client("s3")
    with tempfile.TemporaryDirectory(prefix="sagepush-push-") as workdir:
        source = archive_directory(path, Path(workdir) / f"{name}.tar") if path.is_dir() else path
        key = f"incoming/{name}/{source.name}"
        s3.upload_file(str(source), stack.outputs["IngestBucketName"], key, ExtraArgs={"Metadata": metadata or {}})
    return DemoResult(project=name, key=key)


def wait_for_job(stack: LocalStack, result: DemoResult, started: float) -> DemoResult:
    """Wait (deadline-bounded) until the upload's execution has created its training job; fill `result`."""
    import boto3

    sfn = boto3.client("stepfunctions")
    sagemaker = boto3.client("sagemaker")
    deadline = time.monotonic() + _DEADLINE_SECONDS
    stack.drain()
    machine = stack.outputs["TrainingStateMachineArn"]
    while time.monotonic() < deadline:
        for execution in sfn.list_executions(stateMachineArn=machine)["executions"]:
            if not execution["name"].startswith(f"{result.project}-"):
                continue
            result.job_name, result.execution_arn = execution["name"], execution["executionArn"]
            try:
                job = sagemaker.describe_training_job(TrainingJobName=execution["name"])
            except sagemaker.exceptions.ResourceNotFound:
                break
            result.seconds_to_create = time.monotonic() - started
            result.code_uri = job["HyperParameters"]["sagemaker_submit_directory"].strip('"')
            result.request = _request_of(dict(job))
            return result
        time.sleep(0.05)  # polling the local server for a job created on another thread
    raise TimeoutError(f"no training job for {result.key} within {_DEADLINE_SECONDS}s")


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


def _request_of(job: dict[str, Any]) -> dict[str, Any]:
    """The CreateTrainingJob fields DescribeTrainingJob echoes back."""
    return {name: job[name] for name in _REQUEST_FIELDS if name in job}
