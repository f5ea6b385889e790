"""Build a PyTorch CreateTrainingJob request with the SageMaker Python SDK v2, as a user's script would, without AWS.

Runs in the SDK's own isolated environment (never the project's), timed as a fresh process by bench/spawn.py, so the
interpreter's start counts, as it does for `sagepush render`. stdin: `{"code_uri", "job_name"}`.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
    }
)


class _RecordingClient:
    def __init__(self) -> None:
        self.requests: list[dict[str, object]] = []

    def create_training_job(self, **request: object) -> dict[str, str]:
        self.requests.append(request)
        return {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/recorded"}


def _build(case: dict[str, str]) -> dict[str, object]:
    import boto3
    from sagemaker.pytorch import PyTorch
    from sagemaker.session import Session

    client = _RecordingClient()
    session = Session(
        boto_session=boto3.Session(region_name="us-east-1"),
        sagemaker_client=client,
        default_bucket="sagepush-artifacts",
        sagemaker_config={"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}},
    )
    estimator = PyTorch(
        entry_point="train.py",
        source_dir=case["code_uri"],
        framework_version="2.5.1",
        py_version="py311",
        instance_type="ml.g5.xlarge",
        instance_count=2,
        max_run=7200,
        hyperparameters={"epochs": 10, "lr": 0.001, "batch_size": 64},
        distribution={"torch_distributed": {"enabled": True}},
        role="arn:aws:iam::111122223333:role/sagepush-sagemaker-execution",
        output_path="s3://sagepush-artifacts/output/",
        sagemaker_session=session,
    )
    estimator.fit(wait=False, logs="None", job_name=case["job_name"])
    (request,) = client.requests
    return request


def main() -> None:
    answer, sys.stdout = sys.stdout, sys.stderr  # the SDK logs to stdout
    json.dump(_build(json.load(sys.stdin)), answer, default=str)


if __name__ == "__main__":
    main()
