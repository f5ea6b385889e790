"""Capture the code the SageMaker Python SDK v2 stages for a framework estimator's `entry_point`, `source_dir` and
`dependencies`, and the `sagemaker_program` it sends, without AWS.

stdin: a JSON list of cases, each `{"id", "files": {path: text}, "entry_point", "source_dir", "dependencies"}`;
the files are written into a fresh project folder, which is the working directory while the estimator runs, so
`source_dir` and `dependencies` are relative to the project root as a notebook beside the code would give them.
stdout: `{id: {"members": {name: sha256 or "dir"}, "duplicates": [...], "program", "submit_directory"}}`, or
`{id: {"error": "..."}}` when the SDK refuses the case. The estimator (SKLearn) stages its code as `fit()` does
(`_stage_user_code_in_s3` → `fw_utils.tar_and_upload_dir` → `utils.create_tar_file`); the S3 resource it uploads
sourcedir.tar.gz through keeps the file instead, and the SageMaker client only records `create_training_job`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import socket
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

ANSWER = sys.stdout
sys.stdout = sys.stderr
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
)

import boto3  # noqa: E402
from sagemaker.session import Session  # noqa: E402
from sagemaker.sklearn import SKLearn  # noqa: E402


def _no_network(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError("the reference must not reach the network")


socket.socket.connect = _no_network  # type: ignore[method-assign]
socket.create_connection = _no_network  # type: ignore[assignment]

ROLE = "arn:aws:iam::123456789012:role/SagepushTraining"
NO_TELEMETRY = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}


class RecordingClient:
    """Stands in for the boto3 SageMaker client: records CreateTrainingJob, answers nothing else."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def create_training_job(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        return {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/recorded"}


class KeptObject:
    """An S3 object whose upload_file copies the file into `kept` (named by the key) instead of uploading it."""

    def __init__(self, kept: dict[str, bytes], bucket: str, key: str) -> None:
        self.kept, self.uri = kept, f"s3://{bucket}/{key}"

    def upload_file(self, filename: str, ExtraArgs: Any = None) -> None:
        self.kept[self.uri] = Path(filename).read_bytes()


class KeepingS3:
    """Stands in for the boto3 S3 resource the SDK uploads sourcedir.tar.gz through."""

    def __init__(self) -> None:
        self.kept: dict[str, bytes] = {}

    def Object(self, bucket: str, key: str) -> KeptObject:
        return KeptObject(self.kept, bucket, key)


def members(data: bytes) -> tuple[dict[str, str], list[str]]:
    """Each member of a tar.gz by name (directories ending in `/`): a file's SHA-256, or "dir"; and the names that
    appear more than once (tarfile adds a path twice when it is asked to)."""
    found: dict[str, str] = {}
    duplicates: list[str] = []
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        for info in archive.getmembers():
            name = info.name.rstrip("/") + ("/" if info.isdir() else "")
            if info.isdir():
                value = "dir"
            else:
                extracted = archive.extractfile(info)
                assert extracted is not None
                value = hashlib.sha256(extracted.read()).hexdigest()
            if name in found:
                duplicates.append(name)
                if found[name] != value:
                    raise RuntimeError(f"{name} appears twice with different content")
            found[name] = value
    return found, duplicates


def capture(case: dict[str, Any], root: Path) -> dict[str, Any]:
    project = root / case["id"]
    for name, text in case["files"].items():
        path = project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    client = RecordingClient()
    sagemaker_session = Session(
        boto_session=boto3.Session(region_name="us-east-1"),
        sagemaker_client=client,
        default_bucket="reference-default-bucket",
        sagemaker_config=NO_TELEMETRY,
    )
    s3 = KeepingS3()
    sagemaker_session.s3_resource = s3
    os.chdir(project)
    try:
        estimator = SKLearn(
            entry_point=case["entry_point"],
            source_dir=case.get("source_dir"),
            dependencies=case.get("dependencies"),
            framework_version="1.2-1",
            py_version="py3",
            instance_type="ml.m5.large",
            role=ROLE,
            output_path="s3://reference-output/output/",
            sagemaker_session=sagemaker_session,
        )
        estimator.fit(wait=False, logs="None", job_name=f"parity-{case['id']}")
    finally:
        os.chdir(root)
    (request,) = client.requests
    hyperparameters = request["HyperParameters"]
    submit_directory = json.loads(hyperparameters["sagemaker_submit_directory"])
    found, duplicates = members(s3.kept[submit_directory])
    return {
        "members": found,
        "duplicates": duplicates,
        "program": json.loads(hyperparameters["sagemaker_program"]),
        "submit_directory": submit_directory,
    }


def main() -> None:
    cases = json.load(sys.stdin)
    results: dict[str, Any] = {}
    root = Path(tempfile.mkdtemp(prefix="sdk-code-"))
    try:
        for case in cases:
            try:
                results[case["id"]] = capture(case, root)
            except (ValueError, OSError) as exc:
                results[case["id"]] = {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    json.dump(results, ANSWER)


if __name__ == "__main__":
    main()
