from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from sagepush.events import EventError, object_created, submit_task

EVENTS = Path(__file__).resolve().parents[2] / "events"


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return document


def test_object_created_reads_the_aws_sample() -> None:
    upload = object_created(load("stage-object-created"))
    assert upload.bucket == "sagepush-ingest-example"
    assert upload.key == "incoming/iris/main.tar.gz"
    assert upload.version_id == "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e"
    assert upload.candidate_keys == ("incoming/iris/main.tar.gz",)


def test_form_encoded_key_is_decoded_and_the_raw_key_kept_as_fallback() -> None:
    event = load("stage-object-created")
    event["detail"]["object"]["key"] = "incoming/iris/my+model%281%29.tar.gz"
    upload = object_created(event)
    assert upload.candidate_keys == ("incoming/iris/my model(1).tar.gz", "incoming/iris/my+model%281%29.tar.gz")


def test_missing_version_and_sequencer_and_numeric_time_are_accepted() -> None:
    event = load("stage-object-created")
    del event["detail"]["object"]["version-id"]
    del event["detail"]["object"]["sequencer"]
    event["time"] = 1763892930
    event["detail"]["object"]["eTag"] = event["detail"]["object"].pop("etag")
    upload = object_created(event)
    assert (upload.version_id, upload.sequencer, upload.etag) == (None, None, "b1946ac92492d2347c6235b4d2611184")
    assert upload.identity.upload_id() == object_created(copy.deepcopy(event)).identity.upload_id()


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda e: e["detail"]["object"].pop("key"), "$.detail.object.key"),
        (lambda e: e["detail"].pop("bucket"), "$.detail.bucket"),
        (lambda e: e["detail"]["object"].update(size="big"), "$.detail.object.size"),
        (lambda e: e.update({"detail-type": "Object Deleted"}), "$.detail-type"),
    ],
    ids=["no-key", "no-bucket", "size-not-int", "wrong-type"],
)
def test_malformed_s3_events_name_the_json_path(change: Any, where: str) -> None:
    event = load("stage-object-created")
    change(event)
    with pytest.raises(EventError) as caught:
        object_created(event)
    assert caught.value.where == where


def test_submit_task_reads_direct_and_task_token_payloads() -> None:
    direct = submit_task(load("submit"))
    assert (direct.project, direct.task_token, direct.job_name) == ("iris", None, None)
    assert direct.spec["framework"] == "sklearn"
    tokened = submit_task(load("submit-task-token"))
    assert tokened.task_token and tokened.job_name == "iris-3f5c0f2a-6b1e9d"


def test_submit_task_without_code_uri_names_it() -> None:
    event = load("submit")
    del event["code_uri"]
    with pytest.raises(EventError, match=r"\$\.code_uri: is missing"):
        submit_task(event)


def test_a_submit_failure_names_its_job_project_error_and_cause() -> None:
    from sagepush.events import submit_failure

    failure = submit_failure(load("notify-submit-failed"))
    assert (failure.job_name, failure.project, failure.error) == ("iris-3f5c0f2a-6b1e9d", "iris", "SpecError")
    assert failure.cause is not None and "a-very-large-gpu" in failure.cause
    assert failure.source["commit"].startswith("9fceb02") and failure.code_uri is not None


def test_a_submit_failure_with_an_odd_input_still_names_the_job_from_the_execution() -> None:
    from sagepush.events import submit_failure

    event = load("notify-submit-failed")
    event["input"], event["error"] = {"spec": 3}, {"Error": "States.TaskFailed", "Cause": None}
    failure = submit_failure(event)
    assert (failure.job_name, failure.project, failure.cause) == ("iris-3f5c0f2a-6b1e9d", "unknown", None)
    del event["execution_arn"]
    with pytest.raises(EventError, match=r"\$\.execution_arn"):
        submit_failure(event)
