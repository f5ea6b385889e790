"""Local endpoints serve for real: a scikit-learn model behind its script, updated blue/green, with its events."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import tarfile
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError

from sagepush_cli.local.cache import home
from sagepush_cli.local.environments import Environments
from sagepush_cli.local.serving import requirements_text

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from sagepush_cli.local.stack import LocalStack

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
ROLE = "arn:aws:iam::123456789012:role/sagemaker"
SETOSA = b"5.1,3.5,1.4,0.2"
TRAIN = """\
import sys, joblib
from sklearn.datasets import load_iris
from sklearn.dummy import DummyClassifier
from sklearn.tree import DecisionTreeClassifier
x, y = load_iris(return_X_y=True)
joblib.dump(DecisionTreeClassifier(random_state=0).fit(x, y), sys.argv[1] + "/tree/model.joblib")
joblib.dump(DummyClassifier(strategy="constant", constant=2).fit(x, y), sys.argv[1] + "/constant/model.joblib")
"""
LOADS = """\
import os, joblib

def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))
"""
EVENT_WAIT_SECONDS = 600


class Sink:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, line: str) -> None:
        self.lines.append(line)


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two iris models trained in the environment the endpoints serve them in: a tree, and one that always says 2."""
    root = tmp_path_factory.mktemp("models")
    for name in ("tree", "constant", "install"):
        (root / name).mkdir()
    (root / "install" / "requirements.txt").write_text(requirements_text(root / "install"))
    sink = Sink()
    with contextlib.ExitStack() as holds:
        built = Environments(home()).job_python(IMAGE, root / "install", root / "venv", sink, holds, threading.Event())
        subprocess.run([str(built.python), "-c", TRAIN, str(root)], check=True, capture_output=True)
    return root


@pytest.fixture
def events(stack: LocalStack) -> Iterator[Callable[..., dict[str, Any]]]:
    """Wait for the SageMaker state-change event whose detail holds every given field (an SQS queue behind a rule)."""
    sqs, bridge = boto3.client("sqs"), boto3.client("events")
    queue = sqs.create_queue(QueueName=f"sagemaker-events-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bridge.put_rule(Name="sagemaker-hosting", EventPattern=json.dumps({"source": ["aws.sagemaker"]}))
    bridge.put_targets(Rule="sagemaker-hosting", Targets=[{"Id": "queue", "Arn": arn}])
    seen: list[dict[str, Any]] = []

    def wait(detail_type: str, **fields: Any) -> dict[str, Any]:
        deadline = time.monotonic() + EVENT_WAIT_SECONDS
        while True:
            for event in seen:
                if event["detail-type"] == detail_type and all(event["detail"].get(k) == v for k, v in fields.items()):
                    seen.remove(event)
                    return event
            if time.monotonic() > deadline:
                raise AssertionError(f"no {detail_type} event with {fields}; seen: {[e['detail'] for e in seen]}")
            answer = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=5)
            seen.extend(json.loads(message["Body"]) for message in answer.get("Messages", []))

    yield wait


def archive(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def container(stack: LocalStack, models: Path, model: str, script: str) -> dict[str, Any]:
    """Upload a model and its script as the SDK lays them out; the ContainerDefinition that serves them."""
    bucket = stack.outputs["ArtifactBucketName"]
    prefix = f"hosting/{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3")
    s3.put_object(
        Bucket=bucket,
        Key=f"{prefix}/model.tar.gz",
        Body=archive({"model.joblib": (models / model / "model.joblib").read_bytes()}),
    )
    s3.put_object(Bucket=bucket, Key=f"{prefix}/sourcedir.tar.gz", Body=archive({"serve.py": script.encode()}))
    return {
        "Image": IMAGE,
        "ModelDataUrl": f"s3://{bucket}/{prefix}/model.tar.gz",
        "Environment": {
            "SAGEMAKER_PROGRAM": "serve.py",
            "SAGEMAKER_SUBMIT_DIRECTORY": f"s3://{bucket}/{prefix}/sourcedir.tar.gz",
            "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
            "SAGEMAKER_REGION": stack.region,
        },
    }


