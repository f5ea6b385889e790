"""The alerts of a `[strategy]` push: each job's alerts name its push and matrix values, and one summary alert lists
every job of the push, the best one named, in every format and within SNS's limit."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from sagepush import alerts
from sagepush.events import MATRIX_TAG_PREFIX, PUSH_TAG, training_state_change
from sagepush.ledger import LedgerEntry

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "docs" / "alerts.schema.json").read_text())
SNS_LIMIT = 262_144
DOCUMENT_PROTOCOLS = ("sqs", "lambda", "http", "firehose")
PUSH = "iris-3f5c0f2a-6b1e9d"
EXECUTION = f"arn:aws:states:us-east-1:123456789012:execution:MatrixStateMachine:{PUSH}"
SOURCE = {"commit": "9fceb02d0ae598e95dc970b74767f19372d61af8", "branch": "main", "author": "Ada"}
CODE_URI = "s3://artifacts/code/iris/3f5c/sourcedir.tar.gz"
MATRIX_TAGS = {
    PUSH_TAG: PUSH,
    f"{MATRIX_TAG_PREFIX}instance_type": "ml.m5.large",
    f"{MATRIX_TAG_PREFIX}hyperparameters.lr": "0.1",
}


def matrix_job_event(name: str, *, as_list: bool = False) -> dict[str, Any]:
    """The sample event `name` for job 2 of push PUSH, its tags (a map, or a list of {Key, Value}) with the matrix's."""
    event: dict[str, Any] = json.loads((ROOT / "events" / f"{name}.json").read_text())
    detail = event["detail"]
    detail["TrainingJobName"] = f"{PUSH}-2"
    tags = {**detail["Tags"], **MATRIX_TAGS}
    detail["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()] if as_list else tags
    return event


def sample(name: str) -> Any:
    return training_state_change(json.loads((ROOT / "events" / f"{name}.json").read_text()))


def documents(alert: alerts.Alert) -> dict[str, Any]:
    """The JSON document as every document protocol receives it, checked against the published schema."""
    messages = alert.messages()
    document: dict[str, Any] = json.loads(messages["sqs"])
    for protocol in DOCUMENT_PROTOCOLS:
        assert json.loads(messages[protocol]) == document
    jsonschema.validate(document, SCHEMA)
    assert json.loads(json.loads(messages["https"])["metadata"]["additionalContext"]["alert"]) == document
    return document


def job(
    n: int, status: str = "Completed", *, objective: float | None = None, reason: str | None = None
) -> alerts.MatrixJob:
    return alerts.MatrixJob(
        job_name=f"{PUSH}-{n}",
        matrix={"hyperparameters.lr": 10.0**-n, "instance_type": "ml.m5.large", "hyperparameters.warm": n % 2 == 0},
        status=status,
        secondary_status=status if status != "NotCreated" else None,
        duration_seconds=600 + n if status != "NotCreated" else None,
        billable_seconds=600 + n if status != "NotCreated" else None,
        objective=objective,
        failure_reason=reason,
    )


def summary(
    jobs: list[alerts.MatrixJob], *, best: str | None = None, metric: str | None = "val:accuracy"
) -> alerts.Alert:
    return alerts.push_summary_alert(
        push=PUSH,
        project="iris",
        region="us-east-1",
        jobs=jobs,
        objective_metric_name=metric,
        objective_type="Maximize",
        best=best,
        source=SOURCE,
        code_uri=CODE_URI,
        execution_arn=EXECUTION,
        time="2025-01-01T10:40:00Z",
    )


FAILED_REASON = 'AlgorithmError: ExecuteUserScriptError:\nExitCode 1\nErrorMessage "ValueError: Input contains NaN"'
THREE = [
    job(1, objective=0.941),
    job(2, objective=0.973),
    job(3, "Failed", reason=FAILED_REASON),
]


def sns_counted_bytes(publication: alerts.Publication) -> int:
    """The size of the publish as SNS counts it: Message's UTF-8 bytes, and each attribute's name, type and value."""
    counted = sum(len(k.encode()) + len(b"String") + len(v.encode()) for k, v in publication.attributes.items())
    return len(publication.message.encode("utf-8")) + counted


# A job of a matrix: its transition alerts


@pytest.mark.parametrize("as_list", [False, True], ids=["tags-map", "tags-list"])
@pytest.mark.parametrize("name", ["status-completed", "status-failed", "status-training"])
def test_a_matrix_jobs_transition_alert_names_its_push_and_matrix_values_in_every_format(
    name: str, as_list: bool
) -> None:
    alert = alerts.build_alert(training_state_change(matrix_job_event(name, as_list=as_list)), None)
    messages = alert.messages()

    document = documents(alert)
    assert (document["kind"], document["job_name"], document["push"]) == ("training-state", f"{PUSH}-2", PUSH)
    assert document["matrix"] == {"hyperparameters.lr": "0.1", "instance_type": "ml.m5.large"}
    assert list(document["matrix"]) == ["hyperparameters.lr", "instance_type"]  # sorted by path
    assert (document["jobs"], document["objective"], document["best"]) == ([], None, None)
    text = messages["default"]
    assert f"\nPush: {PUSH}\n" in text
    assert "\nMatrix: hyperparameters.lr=0.1, instance_type=ml.m5.large\n" in text
    description = json.loads(messages["https"])["content"]["description"]
    assert "*Matrix:* hyperparameters.lr=0.1, instance_type=ml.m5.large" in description
    assert alert.subject == f"[sagepush] iris: {PUSH}-2 {alert.headline}"


def test_the_minimal_alert_of_a_matrix_job_keeps_its_push_and_matrix_values() -> None:
    alert = alerts.build_alert(training_state_change(matrix_job_event("status-failed")), None, log_tail=("line",))

    document = documents(alert.minimal())

    assert document["push"] == PUSH and document["matrix"] == {
        "hyperparameters.lr": "0.1", "instance_type": "ml.m5.large"
    }  # fmt: skip
    assert "Matrix: hyperparameters.lr=0.1" in alert.minimal().text()


@pytest.mark.parametrize("name", ["status-completed", "status-failed", "status-foreign-job"])
def test_a_job_of_no_matrix_has_no_push_and_an_empty_matrix(name: str) -> None:
    entry = LedgerEntry(job_name="iris-3f5c0f2a-6b1e9d", project="iris", source=SOURCE)
    alert = alerts.build_alert(sample(name), entry if "foreign" not in name else None)

    document = documents(alert)

    assert (document["push"], document["matrix"], document["jobs"], document["best"]) == (None, {}, [], None)
    assert "Matrix:" not in alert.text() and "Push:" not in alert.text()
    assert "*Matrix:*" not in alert.chat()["content"]["description"]


# The summary of a push


def test_the_summary_document_lists_every_job_in_matrix_order_with_the_objective_and_the_best() -> None:
    alert = summary(THREE, best=f"{PUSH}-2")

    document = documents(alert)

    assert (document["kind"], document["job_name"], document["push"], document["job_status"]) == (
        "push-summary", None, PUSH, None
    )  # fmt: skip
    assert (document["status"], document["severity"], document["headline"]) == (
        "PushFailed", "error", "not every job completed"
    )  # fmt: skip
    assert [row["job_name"] for row in document["jobs"]] == [f"{PUSH}-1", f"{PUSH}-2", f"{PUSH}-3"]
    assert document["jobs"][1] == {
        "job_name": f"{PUSH}-2",
        "matrix": {"hyperparameters.lr": 0.01, "instance_type": "ml.m5.large", "hyperparameters.warm": True},
        "status": "Completed",
        "secondary_status": "Completed",
        "duration_seconds": 602,
        "billable_seconds": 602,
        "objective": 0.973,
        "failure_reason": None,
    }
    assert document["jobs"][2]["failure_reason"] == FAILED_REASON
    assert document["objective"] == {"metric_name": "val:accuracy", "type": "Maximize"}
    assert (document["best"], document["jobs_cut"]) == (f"{PUSH}-2", 0)
    assert (document["source"], document["code_uri"], document["time"]) == (SOURCE, CODE_URI, "2025-01-01T10:40:00Z")
    assert document["links"] == {
        "console": f"https://us-east-1.console.aws.amazon.com/states/home?region=us-east-1#/v2/executions/details/{EXECUTION}",
        "logs": "",
    }
    assert alert.attributes() == {"project": "iris", "status": "PushFailed", "severity": "error"}


def test_the_summary_text_names_the_best_job_and_shows_a_line_per_job_with_a_failed_ones_reason() -> None:
    alert = summary(THREE, best=f"{PUSH}-2")
    messages = alert.messages()

    text = messages["default"]
    assert messages["email"] == text
    assert text.startswith(
        f"sagepush push {PUSH} (project iris): 2 of 3 jobs completed; best {PUSH}-2 (val:accuracy = 0.973).\n"
    )
    lines = text.splitlines()
    [second] = [line for line in lines if line.startswith(f"  {PUSH}-2 ")]
    assert "Completed" in second and "hyperparameters.lr=0.01, instance_type=ml.m5.large" in second
    assert "10m 02s" in second and "billable 10m 02s" in second and second.endswith("val:accuracy=0.973")
    [third] = [line for line in lines if line.startswith(f"  {PUSH}-3 ")]
    failed_at = lines.index(third)
    assert "Failed" in third and "val:accuracy" not in third
    assert lines[failed_at + 1].startswith("    ") and "ExitCode 1" in lines[failed_at + 1]
    assert "hyperparameters.warm=true" in text  # a value that is not a string is shown as JSON
    assert (
        f"Console: https://us-east-1.console.aws.amazon.com/states/home?region=us-east-1#/v2/executions/details/{EXECUTION}"
        in text
    )
    assert messages["sms"] == f"sagepush push {PUSH}: 2/3 completed, best {PUSH}-2"
    assert alert.subject == f"[sagepush] iris: push {PUSH} not every job completed"


def test_the_summary_chat_notification_threads_on_the_push_and_stars_the_best_job() -> None:
    chat = json.loads(summary(THREE, best=f"{PUSH}-2").messages()["https"])

    assert chat["id"] == f"{PUSH}:summary"
    assert chat["metadata"]["threadId"] == PUSH and chat["metadata"]["eventType"] == "PushFailed"
    assert chat["content"]["title"] == f":x: iris: push {PUSH} not every job completed"
    description = chat["content"]["description"].splitlines()
    starred = [line for line in description if ":star:" in line]
    assert len(starred) == 1 and f"`{PUSH}-2`" in starred[0]
    assert sum(f"`{PUSH}-" in line for line in description) == 3
    assert chat["content"]["nextSteps"] == [f"<{summary(THREE).console_url}|Open the execution>"]


def test_a_push_whose_every_job_completed_is_push_completed() -> None:
    alert = summary([job(1, objective=0.5), job(2, objective=0.9)], best=f"{PUSH}-2")

    document = documents(alert)

    assert (document["status"], document["severity"], document["headline"]) == (
        "PushCompleted", "info", "every job completed"
    )  # fmt: skip
    assert json.loads(alert.messages()["https"])["content"]["title"].startswith(":white_check_mark: ")
    assert alert.subject == f"[sagepush] iris: push {PUSH} every job completed"


@pytest.mark.parametrize("status", ["Failed", "Stopped", "NotCreated", "InProgress"])
def test_a_push_with_a_job_that_did_not_complete_is_push_failed(status: str) -> None:
    alert = summary([job(1, objective=0.5), job(2, status)], best=f"{PUSH}-1")

    document = documents(alert)

    assert (document["status"], document["severity"]) == ("PushFailed", "error")
    assert document["jobs"][1]["status"] == status
    assert alert.messages()["sms"] == f"sagepush push {PUSH}: 1/2 completed, best {PUSH}-1"


def test_a_summary_without_an_objective_has_no_best_job() -> None:
    alert = summary([job(1), job(2, "Failed", reason="boom")], metric=None)

    document = documents(alert)

    assert (document["objective"], document["best"]) == (None, None)
    assert alert.text().startswith(f"sagepush push {PUSH} (project iris): 1 of 2 jobs completed.\n")
    assert alert.sms() == f"sagepush push {PUSH}: 1/2 completed"


def test_the_minimal_summary_keeps_the_job_rows_without_their_failure_reasons() -> None:
    minimal = summary(THREE, best=f"{PUSH}-2").minimal()

    document = documents(minimal)

    assert [row["job_name"] for row in document["jobs"]] == [f"{PUSH}-1", f"{PUSH}-2", f"{PUSH}-3"]
    assert [row["failure_reason"] for row in document["jobs"]] == [None, None, None]
    assert [row["status"] for row in document["jobs"]] == ["Completed", "Completed", "Failed"]
    assert (document["best"], document["push"]) == (f"{PUSH}-2", PUSH)
    assert "cut short" in minimal.text() and "ExitCode" not in minimal.text()


# The summary within SNS's limit


def test_long_failure_reasons_are_cut_first_keeping_every_job_row() -> None:
    jobs = [job(n, "Failed", reason=f"AlgorithmError {n}: " + '"' * 8000) for n in range(1, 31)]
    alert = summary(jobs)
    assert alert.publication().size > alerts.PUBLISH_BUDGET, "without fit the summary would not fit"

    fitted = alerts.fit(alert)

    assert fitted.size == sns_counted_bytes(fitted) <= alerts.PUBLISH_BUDGET
    document = json.loads(json.loads(fitted.message)["sqs"])
    jsonschema.validate(document, SCHEMA)
    assert (len(document["jobs"]), document["jobs_cut"]) == (30, 0)
    reasons = [row["failure_reason"] for row in document["jobs"]]
    assert all(
        reason.startswith(f"AlgorithmError {n}: ") and reason.endswith("…") for n, reason in enumerate(reasons, 1)
    )
    assert "cut short" in json.loads(fitted.message)["default"]


def test_a_200_job_summary_with_long_failure_reasons_fits_the_budget_and_still_counts_every_job() -> None:
    jobs = [
        job(n, objective=n / 1000)
        if n % 4 == 0
        else job(n, "Failed", reason=f"AlgorithmError: job {n} " + "😀\"\\" * 300)
        for n in range(1, 201)
    ]  # fmt: skip
    best = f"{PUSH}-200"
    alert = summary(jobs, best=best)

    fitted = alerts.fit(alert)

    assert sns_counted_bytes(fitted) <= alerts.PUBLISH_BUDGET < SNS_LIMIT
    messages = json.loads(fitted.message)
    document: dict[str, Any] = json.loads(messages["sqs"])
    jsonschema.validate(document, SCHEMA)
    assert all(json.loads(messages[protocol]) == document for protocol in DOCUMENT_PROTOCOLS)
    rows = document["jobs"]
    assert rows and len(rows) + document["jobs_cut"] == 200
    assert all(row["failure_reason"] is None for row in rows), "the reasons go before any row"
    assert best in [row["job_name"] for row in rows] and document["best"] == best
    numbers = [int(row["job_name"].rpartition("-")[2]) for row in rows]
    assert numbers == sorted(numbers), "rows stay in matrix order"
    assert document["status"] == "PushFailed"
    text = messages["default"]
    assert text.startswith(f"sagepush push {PUSH} (project iris): 50 of 200 jobs completed; best {best} ")
    assert "cut short" in text
    assert document["jobs_cut"] > 0, "200 rows do not fit even without their reasons"
    assert f"… {document['jobs_cut']} more jobs cut" in text
    assert messages["sms"] == f"sagepush push {PUSH}: 50/200 completed, best {best}"
    assert fitted.subject == f"[sagepush] iris: push {PUSH} not every job completed"


def test_job_rows_left_out_are_completed_jobs_first_never_the_best() -> None:
    jobs = [
        job(n, "Failed" if n in (2, 5) else "Completed", objective=None if n in (2, 5) else n / 10) for n in range(1, 7)
    ]
    alert = dataclasses.replace(summary(jobs, best=f"{PUSH}-1"), jobs_cut=3)

    document = documents(alert)

    assert [row["job_name"] for row in document["jobs"]] == [f"{PUSH}-1", f"{PUSH}-2", f"{PUSH}-5"]
    assert alert.text().startswith(f"sagepush push {PUSH} (project iris): 4 of 6 jobs completed; best {PUSH}-1 ")
    assert "… 3 more jobs cut" in alert.text()
