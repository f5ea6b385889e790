"""Alerts within SNS's limit and executions settled whatever the log holds or SNS says, through the local stack.

moto's SNS refuses a message longer than 262,144 *characters* and ignores attributes, where SNS counts UTF-8 bytes
of the message plus every attribute's name, type and value. So each test measures what the StatusFunction handed its
SNS client itself (`sns_counted_bytes`), and does not rely on moto to refuse an oversized publish.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import jsonschema
import pytest

from sagepush import aws
from tests.integration.conftest import Ledger, load_event
from tests.integration.faults import EmulatedWaits, refused
from tests.integration.test_faults import attempts_per_call, dead_letters, waiting_for_its_job
from tests.integration.test_status import JOB, Alerts, finished, put_states, start_execution, wait_for
from tests.unit.test_alert_size import SNS_LIMIT, sns_counted_bytes

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sagepush_cli.local.stack import LocalStack

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs" / "alerts.schema.json").read_text())
LOG_GROUP = "/aws/sagemaker/TrainingJobs"


pytestmark = pytest.mark.usefixtures("instant_jobs")


@pytest.fixture
def alerts(stack: LocalStack) -> Alerts:
    return Alerts(stack)


@pytest.fixture
def publishes(stack: LocalStack) -> Iterator[list[dict[str, Any]]]:
    """The parameters of every Publish the handlers' SNS client made, as sent (faults may still refuse them)."""
    sent: list[dict[str, Any]] = []
    client = aws.client("sns")

    def keep(params: dict[str, Any], **_: Any) -> None:
        sent.append(json.loads(json.dumps(params)))

    client.meta.events.register("provide-client-params.sns.Publish", keep)
    yield sent
    client.meta.events.unregister("provide-client-params.sns.Publish", keep)


def write_log(lines: list[str]) -> None:
    """Ship `lines` as the job's first host's log stream, as SageMaker's log agent does."""
    logs = boto3.client("logs")
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_group(logGroupName=LOG_GROUP)
    stream = f"{JOB}/algo-1-{int(time.time())}"
    logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
    now = time.time_ns() // 1_000_000
    events: list[Any] = [{"timestamp": now - len(lines) + i, "message": line} for i, line in enumerate(lines)]
    logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=stream, logEvents=events)


def test_a_job_failing_with_a_300_kb_log_tail_gets_one_failed_alert_within_the_limit_and_its_execution_ends(
    stack: LocalStack, sfn: Any, alerts: Alerts, ledger: Ledger, publishes: list[dict[str, Any]]
) -> None:
    arn = start_execution(stack, sfn)
    wait_for(lambda: ledger(JOB).get("task_token"), "Submit to record the job and its token")
    # 20 lines of 15 KB of quotes: each is escaped two or three times over in the publish.
    write_log([f"{i:02d} " + '"' * 15_000 for i in range(20)])

    put_states(stack, load_event("status-failed"))

    execution = wait_for(finished(sfn, arn), "the execution to end")
    assert execution["status"] == "FAILED" and execution["error"] == "sagepush.TrainingFailed"
    [params] = publishes
    assert sns_counted_bytes(params) <= SNS_LIMIT
    [alert] = alerts.received()
    jsonschema.validate({k: v for k, v in alert.items() if k != "_attributes"}, SCHEMA)
    assert alert["status"] == "Failed" and alert["_attributes"]["status"] == "Failed"
    assert alert["log_lines_cut"] > 0 and len(alert["log_tail"]) + alert["log_lines_cut"] == 20
    assert alert["log_tail"][-1].startswith('19 """') and alert["log_tail"][-1].endswith("…")
    assert f"… {alert['log_lines_cut']} earlier lines cut" in json.loads(params["Message"])["default"]
    entry = ledger(JOB)
    assert entry["token_state"] == "settled" and entry["alerts"]["Failed"]["state"] == "sent"
    assert dead_letters(stack) == []


def test_sns_refusing_the_alert_as_invalid_sends_the_minimal_alert_and_the_execution_ends(
    stack: LocalStack, sfn: Any, alerts: Alerts, ledger: Ledger, publishes: list[dict[str, Any]]
) -> None:
    arn = start_execution(stack, sfn)
    wait_for(lambda: ledger(JOB).get("task_token"), "Submit to record the job and its token")
    write_log(["Traceback (most recent call last):", "ValueError: Input contains NaN"])

    with refused(aws.client("sns"), "Publish", "InvalidParameter", status=400) as fault:
        put_states(stack, load_event("status-failed"))

    assert (len(fault.hits), fault.passed) == (1, 1)
    execution = wait_for(finished(sfn, arn), "the execution to end")
    assert execution["status"] == "FAILED"
    [alert] = alerts.received()
    jsonschema.validate({k: v for k, v in alert.items() if k != "_attributes"}, SCHEMA)
    assert (alert["job_name"], alert["project"], alert["status"]) == (JOB, "iris", "Failed")
    assert (alert["log_tail"], alert["log_lines_cut"]) == ([], 2) and len(alert["failure_reason"]) <= 200
    assert alert["_attributes"] == {"project": "iris", "status": "Failed", "severity": "error"}
    full, minimal = publishes
    assert json.loads(json.loads(full["Message"])["sqs"])["log_tail"][-1] == "ValueError: Input contains NaN"
    assert sns_counted_bytes(minimal) < sns_counted_bytes(full) <= SNS_LIMIT
    assert ledger(JOB)["alerts"]["Failed"]["state"] == "sent" and dead_letters(stack) == []


