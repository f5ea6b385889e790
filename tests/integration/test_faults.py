"""Faults at the HTTP boundary of the handlers' own AWS clients, on the local stack: nothing lost, nothing doubled.

Each test arms a fault on the client a handler uses (`sagepush.aws.client`), drives the pipeline as AWS would, and
reads back what a user sees: the training jobs, the execution's end, the alerts an SQS subscriber receives, the DLQs.
"""

from __future__ import annotations

import io
import json
import tarfile
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from sagepush import aws
from tests.integration.conftest import Ledger, load_event
from tests.integration.faults import EmulatedWaits, answer_lost, dies_after, refused
from tests.integration.test_stage_submit import MANIFEST, TRAIN, executions, tar_gz
from tests.integration.test_status import JOB, Alerts, finished, put_states, start_execution, wait_for

if TYPE_CHECKING:
    from collections.abc import Callable

    from sagepush_cli.local.stack import LocalStack


pytestmark = pytest.mark.usefixtures("instant_jobs")


@pytest.fixture
def alerts(stack: LocalStack) -> Alerts:
    return Alerts(stack)


def attempts_per_call() -> int:
    """How many times botocore sends one call before giving up (the handlers' shared retry config)."""
    client: Any = aws.client("sagemaker")
    attempts: int = client.meta.config.retries["total_max_attempts"]
    return attempts


def dead_letters(stack: LocalStack) -> list[str]:
    """Every message waiting in one of the stack's dead-letter queues."""
    sqs = boto3.client("sqs")
    found = []
    for name, url in stack.outputs.items():
        if name.endswith("DeadLetterQueueUrl"):
            found += [m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])]
    return found


def job_names(sagemaker: Any) -> list[str]:
    return [job["TrainingJobName"] for job in sagemaker.list_training_jobs()["TrainingJobSummaries"]]


def waiting_for_its_job(stack: LocalStack, sfn: Any, ledger: Ledger, arn: str) -> None:
    """Wait until Submit has returned and the execution waits on the token the ledger holds."""

    def check() -> bool:
        entry = ledger(JOB)
        history = sfn.get_execution_history(executionArn=arn)["events"]
        submitted = any(event["type"] == "TaskSubmitted" for event in history)
        return bool(entry.get("task_token")) and entry.get("token_state") == "waiting" and submitted

    wait_for(check, "Submit to return and the execution to wait on its token")


def complete_and_collect(stack: LocalStack, sfn: Any, alerts: Alerts, arn: str) -> tuple[dict[str, Any], list[str]]:
    """Send the job's Completed event; return the ended execution and the alert statuses a subscriber got."""
    put_states(stack, load_event("status-completed"))
    execution = wait_for(finished(sfn, arn), "the execution to end")
    return execution, [alert["status"] for alert in alerts.received()]


@pytest.mark.parametrize(
    ("code", "refusals", "state_machine_retries", "interval", "first_alerts"),
    [
        pytest.param("ThrottlingException", attempts_per_call, 1, 10, [], id="throttled-past-botocore-retries"),
        pytest.param(
            "ResourceLimitExceeded", lambda: 2, 2, 30, ["WaitingForCapacity"], id="resource-limit-exceeded-twice"
        ),
    ],
)
def test_a_refused_submit_is_retried_with_backoff_and_creates_the_job_once(
    stack: LocalStack,
    sfn: Any,
    sagemaker: Any,
    alerts: Alerts,
    ledger: Ledger,
    waits: EmulatedWaits,
    code: str,
    refusals: Callable[[], int],
    state_machine_retries: int,
    interval: int,
    first_alerts: list[str],
) -> None:
    with refused(aws.client("sagemaker"), "CreateTrainingJob", code, times=refusals()) as fault:
        arn = start_execution(stack, sfn)
        waiting_for_its_job(stack, sfn, ledger, arn)

    assert len(fault.hits) == refusals() and fault.passed == 1
    assert job_names(sagemaker) == [JOB]
    # The Submit retriers: BackoffRate 2, full jitter, so the n-th wait is at most interval * 2**n.
    assert len(waits.state_machine) == state_machine_retries
    assert all(0 <= wait <= interval * 2**n for n, wait in enumerate(waits.state_machine))
    execution, received = complete_and_collect(stack, sfn, alerts, arn)
    # A job without capacity waits with one waiting-for-capacity alert, however often it is refused, then runs.
    assert execution["status"] == "SUCCEEDED" and received == [*first_alerts, "Completed"]


