"""Settling an end state's task token never depends on its alert: alerting fails, the token is settled all the same."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from botocore.stub import ANY

from sagepush.ledger import SETTLED
from sagepush.status import TRAINING_FAILED
from tests.unit.ledger_fake import FakeLedger
from tests.unit.test_status import TOKEN, Clients, handle, state, submitted

if TYPE_CHECKING:
    from collections.abc import Iterator

JOB = "iris-3f5c0f2a-6b1e9d"


@pytest.fixture
def clients() -> Iterator[Clients]:
    made = Clients()
    for stub in made.stubs.values():
        stub.activate()
    yield made
    for stub in made.stubs.values():
        stub.assert_no_pending_responses()
        stub.deactivate()


def sns_down(clients: Clients) -> None:
    clients.stubs["sns"].add_client_error("publish", "InternalError", http_status_code=500)


def logs_throttled(clients: Clients) -> None:
    clients.stubs["logs"].add_client_error("describe_log_streams", "ThrottlingException", http_status_code=400)


def expect_settled(clients: Clients, event: str) -> None:
    if event == "status-completed":
        clients.stubs["sfn"].add_response("send_task_success", {}, {"taskToken": TOKEN, "output": ANY})
    else:
        clients.stubs["sfn"].add_response("send_task_failure", {}, {"taskToken": TOKEN, "error": ANY, "cause": ANY})


@pytest.mark.parametrize(
    ("event", "fault"),
    [
        ("status-failed", sns_down),
        ("status-failed", logs_throttled),
        ("status-completed", sns_down),
    ],
    ids=["failed-sns-down", "failed-logs-throttled", "completed-sns-down"],
)
def test_an_end_state_settles_its_token_when_alerting_fails_and_the_retry_alerts_once_without_settling_again(
    clients: Clients, event: str, fault: Any
) -> None:
    ledger = FakeLedger()
    submitted(ledger)
    if event == "status-failed" and fault is sns_down:
        clients.expect_no_logs()
    fault(clients)
    expect_settled(clients, event)

    with pytest.raises(clients.sns.exceptions.ClientError):
        handle(event, ledger, clients)

    entry = ledger.entries[JOB]
    assert entry.token_state == SETTLED and entry.alerts == {}  # settled and recorded; the claim given back
    assert entry.unsettled  # not closed: if every retry fails, the reconciler still finds the job
    clients.stubs["sfn"].assert_no_pending_responses()

    # Lambda's retry: the Stubber has no second SendTask* answer, so settling twice would fail the test.
    if event == "status-failed":
        clients.expect_no_logs()
    clients.expect_publish()
    again = handle(event, ledger, clients)

    assert (again.alert, again.token, again.closed) == ("published", "already-settled", True)
    assert len(clients.published) == (2 if fault is sns_down else 1) and len(ledger.sent) == 1
    assert [name for name, _ in ledger.calls].count("mark_token_settled") == 1


def test_a_transition_that_is_not_an_end_state_settles_nothing_when_alerting_fails(clients: Clients) -> None:
    ledger = FakeLedger()
    submitted(ledger)
    sns_down(clients)

    with pytest.raises(clients.sns.exceptions.ClientError):
        handle("status-training", ledger, clients)

    assert ledger.entries[JOB].token_state != SETTLED and "mark_token_settled" not in dict(ledger.calls)


def test_sns_refusing_the_failed_alert_as_invalid_sends_the_minimal_one_and_fails_the_execution(
    clients: Clients,
) -> None:
    ledger = FakeLedger()
    submitted(ledger)
    stream = f"{JOB}/algo-1-1735725700"
    clients.stubs["logs"].add_response("describe_log_streams", {"logStreams": [{"logStreamName": stream}]})
    clients.stubs["logs"].add_response("get_log_events", {"events": [{"timestamp": 1, "message": "ValueError: NaN"}]})
    clients.stubs["sns"].add_client_error("publish", "InvalidParameter", "Invalid parameter: Message too long")
    clients.expect_publish()
    failed = state("status-failed")
    clients.stubs["sfn"].add_response(
        "send_task_failure", {}, {"taskToken": TOKEN, "error": TRAINING_FAILED, "cause": failed.failure_reason}
    )

    outcome = handle(failed, ledger, clients)

    assert (outcome.alert, outcome.token, outcome.closed) == ("published", "failed", True)
    full, minimal = (json.loads(json.loads(p["Message"])["sqs"]) for p in clients.published)
    assert full["log_tail"] == ["ValueError: NaN"] and minimal["log_tail"] == []
    assert (minimal["job_name"], minimal["status"], minimal["project"]) == (JOB, "Failed", "iris")
    assert ledger.sent == [(JOB, "Failed")]
