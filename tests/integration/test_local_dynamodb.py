"""The local stack's DynamoDB runs the requests on one item one at a time, as DynamoDB does (local/dynamodb.py)."""

from __future__ import annotations

import collections
import contextlib
import json
import threading
import time
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from sagepush.alerts import iso_time
from sagepush.events import training_state_change
from sagepush_cli.local.dynamodb import LOCKS
from tests.integration.conftest import load_event
from tests.integration.test_status import Alerts, put_states

if TYPE_CHECKING:
    from collections.abc import Callable

    from sagepush_cli.local.stack import LocalStack

THREADS = 12
ROUNDS = 3
SLOW_READ_SECONDS = 0.05
MEETING_TIMEOUT = 30.0
DELIVERIES = 3
JOBS = 31


@pytest.fixture
def clients(stack: LocalStack) -> list[Any]:
    """One DynamoDB client per racing thread."""
    return [boto3.client("dynamodb") for _ in range(THREADS)]


def race_for_a_claim(stack: LocalStack, clients: list[Any], item: str) -> list[str]:
    """Each client sends the same conditional UpdateItem (claim the item if unclaimed) at once, from its own thread;
    return the claimants whose write succeeded."""
    table = stack.resources["LedgerTable"]
    start = threading.Barrier(len(clients))
    winners: list[str] = []

    def claim(index: int) -> None:
        client = clients[index]
        start.wait()
        try:
            client.update_item(
                TableName=table,
                Key={"job_name": {"S": item}},
                UpdateExpression="SET claimed_by = :me",
                ConditionExpression="attribute_not_exists(claimed_by)",
                ExpressionAttributeValues={":me": {"S": f"claimant-{index}"}},
            )
        except client.exceptions.ConditionalCheckFailedException:
            return
        winners.append(f"claimant-{index}")

    workers = [threading.Thread(target=claim, args=(index,)) for index in range(len(clients))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    return winners


class Meeting:
    """A place where `size` requests wait for each other inside moto's item reads, between reading an item and writing
    it: the k-th read of each waits for the k-th read of all the others, so once they have met they were all in
    flight at once. A read that waits `MEETING_TIMEOUT` without the rest arriving breaks the meeting (every waiting
    read goes on), so requests that run one at a time fail the test instead of hanging it."""

    def __init__(self, size: int) -> None:
        self._barrier = threading.Barrier(size, timeout=MEETING_TIMEOUT)

    def arrive(self) -> None:
        with contextlib.suppress(threading.BrokenBarrierError):
            self._barrier.wait()

    @property
    def met(self) -> bool:
        return not self._barrier.broken


@pytest.fixture
def on_read(monkeypatch: pytest.MonkeyPatch) -> dict[str, Callable[[], None]]:
    """Hooks run inside moto's item read, between an UpdateItem (or a transaction's step) reading its item and writing
    it, by the item's key: `on_read[key] = hook`."""
    from moto.dynamodb.models.table import Table

    read = Table.get_item
    hooks: dict[str, Callable[[], None]] = {}

    def get_item(table: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        found = read(table, hash_key, *args, **kwargs)
        hook = hooks.get(str(hash_key.value))
        if hook is not None:
            hook()
        return found

    monkeypatch.setattr(Table, "get_item", get_item)
    return hooks


@pytest.fixture
def slow_reads(on_read: dict[str, Callable[[], None]]) -> Callable[[str], None]:
    """Widen the window between an UpdateItem reading an item and writing it, so racing requests on it overlap."""
    return lambda key: on_read.__setitem__(key, lambda: time.sleep(SLOW_READ_SECONDS))


@pytest.fixture
def moto_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's own DynamoDB request handlers, without the local stack's item locks."""
    from moto.dynamodb.responses import DynamoHandler

    for name in ("update_item", "put_item", "delete_item", "get_item"):
        monkeypatch.setattr(DynamoHandler, name, getattr(DynamoHandler, name).moto_original)


def test_racing_conditional_updates_on_one_item_let_exactly_one_win(
    stack: LocalStack, clients: list[Any], slow_reads: Callable[[str], None], ledger: Any
) -> None:
    for round_ in range(ROUNDS):
        slow_reads(f"slow-race-{round_}")
        winners = race_for_a_claim(stack, clients, f"slow-race-{round_}")

        assert len(winners) == 1
        assert ledger(f"slow-race-{round_}")["claimed_by"] == winners[0]


def test_moto_alone_lets_racing_conditional_updates_all_win(
    stack: LocalStack, clients: list[Any], on_read: dict[str, Callable[[], None]], moto_alone: None
) -> None:
    """What the item locks are for: without them, requests that overlap all pass the condition and all write."""
    meeting = Meeting(THREADS)
    on_read["unguarded-race"] = meeting.arrive

    winners = race_for_a_claim(stack, clients, "unguarded-race")

    assert meeting.met
    assert len(winners) == THREADS


def test_requests_on_different_items_still_run_side_by_side(
    stack: LocalStack, clients: list[Any], on_read: dict[str, Callable[[], None]], ledger: Any
) -> None:
    # Given: every write waits inside its item's read until all the writes are there at once.
    table = stack.resources["LedgerTable"]
    meeting = Meeting(THREADS)
    for index in range(THREADS):
        on_read[f"item-{index}"] = meeting.arrive

    # When: each thread writes its own item.
    def write(index: int) -> None:
        clients[index].update_item(
            TableName=table,
            Key={"job_name": {"S": f"item-{index}"}},
            UpdateExpression="SET claimed_by = :me",
            ExpressionAttributeValues={":me": {"S": "me"}},
        )

    workers = [threading.Thread(target=write, args=(index,)) for index in range(THREADS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=4 * MEETING_TIMEOUT)

    # Then: all of them held their item at the same time (one item at a time, the first would have waited alone).
    assert meeting.met
    on_read.clear()
    assert all(ledger(f"item-{index}")["claimed_by"] == "me" for index in range(THREADS))


def state_event(name: str, job_name: str) -> dict[str, Any]:
    event = load_event(name)
    detail = event["detail"]
    arn = detail["TrainingJobArn"].rsplit("/", 1)[0] + f"/{job_name}"
    detail.update(TrainingJobName=job_name, TrainingJobArn=arn)
    event["resources"] = [arn]
    return event


def test_concurrent_duplicate_deliveries_of_state_events_alert_once_per_transition(stack: LocalStack) -> None:
    # Given: an SQS subscriber to the alerts, and jobs going through three transitions that each alert.
    alerts = Alerts(stack)
    jobs = [f"dup-{index:02d}-3f5c0f2a-6b1e9d" for index in range(JOBS)]
    alert_on = set(stack.function("StatusFunction").environment["ALERT_ON"].split(","))
    transitions = ["status-starting", "status-training", "status-completed"]

    # When: each state-change event is delivered three times at once, as EventBridge may, one transition at a time.
    expected: collections.Counter[tuple[str, str, str]] = collections.Counter()
    for name in transitions:
        events = [state_event(name, job) for job in jobs for _ in range(DELIVERIES)]
        put_states(stack, *events)
        for job in jobs:
            state = training_state_change(state_event(name, job))
            if state.secondary_status in alert_on:
                expected[(job, state.secondary_status, iso_time(state.last_modified_ms))] += 1

    # Then: every transition was alerted exactly once.
    received = collections.Counter((a["job_name"], a["status"], a["time"]) for a in alerts.received())
    assert len(expected) == JOBS * len(transitions)
    assert received == expected, json.dumps(
        {f"{k[0]} {k[1]}": n for k, n in received.items() if n != 1}, indent=1, sort_keys=True
    )


def test_a_cancelled_transaction_does_not_undo_a_write_to_another_item_of_its_table(
    stack: LocalStack,
    clients: list[Any],
    on_read: dict[str, Callable[[], None]],
    ledger: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """moto cancels a transaction by restoring its tables as they were when it began: it must run alone on them."""
    from moto.dynamodb.responses import DynamoHandler

    # Given: a transaction that, once it has written txn-a and is reading txn-b, waits until a PutItem of another item
    # of its table has been sent and is waiting for the table.
    table = stack.resources["LedgerTable"]
    reading, put_sent = threading.Event(), threading.Event()
    put_item = DynamoHandler.put_item

    def sent(handler: Any) -> Any:
        put_sent.set()
        return put_item(handler)

    def hold_the_transaction() -> None:
        reading.set()
        assert put_sent.wait(MEETING_TIMEOUT)
        LOCKS.until_waiting(1, MEETING_TIMEOUT)

    monkeypatch.setattr(DynamoHandler, "put_item", sent)
    on_read["txn-b"] = hold_the_transaction
    cancelled: list[bool] = []

    def transact() -> None:
        try:
            clients[0].transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": table, "Item": {"job_name": {"S": "txn-a"}}}},
                    {
                        "ConditionCheck": {
                            "TableName": table,
                            "Key": {"job_name": {"S": "txn-b"}},
                            "ConditionExpression": "attribute_exists(job_name)",
                        }
                    },
                ]
            )
        except clients[0].exceptions.TransactionCanceledException:
            cancelled.append(True)

    # When: the transaction is cancelled (txn-b does not exist) while the PutItem waits.
    transacting = threading.Thread(target=transact)
    transacting.start()
    assert reading.wait(MEETING_TIMEOUT)
    clients[1].put_item(TableName=table, Item={"job_name": {"S": "other"}, "claimed_by": {"S": "me"}})
    transacting.join(timeout=4 * MEETING_TIMEOUT)

    # Then: the cancellation undid the transaction's own write and nothing else.
    assert cancelled == [True] and ledger("txn-a") == {}
    assert ledger("other") == {"job_name": "other", "claimed_by": "me"}
