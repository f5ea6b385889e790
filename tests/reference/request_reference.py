"""Capture the CreateTrainingJob request the SageMaker Python SDK v2 sends for framework estimators (and for its
generic `Estimator`, when the spec names an image and no framework), without AWS.

stdin: a JSON list of cases, each `{"id", "region", "job_name", "code_uri", "tags", "spec"}` where `spec` is a
resolved sagepush manifest table (`spec_to_manifest`). stdout: `{id: request}`, or `{id: {"error": "..."}}` when the
SDK refuses the case. The estimator is the one a user would write for that spec: the framework class with the
manifest's keys as arguments, `source_dir` set to the already staged code (so nothing is uploaded) and
`fit(channels, job_name=...)`. The session is real but its SageMaker client only records `create_training_job`;
sockets are closed, so any call that would reach AWS fails loudly.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from typing import Any

# The SDK logs to stdout and builds clients of its own (TensorBoard app); keep stdout for the answer, give those
# clients dummy credentials, and never let them ask an instance metadata service.
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

import inspect  # noqa: E402

import boto3  # noqa: E402
from sagemaker import image_uris  # noqa: E402
from sagemaker.debugger import TensorBoardOutputConfig  # noqa: E402
from sagemaker.estimator import Estimator  # noqa: E402
from sagemaker.huggingface import HuggingFace  # noqa: E402
from sagemaker.inputs import ShuffleConfig, TrainingInput  # noqa: E402
from sagemaker.pytorch import PyTorch  # noqa: E402
from sagemaker.session import Session  # noqa: E402
from sagemaker.sklearn import SKLearn  # noqa: E402
from sagemaker.tensorflow import TensorFlow  # noqa: E402
from sagemaker.xgboost import XGBoost  # noqa: E402


def _no_network(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError("the reference must not reach the network")


socket.socket.connect = _no_network  # type: ignore[method-assign]
socket.create_connection = _no_network  # type: ignore[assignment]

ESTIMATORS = {
    "pytorch": PyTorch,
    "tensorflow": TensorFlow,
    "sklearn": SKLearn,
    "xgboost": XGBoost,
    "huggingface": HuggingFace,
}
# Manifest keys passed to the estimator unchanged (they are its argument names).
PASSED = [
    "entry_point",
    "framework_version",
    "py_version",
    "image_uri",
    "instance_type",
    "instance_count",
    "volume_size",
    "volume_kms_key",
    "max_run",
    "input_mode",
    "hyperparameters",
    "environment",
    "use_spot_instances",
    "max_wait",
    "checkpoint_s3_uri",
    "checkpoint_local_path",
    "subnets",
    "security_group_ids",
    "enable_network_isolation",
    "encrypt_inter_container_traffic",
    "output_path",
    "output_kms_key",
    "distribution",
    "role",
    "container_log_level",
    "max_retry_attempts",
    "keep_alive_period_in_seconds",
    "training_plan",
    "enable_session_tag_chaining",
    "model_dir",
    "model_uri",
    "enable_sagemaker_metrics",
    "enable_infra_check",
    "container_entry_point",
    "container_arguments",
    "disable_output_compression",
    "pytorch_version",
    "tensorflow_version",
]


NO_TELEMETRY = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}


class RecordingClient:
    """Stands in for the boto3 SageMaker client: records CreateTrainingJob, answers nothing else."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def create_training_job(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        return {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/recorded"}


def session(region: str, client: RecordingClient) -> Session:
    boto_session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region)
    return Session(
        boto_session=boto_session,
        sagemaker_client=client,
        default_bucket="reference-default-bucket",
        sagemaker_config=NO_TELEMETRY,
    )


def channel(value: Any) -> Any:
    if isinstance(value, str):
        return value
    return TrainingInput(
        value["s3_uri"],
        distribution=value.get("distribution"),
        compression=value.get("compression"),
        content_type=value.get("content_type"),
        record_wrapping=value.get("record_wrapping"),
        s3_data_type=value.get("s3_data_type", "S3Prefix"),
        input_mode=value.get("input_mode"),
        attribute_names=value.get("attribute_names"),
        shuffle_config=ShuffleConfig(value["shuffle_seed"]) if "shuffle_seed" in value else None,
    )


def capture(case: dict[str, Any]) -> dict[str, Any]:
    spec = case["spec"]
    client = RecordingClient()
    kwargs = {key: spec[key] for key in PASSED if key in spec}
    if "metric_definitions" in spec:
        kwargs["metric_definitions"] = spec["metric_definitions"]
    if "tensorboard_output_config" in spec:
        kwargs["tensorboard_output_config"] = TensorBoardOutputConfig(**spec["tensorboard_output_config"])
    tags = [*({"Key": k, "Value": v} for k, v in spec.get("tags", {}).items()), *case["tags"]]
    kwargs["tags"] = tags or None
    if "framework" not in spec and "entry_point" not in spec:
        # The image runs its own entrypoint: the generic Estimator, no code, only the arguments it takes; a built-in
        # algorithm's image is the one the SDK's image_uris gives.
        if "algorithm" in spec:
            kwargs["image_uri"] = image_uris.retrieve(
                spec["algorithm"],
                case["region"],
                version=spec.get("framework_version"),
                instance_type=spec["instance_type"],
            )
        accepted = inspect.signature(Estimator.__init__).parameters
        kwargs = {key: value for key, value in kwargs.items() if key in accepted}
        estimator: Any = Estimator(sagemaker_session=session(case["region"], client), **kwargs)
    else:
        kwargs["source_dir"] = case["code_uri"]
        if spec["framework"] == "huggingface":
            kwargs["transformers_version"] = kwargs.pop("framework_version", None)
        estimator = ESTIMATORS[spec["framework"]](sagemaker_session=session(case["region"], client), **kwargs)
    channels = {name: channel(value) for name, value in spec.get("channels", {}).items()}
    estimator.fit(channels or None, wait=False, logs="None", job_name=case["job_name"])
    (request,) = client.requests
    return request


def main() -> None:
    cases = json.load(sys.stdin)
    results: dict[str, Any] = {}
    for case in cases:
        try:
            results[case["id"]] = capture(case)
        except (ValueError, AttributeError, TypeError, RuntimeError) as exc:
            results[case["id"]] = {"error": f"{type(exc).__name__}: {exc}"}
    json.dump(results, ANSWER, default=str)


if __name__ == "__main__":
    main()
