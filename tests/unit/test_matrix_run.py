"""How a `[strategy]` push runs: MatrixStateMachine's shape, the push's names, and its end (sagepush.pushes)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from sagepush import naming, pushes, strategy
from sagepush.alerts import MatrixJob
from sagepush.naming import NamingError
from sagepush_cli import template as sam
from tests.unit.ledger_fake import FakeLedger

ROOT = Path(__file__).resolve().parents[2]
ASL = json.loads((ROOT / "statemachine" / "matrix.asl.json").read_text())
STATES = ASL["States"]
ITERATION = STATES["Jobs"]["ItemProcessor"]["States"]
DIGEST = "ab" * 32
UPLOAD = "cd" * 32


def test_the_jobs_run_as_a_map_of_training_executions_named_after_each_job_at_most_max_parallel_at_once() -> None:
    jobs = STATES["Jobs"]
    assert ASL["StartAt"] == "Jobs" and jobs["Type"] == "Map"
    assert jobs["ItemsPath"] == "$.jobs" and jobs["MaxConcurrencyPath"] == "$.max_parallel"
    train = ITERATION["Train"]
    assert train["Resource"] == "arn:aws:states:::states:startExecution.sync:2"
    assert train["Parameters"] == {
        "StateMachineArn": "${TrainingStateMachineArn}",
        "Name.$": "$.job.job_name",
        "Input.$": "$.job",
    }


def test_a_job_that_does_not_complete_ends_the_push_only_when_it_is_fail_fast() -> None:
    [catch] = ITERATION["Train"]["Catch"]
    assert catch["ErrorEquals"] == ["States.ALL"] and catch["Next"] == "FailFast"
    [choice] = ITERATION["FailFast"]["Choices"]
    assert choice == {"Variable": "$.fail_fast", "BooleanEquals": True, "Next": "StopThePush"}
    assert ITERATION["StopThePush"]["Type"] == "Fail"
    assert ITERATION["FailFast"]["Default"] == "JobDidNotComplete" and ITERATION["JobDidNotComplete"]["End"]
    # The Map cut short goes to the summary that stops what still runs; a Map that ran through, to the plain one.
    assert STATES["Jobs"]["Catch"][0]["Next"] == "StopAndSummarize" and STATES["Jobs"]["Next"] == "Summarize"
    assert STATES["StopAndSummarize"]["Parameters"]["Payload"]["stop_running"] is True
    assert STATES["Summarize"]["Parameters"]["Payload"]["stop_running"] is False
    assert STATES["StopAndSummarize"]["Next"] == "NotEveryJobCompleted"


def test_the_push_succeeds_only_when_every_job_completed() -> None:
    [choice] = STATES["EveryJobCompleted?"]["Choices"]
    assert choice["Variable"] == "$.summary.all_completed" and choice["Next"] == "Trained"
    assert STATES["EveryJobCompleted?"]["Default"] == "NotEveryJobCompleted"
    assert STATES["NotEveryJobCompleted"]["Type"] == "Fail"


def test_every_placeholder_is_substituted_and_the_machine_may_do_what_it_names() -> None:
    template = sam.load(ROOT / "template.yaml")
    machine = template["Resources"]["MatrixStateMachine"]["Properties"]
    text = (ROOT / machine["DefinitionUri"]).read_text()
    placeholders = {match.split("}")[0] for match in text.split("${")[1:]}
    assert placeholders == set(machine["DefinitionSubstitutions"])
    policies = json.dumps(machine["Policies"])
    assert "StepFunctionsExecutionPolicy" in policies and "states:DescribeExecution" in policies
    assert "StepFunctionsGetEventsForStepFunctionsExecutionRule" in policies  # what .sync needs
    assert '"FunctionName": {"Ref": "NotifyFunction"}' in policies


def test_a_push_s_jobs_are_its_name_and_their_place_and_fit_sagemaker_s_63_characters() -> None:
    project = "a-very-long-project-name-that-goes-on-and-on-and-on"
    push = naming.push_name(project, DIGEST, UPLOAD)
    names = [naming.job_name(project, DIGEST, UPLOAD, matrix_job=n) for n in (1, 9, 10, 100)]

    assert names == [f"{push}-1", f"{push}-9", f"{push}-10", f"{push}-100"]
    assert all(len(name) <= 63 and naming.JOB_NAME_PATTERN.fullmatch(name) for name in names)
    assert naming.matrix_job_names(push, 3) == [f"{push}-1", f"{push}-2", f"{push}-3"]
    assert naming.push_name("iris", DIGEST, UPLOAD) == f"iris-{DIGEST[:8]}-{UPLOAD[:6]}"
    with pytest.raises(NamingError, match="beyond the 100 a push may start"):
        naming.job_name(project, DIGEST, UPLOAD, matrix_job=101)


def test_a_job_s_tags_and_errors_name_its_matrix_values() -> None:
    values = {"instance_type": "ml.m5.large", "hyperparameters.lr": 0.1, "use_spot_instances": True}

    assert strategy.job_tags("iris-ab-cd", values) == {
        "sagepush:push": "iris-ab-cd",
        "sagepush:matrix:instance_type": "ml.m5.large",
        "sagepush:matrix:hyperparameters.lr": "0.1",
        "sagepush:matrix:use_spot_instances": "true",
    }
    assert strategy.job_tags(None, {}) == {}
    assert strategy.job_source("sagepush.toml", 2, values) == (
        "sagepush.toml (matrix job 2: instance_type=ml.m5.large, hyperparameters.lr=0.1, use_spot_instances=true)"
    )


def job(name: str, status: str, objective: float | None) -> MatrixJob:
    return MatrixJob(job_name=name, matrix={}, status=status, objective=objective)


def test_the_best_job_is_the_completed_one_with_the_best_objective_the_first_on_a_tie() -> None:
    jobs = [
        job("a-1", "Completed", 0.90),
        job("a-2", "Failed", 0.99),  # failed jobs never win, whatever they reported
        job("a-3", "Completed", 0.95),
        job("a-4", "Completed", 0.95),
        job("a-5", "Completed", None),
    ]
    assert pushes.best_job(jobs, "Maximize") == "a-3"
    assert pushes.best_job(jobs, "Minimize") == "a-1"
    assert pushes.best_job([job("a-1", "Failed", 0.5)], "Maximize") is None


class Recorder:
    """SageMaker, Step Functions, SNS and S3 as far as a push's end uses them, recording what was asked."""

    def __init__(self, jobs: dict[str, str]) -> None:
        self.jobs = jobs  # job name -> TrainingJobStatus
        self.calls: list[tuple[str, Any]] = []
        self.tags: list[dict[str, str]] = []
        self.exceptions = SimpleNamespace(ClientError=ClientError, ExecutionDoesNotExist=LookupError)

    def describe_training_job(self, TrainingJobName: str) -> dict[str, Any]:
        if TrainingJobName not in self.jobs:
            raise ClientError({"Error": {"Code": "ValidationException", "Message": "Could not find"}}, "Describe")
        start = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
        status = self.jobs[TrainingJobName]
        return {
            "TrainingJobName": TrainingJobName,
            "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{TrainingJobName}",
            "TrainingJobStatus": status,
            "SecondaryStatus": status,
            "CreationTime": start,
            "TrainingStartTime": start,
            "TrainingEndTime": datetime(2026, 12, 6, 10, 2, tzinfo=UTC),
            "LastModifiedTime": datetime(2026, 12, 6, 10, 2, tzinfo=UTC),
            "BillableTimeInSeconds": 120,
            "FinalMetricDataList": [{"MetricName": "validation:accuracy", "Value": int(TrainingJobName[-1]) / 10}],
        }

    def stop_training_job(self, TrainingJobName: str) -> None:
        self.calls.append(("stop_training_job", TrainingJobName))

    def stop_execution(self, **kwargs: Any) -> None:
        self.calls.append(("stop_execution", kwargs["executionArn"]))

    def publish(self, **kwargs: Any) -> dict[str, str]:
        self.calls.append(("publish", json.loads(json.loads(kwargs["Message"])["sqs"])))
        return {"MessageId": f"m-{len(self.calls)}"}

    def get_object_tagging(self, **kwargs: Any) -> dict[str, Any]:
        return {"TagSet": [{"Key": "sagepush-push", "Value": "iris-x"}]}

    def put_object_tagging(self, **kwargs: Any) -> None:
        self.tags.append({tag["Key"]: tag["Value"] for tag in kwargs["Tagging"]["TagSet"]})


