"""TrainingStateMachine started by hand (console, another state machine, `aws stepfunctions start-execution`) with
staged code, a manifest table and `set` overrides: the same job an upload would make, the same errors, one alert."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from tests.integration.conftest import load_event
from tests.integration.test_status import Alerts, wait_for

if TYPE_CHECKING:
    from sagepush_cli.local.stack import LocalStack

pytestmark = pytest.mark.usefixtures("instant_jobs")

DIGEST = "3f5c0f2a9b1d4e6f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f"
SPEC = {
    "framework": "sklearn",
    "framework_version": "1.2-1",
    "py_version": "py3",
    "entry_point": "train.py",
    "instance_type": "ml.m5.large",
    "max_run": "30m",
    "hyperparameters": {"n_estimators": 50, "max_depth": 4},
}


def start(stack: LocalStack, sfn: Any, name: str, document: dict[str, Any]) -> str:
    machine = stack.outputs["TrainingStateMachineArn"]
    arn: str = sfn.start_execution(stateMachineArn=machine, name=name, input=json.dumps(document))["executionArn"]
    return arn


def direct(stack: LocalStack, **changes: Any) -> dict[str, Any]:
    code = f"s3://{stack.outputs['ArtifactBucketName']}/code/iris/{DIGEST}/sourcedir.tar.gz"
    return {"project": "iris", "code_uri": code, "spec": SPEC, **changes}


def test_a_started_execution_with_set_overrides_submits_the_job_an_upload_would(
    stack: LocalStack, sfn: Any, sagemaker: Any
) -> None:
    document = load_event("direct-start")  # the README's sample: set overrides n_estimators and max_run
    arn = start(stack, sfn, "iris-by-hand-1", document)

    jobs = wait_for(lambda: sagemaker.list_training_jobs()["TrainingJobSummaries"], "the job to be created")
    [summary] = jobs
    assert summary["TrainingJobName"].startswith(f"iris-{DIGEST[:8]}-")
    job = sagemaker.describe_training_job(TrainingJobName=summary["TrainingJobName"])
    assert job["HyperParameters"]["n_estimators"] == "200" and job["HyperParameters"]["max_depth"] == "4"
    assert job["StoppingCondition"]["MaxRuntimeInSeconds"] == 45 * 60
    assert job["HyperParameters"]["sagemaker_submit_directory"] == json.dumps(document["code_uri"])
    tags = {t["Key"]: t["Value"] for t in sagemaker.list_tags(ResourceArn=job["TrainingJobArn"])["Tags"]}
    assert tags["sagepush:project"] == "iris" and tags["sagepush:commit"] == document["source"]["commit"]
    assert sfn.describe_execution(executionArn=arn)["status"] == "RUNNING"  # waiting for the job, as any execution


def test_a_start_the_manifest_checks_refuse_fails_with_one_alert_naming_the_field(
    stack: LocalStack, sfn: Any, sagemaker: Any
) -> None:
    alerts = Alerts(stack)
    arn = start(stack, sfn, "iris-by-hand-2", direct(stack, set={"max_run": "two hours"}))

    ended = wait_for(
        lambda: (d := sfn.describe_execution(executionArn=arn))["status"] != "RUNNING" and d, "the execution to end"
    )
    stack.drain()

    assert ended["status"] == "FAILED"
    assert "input: max_run" in ended["cause"] and "two hours" in ended["cause"]
    assert sagemaker.list_training_jobs()["TrainingJobSummaries"] == []
    [alert] = alerts.received()
    assert (alert["kind"], alert["project"]) == ("submit-failed", "iris")
    assert "input: max_run" in alert["cause"]
