from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sagepush.events import EventError, described_training_job, epoch_ms, training_state_change

EVENTS = Path(__file__).resolve().parents[2] / "events"
MS = 1735725605000


def load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return document


def test_completed_event_reads_status_artifacts_billing_and_metrics() -> None:
    state = training_state_change(load("status-completed"))
    assert (state.status, state.secondary_status, state.terminal) == ("Completed", "Completed", True)
    assert state.model_artifacts and state.model_artifacts.endswith("/output/model.tar.gz")
    assert state.billable_seconds == 1560 and state.final_metrics == {"val:loss": 0.0412, "val:accuracy": 0.973}
    assert state.project == "iris" and state.region == "us-east-1"


def test_tags_as_a_list_and_iso_or_second_timestamps_read_like_the_map_form() -> None:
    listed = training_state_change(load("status-tags-list"))
    mapped = training_state_change(load("status-starting"))
    assert listed.tags == mapped.tags
    assert (listed.last_modified_ms, listed.creation_ms) == (mapped.last_modified_ms, mapped.creation_ms)


@pytest.mark.parametrize(
    "value",
    [MS, MS // 1000, float(MS), str(MS), "2025-01-01T10:00:05Z", "2025-01-01T10:00:05.000+00:00",
     datetime(2025, 1, 1, 10, 0, 5, tzinfo=UTC)],
    ids=["ms", "seconds", "float-ms", "digits", "iso-z", "iso-offset", "datetime"],
)  # fmt: skip
def test_timestamps_are_read_liberally(value: Any) -> None:
    assert epoch_ms(value, "$.t") == MS


@pytest.mark.parametrize(
    ("name", "where"),
    [("status-malformed-no-status", "$.detail.TrainingJobStatus"), ("status-malformed-bad-time", "$.detail.LastModifiedTime")],
    ids=["no-status", "bad-time"],
)  # fmt: skip
def test_malformed_events_name_the_json_path(name: str, where: str) -> None:
    with pytest.raises(EventError) as caught:
        training_state_change(load(name))
    assert caught.value.where == where


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda e: e.update(source="aws.s3"), "$.detail-type"),
        (lambda e: e["detail"].update(Tags="iris"), "$.detail.Tags"),
        (lambda e: e["detail"].update(Tags=[{"Value": "x"}]), "$.detail.Tags[0]"),
        (lambda e: e.update(detail=[]), "$.detail"),
        (lambda e: e["detail"].update(FinalMetricDataList=[{"MetricName": "a"}]), "$.detail.FinalMetricDataList[0]"),
        (lambda e: e["detail"].update(SecondaryStatus=7), "$.detail.SecondaryStatus"),
        (lambda e: e["detail"].update(SecondaryStatus=0), "$.detail.SecondaryStatus"),
        (lambda e: e["detail"].update(SecondaryStatus=["Completed"]), "$.detail.SecondaryStatus"),
        (lambda e: e["detail"].update(SecondaryStatus=[]), "$.detail.SecondaryStatus"),
        (lambda e: e["detail"].update(SecondaryStatus=None), "$.detail.SecondaryStatus"),
        (lambda e: e["detail"].update(SecondaryStatus=""), "$.detail.SecondaryStatus"),
    ],
    ids=[
        "wrong-source",
        "tags-string",
        "tag-without-key",
        "detail-list",
        "metric-without-value",
        "secondary-number",
        "secondary-zero",
        "secondary-list",
        "secondary-empty-list",
        "secondary-null",
        "secondary-empty",
    ],
)
def test_wrong_shapes_name_the_json_path(change: Any, where: str) -> None:
    event = load("status-completed")
    change(event)
    with pytest.raises(EventError) as caught:
        training_state_change(event)
    assert caught.value.where == where


def test_a_state_without_a_secondary_status_takes_its_primary_status() -> None:
    event = load("status-completed")
    del event["detail"]["SecondaryStatus"]
    assert training_state_change(event).secondary_status == "Completed"


def test_a_wrong_secondary_status_in_a_describe_answer_names_the_field() -> None:
    detail = load("status-training")["detail"]
    detail["SecondaryStatus"] = None
    with pytest.raises(EventError) as caught:
        described_training_job(detail, region="us-east-1", tags={})
    assert caught.value.where == "DescribeTrainingJob.SecondaryStatus"


def test_a_describe_answer_reads_like_an_event_with_the_known_tags() -> None:
    detail = load("status-training")["detail"]
    del detail["Tags"]
    detail["LastModifiedTime"] = datetime(2025, 1, 1, 10, 5, tzinfo=UTC)
    state = described_training_job(detail, region="eu-west-1", tags={"sagepush:project": "iris"})
    assert (state.secondary_status, state.project, state.region) == ("Training", "iris", "eu-west-1")