@pytest.mark.parametrize(
    "lost",
    [
        pytest.param(lambda: 1, id="once-botocore-retries"),
        pytest.param(attempts_per_call, id="every-attempt-the-state-machine-retries"),
    ],
)
def test_a_submit_that_never_hears_back_from_create_training_job_attaches_on_retry(
    stack: LocalStack,
    sfn: Any,
    sagemaker: Any,
    alerts: Alerts,
    ledger: Ledger,
    waits: EmulatedWaits,
    lost: Callable[[], int],
) -> None:
    with answer_lost(aws.client("sagemaker"), "CreateTrainingJob", times=lost()) as fault:
        arn = start_execution(stack, sfn)
        waiting_for_its_job(stack, sfn, ledger, arn)

    assert len(fault.hits) == lost() and fault.passed == 1
    assert job_names(sagemaker) == [JOB]
    execution, received = complete_and_collect(stack, sfn, alerts, arn)
    assert execution["status"] == "SUCCEEDED" and received == ["Completed"]
    assert dead_letters(stack) == []


@pytest.mark.parametrize(
    "error_type",
    [
        pytest.param("Sandbox.Timedout", id="timed-out"),
        pytest.param("Lambda.Unknown", id="died-without-an-error-type"),
        pytest.param("Runtime.ExitError", id="runtime-crashed"),
    ],
)
def test_a_submit_that_dies_after_create_training_job_is_retried_and_attaches_to_its_job(
    stack: LocalStack,
    sfn: Any,
    sagemaker: Any,
    alerts: Alerts,
    ledger: Ledger,
    waits: EmulatedWaits,
    error_type: str,
) -> None:
    # SageMaker created the job, then Lambda killed Submit before it returned (its timeout, memory, a crash).
    with dies_after(aws.client("sagemaker"), "CreateTrainingJob", error_type) as fault:
        arn = start_execution(stack, sfn)
        waiting_for_its_job(stack, sfn, ledger, arn)

    assert len(fault.hits) == 1
    assert job_names(sagemaker) == [JOB]
    failed = [e for e in sfn.get_execution_history(executionArn=arn)["events"] if e["type"] == "TaskFailed"]
    assert [e["taskFailedEventDetails"]["error"] for e in failed] == [error_type]
    # The retrier for a function that died: IntervalSeconds 5, full jitter.
    assert len(waits.state_machine) == 1 and 0 <= waits.state_machine[0] <= 5
    assert ledger(JOB)["token_state"] == "waiting"
    execution, received = complete_and_collect(stack, sfn, alerts, arn)
    assert execution["status"] == "SUCCEEDED" and received == ["Completed"]  # no could-not-submit alert
    assert dead_letters(stack) == []


def test_a_submit_invoked_asynchronously_that_keeps_failing_is_parked_in_its_dead_letter_queue(
    stack: LocalStack, sagemaker: Any
) -> None:
    task = load_event("submit-task-token")
    del task["code_uri"]  # a task that can never succeed

    boto3.client("lambda").invoke(
        FunctionName=stack.outputs["SubmitFunctionArn"], InvocationType="Event", Payload=json.dumps(task).encode()
    )
    stack.drain()

    url = stack.outputs["SubmitDeadLetterQueueUrl"]
    [parked] = boto3.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    record = json.loads(parked["Body"])
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["functionArn"] == stack.outputs["SubmitFunctionArn"]
    assert record["requestContext"]["approximateInvokeCount"] == 3  # the invocation and Lambda's two retries
    assert record["requestPayload"] == task
    assert job_names(sagemaker) == []
    assert dead_letters(stack) == []  # parked once, in Submit's own queue


@pytest.mark.parametrize(
    ("service", "code", "status"),
    [
        pytest.param("sns", "InternalError", 500, id="sns-unavailable"),
        pytest.param("dynamodb", "InternalServerError", 500, id="dynamodb-unavailable"),
        pytest.param("dynamodb", "ProvisionedThroughputExceededException", 400, id="dynamodb-throttled"),
    ],
)
def test_a_status_event_outlasts_an_outage_and_alerts_once_when_it_ends(
    stack: LocalStack,
    sfn: Any,
    alerts: Alerts,
    ledger: Ledger,
    waits: EmulatedWaits,
    service: Any,
    code: str,
    status: int,
) -> None:
    arn = start_execution(stack, sfn)
    waiting_for_its_job(stack, sfn, ledger, arn)

    # Down for one whole invocation (every botocore attempt): Lambda's asynchronous retry gets through.
    with refused(aws.client(service), "*", code, status=status, times=attempts_per_call()) as fault:
        execution, received = complete_and_collect(stack, sfn, alerts, arn)

    assert len(fault.hits) == attempts_per_call()
    assert execution["status"] == "SUCCEEDED" and received == ["Completed"]
    assert ledger(JOB)["alerts"]["Completed"]["state"] == "sent"
    assert dead_letters(stack) == []


