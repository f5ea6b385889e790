"""The pure parts of local hosting: images, containers, deployment checks, event details, ModelError, framing."""

from __future__ import annotations

import io
import json
from datetime import datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.exceptions import ClientError

from sagepush_cli.local.endpoints import check_deployment_config, endpoint_detail, model_error_answer, package_detail
from sagepush_cli.local.serving import (
    INFERENCE_TOOLKIT,
    Container,
    ServingError,
    container_of,
    failed_check,
    requirements_text,
    training_image,
)
from sagepush_cli.local.serving_worker import Context, read_frame, write_frame

if TYPE_CHECKING:
    from pathlib import Path

ECR = "763104351884.dkr.ecr.us-east-1.amazonaws.com"
SKLEARN = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"


@pytest.mark.parametrize(
    ("image", "training"),
    [
        pytest.param(SKLEARN, SKLEARN, id="sklearn-same-repository"),
        pytest.param(
            f"{ECR}/pytorch-inference:2.1.0-cpu-py310", f"{ECR}/pytorch-training:2.1.0-cpu-py310", id="pytorch"
        ),
        pytest.param(f"{ECR}/my-own-inference:1", f"{ECR}/my-own-inference:1", id="unknown-kept"),
    ],
)
def test_an_inference_image_is_served_in_its_training_twin_s_environment(image: str, training: str) -> None:
    assert training_image(image) == training


def test_the_framework_of_a_container_comes_from_its_image() -> None:
    assert Container(SKLEARN, None, {}).framework == "sklearn"
    assert Container(f"{ECR}/pytorch-inference:2.1.0-cpu-py310", None, {}).framework == "pytorch"


def test_a_model_package_s_first_container_serves_with_the_model_s_environment_over_it() -> None:
    package = SimpleNamespace(
        inference_specification={
            "Containers": [{"Image": SKLEARN, "ModelDataUrl": "s3://b/m.tar.gz", "Environment": {"A": "1", "B": "1"}}]
        }
    )
    packages = SimpleNamespace(describe_model_package=lambda name: package)

    found = container_of({"ModelPackageName": "arn:pkg/1", "Environment": {"B": "2"}}, packages=packages)

    assert found == Container(SKLEARN, "s3://b/m.tar.gz", {"A": "1", "B": "2"})


def test_a_container_without_an_image_cannot_be_served() -> None:
    with pytest.raises(ServingError, match="names no Image"):
        container_of({"ModelDataUrl": "s3://b/m.tar.gz"})


def test_the_serving_environment_installs_the_toolkit_and_the_code_s_requirements(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("joblib\n")
    assert requirements_text(tmp_path) == f"{INFERENCE_TOOLKIT}\njoblib\n"
    assert requirements_text(tmp_path / "none") == f"{INFERENCE_TOOLKIT}\n"


def test_a_failed_health_check_names_the_variant_and_fits_failure_reason() -> None:
    reason = failed_check("AllTraffic", "x" * 2000)
    assert reason.startswith("The primary container for production variant AllTraffic did not pass")
    assert len(reason) == 1024


BLUE_GREEN = {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE"}}}


@pytest.mark.parametrize(
    ("config", "serverless", "error"),
    [
        pytest.param(None, False, None, id="none"),
        pytest.param(BLUE_GREEN, False, None, id="blue-green"),
        pytest.param(BLUE_GREEN, True, "not supported for an endpoint with serverless", id="serverless"),
        pytest.param(
            {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {"Type": "CANARY"}}},
            False,
            "needs CanarySize",
            id="canary-without-size",
        ),
        pytest.param({**BLUE_GREEN, "RollingUpdatePolicy": {}}, False, "not both", id="both-policies"),
        pytest.param(
            {**BLUE_GREEN, "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": f"a{i}"} for i in range(11)]}},
            False,
            "at most 10 alarms",
            id="eleven-alarms",
        ),
    ],
)
def test_update_endpoint_accepts_the_deployment_configs_aws_accepts(
    config: dict[str, Any] | None, serverless: bool, error: str | None
) -> None:
    if error is None:
        check_deployment_config(config, serverless=serverless)
    else:
        with pytest.raises(ValueError, match=error):
            check_deployment_config(config, serverless=serverless)


