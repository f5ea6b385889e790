"""A burst through the local stack: many uploads at once, then ten state events per job, duplicated and shuffled.

The scale is `SAGEPUSH_BURST_UPLOADS` uploads and ten times as many state events, a fifth of them duplicates. `make
test` runs the default, 100 uploads and 1 000 events (about 50 s on the 2-core development machine); the hardening
issue's full burst, 500 uploads and 5 000 events, is `make burst` (about 7.5 min there: the local stack's cost grows
faster than linearly with the number of executions waiting at once). Jobs are moto's instant ones (no local
training): every state a job goes through is an event the test sends, as SageMaker would, through EventBridge.
"""

from __future__ import annotations

import collections
import json
import os
import random
import threading
import time
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from boto3.dynamodb.types import TypeDeserializer

from sagepush import aws
from sagepush.alerts import iso_time
from sagepush.events import training_state_change
from sagepush.ledger import transition_key
from tests.integration.conftest import load_event
from tests.integration.test_stage_submit import MANIFEST, tar_gz
from tests.integration.test_status import Alerts, put_states

if TYPE_CHECKING:
    from collections.abc import Callable

    from sagepush_cli.local.stack import LocalStack

UPLOADS = int(os.environ.get("SAGEPUSH_BURST_UPLOADS", "100"))
EVENTS_PER_JOB = 10
DUPLICATE_SHARE = 0.2  # of the whole stream: 8 distinct events per job, 2 duplicates
# Each job's own life, as (event file, LastModifiedTime override): two spot interruptions (two alerts), a resumed
# Training (the same transition again: no second alert), and one of three endings.
_LIFE = [
    ("status-starting", None),
    ("status-downloading", None),
    ("status-training", None),
    ("status-interrupted", None),
    ("status-interrupted", 1735726560000),
    ("status-training", 1735726620000),
]
_ENDINGS = {
    "Completed": [("status-uploading", None), ("status-completed", None)],
    "Failed": [("status-uploading", None), ("status-failed", None)],
    "Stopped": [("status-stopping", None), ("status-stopped", None)],
}
_EXECUTION_ENDS = {"Completed": "SUCCEEDED", "Failed": "FAILED", "Stopped": "FAILED"}


@pytest.fixture(autouse=True)
def _instant_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    from sagepush_cli.local.trainer import LocalTrainer

    monkeypatch.setattr(LocalTrainer, "start", lambda self, job, **_: None)


class CreatedJobs:
    """Every CreateTrainingJob SageMaker accepted from the handlers' client, by job name."""

    def __init__(self) -> None:
        self.names: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._client: Any = aws.client("sagemaker")
        self._client.meta.events.register("after-call.sagemaker.CreateTrainingJob", self._record)

    def _record(self, http_response: Any, parsed: dict[str, Any], **_: Any) -> None:
        if http_response.status_code == 200:
            with self._lock:
                self.names[parsed["TrainingJobArn"].rsplit("/", 1)[-1]] += 1

    def close(self) -> None:
        self._client.meta.events.unregister("after-call.sagemaker.CreateTrainingJob", self._record)


@pytest.fixture
def created(stack: LocalStack) -> Any:
    recorder = CreatedJobs()
    yield recorder
    recorder.close()


def wait_for(check: Callable[[], Any], what: str, *, deadline: float) -> Any:
    """Poll `check` until it returns something truthy, failing after `deadline` seconds."""
    give_up = time.monotonic() + deadline
    while time.monotonic() < give_up:
        result = check()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def ending_of(index: int) -> str:
    return "Failed" if index % 10 == 0 else "Stopped" if index % 10 == 1 else "Completed"


def life_of(job_name: str, project: str, ending: str) -> list[dict[str, Any]]:
    """The state-change events of one job, in the order SageMaker sends them."""
    events = []
    for name, last_modified in _LIFE + _ENDINGS[ending]:
        event = load_event(name)
        detail = event["detail"]
        arn = detail["TrainingJobArn"].rsplit("/", 1)[0] + f"/{job_name}"
        detail.update(TrainingJobName=job_name, TrainingJobArn=arn)
        detail["Tags"]["sagepush:project"] = project
        if last_modified is not None:
            detail["LastModifiedTime"] = last_modified
        event["resources"] = [arn]
        events.append(event)
    return events


