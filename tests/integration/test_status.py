"""Status and alerts through the local stack: state events via EventBridge, the ledger, SNS, and the state machine."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import jsonschema
import pytest

from tests.integration.conftest import load_event

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

    from sagepush_cli.local.stack import LocalStack

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs" / "alerts.schema.json").read_text())
JOB = "iris-3f5c0f2a-6b1e9d"
DEADLINE_SECONDS = 60


def wait_for(check: Callable[[], Any], what: str) -> Any:
    """Poll `check` until it returns something truthy, failing after the deadline."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Alerts:
    """An SQS queue subscribed to the alerts topic: what SQS/Lambda/HTTP subscribers receive."""

    def __init__(self, stack: LocalStack) -> None:
        self.sqs = boto3.client("sqs")
        self.url = self.sqs.create_queue(QueueName="alerts-subscriber")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        boto3.client("sns").subscribe(TopicArn=stack.outputs["AlertsTopicArn"], Protocol="sqs", Endpoint=arn)

    def received(self) -> list[dict[str, Any]]:
        """Return every alert delivered so far (SNS envelope unwrapped), removing them from the queue."""
        documents: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return documents
            for message in batch:
                envelope = json.loads(message["Body"])
                document = json.loads(envelope["Message"])
                document["_attributes"] = {k: v["Value"] for k, v in envelope.get("MessageAttributes", {}).items()}
                documents.append(document)
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture(autouse=True)
def _events_from_the_test_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Leave created jobs as moto makes them (Completed on describe, no events): the test sends every state itself."""
    from sagepush_cli.local.trainer import LocalTrainer

    monkeypatch.setattr(LocalTrainer, "start", lambda self, job, **_: None)


@pytest.fixture
def alerts(stack: LocalStack) -> Alerts:
    return Alerts(stack)


def put_states(stack: LocalStack, *events: dict[str, Any]) -> None:
    """Send state-change events as SageMaker does (EventBridge PutEvents) and wait for their deliveries to finish."""
    client = boto3.client("events")
    for start in range(0, len(events), 10):
        entries: list[PutEventsRequestEntryTypeDef] = [
            {
                "Source": e["source"],
                "DetailType": e["detail-type"],
                "Detail": json.dumps(e["detail"]),
                "Resources": e["resources"],
            }
            for e in events[start : start + 10]
        ]
        assert client.put_events(Entries=entries)["FailedEntryCount"] == 0
    stack.drain()


def start_execution(stack: LocalStack, sfn: Any, spec: dict[str, Any] | None = None) -> str:
    task = load_event("submit-task-token")
    document = {
        "job_name": JOB,
        "project": "iris",
        "code_uri": task["code_uri"],
        "code_digest": task["code_digest"],
        "spec": spec if spec is not None else task["spec"],
        "source": task["source"],
        "upload": {"bucket": "ingest", "key": "incoming/iris/main.tar.gz", "version_id": None},
        "timeout_seconds": 5400,
    }
    machine = stack.outputs["TrainingStateMachineArn"]
    arn: str = sfn.start_execution(stateMachineArn=machine, name=JOB, input=json.dumps(document))["executionArn"]
    return arn


def finished(sfn: Any, arn: str) -> Callable[[], dict[str, Any] | None]:
    def check() -> dict[str, Any] | None:
        described: dict[str, Any] = sfn.describe_execution(executionArn=arn)
        return described if described["status"] != "RUNNING" else None

    return check


def test_completed_event_succeeds_the_waiting_execution_with_the_summary(
    stack: LocalStack, sfn: Any, alerts: Alerts, ledger: Callable[[str], dict[str, Any]]
) -> None:
    arn = start_execution(stack, sfn)
    wait_for(lambda: ledger(JOB).get("task_token"), "Submit to record the job and its token")
    assert sfn.describe_execution(executionArn=arn)["status"] == "RUNNING"

    put_states(stack, load_event("status-completed"))

    execution = wait_for(finished(sfn, arn), "the execution to end")
    assert execution["status"] == "SUCCEEDED"
    output = json.loads(execution["output"])
    assert output["job_name"] == JOB and output["status"] == "Completed" and output["billable_seconds"] == 1560
    assert output["model_artifacts"].endswith("/output/model.tar.gz") and output["final_metrics"]["val:loss"] == 0.0412
    assert [a["status"] for a in alerts.received()] == ["Completed"]
    assert ledger(JOB)["token_state"] == "settled" and "unsettled" not in ledger(JOB)


def test_failed_event_fails_the_execution_with_the_reason_and_alerts_once(
    stack: LocalStack, sfn: Any, alerts: Alerts, ledger: Callable[[str], dict[str, Any]]
) -> None:
    arn = start_execution(stack, sfn)
    wait_for(lambda: ledger(JOB).get("task_token"), "Submit to record the job and its token")
    failed = load_event("status-failed")

    put_states(stack, failed)

    execution = wait_for(finished(sfn, arn), "the execution to end")
    assert execution["status"] == "FAILED" and execution["error"] == "sagepush.TrainingFailed"
    # moto's engine drops SendTaskFailure's cause; AWS passes it through, and the state machine fills in a null one.
    assert execution.get("cause") in {
        failed["detail"]["FailureReason"],
        "the training job did not complete (no cause was reported)",
    }
    [alert] = alerts.received()
    jsonschema.validate({k: v for k, v in alert.items() if k != "_attributes"}, SCHEMA)
    assert alert["failure_reason"] == failed["detail"]["FailureReason"] and alert["severity"] == "error"
    assert alert["_attributes"] == {"project": "iris", "status": "Failed", "severity": "error"}


def test_submit_error_ends_in_the_could_not_submit_alert(
    stack: LocalStack, sfn: Any, alerts: Alerts, ledger: Callable[[str], dict[str, Any]]
) -> None:
    spec = {**load_event("submit-task-token")["spec"], "instance_type": "a-very-large-gpu"}
    arn = start_execution(stack, sfn, spec=spec)

    execution = wait_for(finished(sfn, arn), "the execution to end")

    assert execution["status"] == "FAILED" and execution["error"] == "SpecError"
    [alert] = wait_for(alerts.received, "the could-not-submit alert")
    jsonschema.validate({k: v for k, v in alert.items() if k != "_attributes"}, SCHEMA)
    assert (alert["kind"], alert["status"], alert["job_name"]) == ("submit-failed", "SubmitFailed", JOB)
    # The cause is Lambda's error document; the reason shown is its message.
    assert alert["error"] == "SpecError" and alert["cause"] == execution["cause"]
    assert alert["failure_reason"].endswith('"a-very-large-gpu" is not a SageMaker instance type (like ml.m5.xlarge)')
    assert alert["links"]["console"].startswith("https://us-east-1.console.aws.amazon.com/states/")
    assert alert["_attributes"] == {"project": "iris", "status": "SubmitFailed", "severity": "error"}


def test_a_shuffled_stream_with_duplicates_alerts_once_per_transition_and_ends_completed(
    stack: LocalStack, alerts: Alerts, ledger: Callable[[str], dict[str, Any]]
) -> None:
    names = ["starting", "downloading", "training", "interrupted", "uploading", "completed", "training-duplicate"]
    stream = [load_event(f"status-{name}") for name in names] * 2
    random.Random(20250101).shuffle(stream)

    put_states(stack, *stream)

    statuses = sorted(alert["status"] for alert in alerts.received())
    assert statuses == ["Completed", "Interrupted", "Starting", "Training"]
    entry = ledger(JOB)
    assert (entry["status"], entry["secondary_status"], entry["billable_seconds"]) == ("Completed", "Completed", 1560)
    assert all(record["state"] == "sent" for record in entry["alerts"].values())


def test_a_malformed_event_is_parked_once_with_its_reason_and_the_next_one_is_handled(
    stack: LocalStack, alerts: Alerts, ledger: Callable[[str], dict[str, Any]]
) -> None:
    put_states(stack, load_event("status-malformed-no-status"), load_event("status-malformed-bad-time"))
    put_states(stack, load_event("status-starting"))

    assert [alert["status"] for alert in alerts.received()] == ["Starting"]
    assert ledger(JOB)["secondary_status"] == "Starting"
    sqs = boto3.client("sqs")
    dead = sqs.receive_message(QueueUrl=stack.outputs["StatusDeadLetterQueueUrl"], MaxNumberOfMessages=10)
    records = [json.loads(message["Body"]) for message in dead.get("Messages", [])]
    assert sorted(record["responsePayload"]["where"] for record in records) == [
        "$.detail.LastModifiedTime",
        "$.detail.TrainingJobStatus",
    ]
    assert {record["requestContext"]["condition"] for record in records} == {"InputRefused"}
    assert all(record["requestPayload"]["source"] == "aws.sagemaker" for record in records)


def test_tags_as_a_list_are_routed_by_the_rule_and_foreign_untagged_jobs_are_not(
    stack: LocalStack, alerts: Alerts, ledger: Callable[[str], dict[str, Any]]
) -> None:
    put_states(
        stack, load_event("status-tags-list"), load_event("status-untagged-job"), load_event("status-foreign-job")
    )

    received = {(a["project"], a["status"]) for a in alerts.received()}
    assert received == {("iris", "Starting"), ("vision", "Completed")}
    assert ledger("notebook-resnet-2025-01-01-10-00-00")["project"] == "vision"


def test_reconciler_settles_an_execution_whose_completed_event_was_lost(
    stack: LocalStack, sfn: Any, alerts: Alerts, ledger: Callable[[str], dict[str, Any]]
) -> None:
    arn = start_execution(stack, sfn)
    wait_for(lambda: ledger(JOB).get("task_token"), "Submit to record the job and its token")
    # The job has been silent for an hour: no Completed event ever arrived.
    boto3.client("dynamodb").update_item(
        TableName=stack.resources["LedgerTable"],
        Key={"job_name": {"S": JOB}},
        UpdateExpression="SET touched_at = :then",
        ExpressionAttributeValues={":then": {"N": str(time.time_ns() // 1_000_000 - 3_600_000)}},
    )

    report = stack.invoke("ReconcileFunction", load_event("reconcile-scheduled"))

    assert report["checked"] == 1 and report["outcomes"][0]["token"] == "succeeded"
    execution = wait_for(finished(sfn, arn), "the execution to end")
    assert execution["status"] == "SUCCEEDED" and json.loads(execution["output"])["status"] == "Completed"
    assert [alert["status"] for alert in alerts.received()] == ["Completed"]
    assert stack.invoke("ReconcileFunction", load_event("reconcile-scheduled"))["checked"] == 0


def test_a_state_whose_recording_answer_was_lost_is_still_alerted_once(
    stack: LocalStack, alerts: Alerts, ledger: Callable[[str], dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sagepush import aws
    from sagepush.ledger import DynamoDBLedger, Submission
    from tests.integration.faults import EmulatedWaits, answer_lost

    EmulatedWaits(monkeypatch)
    submission = Submission(JOB, "iris", "s3://artifacts/code/iris/sourcedir.tar.gz", "3f5c", {"commit": "9fce"})
    DynamoDBLedger(stack.resources["LedgerTable"], dynamodb=boto3.client("dynamodb")).record_submission(
        submission, now_ms=time.time_ns() // 1_000_000
    )

    # DynamoDB records the state and its alert's claim, and the answer never comes back: botocore sends it again.
    with answer_lost(aws.client("dynamodb"), "UpdateItem") as fault:
        put_states(stack, load_event("status-training"))

    assert len(fault.hits) == 1
    assert [alert["status"] for alert in alerts.received()] == ["Training"]
    entry = ledger(JOB)
    assert entry["secondary_status"] == "Training" and entry["alerts"]["Training"]["state"] == "sent"
