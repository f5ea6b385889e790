"""A burst through the local stack: many uploads at once, then ten state events per job, duplicated and shuffled.

The scale is `SAGEPUSH_BURST_UPLOADS` uploads and ten times as many state events, a fifth of them duplicates. `make
test` runs the default, 100 uploads and 1 000 events (about 50 s on the 2-core development machine); the hardening
issue's full burst, 500 uploads and 5 000 events, is `make burst` (about 7.5 min there: the local stack's cost grows
faster than linearly with the number of executions waiting at once). Jobs are moto's instant ones (no local
training): every state a job goes through is an event the test sends, as SageMaker would, through EventBridge.
"""

from __future__ import annotations

import collections
import contextlib
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
from tests.integration.conftest import BURST_FIGURES, load_event
from tests.integration.faults import EmulatedWaits, refused
from tests.integration.test_stage_submit import MANIFEST, tar_gz
from tests.integration.test_status import Alerts, put_states
from tests.unit.test_alert_size import SNS_LIMIT, sns_counted_bytes

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_logs.type_defs import InputLogEventTypeDef

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


pytestmark = pytest.mark.usefixtures("instant_jobs")


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


def life_of(
    job_name: str, project: str, ending: str, extra: list[tuple[str, int | None]] | None = None
) -> list[dict[str, Any]]:
    """The state-change events of one job, in the order SageMaker sends them (`extra` before its ending)."""
    events = []
    for name, last_modified in _LIFE + (extra or []) + _ENDINGS[ending]:
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


# ------------------------------------------------------------------------------------------------ the faulted burst
FAULT_RATE = 0.10  # of DynamoDB and SNS requests from the handlers, refused with a 5xx before reaching the server
DUPLICATED = 0.05  # of the state events, delivered a second time later
REORDERED = 0.05  # of the state events, delivered after later ones
MALFORMED = 0.01  # of the state events, sent with a field SageMaker never leaves out or misspells
REFUSED_MARK = "refused-for-good"
LOG_TAIL_BYTES = 300_000
# A third spot interruption and its resumed Training: ten events per job, so 500 uploads send over 5 000 events.
THIRD_INTERRUPTION: list[tuple[str, int | None]] = [
    ("status-interrupted", 1735726680000),
    ("status-training", 1735726740000),
]


class PublishSizes:
    """The size of every Publish a client sends, as SNS counts it (`sns_counted_bytes`)."""

    def __init__(self, client: Any) -> None:
        self.sizes: list[int] = [0]
        self._client = client
        client.meta.events.register("provide-client-params.sns.Publish", self._measure)

    def close(self) -> None:
        self._client.meta.events.unregister("provide-client-params.sns.Publish", self._measure)

    def _measure(self, params: dict[str, Any], **_: Any) -> None:
        self.sizes.append(sns_counted_bytes(params))


@pytest.fixture
def published(stack: LocalStack) -> Any:
    sizes = PublishSizes(aws.client("sns"))
    yield sizes
    sizes.close()


class BurstFigures:
    """What the faulted burst did, printed at the end (`make burst` shows it; docs/reliability.md records it)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = collections.Counter()

    def report(self) -> str:
        return "faulted burst: " + ", ".join(f"{name} {value}" for name, value in self.counts.items())


def interleave(rng: random.Random, lives: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Merge the jobs' event lists at random, each job's own events staying in order."""
    queues = [list(reversed(life)) for life in lives if life]
    stream = []
    while queues:
        queue = rng.choice(queues)
        stream.append(queue.pop())
        if not queue:
            queues.remove(queue)
    return stream


def malformed(event: dict[str, Any], index: int) -> dict[str, Any]:
    broken: dict[str, Any] = json.loads(json.dumps(event))
    if index % 2:
        del broken["detail"]["TrainingJobStatus"]
    else:
        broken["detail"]["LastModifiedTime"] = "yesterday afternoon"
    return broken


def write_log_tail(job_name: str, size: int) -> None:
    """A training log whose last lines alone are larger than an SNS message may be: quotes, emoji, CJK, a progress bar."""
    logs = boto3.client("logs")
    group, stream = "/aws/sagemaker/TrainingJobs", f"{job_name}/algo-1-1735726000"
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    patterns = [
        '"' * 2000,
        "🔥 loss=nan " * 150,
        "训练失败梯度爆炸。" * 150,
        "\r 42%|████▏     | 420/1000 [00:42<00:58]" * 40,
    ]
    lines: list[InputLogEventTypeDef] = []
    written, stamp = 0, 1735726000000
    while written < size:
        line = patterns[len(lines) % len(patterns)]
        lines.append({"timestamp": stamp + len(lines), "message": line})
        written += len(line.encode())
    logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=lines)


