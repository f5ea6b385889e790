from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from sagepush.config import SubmitSettings
from sagepush.events import submit_task
from sagepush.jobs import ThrottledError, UnansweredError, submit_job
from sagepush.ledger import NOT_CREATED, DynamoDBLedger
from sagepush.policy import Policy
from tests.unit.ledger_fake import FakeLedger

EVENT = json.loads((Path(__file__).resolve().parents[2] / "events" / "submit-task-token.json").read_text())
SETTINGS = SubmitSettings(
    aws_region="us-east-1",
    sagemaker_role_arn="arn:aws:iam::123456789012:role/train",
    output_path="s3://artifacts/output/",
    output_kms_key=None,
    default_instance_type="ml.m5.xlarge",
    default_volume_size=30,
    default_max_run=3600,
    default_tags={},
    ledger_table="ledger",
    job_policy=Policy(),
)
ARN = "arn:aws:sagemaker:us-east-1:123456789012:training-job/iris-3f5c0f2a-6b1e9d"


def sagemaker() -> Any:
    return boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="t")


def test_the_job_and_its_token_are_recorded_before_create_training_job() -> None:
    client, ledger = sagemaker(), FakeLedger()
    seen_at_create: list[Any] = []
    client.meta.events.register(
        "provide-client-params.sagemaker.CreateTrainingJob",
        lambda **_: seen_at_create.append(ledger.get("iris-3f5c0f2a-6b1e9d")),
    )
    with Stubber(client) as stub:
        stub.add_response("create_training_job", {"TrainingJobArn": ARN})
        submitted = submit_job(submit_task(EVENT), settings=SETTINGS, sagemaker=client, ledger=ledger)
    [entry] = seen_at_create
    assert entry.task_token == EVENT["task_token"] and entry.token_state == "waiting" and entry.unsettled
    assert entry.source["commit"] == EVENT["source"]["commit"] and not submitted.attached


def test_a_retried_submit_attaches_and_stores_the_new_token() -> None:
    client, ledger = sagemaker(), FakeLedger()
    with Stubber(client) as stub:
        stub.add_response("create_training_job", {"TrainingJobArn": ARN})
        stub.add_client_error("create_training_job", "ResourceInUse")
        stub.add_response(
            "describe_training_job",
            {
                "TrainingJobName": "iris-3f5c0f2a-6b1e9d",
                "TrainingJobArn": ARN,
                "ModelArtifacts": {"S3ModelArtifacts": ""},
                "TrainingJobStatus": "InProgress",
                "SecondaryStatus": "Training",
                "AlgorithmSpecification": {"TrainingInputMode": "File"},
                "ResourceConfig": {"VolumeSizeInGB": 30},
                "StoppingCondition": {},
                "CreationTime": 0,
            },
            {"TrainingJobName": "iris-3f5c0f2a-6b1e9d"},
        )
        submit_job(submit_task(EVENT), settings=SETTINGS, sagemaker=client, ledger=ledger)
        retried = submit_job(
            submit_task({**EVENT, "task_token": "second-token"}), settings=SETTINGS, sagemaker=client, ledger=ledger
        )
    assert retried.attached and ledger.entries["iris-3f5c0f2a-6b1e9d"].task_token == "second-token"


def test_a_retried_submit_without_a_job_name_names_the_same_job_and_attaches() -> None:
    # Given a Submit task that leaves the job name to sagepush (a direct invoke, or a state machine of the user's)
    client, ledger = sagemaker(), FakeLedger()
    task = {key: value for key, value in EVENT.items() if key != "job_name"}
    created: list[str] = []
    client.meta.events.register(
        "provide-client-params.sagemaker.CreateTrainingJob",
        lambda params, **_: created.append(params["TrainingJobName"]),
    )
    with Stubber(client) as stub:
        stub.add_response("create_training_job", {"TrainingJobArn": ARN})
        stub.add_client_error("create_training_job", "ResourceInUse")
        stub.add_response(
            "describe_training_job",
            {
                "TrainingJobName": "named-by-sagepush",
                "TrainingJobArn": ARN,
                "ModelArtifacts": {"S3ModelArtifacts": ""},
                "TrainingJobStatus": "InProgress",
                "SecondaryStatus": "Starting",
                "AlgorithmSpecification": {"TrainingInputMode": "File"},
                "ResourceConfig": {"VolumeSizeInGB": 30},
                "StoppingCondition": {},
                "CreationTime": 0,
            },
        )

        # When the state machine retries it, which gives the retry a new task token
        first = submit_job(submit_task(task), settings=SETTINGS, sagemaker=client, ledger=ledger)
        retried = submit_job(
            submit_task({**task, "task_token": "second-token"}), settings=SETTINGS, sagemaker=client, ledger=ledger
        )

    # Then the retry names the same job, attaches to it, and the one ledger entry waits on the new token
    assert created == [first.job_name, first.job_name] and first.job_name.startswith("iris-")
    assert (first.attached, retried.job_name, retried.attached) == (False, first.job_name, True)
    assert list(ledger.entries) == [first.job_name]
    assert ledger.entries[first.job_name].waiting_token == "second-token"


@pytest.mark.parametrize("code", ["InternalServerError", "ProvisionedThroughputExceededException"])
def test_a_ledger_failing_for_a_moment_is_retried_like_a_throttle_and_nothing_is_sent(code: str) -> None:
    # botocore's own retries are spent; the state machine retries ThrottledError with backoff, so the upload is
    # not lost to a could-not-submit alert.
    dynamodb = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")
    client = sagemaker()
    with Stubber(dynamodb) as db, Stubber(client):
        db.add_client_error("put_item", code, http_status_code=500 if code.startswith("Internal") else 400)
        with pytest.raises(ThrottledError, match=code):
            submit_job(
                submit_task(EVENT),
                settings=SETTINGS,
                sagemaker=client,
                ledger=DynamoDBLedger("ledger", dynamodb=dynamodb),
            )


def test_a_submission_sagemaker_refuses_for_good_is_recorded_as_not_created() -> None:
    client, ledger = sagemaker(), FakeLedger()
    with Stubber(client) as stub:
        stub.add_client_error("create_training_job", "ValidationException", "Role is not valid")
        with pytest.raises(client.exceptions.ClientError):
            submit_job(submit_task(EVENT), settings=SETTINGS, sagemaker=client, ledger=ledger)
    entry = ledger.entries["iris-3f5c0f2a-6b1e9d"]
    assert entry.status == NOT_CREATED and not entry.unsettled


def test_a_server_error_from_create_training_job_is_retried_and_keeps_the_job_open() -> None:
    client, ledger = sagemaker(), FakeLedger()
    with Stubber(client) as stub:
        stub.add_client_error("create_training_job", "InternalFailure", http_status_code=500)
        with pytest.raises(UnansweredError):
            submit_job(submit_task(EVENT), settings=SETTINGS, sagemaker=client, ledger=ledger)
    assert ledger.entries["iris-3f5c0f2a-6b1e9d"].status == "Submitting"
