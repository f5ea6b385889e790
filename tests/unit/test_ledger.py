from __future__ import annotations

import dataclasses
import json
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from sagepush.events import training_state_change
from sagepush.ledger import UNSETTLED_INDEX, DynamoDBLedger, Submission, state_seq, transition_key

if TYPE_CHECKING:
    from collections.abc import Iterator

EVENTS = Path(__file__).resolve().parents[2] / "events"
NOW = 1735727600000
JOB = "iris-3f5c0f2a-6b1e9d"
KEY = {"job_name": {"S": JOB}}


def state(name: str) -> Any:
    return training_state_change(json.loads((EVENTS / f"{name}.json").read_text()))


@pytest.fixture
def dynamodb() -> Iterator[tuple[DynamoDBLedger, Stubber]]:
    client = boto3.client(
        "dynamodb",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    with Stubber(client) as stub:
        yield DynamoDBLedger("ledger", dynamodb=client), stub
        stub.assert_no_pending_responses()


def item(**values: Any) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeSerializer

    serializer = TypeSerializer()
    return {k: serializer.serialize(v) for k, v in {"job_name": JOB, **values}.items()}


def test_submission_is_put_only_if_the_job_is_new_with_its_token(dynamodb: tuple[DynamoDBLedger, Stubber]) -> None:
    ledger, stub = dynamodb
    stub.add_response(
        "put_item",
        {},
        {
            "TableName": "ledger",
            "Item": ANY,
            "ConditionExpression": "attribute_not_exists(#job_name)",
            "ExpressionAttributeNames": {"#job_name": "job_name"},
        },
    )
    submission = Submission(JOB, "iris", "s3://a/code/sourcedir.tar.gz", "3f5c", {"commit": "9fce"}, "token-1")
    assert ledger.record_submission(submission, now_ms=NOW) is True


def test_a_repeated_submission_stores_its_new_token_and_reopens_the_job(
    dynamodb: tuple[DynamoDBLedger, Stubber],
) -> None:
    ledger, stub = dynamodb
    stub.add_client_error("put_item", "ConditionalCheckFailedException")
    stub.add_response(
        "update_item",
        {},
        {
            "TableName": "ledger",
            "Key": KEY,
            "UpdateExpression": ANY,
            "ConditionExpression": ANY,
            "ExpressionAttributeNames": ANY,
            "ExpressionAttributeValues": {
                ":token": {"S": "token-2"},
                ":waiting": {"S": "waiting"},
                ":attempt": {"N": "0"},
                ":unsettled": {"S": "1"},
                ":now": {"N": str(NOW)},
            },
            "ReturnValues": "NONE",
        },
    )
    submission = Submission(JOB, "iris", "s3://a/code/sourcedir.tar.gz", "3f5c", {}, "token-2")
    assert ledger.record_submission(submission, now_ms=NOW) is False


def test_a_newer_state_is_written_under_the_ordering_condition(dynamodb: tuple[DynamoDBLedger, Stubber]) -> None:
    ledger, stub = dynamodb
    training = state("status-training")
    seq = state_seq("InProgress", "Training", training.last_modified_ms)
    stub.add_response(
        "update_item",
        {"Attributes": item(project="iris", status="InProgress", secondary_status="Training", seq=seq)},
        {
            "TableName": "ledger",
            "Key": KEY,
            "UpdateExpression": ANY,
            "ConditionExpression": "attribute_not_exists(#seq) OR #seq < :seq",
            "ExpressionAttributeNames": ANY,
            "ExpressionAttributeValues": ANY,
            "ReturnValues": "ALL_NEW",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        },
    )
    recorded = ledger.record_state(training, project="iris", now_ms=NOW)
    assert recorded.applied and recorded.entry.secondary_status == "Training" and recorded.entry.seq == seq
    assert recorded.claim is None


def test_a_stale_or_duplicate_state_returns_the_entry_from_the_failed_write(
    dynamodb: tuple[DynamoDBLedger, Stubber],
) -> None:
    ledger, stub = dynamodb
    stub.add_client_error(
        "update_item",
        "ConditionalCheckFailedException",
        modeled_fields={
            "Item": item(project="iris", status="Completed", secondary_status="Completed", seq=3, task_token="t")
        },
    )
    recorded = ledger.record_state(state("status-training"), project="iris", now_ms=NOW)
    assert not recorded.applied and recorded.entry.status == "Completed" and recorded.entry.waiting_token == "t"


def test_an_alert_claimed_or_sent_elsewhere_is_not_claimed_again(dynamodb: tuple[DynamoDBLedger, Stubber]) -> None:
    ledger, stub = dynamodb
    stub.add_client_error("update_item", "ConditionalCheckFailedException")
    assert ledger.claim_alert(JOB, "Completed", now_ms=NOW, lease_until_ms=NOW + 60_000) is None


def test_a_claim_names_the_transition_explicitly(dynamodb: tuple[DynamoDBLedger, Stubber]) -> None:
    ledger, stub = dynamodb
    stub.add_response(
        "update_item",
        {},
        {
            "TableName": "ledger",
            "Key": KEY,
            "UpdateExpression": "SET #alerts.#key = :claim",
            "ConditionExpression": ANY,
            "ExpressionAttributeNames": {
                "#alerts": "alerts",
                "#key": "Interrupted@1735726500000",
                "#state": "state",
                "#lease": "lease",
                "#job_name": "job_name",
            },
            "ExpressionAttributeValues": ANY,
            "ReturnValues": "NONE",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        },
    )
    key = transition_key(state("status-interrupted"))
    claim = ledger.claim_alert(JOB, key, now_ms=NOW, lease_until_ms=NOW + 60_000)
    assert claim is not None and claim.key == "Interrupted@1735726500000"


def test_other_dynamodb_errors_propagate(dynamodb: tuple[DynamoDBLedger, Stubber]) -> None:
    ledger, stub = dynamodb
    stub.add_client_error("update_item", "ProvisionedThroughputExceededException", http_status_code=400)
    with pytest.raises(ledger._dynamodb.exceptions.ProvisionedThroughputExceededException):
        ledger.close(JOB, now_ms=NOW)


def test_unsettled_jobs_query_the_sparse_index_oldest_first_with_a_limit(
    dynamodb: tuple[DynamoDBLedger, Stubber],
) -> None:
    ledger, stub = dynamodb
    stub.add_response(
        "query",
        {"Items": [item(project="iris", status="InProgress", unsettled="1", touched_at=1)]},
        {
            "TableName": "ledger",
            "IndexName": UNSETTLED_INDEX,
            "KeyConditionExpression": "#unsettled = :unsettled AND #touched_at < :since",
            "ExpressionAttributeNames": {"#unsettled": "unsettled", "#touched_at": "touched_at"},
            "ExpressionAttributeValues": {":unsettled": {"S": "1"}, ":since": {"N": str(NOW)}},
            "ScanIndexForward": True,
            "Limit": 25,
        },
    )
    [entry] = ledger.unsettled_jobs(silent_since_ms=NOW, limit=25)
    assert entry.unsettled and entry.status == "InProgress"


@pytest.mark.parametrize(
    ("earlier", "later"),
    [
        (("InProgress", "Training", 2_000), ("InProgress", "Uploading", 3_000)),
        (("InProgress", "Uploading", 9_000), ("Completed", "Completed", 1_000)),
        (("InProgress", "Downloading", 5_000), ("InProgress", "Training", 5_000)),
        (("InProgress", "Training", 5_000), ("Stopping", "Stopping", 4_000)),
        (("Submitting", "Submitting", 0), ("InProgress", "Starting", 1)),
    ],
    ids=["later-time", "terminal-beats-clock", "same-ms-secondary-order", "stopping-beats-running", "submit-first"],
)
def test_states_are_ordered_by_status_then_time_then_secondary_status(
    earlier: tuple[str, str, int], later: tuple[str, str, int]
) -> None:
    assert state_seq(*earlier) < state_seq(*later)


def test_interruptions_are_separate_transitions_and_other_states_are_one() -> None:
    assert transition_key(state("status-interrupted")) == "Interrupted@1735726500000"
    assert transition_key(state("status-training")) == transition_key(state("status-training-duplicate")) == "Training"


# ---------------------------------------------------------------- record and claim, against moto's DynamoDB

LEASE = NOW + 60_000


class Table:
    """A ledger on moto's in-process DynamoDB, with every request the ledger's client makes listed in order."""

    def __init__(self) -> None:
        self.client = boto3.client(
            "dynamodb", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        self.client.create_table(
            TableName="ledger",
            AttributeDefinitions=[{"AttributeName": "job_name", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "job_name", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        self.ledger = DynamoDBLedger("ledger", dynamodb=self.client)
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.client.meta.events.register("provide-client-params.dynamodb.*", self._note)

    def _note(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.requests.append((model.name, dict(params)))

    def operations(self) -> list[str]:
        """The operations since the last call, and forget them."""
        names = [name for name, _ in self.requests]
        self.requests.clear()
        return names

    def submit(self, job_name: str = JOB) -> None:
        self.ledger.record_submission(
            Submission(job_name, "iris", "s3://a/code/sourcedir.tar.gz", "3f5c", {"commit": "9fce"}, "token-1"),
            now_ms=NOW - 3_600_000,
        )
        self.requests.clear()

    def item(self, job_name: str = JOB) -> dict[str, Any]:
        from boto3.dynamodb.types import TypeDeserializer

        found = self.client.get_item(TableName="ledger", Key={"job_name": {"S": job_name}}, ConsistentRead=True)
        self.requests.clear()
        deserializer = TypeDeserializer()
        return {k: deserializer.deserialize(v) for k, v in found.get("Item", {}).items()}


@pytest.fixture
def table() -> Iterator[Table]:
    from moto import mock_aws

    with mock_aws():
        yield Table()


def test_a_newer_state_of_a_submitted_job_is_recorded_and_claimed_in_one_write(table: Table) -> None:
    table.submit()
    training = state("status-training")

    recorded = table.ledger.record_state(
        training, project="iris", now_ms=NOW, alert_key="Training", lease_until_ms=LEASE
    )

    assert table.operations() == ["UpdateItem"]
    assert recorded.applied and recorded.claim is not None and recorded.claim.lease_until_ms == LEASE
    stored = table.item()
    assert (stored["status"], stored["secondary_status"], stored["event_time"]) == (
        "InProgress",
        "Training",
        training.last_modified_ms,
    )
    assert stored["alerts"] == {"Training": {"state": "claimed", "lease": LEASE, "claim": recorded.claim.claim_id}}
    assert recorded.entry.source == {"commit": "9fce"} and recorded.entry.waiting_token == "token-1"
    assert table.ledger.claim_alert(JOB, "Training", now_ms=NOW + 1, lease_until_ms=LEASE) is None


def test_recording_with_a_claim_stores_what_recording_then_claiming_stores(table: Table) -> None:
    twin = "iris-twin"
    table.submit()
    table.submit(twin)
    training = state("status-training")
    twin_training = dataclasses.replace(training, job_name=twin)

    together = table.ledger.record_state(
        training, project="iris", now_ms=NOW, alert_key="Training", lease_until_ms=LEASE
    )
    table.ledger.record_state(twin_training, project="iris", now_ms=NOW)
    apart = table.ledger.claim_alert(twin, "Training", now_ms=NOW, lease_until_ms=LEASE)

    assert together.claim is not None and apart is not None
    one, other = table.item(), table.item(twin)
    assert one.pop("alerts")["Training"]["claim"] == together.claim.claim_id
    assert other.pop("alerts")["Training"]["claim"] == apart.claim_id
    assert one == {**other, "job_name": JOB}


def test_a_duplicate_is_neither_recorded_nor_claimed_and_costs_one_failed_write(table: Table) -> None:
    table.submit()
    training = state("status-training")
    first = table.ledger.record_state(training, project="iris", now_ms=NOW, alert_key="Training", lease_until_ms=LEASE)
    assert first.claim is not None
    table.ledger.mark_alert_sent(first.claim, message_id="m-1", now_ms=NOW)
    before = table.item()

    again = table.ledger.record_state(
        state("status-training-duplicate"), project="iris", now_ms=NOW + 5, alert_key="Training", lease_until_ms=LEASE
    )

    assert table.operations() == ["UpdateItem"]
    assert not again.applied and again.claim is None
    assert again.entry.alerts["Training"]["state"] == "sent"
    assert table.item() == before


def test_a_duplicate_whose_holder_died_is_claimed_again_once_the_lease_ran_out(table: Table) -> None:
    table.submit()
    training = state("status-training")
    first = table.ledger.record_state(training, project="iris", now_ms=NOW, alert_key="Training", lease_until_ms=LEASE)
    assert first.claim is not None
    table.operations()

    retry = table.ledger.record_state(
        training, project="iris", now_ms=LEASE + 1, alert_key="Training", lease_until_ms=LEASE + 60_000
    )

    assert table.operations() == ["UpdateItem", "UpdateItem"]
    assert not retry.applied and retry.claim is not None and retry.claim.claim_id != first.claim.claim_id
    assert table.item()["alerts"]["Training"]["claim"] == retry.claim.claim_id


def test_a_stale_state_is_claimed_but_not_recorded(table: Table) -> None:
    table.submit()
    table.ledger.record_state(state("status-out-of-order-1-uploading"), project="iris", now_ms=NOW)
    table.operations()

    late = table.ledger.record_state(
        state("status-out-of-order-2-training"), project="iris", now_ms=NOW, alert_key="Training", lease_until_ms=LEASE
    )

    assert table.operations() == ["UpdateItem", "UpdateItem"]
    assert not late.applied and late.claim is not None
    assert late.entry.secondary_status == "Uploading"
    stored = table.item()
    assert stored["secondary_status"] == "Uploading"
    assert stored["alerts"]["Training"]["claim"] == late.claim.claim_id


def test_a_newer_state_of_a_transition_already_alerted_is_recorded_without_a_claim(table: Table) -> None:
    table.submit()
    training = state("status-training")
    first = table.ledger.record_state(training, project="iris", now_ms=NOW, alert_key="Training", lease_until_ms=LEASE)
    assert first.claim is not None
    table.ledger.mark_alert_sent(first.claim, message_id="m-1", now_ms=NOW)
    table.operations()
    later = dataclasses.replace(training, last_modified_ms=training.last_modified_ms + 60_000)

    recorded = table.ledger.record_state(later, project="iris", now_ms=NOW, alert_key="Training", lease_until_ms=LEASE)

    assert table.operations() == ["UpdateItem", "UpdateItem"]
    assert recorded.applied and recorded.claim is None
    stored = table.item()
    assert stored["event_time"] == later.last_modified_ms
    assert stored["alerts"] == {"Training": {"state": "sent", "at": NOW, "message_id": "m-1"}}


def test_a_job_the_ledger_does_not_hold_is_created_then_claimed(table: Table) -> None:
    foreign = state("status-foreign-job")

    recorded = table.ledger.record_state(
        foreign, project="vision", now_ms=NOW, alert_key=transition_key(foreign), lease_until_ms=LEASE
    )

    assert table.operations() == ["UpdateItem", "UpdateItem", "UpdateItem"]
    assert recorded.applied and recorded.claim is not None
    stored = table.item(foreign.job_name)
    assert stored["project"] == "vision" and stored["created_at"] and stored["unsettled"] == "1"
    assert stored["alerts"] == {
        transition_key(foreign): {"state": "claimed", "lease": LEASE, "claim": recorded.claim.claim_id}
    }


def resent(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the ledger's next request carry the same claim id as the one before: botocore sending it again."""
    fixed = uuid.uuid4()
    monkeypatch.setattr(uuid, "uuid4", lambda: fixed)


def test_a_recording_write_sent_again_after_its_answer_was_lost_keeps_its_claim(
    table: Table, monkeypatch: pytest.MonkeyPatch
) -> None:
    table.submit()
    training = state("status-training")
    resent(monkeypatch)
    first = table.ledger.record_state(training, project="iris", now_ms=NOW, alert_key="Training", lease_until_ms=LEASE)
    table.operations()

    again = table.ledger.record_state(training, project="iris", now_ms=NOW, alert_key="Training", lease_until_ms=LEASE)

    assert table.operations() == ["UpdateItem"]
    assert again.applied and again.claim == first.claim


def test_a_claim_sent_again_after_its_answer_was_lost_is_kept(table: Table, monkeypatch: pytest.MonkeyPatch) -> None:
    table.submit()
    resent(monkeypatch)
    first = table.ledger.claim_alert(JOB, "Training", now_ms=NOW, lease_until_ms=LEASE)

    again = table.ledger.claim_alert(JOB, "Training", now_ms=NOW, lease_until_ms=LEASE)

    assert first is not None and again == first
    monkeypatch.undo()
    assert table.ledger.claim_alert(JOB, "Training", now_ms=NOW, lease_until_ms=LEASE) is None


def test_a_claim_needs_a_lease(table: Table) -> None:
    with pytest.raises(ValueError, match="lease_until_ms"):
        table.ledger.record_state(state("status-training"), project="iris", now_ms=NOW, alert_key="Training")