def test_an_alert_published_before_the_ledger_failed_is_not_sent_again(
    stack: LocalStack, sfn: Any, alerts: Alerts, ledger: Ledger, waits: EmulatedWaits
) -> None:
    arn = start_execution(stack, sfn)
    waiting_for_its_job(stack, sfn, ledger, arn)

    # SNS took the alert, then DynamoDB refused every attempt to mark it sent: the invocation fails and is retried.
    with refused(
        aws.client("dynamodb"),
        "UpdateItem",
        "InternalServerError",
        status=500,
        times=attempts_per_call(),
        when=lambda body: b'= :sent"' in body,
    ) as fault:
        execution, received = complete_and_collect(stack, sfn, alerts, arn)

    assert len(fault.hits) == attempts_per_call()
    assert execution["status"] == "SUCCEEDED" and received == ["Completed"]
    assert dead_letters(stack) == []


@pytest.mark.parametrize(
    ("service", "code"),
    [
        pytest.param("s3", "InternalError", id="s3-unavailable"),
        pytest.param("stepfunctions", "ServiceUnavailable", id="step-functions-unavailable"),
    ],
)
def test_an_upload_outlasts_an_outage_and_starts_one_execution(
    stack: LocalStack, s3: Any, sfn: Any, waits: EmulatedWaits, service: Any, code: str
) -> None:
    body = tar_gz({"train.py": TRAIN, "sagepush.toml": MANIFEST})

    # Down for the whole first invocation of StageFunction: Lambda's asynchronous retry stages and starts it.
    with refused(aws.client(service), "*", code, status=503, times=attempts_per_call()) as fault:
        s3.put_object(Bucket=stack.outputs["IngestBucketName"], Key="incoming/mnist/main.tar.gz", Body=body)
        stack.drain()

    assert len(fault.hits) == attempts_per_call()
    [execution] = executions(stack, sfn)
    assert execution["name"].startswith("mnist-")
    listed = s3.list_objects_v2(Bucket=stack.outputs["ArtifactBucketName"], Prefix="code/mnist/")
    assert [item["Key"].rsplit("/", 1)[-1] for item in listed["Contents"]] == ["sourcedir.tar.gz"]
    assert dead_letters(stack) == []


def test_an_upload_event_delivered_after_the_key_was_overwritten_stages_the_version_it_names(
    stack: LocalStack, s3: Any, sfn: Any
) -> None:
    ingest, key = stack.outputs["IngestBucketName"], "incoming/mnist/main.tar.gz"
    first = tar_gz({"train.py": TRAIN, "sagepush.toml": MANIFEST})
    second = tar_gz({"train.py": b"print('second')\n", "sagepush.toml": MANIFEST})
    # S3 holds back the first upload's event (notifications off while it lands) and delivers it after the second's.
    s3.put_bucket_notification_configuration(Bucket=ingest, NotificationConfiguration={})
    put = s3.put_object(Bucket=ingest, Key=key, Body=first)
    s3.put_bucket_notification_configuration(Bucket=ingest, NotificationConfiguration={"EventBridgeConfiguration": {}})
    s3.put_object(Bucket=ingest, Key=key, Body=second)
    stack.drain()
    [newer] = executions(stack, sfn)

    late = load_event("stage-object-created")
    late["detail"]["bucket"]["name"] = ingest
    late["detail"]["object"].update(
        key=key, size=len(first), etag=put["ETag"].strip('"'), **{"version-id": put["VersionId"]}
    )
    late_events = [late, json.loads(json.dumps(late))]  # late, and then delivered twice
    put_states(stack, *late_events)

    by_name = {e["name"]: e for e in executions(stack, sfn)}
    assert len(by_name) == 2 and newer["name"] in by_name
    [older] = [name for name in by_name if name != newer["name"]]
    staged = {
        name: json.loads(sfn.describe_execution(executionArn=e["executionArn"])["input"])["code_uri"]
        for name, e in by_name.items()
    }
    bucket, _, path = staged[older].removeprefix("s3://").partition("/")
    body = s3.get_object(Bucket=bucket, Key=path)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as archive:
        member = archive.extractfile("train.py")
        assert member is not None and member.read() == TRAIN
    assert staged[older] != staged[newer["name"]]
    assert dead_letters(stack) == []
