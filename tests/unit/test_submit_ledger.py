from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from sagepush.config import SubmitSettings
from sagepush.events import submit_task
from sagepush.ledger import NOT_CREATED, DynamoDBLedger
from sagepush.policy import Policy
from sagepush.submitting import (
    CAPACITY_TRANSITION,
    CapacityError,
    CapacityExhaustedError,
    ThrottledError,
    UnansweredError,
    submit_job,
)
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
    alerts_topic_arn="arn:aws:sns:us-east-1:123456789012:alerts",
    capacity_wait_seconds=3600,
)
ARN = "arn:aws:sagemaker:us-east-1:123456789012:training-job/iris-3f5c0f2a-6b1e9d"


def submit(task: Any, client: Any, ledger: Any, sns: Any = None) -> Any:
    """Submit `task` with SETTINGS; an SNS client that has no stubbed answers unless a test gives one."""
    return submit_job(task, settings=SETTINGS, sagemaker=client, ledger=ledger, sns=sns or sns_client())


def sns_client() -> Any:
    return boto3.client("sns", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="t")


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
        submitted = submit(submit_task(EVENT), client, ledger)
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
        submit(submit_task(EVENT), client, ledger)
        retried = submit(submit_task({**EVENT, "task_token": "second-token"}), client, ledger)
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
        first = submit(submit_task(task), client, ledger)
        retried = submit(submit_task({**task, "task_token": "second-token"}), client, ledger)

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
            submit(submit_task(EVENT), client, DynamoDBLedger("ledger", dynamodb=dynamodb))


def test_a_submission_sagemaker_refuses_for_good_is_recorded_as_not_created() -> None:
    client, ledger = sagemaker(), FakeLedger()
    with Stubber(client) as stub:
        stub.add_client_error("create_training_job", "ValidationException", "Role is not valid")
        with pytest.raises(client.exceptions.ClientError):
            submit(submit_task(EVENT), client, ledger)
    entry = ledger.entries["iris-3f5c0f2a-6b1e9d"]
    assert entry.status == NOT_CREATED and not entry.unsettled


def test_a_server_error_from_create_training_job_is_retried_and_keeps_the_job_open() -> None:
    client, ledger = sagemaker(), FakeLedger()
    with Stubber(client) as stub:
        stub.add_client_error("create_training_job", "InternalFailure", http_status_code=500)
        with pytest.raises(UnansweredError):
            submit(submit_task(EVENT), client, ledger)
    assert ledger.entries["iris-3f5c0f2a-6b1e9d"].status == "Submitting"


def test_a_job_without_capacity_waits_with_one_alert_then_gives_up_after_the_deployments_wait() -> None:
    client, ledger, sns = sagemaker(), FakeLedger(), sns_client()
    published: list[dict[str, Any]] = []
    sns.meta.events.register("provide-client-params.sns.Publish", lambda params, **_: published.append(params))
    with Stubber(client) as stub, Stubber(sns) as topic:
        for _ in range(3):
            stub.add_client_error("create_training_job", "ResourceLimitExceeded", "ml.g5.xlarge quota in use")
        topic.add_response("publish", {"MessageId": "m-1"})
        # The first refusal alerts once and waits; the second waits silently.
        for _ in range(2):
            with pytest.raises(CapacityError, match="quota in use"):
                submit(submit_task(EVENT), client, ledger, sns)
        # The wait began longer ago than the deployment allows: the submission fails.
        record = dict(ledger.entries["iris-3f5c0f2a-6b1e9d"].alerts[CAPACITY_TRANSITION])
        record["at"] -= (SETTINGS.capacity_wait_seconds + 1) * 1000
        ledger._set("iris-3f5c0f2a-6b1e9d", alerts={CAPACITY_TRANSITION: record})
        with pytest.raises(CapacityExhaustedError, match="no capacity freed up in 1 h"):
            submit(submit_task(EVENT), client, ledger, sns)
    [alert] = [json.loads(json.loads(p["Message"])["sqs"]) for p in published]
    assert (alert["kind"], alert["status"], alert["severity"]) == (
        "waiting-for-capacity",
        "WaitingForCapacity",
        "warning",
    )
    assert "quota in use" in alert["status_message"] and alert["job_name"] == "iris-3f5c0f2a-6b1e9d"
    assert ledger.entries["iris-3f5c0f2a-6b1e9d"].status == "Submitting"


def test_a_waiting_alert_sns_refuses_is_sent_by_the_next_attempt() -> None:
    client, ledger, sns = sagemaker(), FakeLedger(), sns_client()
    with Stubber(client) as stub, Stubber(sns) as topic:
        stub.add_client_error("create_training_job", "ResourceLimitExceeded")
        stub.add_client_error("create_training_job", "ResourceLimitExceeded")
        topic.add_client_error("publish", "InternalError", http_status_code=500)
        topic.add_response("publish", {"MessageId": "m-2"})
        for _ in range(2):
            with pytest.raises(CapacityError):
                submit(submit_task(EVENT), client, ledger, sns)
    assert ledger.entries["iris-3f5c0f2a-6b1e9d"].alerts[CAPACITY_TRANSITION]["state"] == "sent"