def test_an_endpoint_event_carries_its_state_times_in_epoch_ms_and_tags_as_a_map() -> None:
    endpoint = SimpleNamespace(
        endpoint_name="iris",
        arn="arn:aws:sagemaker:us-east-1:123456789012:endpoint/iris",
        endpoint_config_name="iris-v2",
        endpoint_status="InService",
        failure_reason="rolled back",
        creation_time=datetime(2026, 1, 1),
        last_modified_time=datetime(2026, 1, 1, 0, 0, 1),
        tags=[{"Key": "sagepush:project", "Value": "iris"}],
    )

    detail = endpoint_detail(endpoint)

    assert detail == {
        "EndpointName": "iris",
        "EndpointArn": endpoint.arn,
        "EndpointConfigName": "iris-v2",
        "EndpointStatus": "InService",
        "FailureReason": "rolled back",
        "CreationTime": 1767225600000,
        "LastModifiedTime": 1767225601000,
        "Tags": {"sagepush:project": "iris"},
    }
    assert "FailureReason" not in endpoint_detail(SimpleNamespace(**{**vars(endpoint), "failure_reason": None}))


def test_a_package_event_is_its_description_with_times_in_epoch_ms() -> None:
    package = SimpleNamespace(
        gen_response_object=lambda: {"ModelPackageArn": "arn:p/1", "CreationTime": datetime(2026, 1, 1)}
    )
    assert package_detail(package) == {"ModelPackageArn": "arn:p/1", "CreationTime": 1767225600000}


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Any:
        yield self.body


def test_a_model_error_reaches_boto3_as_aws_sends_it() -> None:
    status, headers, body = model_error_answer(
        name="iris", account="123456789012", region="us-east-1", status=500, message="boom", log="/tmp/server.log"
    )
    client = boto3.client(
        "sagemaker-runtime", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
    )
    answer = AWSResponse(
        "https://runtime/endpoints/iris/invocations", status, HTTPHeaders.from_dict(headers), _Raw(body.encode())
    )
    client.meta.events.register("before-send.sagemaker-runtime.InvokeEndpoint", lambda **_: answer)

    with pytest.raises(ClientError) as raised:
        client.invoke_endpoint(EndpointName="iris", Body=b"1,2")

    error: dict[str, Any] = dict(raised.value.response)
    assert error["Error"]["Code"] == "ModelError"
    assert error["Error"]["Message"].startswith('Received server error (500) from primary with message "boom".')
    assert error["OriginalStatusCode"] == 500
    assert error["OriginalMessage"] == "boom"
    assert error["LogStreamArn"].endswith(":log-group:/aws/sagemaker/Endpoints/iris")


def test_frames_carry_a_header_and_binary_body_and_end_with_the_stream() -> None:
    stream = io.BytesIO()
    write_frame(stream, {"content_type": "application/x-npy"}, b"\x00\x01")
    write_frame(stream, {"ready": True})
    stream.seek(0)

    assert read_frame(stream) == ({"content_type": "application/x-npy"}, b"\x00\x01")
    assert read_frame(stream) == ({"ready": True}, b"")
    assert read_frame(stream) is None


def test_the_worker_context_gives_the_toolkit_the_request_headers_and_keeps_the_answer_s_status() -> None:
    context = Context("/opt/ml/model")
    context.begin("text/csv", "application/json")

    assert context.request_processor[0].get_request_properties() == {
        "Content-Type": "text/csv",
        "Accept": "application/json",
    }
    context.set_response_status(code=500, phrase="boom")
    context.set_response_content_type(0, "text/csv")
    assert (context.status, context.content_type) == (500, "text/csv")
    context.begin(None, None)
    assert (context.status, context.content_type, context.system_properties["model_dir"]) == (
        200,
        None,
        "/opt/ml/model",
    )
    assert json.dumps(context.system_properties)