def alert_key(document: dict[str, Any]) -> tuple[str, ...]:
    """One transition's identity in a received alert: repeatable transitions (interruptions) also by their time."""
    if document["status"] in ("Interrupted", "Restarting"):
        return (document["job_name"], document["status"], document["time"])
    return (document["job_name"], document["status"])


def event_key(event: dict[str, Any]) -> tuple[str, ...]:
    state = training_state_change(event)
    if state.secondary_status in ("Interrupted", "Restarting"):
        return (state.job_name, state.secondary_status, iso_time(state.last_modified_ms))
    return (state.job_name, state.secondary_status)


@contextlib.contextmanager
def transient_faults(rng: random.Random, rate: float) -> Any:
    """Refuse `rate` of the handlers' DynamoDB and SNS requests with a 5xx, as a service having a bad minute does."""
    lock = threading.Lock()

    def unlucky(_: bytes) -> bool:
        with lock:
            return rng.random() < rate

    with (
        refused(aws.client("dynamodb"), "*", "InternalServerError", status=500, times=10**9, when=unlucky) as ddb,
        refused(aws.client("sns"), "Publish", "InternalError", status=500, times=10**9, when=unlucky) as sns,
    ):
        yield ddb, sns


@pytest.mark.burst
def test_a_burst_under_faults_loses_no_upload_alert_or_execution(
    stack: LocalStack, s3: Any, created: CreatedJobs, published: PublishSizes, monkeypatch: pytest.MonkeyPatch
) -> None:
    EmulatedWaits(monkeypatch)  # botocore's and the state machine's backoff are recorded, not slept through
    rng = random.Random(17)
    figures = BurstFigures()
    alerts = Alerts(stack)
    ingest = stack.outputs["IngestBucketName"]
    alert_on = set(stack.function("StatusFunction").environment["ALERT_ON"].split(","))
    refused_count, lost_count = max(2, UPLOADS // 100), max(3, UPLOADS // 50)

    # Given: every upload at once, a handful of them submissions SageMaker refuses for good, under DynamoDB and SNS
    # refusing a tenth of the handlers' requests.
    never = refused(
        aws.client("sagemaker"),
        "CreateTrainingJob",
        "ValidationException",
        times=10**9,
        when=lambda body: REFUSED_MARK.encode() in body,
    )
    with never as refusals, transient_faults(rng, FAULT_RATE) as (ddb_faults, sns_faults):
        for index in range(UPLOADS):
            manifest = MANIFEST
            if index < refused_count:
                manifest += f'hyperparameters = {{ marker = "{REFUSED_MARK}" }}\n'.encode()
            body = tar_gz({"train.py": f"print('job {index}')\n".encode(), "sagepush.toml": manifest})
            s3.put_object(Bucket=ingest, Key=f"incoming/faulted-{index % 8}/upload-{index}.tar.gz", Body=body)
        stack.drain()

        def submitted() -> list[dict[str, Any]] | None:
            items = ledger_items(stack)
            settled = [i for i in items if i.get("token_state") == "waiting" or i["status"] == "NotCreated"]
            return items if len(settled) == UPLOADS else None

        items = wait_for(submitted, f"{UPLOADS} uploads to become jobs or refusals", deadline=900)
    figures.counts["uploads"] = UPLOADS
    not_created = {i["job_name"] for i in items if i["status"] == "NotCreated"}
    assert len(not_created) == refused_count and len(refusals.hits) >= refused_count
    running = sorted(str(i["job_name"]) for i in items if i["job_name"] not in not_created)
    lost = set(rng.sample(running, lost_count))
    endings = {name: ("Completed" if name in lost else ending_of(index)) for index, name in enumerate(running)}
    projects = {i["job_name"]: i["project"] for i in items}
    tail_job = next(name for name in running if endings[name] == "Failed" and name not in lost)
    write_log_tail(tail_job, LOG_TAIL_BYTES)

    # When: each job's state events arrive interleaved, some duplicated, some reordered, a few malformed; the jobs in
    # `lost` never send anything after Training; DynamoDB and SNS keep refusing a tenth of the requests.
    lives = []
    for name in running:
        life = life_of(name, projects[name], "Failed" if name == tail_job else endings[name], THIRD_INTERRUPTION)
        lives.append(life[:3] if name in lost else life)
    delivered = [event for life in lives for event in life]
    stream = interleave(rng, lives)
    for event in rng.sample(stream, round(len(stream) * REORDERED)):
        stream.remove(event)
        stream.insert(rng.randrange(len(stream) + 1), event)
    for event in rng.sample(delivered, round(len(delivered) * DUPLICATED)):
        later = stream.index(event) + 1
        stream.insert(rng.randrange(later, len(stream) + 1), json.loads(json.dumps(event)))
    broken = [
        malformed(event, n) for n, event in enumerate(rng.sample(delivered, max(1, round(len(stream) * MALFORMED))))
    ]
    for event in broken:
        stream.insert(rng.randrange(len(stream) + 1), event)
    with transient_faults(rng, FAULT_RATE) as (ddb_events, sns_events):
        put_states(stack, *stream)
        # And the reconciler runs while the faults go on: whatever it cannot do now, it must not raise on.
        backdate_unsettled(stack)
        first = stack.invoke("ReconcileFunction", load_event("reconcile-scheduled"))
    figures.counts |= {
        "state events": len(stream),
        "duplicated": round(len(delivered) * DUPLICATED),
        "reordered": round(len(stream) * REORDERED),
        "malformed": len(broken),
        "jobs whose events were lost": lost_count,
        "submissions refused for good": refused_count,
        "DynamoDB requests refused": len(ddb_faults.hits) + len(ddb_events.hits),
        "SNS publishes refused": len(sns_faults.hits) + len(sns_events.hits),
    }

    # Then the reconciler settles what is left: the jobs whose events were lost, anything whose last delivery failed.
    runs, failed = 1, list(first["failed"])
    while True:
        backdate_unsettled(stack)
        report = stack.invoke("ReconcileFunction", load_event("reconcile-scheduled"))
        runs, failed = runs + 1, failed + report["failed"]
        if report["checked"] == 0 or runs > 20:
            break
    figures.counts["reconcile runs"] = runs
    figures.counts["reconcile job failures (retried next run)"] = len(failed)

    # Every upload became exactly one job, or one could-not-submit alert and a failed execution.
    assert set(created.names) == set(running) and set(created.names.values()) == {1}
    ended = wait_for(
        lambda: (found := execution_statuses(stack)) and "RUNNING" not in found.values() and found,
        "every execution to end",
        deadline=600,
    )
    figures.counts["executions left RUNNING"] = sum(1 for status in ended.values() if status == "RUNNING")
    expected_ends = {name: _EXECUTION_ENDS["Failed" if name == tail_job else e] for name, e in endings.items()}
    assert ended == expected_ends | dict.fromkeys(not_created, "FAILED")
    # Every selected transition that happened was alerted exactly once; each refusal once; nothing else.
    expected = collections.Counter(
        {event_key(e) for e in delivered if training_state_change(e).secondary_status in alert_on}
        | {(name, "Completed") for name in lost}
        | {(name, "SubmitFailed") for name in not_created}
    )
    received = collections.Counter(alert_key(document) for document in alerts.received())
    figures.counts["alerts"] = sum(received.values())
    figures.counts["duplicate alerts"] = sum(count - 1 for count in received.values() if count > 1)
    figures.counts["lost alerts"] = len(set(expected) - set(received))
    assert received == expected
    # Every malformed event was parked once, with its reason; nothing else reached a dead-letter queue.
    parked = dead_letters(stack)
    figures.counts["malformed events parked"] = parked["StatusDeadLetterQueueUrl"]
    assert parked["StatusDeadLetterQueueUrl"] == len(broken)
    assert {name: n for name, n in parked.items() if name != "StatusDeadLetterQueueUrl"} == dict.fromkeys(
        [name for name in parked if name != "StatusDeadLetterQueueUrl"], 0
    )
    # Every message handed to SNS fits its 256 KiB limit, the 300 KB log tail's Failed alert included.
    figures.counts["largest SNS message (bytes)"] = max(published.sizes)
    assert max(published.sizes) <= SNS_LIMIT
    # No ledger item is left open.
    for item in ledger_items(stack):
        assert "unsettled" not in item, item["job_name"]
    BURST_FIGURES.append(figures.report())


def backdate_unsettled(stack: LocalStack) -> None:
    """Make every open job look silent for an hour, so the reconciler checks it now rather than after its grace."""
    dynamodb = boto3.client("dynamodb")
    then = str(time.time_ns() // 1_000_000 - 3_600_000)
    for item in ledger_items(stack):
        if "unsettled" not in item:
            continue
        with contextlib.suppress(dynamodb.exceptions.ConditionalCheckFailedException):  # closed in the meantime
            dynamodb.update_item(
                TableName=stack.resources["LedgerTable"],
                Key={"job_name": {"S": str(item["job_name"])}},
                UpdateExpression="SET touched_at = :then",
                ConditionExpression="attribute_exists(unsettled)",
                ExpressionAttributeValues={":then": {"N": then}},
            )