def document(count: int) -> pushes.PushDocument:
    return pushes.push_document(
        {
            "push": "iris-x",
            "project": "iris",
            "code_uri": "s3://artifacts/code/iris/x/sourcedir.tar.gz",
            "source": {"commit": "9fceb02"},
            "objective_metric_name": "validation:accuracy",
            "objective_type": "Maximize",
            "upload": {"bucket": "ingest", "key": "incoming/iris/x.tar.gz", "version_id": "v1"},
            "jobs": [
                {"job_name": f"iris-x-{n}", "matrix": {"push": "iris-x", "values": {"hyperparameters.lr": n}}}
                for n in range(1, count + 1)
            ],
        }
    )


def summarize(aws: Recorder, ledger: FakeLedger, *, count: int = 3, stop_running: bool = False) -> dict[str, Any]:
    return pushes.summarize(
        document(count),
        region="us-east-1",
        topic_arn="arn:aws:sns:us-east-1:123456789012:alerts",
        execution_arn="arn:aws:states:us-east-1:123456789012:execution:matrix:iris-x",
        time="2026-12-06T10:03:00Z",
        stop_running=stop_running,
        training_state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:training",
        sagemaker=aws,  # type: ignore[arg-type]
        sfn=aws,  # type: ignore[arg-type]
        sns=aws,  # type: ignore[arg-type]
        s3=aws,  # type: ignore[arg-type]
        ledger=ledger,
    )


