"""Capture the requests the SageMaker Python SDK v2 sends to register and deploy a framework model, without AWS.

stdin: a JSON list of cases, each `{"id", "region", "framework", "framework_version", "py_version", "entry_point",
"code_uri", "code_location", "model_data", "role", "model_name", "group", "content_types", "response_types",
"approval_status", "description", "metadata", "customer_metadata", "metrics_uri", "endpoint", "tags"}`
(`metrics_uri` may be null). stdout: `{id: {"image", "CreateModelPackage", "CreateModel", "CreateEndpointConfig",
"CreateEndpoint"}}`, or `{id: {"error": "..."}}` when the SDK refuses the case.

The model is the one a user would write after training: `SKLearnModel` / `XGBoostModel` / `PyTorchModel` with the
job's `model.tar.gz`, the entry point and the staged code (`source_dir`, an S3 URI, so nothing is uploaded) and the
image the SDK's `image_uris.retrieve(..., image_scope="inference")` gives (returned as `image`); then
`register(...)` into the group, with the job's metrics document as the model quality statistics
(`ModelMetrics(model_statistics=MetricsSource(...))`) when the case names one, and `deploy(...)` on instances or
serverless. The session is real but its SageMaker client only records; sockets are closed. The SDK repacks a PyTorch
model with its code (TorchServe reads it from /opt/ml/model/code): the repack, which reads and writes S3, is
replaced by a no-op, so only its request is kept.

stdin may instead be `{"repack": {"model_file", "code_file", "code_uri", "entry_point", "output"}}`: the SDK's own
`repack_model` is run on those local files (see `repack`), and stdout is `{"members": {name: {...}}}`.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import traceback
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
from sagemaker import image_uris, utils  # noqa: E402
from sagemaker.metadata_properties import MetadataProperties  # noqa: E402
from sagemaker.model_metrics import MetricsSource, ModelMetrics  # noqa: E402
from sagemaker.pytorch import PyTorchModel  # noqa: E402
from sagemaker.serverless import ServerlessInferenceConfig  # noqa: E402
from sagemaker.session import Session  # noqa: E402
from sagemaker.sklearn import SKLearnModel  # noqa: E402
from sagemaker.tensorflow import TensorFlowModel  # noqa: E402
from sagemaker.xgboost import XGBoostModel  # noqa: E402


def _no_network(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError("the reference must not reach the network")


socket.socket.connect = _no_network  # type: ignore[method-assign]
socket.create_connection = _no_network  # type: ignore[assignment]
REPACK_MODEL = utils.repack_model
utils.repack_model = lambda *args, **kwargs: None  # the PyTorch and TensorFlow models' repack reads and writes S3

MODELS = {"sklearn": SKLearnModel, "xgboost": XGBoostModel, "pytorch": PyTorchModel, "tensorflow": TensorFlowModel}
NO_TELEMETRY = {"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}
RECORDED = ("create_model_package", "create_model", "create_endpoint_config", "create_endpoint")


class RecordingClient:
    """Stands in for the boto3 SageMaker client: records the create calls; the group is said to exist."""

    def __init__(self) -> None:
        self.requests: dict[str, dict[str, Any]] = {}

    def __getattr__(self, name: str) -> Any:
        if name not in RECORDED:
            raise AttributeError(name)

        def record(**request: Any) -> dict[str, Any]:
            operation = "".join(part.title() for part in name.split("_"))
            self.requests[operation] = request
            arn = "arn:aws:sagemaker:us-east-1:123456789012:recorded/1"
            return {f"{kind}Arn": arn for kind in ("ModelPackage", "Model", "EndpointConfig", "Endpoint")}

        return record

    def search(self, **request: Any) -> dict[str, Any]:
        return {"Results": [{"ModelPackageGroup": {"ModelPackageGroupName": "recorded"}}]}


def session(region: str, client: RecordingClient) -> Session:
    boto_session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region)
    return Session(
        boto_session=boto_session,
        sagemaker_client=client,
        default_bucket="reference-default-bucket",
        sagemaker_config=NO_TELEMETRY,
    )


def capture(case: dict[str, Any]) -> dict[str, Any]:
    client = RecordingClient()
    endpoint = case["endpoint"]
    image = image_uris.retrieve(
        case["framework"],
        case["region"],
        version=case["framework_version"],
        py_version=case.get("py_version"),
        instance_type=endpoint.get("instance_type", "ml.m5.large"),
        image_scope="inference",
    )
    arguments: dict[str, Any] = {
        "model_data": case["model_data"],
        "role": case["role"],
        "entry_point": case["entry_point"],
        "source_dir": case["code_uri"],
        "code_location": case["code_location"],  # where a repacked model goes (and no default bucket is looked up)
        "framework_version": case["framework_version"],
        "image_uri": image,
        "name": case["model_name"],
        "sagemaker_session": session(case["region"], client),
    }
    if case.get("py_version") and case["framework"] != "tensorflow":  # TensorFlowModel takes no py_version
        arguments["py_version"] = case["py_version"]
    model = MODELS[case["framework"]](**arguments)
    metadata = case["metadata"]
    metrics = None
    if case.get("metrics_uri"):
        metrics = ModelMetrics(
            model_statistics=MetricsSource(content_type="application/json", s3_uri=case["metrics_uri"])
        )
    model.register(
        # XGBoostModel.register needs them (it reads the first): the endpoint's instance type, when it has one
        inference_instances=[endpoint["instance_type"]] if "instance_type" in endpoint else None,
        content_types=case["content_types"],
        response_types=case["response_types"],
        model_package_group_name=case["group"],
        approval_status=case["approval_status"],
        description=case["description"],
        customer_metadata_properties=case["customer_metadata"],
        metadata_properties=MetadataProperties(
            commit_id=metadata.get("CommitId"),
            repository=metadata.get("Repository"),
            generated_by=metadata.get("GeneratedBy"),
        ),
        model_metrics=metrics,
    )
    deploy: dict[str, Any] = {
        "endpoint_name": endpoint["name"],
        "tags": case["tags"],
        "wait": False,
    }
    if "memory_size_in_mb" in endpoint:
        deploy["serverless_inference_config"] = ServerlessInferenceConfig(
            memory_size_in_mb=endpoint["memory_size_in_mb"], max_concurrency=endpoint["max_concurrency"]
        )
    else:
        deploy["instance_type"] = endpoint["instance_type"]
        deploy["initial_instance_count"] = endpoint["initial_instance_count"]
    model.deploy(**deploy)
    return {"image": image, **client.requests}


def repack(case: dict[str, Any]) -> dict[str, Any]:
    """Run the SDK's own `repack_model` on local files: the model (`file://`), the staged code named by its S3 address
    as a model's `source_dir` is (its download served from `code_file`), into `output`; return the output's members
    as `{name: {"type": "file" | "dir", "sha256": ...}}`."""
    import hashlib
    import shutil
    import tarfile

    def download(url: str, dst: str, sagemaker_session: Any) -> None:
        if url != case["code_uri"]:
            raise RuntimeError(f"the reference downloads only the staged code, not {url}")
        shutil.copyfile(case["code_file"], dst)

    utils.download_file_from_url = download
    REPACK_MODEL(
        inference_script=case["entry_point"],
        source_directory=case["code_uri"],
        dependencies=[],
        model_uri="file://" + case["model_file"],
        repacked_model_uri="file://" + case["output"],
        sagemaker_session=session("us-east-1", RecordingClient()),
    )
    members: dict[str, Any] = {}
    with tarfile.open(case["output"], "r:gz") as tar:
        for info in tar:
            if info.isfile():
                data = tar.extractfile(info).read()  # type: ignore[union-attr]
                members[info.name] = {"type": "file", "sha256": hashlib.sha256(data).hexdigest()}
            else:
                members[info.name] = {"type": "dir" if info.isdir() else info.type.decode()}
    return {"members": members}


def main() -> None:
    cases = json.load(sys.stdin)
    if isinstance(cases, dict) and "repack" in cases:
        json.dump(repack(cases["repack"]), ANSWER)
        return
    results: dict[str, Any] = {}
    for case in cases:
        try:
            results[case["id"]] = capture(case)
        except (ValueError, AttributeError, TypeError, RuntimeError, KeyError) as exc:
            traceback.print_exc()
            results[case["id"]] = {"error": f"{type(exc).__name__}: {exc}"}
    json.dump(results, ANSWER, default=str)


if __name__ == "__main__":
    main()
