from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from sagepush.config import ReconcileSettings
from sagepush.events import SECONDARY_STATUSES, training_state_change
from sagepush.ledger import NOT_CREATED, SETTLED, Submission
from sagepush.status import TRAINING_FAILED, TRAINING_STOPPED, failure_of, handle_state_change, reconcile
from tests.unit.ledger_fake import FakeLedger

if TYPE_CHECKING:
    from collections.abc import Iterator

EVENTS = Path(__file__).resolve().parents[2] / "events"
NOW = 1735727600000
DEADLINE = NOW + 50_000
TOPIC = "arn:aws:sns:us-east-1:123456789012:alerts"
SETTINGS = ReconcileSettings(
    aws_region="us-east-1",
    ledger_table="ledger",
    alerts_topic_arn=TOPIC,
    alert_on=frozenset({"Starting", "Training", "Interrupted", "Completed", "Failed", "Stopped", "MaxRuntimeExceeded"}),
    reconcile_grace_seconds=900,
    reconcile_max_jobs=5,
)
TOKEN = "AQCEAAAAKgAAAAMAAAAAAAAAAexampletasktoken"


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return document


def state(name: str) -> Any:
    return training_state_change(load(name))


class Clients:
    """Real clients under Stubber, with every Publish's parameters captured."""

    def __init__(self) -> None:
        kwargs: dict[str, Any] = {
            "region_name": "us-east-1",
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
        }
        self.sns = boto3.client("sns", **kwargs)
        self.sfn = boto3.client("stepfunctions", **kwargs)
        self.logs = boto3.client("logs", **kwargs)
        self.sagemaker = boto3.client("sagemaker", **kwargs)
        self.stubs = {name: Stubber(getattr(self, name)) for name in ("sns", "sfn", "logs", "sagemaker")}
        self.published: list[dict[str, Any]] = []
        self.sns.meta.events.register("provide-client-params.sns.Publish", self._capture)

    def _capture(self, params: dict[str, Any], **_: Any) -> None:
        self.published.append(params)

    def expect_publish(self) -> None:
        self.stubs["sns"].add_response("publish", {"MessageId": f"m-{len(self.published)}"}, {
            "TopicArn": TOPIC, "Subject": ANY, "Message": ANY, "MessageStructure": "json", "MessageAttributes": ANY
        })  # fmt: skip

    def expect_no_logs(self) -> None:
        self.stubs["logs"].add_client_error("describe_log_streams", "ResourceNotFoundException")


@pytest.fixture
def clients() -> Iterator[Clients]:
    made = Clients()
    for stub in made.stubs.values():
        stub.activate()
    yield made
    for stub in made.stubs.values():
        stub.assert_no_pending_responses()
        stub.deactivate()


def handle(name_or_state: Any, ledger: FakeLedger, clients: Clients, **kwargs: Any) -> Any:
    observed = state(name_or_state) if isinstance(name_or_state, str) else name_or_state
    return handle_state_change(
        observed,
        settings=SETTINGS,
        ledger=ledger,
        sns=clients.sns,
        sfn=clients.sfn,
        logs=clients.logs,
        deadline_ms=DEADLINE,
        clock=lambda: NOW,
        **kwargs,
    )


def run_reconcile(ledger: FakeLedger, clients: Clients, *, deadline_ms: int = DEADLINE) -> Any:
    return reconcile(
        settings=SETTINGS,
        ledger=ledger,
        sagemaker=clients.sagemaker,
        sns=clients.sns,
        sfn=clients.sfn,
        logs=clients.logs,
        deadline_ms=deadline_ms,
        clock=lambda: NOW,
    )


def submitted(ledger: FakeLedger, token: str | None = TOKEN) -> None:
    submission = Submission(
        job_name="iris-3f5c0f2a-6b1e9d",
        project="iris",
        code_uri="s3://artifacts/code/iris/3f5c/sourcedir.tar.gz",
        code_digest="3f5c",
        source={"commit": "9fceb02d0ae598e95dc970b74767f19372d61af8"},
        task_token=token,
    )
    ledger.record_submission(submission, now_ms=NOW - 3_600_000)


