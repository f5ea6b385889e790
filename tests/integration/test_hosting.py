"""Model registration on the local stack: ModelFunction invoked as TrainingStateMachine's Register task invokes it,
against the moto server, the real ledger table and the alerts topic."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from sagepush.ledger import DynamoDBLedger, Submission
from tests.integration.conftest import load_event
from tests.integration.test_status import Alerts

if TYPE_CHECKING:
    from sagepush_cli.local.stack import LocalStack

PROJECT = "iris"
SOURCE = {"commit": "9fceb02d0ae598e95dc970b74767f19372d61af8", "branch": "main", "repo": "octo/iris"}
SPEC: dict[str, Any] = {
    "framework": "sklearn",
    "framework_version": "1.2-1",
    "py_version": "py3",
    "entry_point": "train.py",
    "instance_type": "ml.m5.large",
    "metric_definitions": [
        {"Name": "validation:accuracy", "Regex": "accuracy=([0-9.]+)"},
        {"Name": "validation:loss", "Regex": "loss=([0-9.]+)"},
    ],
    "model": {"register": True, "approve_if": ["validation:accuracy >= 0.9", "validation:loss < 0.2"]},
}


@pytest.fixture
def alerts(stack: LocalStack) -> Alerts:
    return Alerts(stack)


def completed_job(stack: LocalStack, name: str, metrics: dict[str, float]) -> str:
    """A training job SageMaker (moto) completed, with `metrics` as its final metrics, known to the ledger."""
    from moto.sagemaker.models import sagemaker_backends

    sagemaker = boto3.client("sagemaker")
    sagemaker.create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={
            "TrainingImage": "683313688378.dkr.ecr.us-east-1.amazonaws.com/x:1",
            "TrainingInputMode": "File",
        },
        RoleArn="arn:aws:iam::123456789012:role/sagepush",
        OutputDataConfig={"S3OutputPath": f"s3://{stack.outputs['ArtifactBucketName']}/output/iris/"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
        HyperParameters={
            "sagemaker_program": '"train.py"',
            "sagemaker_submit_directory": '"s3://artifacts/code/iris/ab12/sourcedir.tar.gz"',
        },
    )
    job = sagemaker_backends["123456789012"][stack.region].training_jobs[name]
    job.final_metric_data_list = [{"MetricName": k, "Value": v, "Timestamp": 0} for k, v in metrics.items()]
    ledger = DynamoDBLedger(stack.resources["LedgerTable"], dynamodb=boto3.client("dynamodb"))
    ledger.record_submission(
        Submission(job_name=name, project=PROJECT, code_uri="s3://artifacts/code/iris/ab12/sourcedir.tar.gz",
                   code_digest="ab12" * 16, source=SOURCE),
        now_ms=0,
    )  # fmt: skip
    return name


def register(stack: LocalStack, job_name: str, spec: dict[str, Any] = SPEC) -> dict[str, Any]:
    payload = {"job_name": job_name, "project": PROJECT, "spec": spec, "source": SOURCE, "code_uri": None}
    result: dict[str, Any] = stack.invoke("ModelFunction", {"register": payload})
    return result


def versions(group: str = PROJECT) -> list[dict[str, Any]]:
    sagemaker = boto3.client("sagemaker")
    listed = sagemaker.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]
    return [dict(sagemaker.describe_model_package(ModelPackageName=p["ModelPackageArn"])) for p in listed]


@pytest.mark.usefixtures("instant_jobs")
def test_a_job_that_passes_its_gate_is_registered_approved_once_with_its_lineage(
    stack: LocalStack, alerts: Alerts
) -> None:
    job = completed_job(stack, "iris-3f5c0f2a-aa0001", {"validation:accuracy": 0.95, "validation:loss": 0.1})
    first = register(stack, job)
    again = register(stack, job)  # the task retried, or the execution redelivered
    assert first["approval_status"] == "Approved" and first["version"] == 1
    assert again["already"] is True and again["model_package_arn"] == first["model_package_arn"]
    [package] = versions()
    assert package["ModelApprovalStatus"] == "Approved"
    container = package["InferenceSpecification"]["Containers"][0]
    assert container["Image"] == "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
    assert container["ModelDataUrl"].endswith(f"/{job}/output/model.tar.gz")
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "train.py"
    assert container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] == "s3://artifacts/code/iris/ab12/sourcedir.tar.gz"
    metadata = package["CustomerMetadataProperties"]
    assert metadata["sagepush:job"] == job and metadata["sagepush:commit"] == SOURCE["commit"]
    assert float(metadata["metric:validation:accuracy"]) == 0.95
    assert package["MetadataProperties"]["CommitId"] == SOURCE["commit"]
    statistics = package["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert statistics["ContentType"] == "application/json"
    assert statistics["S3Uri"] == container["ModelDataUrl"].replace("/model.tar.gz", "/model-metrics.json")
    bucket, _, key = statistics["S3Uri"].removeprefix("s3://").partition("/")
    assert bucket == stack.outputs["ArtifactBucketName"]
    written = boto3.client("s3").get_object(Bucket=bucket, Key=key)
    assert written["ContentType"] == "application/json"
    assert json.loads(written["Body"].read()) == {
        "sagepush": {
            "job_name": job,
            "metrics": {"validation:accuracy": {"value": 0.95}, "validation:loss": {"value": 0.1}},
        }
    }
    [alert] = [a for a in alerts.received() if a["kind"] == "model-registered"]
    assert alert["job_name"] == job and alert["model"]["approval_status"] == "Approved"
    assert [v["holds"] for v in alert["model"]["gate"]] == [True, True]


@pytest.mark.usefixtures("instant_jobs")
def test_a_job_that_fails_a_condition_waits_for_a_person_and_the_alert_says_which(
    stack: LocalStack, alerts: Alerts
) -> None:
    job = completed_job(stack, "iris-3f5c0f2a-aa0002", {"validation:accuracy": 0.95, "validation:loss": 0.31})
    assert register(stack, job)["approval_status"] == "PendingManualApproval"
    [package] = versions()
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    assert "validation:loss < 0.2 fails (0.31)" in package["ModelPackageDescription"]
    [alert] = [a for a in alerts.received() if a["kind"] == "model-registered"]
    assert alert["model"]["gate"][1] == {"condition": "validation:loss < 0.2", "value": 0.31, "holds": False}


@pytest.mark.usefixtures("instant_jobs")
def test_a_metric_the_job_never_reported_fails_its_condition(stack: LocalStack) -> None:
    job = completed_job(stack, "iris-3f5c0f2a-aa0003", {"validation:accuracy": 0.99})
    assert register(stack, job)["approval_status"] == "PendingManualApproval"


@pytest.mark.usefixtures("instant_jobs")
def test_a_manifest_without_a_model_table_registers_nothing(stack: LocalStack) -> None:
    job = completed_job(stack, "iris-3f5c0f2a-aa0004", {"validation:accuracy": 0.99})
    spec = {key: value for key, value in SPEC.items() if key != "model"}
    assert register(stack, job, spec) == {"job_name": job, "registered": False}
    with pytest.raises(boto3.client("sagemaker").exceptions.ClientError):
        boto3.client("sagemaker").describe_model_package_group(ModelPackageGroupName=PROJECT)


@pytest.mark.usefixtures("instant_jobs")
def test_a_named_group_is_created_once_and_holds_each_version(stack: LocalStack) -> None:
    spec = {**SPEC, "model": {"group": "flowers", "approve_if": ["validation:accuracy >= 0.9"]}}
    for n in (5, 6):
        register(stack, completed_job(stack, f"iris-3f5c0f2a-aa000{n}", {"validation:accuracy": 0.95}), spec)
    assert sorted(p["ModelPackageVersion"] for p in versions("flowers")) == [1, 2]


@pytest.mark.usefixtures("instant_jobs")
def test_a_push_registers_only_its_best_job_unless_it_asks_for_all(stack: LocalStack) -> None:
    jobs = [
        completed_job(stack, f"iris-3f5c0f2a-bb0001-{n}", {"validation:accuracy": accuracy})
        for n, accuracy in ((1, 0.91), (2, 0.97))
    ]
    push: dict[str, Any] = {
        "push": "iris-3f5c0f2a-bb0001",
        "project": PROJECT,
        "source": SOURCE,
        "jobs": [{"job_name": job, "spec": SPEC, "code_uri": None, "matrix": {}} for job in jobs],
    }
    outcome = stack.invoke("ModelFunction", {"register_push": push, "best": jobs[1]})
    assert [r["job_name"] for r in outcome["registered"]] == [jobs[1]]
    every = {**SPEC, "model": {**SPEC["model"], "register": "all"}}
    push["jobs"] = [{**job, "spec": every} for job in push["jobs"]]
    outcome = stack.invoke("ModelFunction", {"register_push": push, "best": jobs[1]})
    assert sorted(p["CustomerMetadataProperties"]["sagepush:job"] for p in versions()) == sorted(jobs)


def endpoint_event(config: str, status: str, reason: str | None = None) -> dict[str, Any]:
    detail = {
        "EndpointName": "iris-prod",
        "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/iris-prod",
        "EndpointConfigName": config,
        "EndpointStatus": status,
        "Tags": {"sagepush:project": PROJECT, "sagepush:model-group": PROJECT},
        **({"FailureReason": reason} if reason else {}),
    }
    return {"source": "aws.sagemaker", "detail-type": "SageMaker Endpoint State Change", "detail": detail}


@pytest.mark.usefixtures("instant_jobs")
def test_an_endpoint_in_service_failed_or_rolled_back_is_alerted_once_with_the_version_it_concerns(
    stack: LocalStack, alerts: Alerts
) -> None:
    spec = {**SPEC, "model": {"approve_if": ["validation:accuracy >= 0.9"]}}
    first, second = (completed_job(stack, f"iris-3f5c0f2a-cc000{n}", {"validation:accuracy": 0.95}) for n in (1, 2))
    register(stack, first, spec)
    register(stack, second, spec)
    alerts.received()
    for _ in range(2):  # a redelivered event alerts nothing more
        stack.invoke("ModelFunction", endpoint_event("iris-prod-v1", "InService"))
        stack.invoke("ModelFunction", endpoint_event("iris-prod-v1", "InService", "iris-5xx fired: rolled back"))
    stack.invoke("ModelFunction", endpoint_event("iris-prod-v2", "Failed", "the model did not start"))
    sent = {(a["status"], a["model"]["version"], a["job_name"]) for a in alerts.received()}
    assert sent == {
        ("EndpointInService", 1, first),
        ("EndpointRolledBack", 2, second),  # the update to v2 was rolled back: v1 serves
        ("EndpointFailed", 2, second),
    }
    foreign = endpoint_event("theirs-v1", "InService")
    foreign["detail"]["Tags"] = {}
    assert stack.invoke("ModelFunction", foreign)["ignored"] == "not deployed by sagepush"


# ---------------------------------------------------------------------------------- a model repacked with its code
PYTORCH_SPEC: dict[str, Any] = {
    **SPEC,
    "framework": "pytorch",
    "framework_version": "2.5",
    "py_version": "py311",
    "model": {"register": True, "inference_entry_point": "serve.py"},
}


def _tar_gz(members: dict[str, bytes]) -> bytes:
    import io
    import tarfile

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _members(data: bytes) -> dict[str, bytes | None]:
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {i.name: (f.read() if (f := tar.extractfile(i)) else None) for i in tar}


@pytest.mark.usefixtures("instant_jobs")
def test_a_pytorch_model_is_registered_repacked_with_its_code_under_code(stack: LocalStack) -> None:
    from moto.sagemaker.models import sagemaker_backends

    bucket = stack.outputs["ArtifactBucketName"]
    code_key = "code/iris/" + "cd34" * 16 + "/sourcedir.tar.gz"
    job = completed_job(stack, "iris-3f5c0f2a-dd0001", {"validation:accuracy": 0.95})
    backend = sagemaker_backends["123456789012"][stack.region].training_jobs[job]
    backend.hyper_parameters = {
        "sagemaker_program": '"train.py"',
        "sagemaker_submit_directory": json.dumps(f"s3://{bucket}/{code_key}"),
    }
    model_key = f"output/iris/{job}/output/model.tar.gz"
    s3 = boto3.client("s3")
    s3.put_object(Bucket=bucket, Key=model_key, Body=_tar_gz({"model.pth": b"weights"}))
    s3.put_object(Bucket=bucket, Key=code_key, Body=_tar_gz({"train.py": b"#", "serve.py": b"def model_fn(d): ..."}))

    result = register(stack, job, PYTORCH_SPEC)
    again = register(stack, job, PYTORCH_SPEC)  # a retried task: the version found, nothing registered twice
    assert result["registered"] and again["already"] and again["model_package_arn"] == result["model_package_arn"]
    (package,) = versions()
    container = package["InferenceSpecification"]["Containers"][0]
    repacked_key = f"output/iris/{job}/output/model-repacked.tar.gz"
    assert container["ModelDataUrl"] == f"s3://{bucket}/{repacked_key}"
    assert container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/model/code"
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "serve.py"
    members = _members(s3.get_object(Bucket=bucket, Key=repacked_key)["Body"].read())
    assert members == {
        "model.pth": b"weights",
        "code": None,
        "code/train.py": b"#",
        "code/serve.py": b"def model_fn(d): ...",
    }


@pytest.mark.usefixtures("instant_jobs")
def test_a_sklearn_model_is_registered_as_it_is_with_its_code_at_its_s3_address(stack: LocalStack) -> None:
    job = completed_job(stack, "iris-3f5c0f2a-dd0002", {"validation:accuracy": 0.95})
    register(stack, job)
    (package,) = versions()
    container = package["InferenceSpecification"]["Containers"][0]
    assert container["ModelDataUrl"].endswith(f"/{job}/output/model.tar.gz")
    assert container["Environment"]["SAGEMAKER_SUBMIT_DIRECTORY"] == "s3://artifacts/code/iris/ab12/sourcedir.tar.gz"


@pytest.mark.usefixtures("instant_jobs")
def test_a_pytorch_model_with_a_link_is_refused_naming_the_member(stack: LocalStack) -> None:
    import io
    import tarfile

    from moto.sagemaker.models import sagemaker_backends

    bucket = stack.outputs["ArtifactBucketName"]
    code_key = "code/iris/" + "ef56" * 16 + "/sourcedir.tar.gz"
    job = completed_job(stack, "iris-3f5c0f2a-dd0003", {"validation:accuracy": 0.95})
    sagemaker_backends["123456789012"][stack.region].training_jobs[job].hyper_parameters = {
        "sagemaker_program": '"train.py"',
        "sagemaker_submit_directory": json.dumps(f"s3://{bucket}/{code_key}"),
    }
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        link = tarfile.TarInfo("model.pth")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/shadow"
        tar.addfile(link)
    s3 = boto3.client("s3")
    s3.put_object(Bucket=bucket, Key=f"output/iris/{job}/output/model.tar.gz", Body=out.getvalue())
    s3.put_object(Bucket=bucket, Key=code_key, Body=_tar_gz({"train.py": b"#"}))
    with pytest.raises(Exception, match=r"model\.pth.*symbolic link"):
        register(stack, job, PYTORCH_SPEC)
    assert versions() == []


@pytest.mark.usefixtures("instant_jobs")
def test_the_sample_events_of_model_function_do_what_they_say(stack: LocalStack, alerts: Alerts) -> None:
    registering = load_event("model-register")
    job = completed_job(stack, registering["register"]["job_name"], {"validation:accuracy": 0.97})
    assert stack.invoke("ModelFunction", registering)["version"] == 1
    approved = stack.invoke("ModelFunction", load_event("model-package-approved"))
    assert approved["approval_status"] == "Approved"
    in_service = stack.invoke("ModelFunction", load_event("endpoint-in-service"))
    assert (in_service["status"], in_service["version"]) == ("EndpointInService", 1)
    sent = sorted((a["status"], a["job_name"]) for a in alerts.received())
    assert sent == [("EndpointInService", job), ("ModelApproved", job), ("ModelRegistered", job)]
