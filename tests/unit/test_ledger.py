from __future__ import annotations

import json
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
        },
    )
    recorded = ledger.record_state(training, project="iris", now_ms=NOW)
    assert recorded.applied and recorded.entry.secondary_status == "Training" and recorded.entry.seq == seq


def test_a_stale_or_duplicate_state_reads_the_entry_back_unchanged(dynamodb: tuple[DynamoDBLedger, Stubber]) -> None:
    ledger, stub = dynamodb
    stub.add_client_error("update_item", "ConditionalCheckFailedException")
    stub.add_response(
        "get_item",
        {"Item": item(project="iris", status="Completed", secondary_status="Completed", seq=3, task_token="t")},
        {"TableName": "ledger", "Key": KEY, "ConsistentRead": True},
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