def test_completed_alerts_once_settles_the_token_with_the_summary_and_closes_the_job(clients: Clients) -> None:
    ledger = FakeLedger()
    submitted(ledger)
    clients.expect_publish()
    summary = {
        "job_name": "iris-3f5c0f2a-6b1e9d",
        "job_arn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/iris-3f5c0f2a-6b1e9d",
        "status": "Completed",
        "secondary_status": "Completed",
        "model_artifacts": "s3://sagepush-artifacts-example/output/iris-3f5c0f2a-6b1e9d/output/model.tar.gz",
        "billable_seconds": 1560,
        "final_metrics": {"val:loss": 0.0412, "val:accuracy": 0.973},
    }
    clients.stubs["sfn"].add_response("send_task_success", {}, {"taskToken": TOKEN, "output": json.dumps(summary)})

    outcome = handle("status-completed", ledger, clients)

    assert (outcome.alert, outcome.token, outcome.closed) == ("published", "succeeded", True)
    entry = ledger.entries["iris-3f5c0f2a-6b1e9d"]
    assert entry.token_state == SETTLED and not entry.unsettled
    message = json.loads(clients.published[0]["Message"])
    assert json.loads(message["sqs"])["source"]["commit"] == "9fceb02d0ae598e95dc970b74767f19372d61af8"


def test_a_selected_transition_is_recorded_and_claimed_by_one_ledger_call_then_published_then_marked_sent(
    clients: Clients,
) -> None:
    ledger = FakeLedger()
    submitted(ledger)
    ledger.calls.clear()
    clients.sns.meta.events.register(
        "provide-client-params.sns.Publish", lambda **_: ledger.calls.append(("publish", "iris-3f5c0f2a-6b1e9d"))
    )
    clients.expect_publish()

    outcome = handle("status-interrupted", ledger, clients)

    assert (outcome.alert, outcome.latest) == ("published", True)
    assert [name for name, _ in ledger.calls] == ["record_state", "publish", "mark_alert_sent"]
    assert ledger.sent == [("iris-3f5c0f2a-6b1e9d", "Interrupted@1735726500000")]


def test_duplicate_terminal_event_neither_alerts_nor_settles_again(clients: Clients) -> None:
    ledger = FakeLedger()
    submitted(ledger)
    clients.expect_publish()
    clients.stubs["sfn"].add_response("send_task_success", {}, {"taskToken": TOKEN, "output": ANY})
    handle("status-completed", ledger, clients)

    again = handle("status-completed", ledger, clients)

    assert (again.alert, again.token, again.latest) == ("duplicate", "already-settled", False)
    assert ledger.sent == [("iris-3f5c0f2a-6b1e9d", "Completed")]


def test_failed_job_fails_the_execution_with_its_reason_and_alerts_with_the_log_tail(clients: Clients) -> None:
    ledger = FakeLedger()
    submitted(ledger)
    stream = "iris-3f5c0f2a-6b1e9d/algo-1-1735725700"
    clients.stubs["logs"].add_response("describe_log_streams", {"logStreams": [{"logStreamName": stream}]})
    clients.stubs["logs"].add_response(
        "get_log_events", {"events": [{"timestamp": 1, "message": "ValueError: Input contains NaN\n"}]}
    )
    clients.expect_publish()
    failed = state("status-failed")
    clients.stubs["sfn"].add_response(
        "send_task_failure", {}, {"taskToken": TOKEN, "error": TRAINING_FAILED, "cause": failed.failure_reason}
    )

    outcome = handle(failed, ledger, clients)

    assert outcome.token == "failed"
    document = json.loads(json.loads(clients.published[0]["Message"])["sqs"])
    assert document["log_tail"] == ["ValueError: Input contains NaN"]
    assert document["severity"] == "error"


@pytest.mark.parametrize(
    ("event", "error"),
    [
        ("status-failed", TRAINING_FAILED),
        ("status-max-runtime-exceeded", TRAINING_FAILED),
        ("status-stopped", TRAINING_STOPPED),
    ],
    ids=["failed", "max-runtime", "stopped-by-user"],
)
def test_end_states_map_to_the_state_machine_error_names(event: str, error: str) -> None:
    assert failure_of(state(event))[0] == error


