"""The reconciler gets round to every silent job, however many more there are than one run checks, and closes it."""

from __future__ import annotations

import functools
import json
import math
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from botocore.stub import Stubber

from sagepush.config import ReconcileSettings
from sagepush.events import training_state_change
from sagepush.ledger import Submission
from sagepush.status import reconcile
from tests.unit.ledger_fake import FakeLedger

if TYPE_CHECKING:
    from collections.abc import Iterator

EVENTS = Path(__file__).resolve().parents[2] / "events"
NOW = 1735727600000
RUN_EVERY_MS = 5 * 60_000  # the template's schedule
TRAINING = json.loads((EVENTS / "status-training.json").read_text())


class SageMaker:
    """A real SageMaker client whose DescribeTrainingJob answers, for any job, that it is still Training.

    The answer is the state the ledger already holds for the job, so handling it records nothing new: only the
    reconciler's own bookkeeping can move a job along its queue.
    """

    def __init__(self) -> None:
        self.client = boto3.client(
            "sagemaker", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
        )
        self.described: list[str] = []
        self.client.meta.events.register("before-parameter-build.sagemaker.DescribeTrainingJob", self._note)
        self.client.meta.events.register("before-call.sagemaker.DescribeTrainingJob", self._answer)

    def _note(self, params: dict[str, Any], **_: Any) -> None:
        self.described.append(params["TrainingJobName"])

    def _answer(self, **_: Any) -> Any:
        """Answer as botocore's Stubber does: (the HTTP response, the parsed answer), and nothing is sent."""
        name = self.described[-1]
        detail = {k: v for k, v in TRAINING["detail"].items() if k != "Tags"}
        for key in ("CreationTime", "LastModifiedTime", "TrainingStartTime"):
            detail[key] = datetime.fromtimestamp(detail[key] / 1000, UTC)
        detail["SecondaryStatusTransitions"] = []
        return AWSResponse("https://sagemaker", 200, HTTPHeaders(), None), {**detail, "TrainingJobName": name}


def reconcile_settings(*, grace_seconds: int, max_jobs: int) -> ReconcileSettings:
    return ReconcileSettings(
        aws_region="us-east-1",
        ledger_table="ledger",
        alerts_topic_arn="arn:aws:sns:us-east-1:123456789012:alerts",
        alert_on=frozenset(),  # no alert: these tests are about which jobs get checked
        reconcile_grace_seconds=grace_seconds,
        reconcile_max_jobs=max_jobs,
    )


@pytest.fixture
def quiet_clients() -> Iterator[dict[str, Any]]:
    """SNS, Step Functions and Logs clients that answer nothing: no alert, settle or log read is expected."""
    kwargs: dict[str, Any] = {
        "region_name": "us-east-1",
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
    }
    clients = {
        "sns": boto3.client("sns", **kwargs),
        "sfn": boto3.client("stepfunctions", **kwargs),
        "logs": boto3.client("logs", **kwargs),
    }
    stubs = [Stubber(client) for client in clients.values()]
    for stub in stubs:
        stub.activate()
    yield clients
    for stub in stubs:
        stub.deactivate()


@pytest.mark.parametrize(
    ("jobs", "max_jobs"), [(7, 3), (10, 5), (4, 1), (6, 6)], ids=["7-by-3", "10-by-5", "4-by-1", "6-by-6"]
)
def test_consecutive_runs_move_on_until_every_silent_job_was_checked(
    quiet_clients: dict[str, Any], jobs: int, max_jobs: int
) -> None:
    # Given more silent running jobs than one run checks, each already recorded in the state SageMaker reports
    ledger = FakeLedger()
    names = [f"iris-3f5c0f2a-{index:06d}" for index in range(jobs)]
    training = training_state_change(TRAINING)
    for index, name in enumerate(names):
        ledger.record_submission(Submission(name, "iris", "s3://a/b", "3f5c"), now_ms=NOW - 7_200_000)
        ledger.record_state(replace(training, job_name=name), project="iris", now_ms=NOW - 3_600_000 + index)
    # The grace is shorter than the schedule: jobs checked by one run are silent again by the next.
    settings = reconcile_settings(grace_seconds=60, max_jobs=max_jobs)
    sagemaker = SageMaker()

    # When the scheduled reconciler runs as many times as it takes to cover them at `max_jobs` a run
    runs: list[list[str]] = []
    for number in range(math.ceil(jobs / max_jobs)):
        at = NOW + number * RUN_EVERY_MS
        before = len(sagemaker.described)
        report = reconcile(
            settings=settings,
            ledger=ledger,
            sagemaker=sagemaker.client,
            deadline_ms=at + 60_000,
            clock=functools.partial(int, at),
            **quiet_clients,
        )
        assert report.failed == () and not report.stopped_early
        assert [outcome.latest for outcome in report.outcomes] == [False] * report.checked
        runs.append(sagemaker.described[before:])

    # Then each run checked as many jobs no earlier run had as it could, and together they checked every one
    seen: set[str] = set()
    for run in runs:
        assert len(set(run) - seen) == min(max_jobs, jobs - len(seen)), runs
        seen |= set(run)
    assert seen == set(names)


def test_a_job_refused_for_good_on_a_retried_submit_is_still_closed(quiet_clients: dict[str, Any]) -> None:
    # Given a Submit attempt that SageMaker refused for good (recorded not created), then a retry of the task (Step
    # Functions lost the first answer: Lambda.ServiceException) with a new token, refused for good again
    ledger = FakeLedger()
    name = "iris-3f5c0f2a-6b1e9d"
    for token, at in (("token-1", NOW - 7_200_000), ("token-2", NOW - 7_100_000)):
        ledger.record_submission(Submission(name, "iris", "s3://a/b", "3f5c", {}, token), now_ms=at)
        ledger.mark_not_created(name, now_ms=at + 1_000)  # what submitting.submit_job does on a refusal for good
    sagemaker = boto3.client(
        "sagemaker", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    settings = reconcile_settings(grace_seconds=900, max_jobs=5)

    # When the reconciler finds it (AWS answers ValidationException "Could not find training job")
    with Stubber(sagemaker) as stub:
        stub.add_client_error("describe_training_job", "ValidationException", f"Could not find training job {name}")
        report = reconcile(
            settings=settings,
            ledger=ledger,
            sagemaker=sagemaker,
            deadline_ms=NOW + 60_000,
            clock=lambda: NOW,
            **quiet_clients,
        )

    # Then the job is closed, not left to fail every run
    assert report.failed == ()
    assert not ledger.entries[name].unsettled