def config(sagemaker: Any, name: str, definition: dict[str, Any]) -> str:
    sagemaker.create_model(ModelName=name, PrimaryContainer=definition, ExecutionRoleArn=ROLE)
    sagemaker.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": name, "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}
        ],
    )
    return name


def predict(body: bytes = SETOSA, content_type: str = "text/csv", accept: str = "text/csv") -> bytes:
    runtime = boto3.client("sagemaker-runtime")
    answer = runtime.invoke_endpoint(EndpointName="iris", Body=body, ContentType=content_type, Accept=accept)
    data: bytes = answer["Body"].read()
    return data


def test_an_endpoint_serves_its_model_through_the_script_s_model_fn(
    stack: LocalStack, sagemaker: Any, models: Path, events: Callable[..., dict[str, Any]]
) -> None:
    name = config(sagemaker, "iris-tree", container(stack, models, "tree", LOADS))

    sagemaker.create_endpoint(EndpointName="iris", EndpointConfigName=name, Tags=[{"Key": "team", "Value": "ml"}])

    creating = events("SageMaker Endpoint State Change", EndpointName="iris", EndpointStatus="Creating")
    ready = events("SageMaker Endpoint State Change", EndpointName="iris", EndpointStatus="InService")
    assert creating["source"] == "aws.sagemaker"
    assert ready["resources"] == [ready["detail"]["EndpointArn"]]
    assert ready["detail"]["EndpointConfigName"] == name
    assert ready["detail"]["Tags"] == {"team": "ml"}
    assert isinstance(ready["detail"]["CreationTime"], int)
    assert sagemaker.describe_endpoint(EndpointName="iris")["EndpointStatus"] == "InService"
    assert predict() == b"0\n"
    assert predict(b"6.7,3.0,5.2,2.3\n5.1,3.5,1.4,0.2") == b"2\n0\n"


def test_an_update_switches_models_without_a_failed_request(
    stack: LocalStack, sagemaker: Any, models: Path, events: Callable[..., dict[str, Any]]
) -> None:
    # Given: an endpoint serving the tree, and a client asking it about a setosa all along.
    first = config(sagemaker, "iris-tree", container(stack, models, "tree", LOADS))
    second = config(sagemaker, "iris-constant", container(stack, models, "constant", LOADS))
    sagemaker.create_endpoint(EndpointName="iris", EndpointConfigName=first)
    events("SageMaker Endpoint State Change", EndpointName="iris", EndpointStatus="InService")
    answers: list[bytes] = []
    failures: list[Exception] = []
    switched, done = threading.Event(), threading.Event()

    def ask() -> None:
        while not done.is_set():
            try:
                answers.append(predict())
            except Exception as exc:
                failures.append(exc)
            if answers and answers[-1] == b"2\n":
                switched.set()

    client = threading.Thread(target=ask)
    client.start()

    # When: the endpoint is updated blue/green to the model that always says 2.
    try:
        sagemaker.update_endpoint(
            EndpointName="iris",
            EndpointConfigName=second,
            DeploymentConfig={
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}
                },
                "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "iris-5xx"}]},
            },
        )
        updating = events("SageMaker Endpoint State Change", EndpointName="iris", EndpointStatus="Updating")
        ready = events("SageMaker Endpoint State Change", EndpointName="iris", EndpointStatus="InService")
        assert switched.wait(60)
    finally:
        done.set()
        client.join(60)

    # Then: every request was answered, by the tree until the switch and by the new model after it.
    assert failures == []
    assert updating["detail"]["EndpointConfigName"] == first
    assert ready["detail"]["EndpointConfigName"] == second and "FailureReason" not in ready["detail"]
    first_new = answers.index(b"2\n")
    assert set(answers[:first_new]) == {b"0\n"} and set(answers[first_new:]) == {b"2\n"}
    assert answers[0] == b"0\n"
    assert sagemaker.describe_endpoint(EndpointName="iris")["EndpointConfigName"] == second