def test_a_token_already_settled_or_expired_is_not_an_error(clients: Clients) -> None:
    ledger = FakeLedger()
    submitted(ledger)
    clients.expect_publish()
    clients.stubs["sfn"].add_client_error("send_task_success", "TaskTimedOut")

    outcome = handle("status-completed", ledger, clients)

    assert (outcome.token, outcome.closed) == ("expired", True)


def test_transitions_not_selected_by_alert_on_are_recorded_without_an_alert(clients: Clients) -> None:
    ledger = FakeLedger()
    submitted(ledger)

    outcome = handle("status-downloading", ledger, clients)

    assert (outcome.alert, outcome.latest) == ("not-selected", True)
    entry = ledger.entries["iris-3f5c0f2a-6b1e9d"]
    assert entry.secondary_status == "Downloading" and entry.alerts == {}


def test_a_late_event_keeps_the_latest_state_and_still_gets_its_one_alert(clients: Clients) -> None:
    ledger = FakeLedger()
    submitted(ledger)
    handle("status-out-of-order-1-uploading", ledger, clients)
    clients.expect_publish()

    outcome = handle("status-out-of-order-2-training", ledger, clients)

    assert (outcome.latest, outcome.alert) == (False, "published")
    assert ledger.entries["iris-3f5c0f2a-6b1e9d"].secondary_status == "Uploading"
    assert json.loads(json.loads(clients.published[0]["Message"])["sqs"])["latest"] is False


def test_publish_failure_releases_the_claim_so_the_retry_alerts(clients: Clients) -> None:
    ledger = FakeLedger()
    submitted(ledger)
    clients.stubs["sns"].add_client_error("publish", "InternalError", http_status_code=500)

    with pytest.raises(clients.sns.exceptions.ClientError):
        handle("status-training", ledger, clients)
    assert ledger.entries["iris-3f5c0f2a-6b1e9d"].alerts == {}

    clients.expect_publish()
    assert handle("status-training", ledger, clients).alert == "published"


def test_a_claim_held_by_a_live_invocation_is_not_taken() -> None:
    ledger = FakeLedger()
    submitted(ledger)
    ledger.record_state(state("status-training"), project="iris", now_ms=NOW)
    assert ledger.claim_alert("iris-3f5c0f2a-6b1e9d", "Training", now_ms=NOW, lease_until_ms=NOW + 60_000)
    assert ledger.claim_alert("iris-3f5c0f2a-6b1e9d", "Training", now_ms=NOW + 1, lease_until_ms=NOW + 60_000) is None
    assert ledger.claim_alert("iris-3f5c0f2a-6b1e9d", "Training", now_ms=NOW + 60_001, lease_until_ms=NOW + 120_000)


def test_a_tagged_job_unknown_to_the_ledger_still_alerts(clients: Clients) -> None:
    ledger = FakeLedger()
    clients.expect_publish()

    outcome = handle("status-foreign-job", ledger, clients)

    assert (outcome.project, outcome.alert, outcome.token, outcome.closed) == ("vision", "published", "none", True)
    assert clients.published[0]["MessageAttributes"]["project"]["StringValue"] == "vision"


def test_an_untagged_job_unknown_to_the_ledger_is_ignored(clients: Clients) -> None:
    ledger = FakeLedger()

    outcome = handle("status-untagged-job", ledger, clients)

    assert outcome.alert == "not-ours"
    assert ledger.entries == {}


