"""Hostile uploads and bad events through the local stack: refused, parked once, alerted to the project, nothing started."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import boto3
import jsonschema
import pytest

from tests.hostile.corpus import CASES, MANIFEST, TRAIN, Refused
from tests.integration.conftest import load_event
from tests.integration.test_stage_submit import executions, staged_objects, tar_gz
from tests.integration.test_status import SCHEMA, Alerts

if TYPE_CHECKING:
    from pathlib import Path

    from sagepush_cli.local.stack import LocalStack

REPRESENTATIVE = ["tar-dotdot", "zip-symlink-escaping", "zip-encrypted-member", "tar.gz-bomb-3-GiB", "dotenv"]
BY_ID = {case.id: case for case in CASES}


@pytest.fixture
def alerts(stack: LocalStack) -> Alerts:
    return Alerts(stack)


def parked(stack: LocalStack) -> list[dict[str, Any]]:
    """Every record in the stage dead-letter queue, removed from it."""
    sqs = boto3.client("sqs")
    url = stack.outputs["StageDeadLetterQueueUrl"]
    records = []
    while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in batch:
            records.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return records


def assert_nothing_started(stack: LocalStack, s3: Any, sfn: Any) -> None:
    assert staged_objects(stack, s3) == []
    assert executions(stack, sfn) == []


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case_id", REPRESENTATIVE)
def test_a_hostile_upload_is_refused_parked_once_and_alerted_to_its_project(
    case_id: str, stack: LocalStack, s3: Any, sfn: Any, alerts: Alerts, tmp_path: Path
) -> None:
    case = BY_ID[case_id]
    assert isinstance(case.expect, Refused)
    key = f"incoming/iris/{case.filename}"
    s3.upload_file(str(case.build(tmp_path)), stack.outputs["IngestBucketName"], key)
    stack.drain()

    [alert] = alerts.received()  # once: the refusal is not retried
    jsonschema.validate({k: v for k, v in alert.items() if k != "_attributes"}, SCHEMA)
    assert (alert["kind"], alert["project"], alert["upload"]["key"]) == ("upload-refused", "iris", key)
    assert alert["cause"].startswith(f"{case.expect.where}: ")
    assert alert["_attributes"] == {"project": "iris", "status": "UploadRefused", "severity": "error"}
    [record] = parked(stack)
    assert record["requestContext"]["condition"] == "InputRefused"
    assert record["responsePayload"]["where"] == case.expect.where
    assert record["requestPayload"]["detail"]["object"]["key"] == key
    assert_nothing_started(stack, s3, sfn)


def test_a_bad_manifest_is_refused_naming_the_field(stack: LocalStack, s3: Any, sfn: Any, alerts: Alerts) -> None:
    body = tar_gz({"train.py": TRAIN, "sagepush.toml": MANIFEST + b"instance_count = -1\n"})
    s3.put_object(Bucket=stack.outputs["IngestBucketName"], Key="incoming/iris/main.tar.gz", Body=body)
    stack.drain()

    [alert] = alerts.received()
    assert alert["cause"].startswith("sagepush.toml: instance_count: -1 is out of range")
    assert len(parked(stack)) == 1
    # The manifest is read from the staged code, so its (content-addressed) sourcedir.tar.gz is already uploaded.
    assert executions(stack, sfn) == []


def test_an_upload_naming_an_invalid_project_is_parked_without_an_alert(
    stack: LocalStack, s3: Any, sfn: Any, alerts: Alerts
) -> None:
    body = tar_gz({"train.py": TRAIN, "sagepush.toml": MANIFEST})
    s3.put_object(Bucket=stack.outputs["IngestBucketName"], Key="incoming/Not_A_Project/main.tar.gz", Body=body)
    stack.drain()

    [record] = parked(stack)
    assert record["responsePayload"]["where"] == "detail.object.key"
    assert "is not a project name" in record["responsePayload"]["errorMessage"]
    assert alerts.received() == []
    assert_nothing_started(stack, s3, sfn)


def test_an_upload_outside_incoming_invokes_nothing(stack: LocalStack, s3: Any, sfn: Any, alerts: Alerts) -> None:
    body = tar_gz({"train.py": TRAIN, "sagepush.toml": MANIFEST})
    s3.put_object(Bucket=stack.outputs["IngestBucketName"], Key="uploads/iris/main.tar.gz", Body=body)
    stack.drain()

    assert parked(stack) == [] and alerts.received() == []
    assert_nothing_started(stack, s3, sfn)


def _malformed(change: str) -> dict[str, Any]:
    event = load_event("stage-object-created")
    if change == "no-detail":
        del event["detail"]
    elif change == "negative-size":
        event["detail"]["object"]["size"] = -1
    elif change == "outside-incoming":
        event["detail"]["object"]["key"] = "uploads/iris/main.tar.gz"
    return event


@pytest.mark.parametrize(
    ("change", "where", "project"),
    [
        ("no-detail", "$.detail", None),
        ("negative-size", "$.detail.object.size", "iris"),  # the key still names its project: it hears of it
        ("outside-incoming", "detail.object.key", None),
    ],
)
def test_a_malformed_event_is_parked_once_never_retried(
    change: str,
    where: str,
    project: str | None,
    stack: LocalStack,
    s3: Any,
    sfn: Any,
    alerts: Alerts,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loaded = stack.function("StageFunction")
    calls: list[Any] = []
    original = loaded.invoke

    def counted(event: Any) -> Any:
        calls.append(event)
        return original(event)

    monkeypatch.setattr(loaded, "invoke", counted)
    stack.invoke_async("StageFunction", _malformed(change))
    stack.drain()

    assert len(calls) == 1, "a refused event must not be retried"
    [record] = parked(stack)
    assert record["responsePayload"]["where"] == where
    assert [a["project"] for a in alerts.received()] == ([project] if project else [])
    assert_nothing_started(stack, s3, sfn)