def ledger_items(stack: LocalStack) -> list[dict[str, Any]]:
    deserializer = TypeDeserializer()
    pages = boto3.client("dynamodb").get_paginator("scan").paginate(TableName=stack.resources["LedgerTable"])
    return [{k: deserializer.deserialize(v) for k, v in item.items()} for page in pages for item in page["Items"]]


def execution_statuses(stack: LocalStack) -> dict[str, str]:
    sfn = boto3.client("stepfunctions")
    pages = sfn.get_paginator("list_executions").paginate(stateMachineArn=stack.outputs["TrainingStateMachineArn"])
    return {e["name"]: e["status"] for page in pages for e in page["executions"]}


def dead_letters(stack: LocalStack) -> dict[str, int]:
    sqs = boto3.client("sqs")
    counts = {}
    for name, url in stack.outputs.items():
        if name.endswith("DeadLetterQueueUrl"):
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
            counts[name] = int(attributes["Attributes"]["ApproximateNumberOfMessages"])
    return counts


@pytest.mark.burst
def test_a_burst_submits_each_job_once_alerts_each_transition_once_and_settles_everything(
    stack: LocalStack, s3: Any, created: CreatedJobs
) -> None:
    rng = random.Random(7)
    alerts = Alerts(stack)
    ingest = stack.outputs["IngestBucketName"]
    settings_alert_on = set(stack.function("StatusFunction").environment["ALERT_ON"].split(","))

    # When: every upload lands at once (eight projects, each upload its own code), and the stack drains them.
    for index in range(UPLOADS):
        train = f"print('job {index}')\n".encode()
        body = tar_gz({"train.py": train, "sagepush.toml": MANIFEST})
        s3.put_object(Bucket=ingest, Key=f"incoming/burst-{index % 8}/upload-{index}.tar.gz", Body=body)
    stack.drain()

    def all_waiting() -> list[dict[str, Any]] | None:
        items = ledger_items(stack)
        waiting = [item for item in items if item.get("token_state") == "waiting"]
        return items if len(waiting) == UPLOADS else None

    items = wait_for(all_waiting, f"{UPLOADS} executions to wait on their jobs", deadline=600)
    endings = {
        item["job_name"]: ending_of(index)
        for index, item in enumerate(sorted(items, key=lambda item: str(item["job_name"])))
    }

    # And then: ten state events per job, a fifth of them duplicates, shuffled across every job.
    distinct = [e for item in items for e in life_of(item["job_name"], item["project"], endings[item["job_name"]])]
    duplicates = [
        json.loads(json.dumps(e))
        for e in rng.sample(distinct, round(len(distinct) * DUPLICATE_SHARE / (1 - DUPLICATE_SHARE)))
    ]
    stream = distinct + duplicates
    rng.shuffle(stream)
    assert len(stream) == UPLOADS * EVENTS_PER_JOB
    put_states(stack, *stream)

    # Then: every job was created by exactly one CreateTrainingJob.
    assert len(created.names) == UPLOADS and set(created.names.values()) == {1}
    assert set(created.names) == set(endings)
    # Every transition ALERT_ON selects was alerted exactly once, and nothing else was.
    transitions = {}
    for event in distinct:
        state = training_state_change(event)
        if state.secondary_status in settings_alert_on:
            key = (state.job_name, state.secondary_status, iso_time(state.last_modified_ms))
            transitions[key] = (state.job_name, transition_key(state))
    received = collections.Counter(transitions[(a["job_name"], a["status"], a["time"])] for a in alerts.received())
    assert received == collections.Counter(set(transitions.values()))
    # Every execution ended as its job did, and nothing was parked in a dead-letter queue.
    ended = wait_for(
        lambda: (found := execution_statuses(stack)) and "RUNNING" not in found.values() and found,
        "every execution to end",
        deadline=600,
    )
    assert ended == {name: _EXECUTION_ENDS[ending] for name, ending in endings.items()}
    assert set(dead_letters(stack).values()) == {0}
    # No ledger item is left open: each is in its end state, its token settled, out of the reconciler's index.
    for item in ledger_items(stack):
        assert (item["status"], item["token_state"]) == (endings[item["job_name"]], "settled"), item["job_name"]
        assert "unsettled" not in item, item["job_name"]
        assert all(record["state"] == "sent" for record in item["alerts"].values()), item["job_name"]