def describe(event: str) -> dict[str, Any]:
    """Return the DescribeTrainingJob answer matching an event's detail: datetimes instead of epoch ms, no tags."""

    def convert(value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: convert(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [convert(v) for v in value]
        if key.endswith(("Time", "Timestamp")) and isinstance(value, int):
            return datetime.fromtimestamp(value / 1000, UTC)
        return value

    detail = convert(load(event)["detail"])
    del detail["Tags"]
    return dict(detail)


def test_reconcile_describes_silent_jobs_and_settles_them_through_the_same_logic(clients: Clients) -> None:
    ledger = FakeLedger()
    submitted(ledger)
    clients.stubs["sagemaker"].add_response(
        "describe_training_job", describe("status-completed"), {"TrainingJobName": "iris-3f5c0f2a-6b1e9d"}
    )
    clients.expect_publish()
    clients.stubs["sfn"].add_response("send_task_success", {}, {"taskToken": TOKEN, "output": ANY})

    report = run_reconcile(ledger, clients)

    assert report.checked == 1 and report.outcomes[0].token == "succeeded"
    assert not ledger.entries["iris-3f5c0f2a-6b1e9d"].unsettled


def test_reconcile_leaves_recent_jobs_alone_and_closes_jobs_never_created(clients: Clients) -> None:
    ledger = FakeLedger()
    submitted(ledger)
    ledger.record_submission(
        Submission(job_name="fresh-job", project="iris", code_uri="s3://a/b", code_digest="d"), now_ms=NOW - 1000
    )
    clients.stubs["sagemaker"].add_client_error("describe_training_job", "ResourceNotFound")

    report = run_reconcile(ledger, clients)

    assert (report.checked, report.not_created) == (1, ("iris-3f5c0f2a-6b1e9d",))
    assert ledger.entries["iris-3f5c0f2a-6b1e9d"].status == NOT_CREATED
    assert ledger.entries["fresh-job"].unsettled


def test_reconcile_stops_when_its_time_runs_short(clients: Clients) -> None:
    ledger = FakeLedger()
    submitted(ledger)

    report = run_reconcile(ledger, clients, deadline_ms=NOW + 5_000)

    assert (report.checked, report.stopped_early) == (0, True)


def test_every_secondary_status_has_an_ordering_rank() -> None:
    from sagepush.ledger import state_seq

    seqs = [state_seq("InProgress", name, 1000) for name in SECONDARY_STATUSES]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_reconcile_closes_a_job_sagemaker_answers_could_not_find_for(clients: Clients) -> None:
    # AWS and moto answer DescribeTrainingJob of a job that does not exist with ValidationException, not
    # ResourceNotFound: a submission SageMaker refused for good must be closed, not raise on every run.
    ledger = FakeLedger()
    submitted(ledger)
    clients.stubs["sagemaker"].add_client_error(
        "describe_training_job", "ValidationException", "Could not find training job iris-3f5c0f2a-6b1e9d"
    )

    report = run_reconcile(ledger, clients)

    assert report.not_created == ("iris-3f5c0f2a-6b1e9d",) and report.failed == ()
    assert ledger.entries["iris-3f5c0f2a-6b1e9d"].status == NOT_CREATED
    assert not ledger.entries["iris-3f5c0f2a-6b1e9d"].unsettled


def test_one_job_that_cannot_be_reconciled_does_not_stop_the_others(clients: Clients) -> None:
    # Given a silent job SageMaker cannot describe right now, and a silent job that completed
    ledger = FakeLedger()
    ledger.record_submission(
        Submission(job_name="iris-broken-000001", project="iris", code_uri="s3://a/b", code_digest="d"),
        now_ms=NOW - 7_200_000,
    )
    submitted(ledger)
    clients.stubs["sagemaker"].add_client_error("describe_training_job", "InternalFailure", http_status_code=500)
    clients.stubs["sagemaker"].add_response(
        "describe_training_job", describe("status-completed"), {"TrainingJobName": "iris-3f5c0f2a-6b1e9d"}
    )
    clients.expect_publish()
    clients.stubs["sfn"].add_response("send_task_success", {}, {"taskToken": TOKEN, "output": ANY})

    # When one reconcile run handles both
    report = run_reconcile(ledger, clients)

    # Then the run does not raise, the completed job is settled, and the other is reported failed and moved back
    assert report.failed == ("iris-broken-000001",)
    assert [outcome.token for outcome in report.outcomes] == ["succeeded"]
    assert not ledger.entries["iris-3f5c0f2a-6b1e9d"].unsettled
    assert ledger.entries["iris-broken-000001"].unsettled
    assert ("touch", "iris-broken-000001") in ledger.calls