def test_an_update_to_a_model_that_does_not_load_rolls_back_to_the_serving_one(
    stack: LocalStack, sagemaker: Any, models: Path, events: Callable[..., dict[str, Any]]
) -> None:
    first = config(sagemaker, "iris-tree", container(stack, models, "tree", LOADS))
    broken = config(
        sagemaker,
        "iris-broken",
        container(stack, models, "tree", "def model_fn(model_dir):\n    raise RuntimeError('weights are corrupt')\n"),
    )
    sagemaker.create_endpoint(EndpointName="iris", EndpointConfigName=first)
    events("SageMaker Endpoint State Change", EndpointName="iris", EndpointStatus="InService")

    sagemaker.update_endpoint(EndpointName="iris", EndpointConfigName=broken)

    events("SageMaker Endpoint State Change", EndpointName="iris", EndpointStatus="Updating")
    rolled_back = events("SageMaker Endpoint State Change", EndpointName="iris", EndpointStatus="InService")
    assert rolled_back["detail"]["EndpointConfigName"] == first
    assert "RuntimeError: weights are corrupt" in rolled_back["detail"]["FailureReason"]
    described = sagemaker.describe_endpoint(EndpointName="iris")
    assert described["EndpointConfigName"] == first and "weights are corrupt" in described["FailureReason"]
    assert predict() == b"0\n"


def test_the_script_s_input_predict_and_output_functions_answer(
    stack: LocalStack, sagemaker: Any, models: Path, events: Callable[..., dict[str, Any]]
) -> None:
    script = LOADS + (
        "import json\n"
        "NAMES = ['setosa', 'versicolor', 'virginica']\n"
        "def input_fn(body, content_type):\n"
        "    return json.loads(body)['rows']\n"
        "def predict_fn(rows, model):\n"
        "    return [NAMES[int(label)] for label in model.predict(rows)]\n"
        "def output_fn(names, accept):\n"
        "    return json.dumps({'classes': names}), 'application/x-iris'\n"
    )
    sagemaker.create_endpoint(
        EndpointName="iris", EndpointConfigName=config(sagemaker, "iris-own", container(stack, models, "tree", script))
    )
    events("SageMaker Endpoint State Change", EndpointName="iris", EndpointStatus="InService")
    runtime = boto3.client("sagemaker-runtime")

    answer = runtime.invoke_endpoint(
        EndpointName="iris", Body=json.dumps({"rows": [[5.1, 3.5, 1.4, 0.2]]}), ContentType="application/json"
    )

    assert json.loads(answer["Body"].read()) == {"classes": ["setosa"]}
    assert answer["ContentType"] == "application/x-iris"
    assert answer["InvokedProductionVariant"] == "AllTraffic"


def test_a_failing_prediction_is_a_model_error_with_the_container_s_message(
    stack: LocalStack, sagemaker: Any, models: Path, events: Callable[..., dict[str, Any]]
) -> None:
    script = LOADS + "def predict_fn(data, model):\n    raise ValueError('this row has no petals')\n"
    sagemaker.create_endpoint(
        EndpointName="iris", EndpointConfigName=config(sagemaker, "iris-bad", container(stack, models, "tree", script))
    )
    events("SageMaker Endpoint State Change", EndpointName="iris", EndpointStatus="InService")

    with pytest.raises(ClientError) as raised:
        predict()

    error: dict[str, Any] = dict(raised.value.response)
    assert error["Error"]["Code"] == "ModelError"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error["OriginalStatusCode"] == 500
    assert "this row has no petals" in error["OriginalMessage"]
    assert error["Error"]["Message"].startswith("Received server error (500) from primary with message")
    assert sagemaker.describe_endpoint(EndpointName="iris")["EndpointStatus"] == "InService"


def test_a_script_without_model_fn_fails_the_endpoint_with_the_container_s_message(
    stack: LocalStack, sagemaker: Any, models: Path, events: Callable[..., dict[str, Any]]
) -> None:
    script = "def predict_fn(data, model):\n    return model.predict(data)\n"
    name = config(sagemaker, "iris-nofn", container(stack, models, "tree", script))

    sagemaker.create_endpoint(EndpointName="iris", EndpointConfigName=name)

    failed = events("SageMaker Endpoint State Change", EndpointName="iris", EndpointStatus="Failed")
    assert "Please provide a model_fn implementation" in failed["detail"]["FailureReason"]
    assert (
        "Please provide a model_fn implementation" in sagemaker.describe_endpoint(EndpointName="iris")["FailureReason"]
    )
    with pytest.raises(ClientError) as raised:
        predict()
    assert raised.value.response["Error"]["Code"] == "ValidationError"