def submitted(ledger: FakeLedger, name: str) -> None:
    from sagepush.ledger import Submission

    ledger.record_submission(
        Submission(job_name=name, project="iris", code_uri="s3://x", code_digest=DIGEST, source={}, task_token="t"),
        now_ms=1,
    )


def test_the_summary_is_sent_once_with_every_job_and_the_best_and_the_upload_is_tagged_after_it() -> None:
    aws = Recorder({"iris-x-1": "Completed", "iris-x-2": "Failed", "iris-x-3": "Completed"})
    ledger = FakeLedger()
    submitted(ledger, "iris-x-1")

    first = summarize(aws, ledger)
    again = summarize(aws, ledger)  # a retried task

    assert first["alert"] == "published" and again["alert"] == "duplicate"
    assert first["all_completed"] is False and first["completed"] == 2 and first["best"] == "iris-x-3"
    [published] = [call[1] for call in aws.calls if call[0] == "publish"]
    assert published["kind"] == "push-summary" and published["best"] == "iris-x-3"
    assert [row["status"] for row in published["jobs"]] == ["Completed", "Failed", "Completed"]
    assert published["jobs"][0]["duration_seconds"] == 120 and published["jobs"][2]["objective"] == 0.3
    assert aws.tags[0]["sagepush-push-ended"] == "2/3" and aws.tags[0]["sagepush-push"] == "iris-x"


def test_a_job_sagemaker_never_created_is_in_the_summary_as_not_created() -> None:
    aws = Recorder({"iris-x-1": "Completed"})
    ledger = FakeLedger()
    submitted(ledger, "iris-x-1")

    outcome = summarize(aws, ledger, count=2)

    [published] = [call[1] for call in aws.calls if call[0] == "publish"]
    assert [row["status"] for row in published["jobs"]] == ["Completed", pushes.NOT_CREATED]
    assert outcome["all_completed"] is False


def test_a_fail_fast_push_stops_the_executions_first_then_the_jobs_still_running() -> None:
    aws = Recorder({"iris-x-1": "Failed", "iris-x-2": "InProgress", "iris-x-3": "Completed"})
    ledger = FakeLedger()
    submitted(ledger, "iris-x-1")

    summarize(aws, ledger, stop_running=True)

    stops = [call for call in aws.calls if call[0].startswith("stop_")]
    assert [call[0] for call in stops] == ["stop_execution"] * 3 + ["stop_training_job"]
    assert stops[0][1] == "arn:aws:states:us-east-1:123456789012:execution:training:iris-x-1"
    assert stops[-1][1] == "iris-x-2"


def test_the_sample_summary_event_is_what_matrix_state_machine_sends_notify_function() -> None:
    event = json.loads((ROOT / "events" / "notify-push-summary.json").read_text())
    payload = STATES["Summarize"]["Parameters"]["Payload"]
    assert {key.removesuffix(".$") for key in payload} == set(event)

    read = pushes.push_document(event["push"])

    assert read.push == "iris-matrix-3f5c0f2a-6b1e9d" and read.objective_metric_name == "validation:accuracy"
    assert [name for name, _ in read.jobs] == [f"{read.push}-{n}" for n in range(1, 5)]
    assert read.jobs[3][1] == {"hyperparameters.n_estimators": 50, "hyperparameters.max_depth": 4}
    assert read.upload is not None and read.upload["key"].startswith("incoming/iris-matrix/")


@pytest.mark.parametrize(
    ("document", "path"),
    [({"project": "iris", "jobs": []}, "$.push"), ({"push": "p", "project": "iris", "jobs": [{}]}, "$.jobs[0]")],
)
def test_a_malformed_push_document_is_refused_naming_the_path(document: dict[str, Any], path: str) -> None:
    with pytest.raises(ValueError, match=re.escape(path)):
        pushes.push_document(document)


def test_no_deployment_allows_more_jobs_per_push_than_a_push_can_name() -> None:
    parameter = sam.load(ROOT / "template.yaml")["Parameters"]["PolicyMaxJobsPerPush"]
    assert parameter["MaxValue"] == naming.MAX_MATRIX_JOBS


def test_the_best_job_of_a_push_is_registered_after_the_summary_names_it() -> None:
    assert STATES["Summarize"]["Next"] == "Register" and STATES["Register"]["Next"] == "EveryJobCompleted?"
    payload = STATES["Register"]["Parameters"]["Payload"]
    assert payload == {"register_push.$": "$$.Execution.Input", "best.$": "$.summary.summary.best"}
    # A push stopped by fail_fast registers nothing.
    assert STATES["StopAndSummarize"]["Next"] == "NotEveryJobCompleted"
    assert STATES["Register"]["Catch"][0]["Next"] == "RegisterFailed"