def test_an_execution_ends_while_sns_is_down_and_the_alert_goes_out_once_sns_is_back(
    stack: LocalStack, sfn: Any, alerts: Alerts, ledger: Ledger, waits: EmulatedWaits
) -> None:
    arn = start_execution(stack, sfn)
    waiting_for_its_job(stack, sfn, ledger, arn)

    # SNS is down for every attempt of every invocation: Lambda's retries run out and the event is parked.
    with refused(aws.client("sns"), "*", "InternalError", status=500, times=1_000) as fault:
        put_states(stack, load_event("status-completed"))

    assert len(fault.hits) == 3 * attempts_per_call()  # the invocation and Lambda's two retries
    execution = wait_for(finished(sfn, arn), "the execution to end")
    assert execution["status"] == "SUCCEEDED" and json.loads(execution["output"])["status"] == "Completed"
    assert alerts.received() == []
    entry = ledger(JOB)
    assert entry["token_state"] == "settled" and "Completed" not in entry.get("alerts", {}) and "unsettled" in entry
    [parked] = dead_letters(stack)
    assert json.loads(parked)["requestContext"]["condition"] == "RetriesExhausted"

    # SNS is back; the job is still open, so the reconciler handles it: one alert, no second settling, closed.
    boto3.client("dynamodb").update_item(
        TableName=stack.resources["LedgerTable"],
        Key={"job_name": {"S": JOB}},
        UpdateExpression="SET touched_at = :then",
        ExpressionAttributeValues={":then": {"N": str(time.time_ns() // 1_000_000 - 3_600_000)}},
    )
    report = stack.invoke("ReconcileFunction", load_event("reconcile-scheduled"))

    assert [(o["alert"], o["token"], o["closed"]) for o in report["outcomes"]] == [
        ("published", "already-settled", True)
    ]
    assert [alert["status"] for alert in alerts.received()] == ["Completed"]
    assert "unsettled" not in ledger(JOB)


def test_a_submit_failure_with_a_32k_cause_of_quotes_and_emoji_is_alerted_within_the_limit_and_ends_with_its_error(
    stack: LocalStack, sfn: Any, alerts: Alerts, ledger: Ledger, publishes: list[dict[str, Any]]
) -> None:
    arn = start_execution(stack, sfn)
    token = wait_for(lambda: ledger(JOB).get("task_token"), "Submit to record the job and its token")
    # The longest cause Step Functions takes (32,768 characters), of quotes and emoji: a quote is escaped up to three
    # times over in the publish, and the cause is in the text, the document (twice) and the chat notification.
    # SendTaskFailure is how this test hands the Submit task such a cause; any other task error takes the same path.
    cause = ('"' * 3 + "🚀") * 8192

    sfn.send_task_failure(taskToken=token, error="ClientError", cause=cause)

    execution = wait_for(finished(sfn, arn), "the execution to end")
    assert (execution["status"], execution["error"], execution.get("cause")) == ("FAILED", "ClientError", cause)
    # One publish, fitted to SNS's limit as SNS counts it: nothing was refused and sent again.
    sizes = [sns_counted_bytes(params) for params in publishes]
    assert len(sizes) == 1 and sizes[0] <= SNS_LIMIT, f"publishes of {sizes} bytes"
    [alert] = alerts.received()
    jsonschema.validate({k: v for k, v in alert.items() if k != "_attributes"}, SCHEMA)
    assert (alert["kind"], alert["status"], alert["job_name"], alert["error"]) == (
        "submit-failed", "SubmitFailed", JOB, "ClientError"
    )  # fmt: skip
    assert alert["cause"].startswith('"""🚀') and alert["cause"].endswith("…") and len(alert["cause"]) < len(cause)
    assert alert["_attributes"] == {"project": "iris", "status": "SubmitFailed", "severity": "error"}
    assert dead_letters(stack) == []


def test_when_no_could_not_submit_alert_can_be_sent_the_execution_still_ends_with_the_submit_error(
    stack: LocalStack, sfn: Any, alerts: Alerts, waits: EmulatedWaits
) -> None:
    spec = {**load_event("submit-task-token")["spec"], "instance_type": "a-very-large-gpu"}

    with refused(aws.client("sns"), "Publish", "AuthorizationError", status=403, times=1_000) as fault:
        arn = start_execution(stack, sfn, spec=spec)
        execution = wait_for(finished(sfn, arn), "the execution to end")

    # NotifyFunction failed, was retried twice with backoff, and was caught: the execution ended with Submit's error.
    assert len(fault.hits) == 3 and len(waits.state_machine) == 2
    assert execution["status"] == "FAILED" and execution["error"] == "SpecError"
    assert "a-very-large-gpu" in execution["cause"]
    assert alerts.received() == []