def test_a_registered_version_emits_its_events_and_serves_through_its_package(
    stack: LocalStack, sagemaker: Any, models: Path, events: Callable[..., dict[str, Any]]
) -> None:
    # Given: a version registered pending approval, with lineage in its metadata.
    sagemaker.create_model_package_group(ModelPackageGroupName="iris")
    request = {
        "ModelPackageGroupName": "iris",
        "InferenceSpecification": {
            "Containers": [container(stack, models, "tree", LOADS)],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        "ModelApprovalStatus": "PendingManualApproval",
        "CustomerMetadataProperties": {"sagepush:job": "iris-1234abcd-5678ef"},
        "ClientToken": "iris-1234abcd-5678ef",
    }
    arn = sagemaker.create_model_package(**request)["ModelPackageArn"]
    assert sagemaker.create_model_package(**request)["ModelPackageArn"] == arn  # the same token: nothing new
    registered = events("SageMaker Model Package State Change", ModelApprovalStatus="PendingManualApproval")

    # When: it is approved, and a model made from the package is deployed.
    sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
    approved = events("SageMaker Model Package State Change", ModelApprovalStatus="Approved")
    sagemaker.create_model(ModelName="iris-v1", PrimaryContainer={"ModelPackageName": arn}, ExecutionRoleArn=ROLE)
    sagemaker.create_endpoint_config(
        EndpointConfigName="iris-v1",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "iris-v1",
                "ServerlessConfig": {"MemorySizeInMB": 2048, "MaxConcurrency": 1},
            }
        ],
    )
    sagemaker.create_endpoint(EndpointName="iris", EndpointConfigName="iris-v1")

    # Then: each change was an event carrying the package's description, and the package's model answers.
    assert registered["resources"] == [arn]
    assert registered["detail"]["ModelPackageArn"] == arn and registered["detail"]["ModelPackageVersion"] == 1
    assert registered["detail"]["ModelPackageGroupName"] == "iris"
    assert approved["detail"]["CustomerMetadataProperties"] == {"sagepush:job": "iris-1234abcd-5678ef"}
    assert len(sagemaker.list_model_packages(ModelPackageGroupName="iris")["ModelPackageSummaryList"]) == 1
    events("SageMaker Endpoint State Change", EndpointName="iris", EndpointStatus="InService")
    assert predict() == b"0\n"
    with pytest.raises(ClientError, match="DeploymentConfig is not supported"):
        sagemaker.update_endpoint(
            EndpointName="iris",
            EndpointConfigName="iris-v1",
            DeploymentConfig={
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}
                }
            },
        )


def test_update_endpoint_refuses_what_aws_refuses(stack: LocalStack, sagemaker: Any) -> None:
    with pytest.raises(ClientError, match="Could not find endpoint"):
        sagemaker.update_endpoint(EndpointName="nowhere", EndpointConfigName="none")


def test_an_endpoint_a_restored_state_holds_serves_again(
    stack: LocalStack, sagemaker: Any, models: Path, events: Callable[..., dict[str, Any]]
) -> None:
    # Given: an endpoint in service, whose model then goes away with its process (a `local up` that stopped) while
    # moto's state, as `local up` restores it, still says InService.
    name = config(sagemaker, "iris-kept", container(stack, models, "tree", LOADS))
    sagemaker.create_endpoint(EndpointName="iris", EndpointConfigName=name)
    events("SageMaker Endpoint State Change", EndpointName="iris", EndpointStatus="InService")
    hosting = stack._hosting
    assert hosting is not None
    for key in list(hosting.hosted):
        hosting.delete(key)
    with pytest.raises(sagemaker.exceptions.ClientError, match="not found"):
        predict()

    # When: the stack resumes what it restored.
    assert hosting.resume() == 1

    # Then: the endpoint starts its model again and answers.
    events("SageMaker Endpoint State Change", EndpointName="iris", EndpointStatus="InService")
    assert predict() == b"0\n"
