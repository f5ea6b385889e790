"""A `[strategy]` push on the local stack: one upload, a matrix of real training jobs, at most `max_parallel` at once,
each job's alerts with its values, and one summary alert naming the best job."""

from __future__ import annotations

import json
import re
import shutil
import time
from typing import TYPE_CHECKING, Any

import pytest
from typer.testing import CliRunner

from sagepush import aws
from sagepush_cli.local import demo
from sagepush_cli.main import EXIT_FAILED, app
from tests.e2e.conftest import EXAMPLES
from tests.gitrepo import commit_all, isolate

if TYPE_CHECKING:
    from pathlib import Path

    from sagepush_cli.local.stack import LocalStack


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository holding examples/sklearn-matrix (2 x 2 hyperparameters, max_parallel = 2), committed."""
    isolate(monkeypatch, tmp_path)
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "iris-matrix"
    shutil.copytree(EXAMPLES / "sklearn-matrix", root)
    commit_all(root, "matrix")
    return root


def push(*args: str) -> Any:
    return CliRunner().invoke(app, ["push", *args, "--wait", "--poll-seconds", "0.2"])


def most_at_once(jobs: list[dict[str, Any]]) -> int:
    """The most jobs that were under way at one time (from creation to their end)."""
    moments = sorted(
        [(job["CreationTime"], 1) for job in jobs] + [(job["LastModifiedTime"], -1) for job in jobs],
        key=lambda moment: (moment[0], moment[1]),  # an end before a start at the same instant
    )
    running = most = 0
    for _, step in moments:
        running += step
        most = max(most, running)
    return most


def test_a_matrix_push_trains_every_job_two_at_a_time_and_sends_one_summary(stack: LocalStack, repo: Path) -> None:
    queue = demo.subscribe_alerts(stack, name="matrix-alerts")

    result = push(str(repo), "--stack", stack.stack_name, "--json")

    assert result.exit_code == 0, result.output
    followed = json.loads(result.stdout)
    jobs = followed["jobs"]
    assert [job["status"] for job in jobs] == ["Completed"] * 4
    assert [job["matrix"] for job in jobs] == [
        {"hyperparameters.n_estimators": 10, "hyperparameters.max_depth": 2},
        {"hyperparameters.n_estimators": 10, "hyperparameters.max_depth": 4},
        {"hyperparameters.n_estimators": 50, "hyperparameters.max_depth": 2},
        {"hyperparameters.n_estimators": 50, "hyperparameters.max_depth": 4},
    ]
    best = max(jobs, key=lambda job: job["objective"])
    assert followed["best"] == best["job_name"]
    assert [job["job_name"] for job in jobs] == [f"{followed['push']}-{n}" for n in range(1, 5)]
    sagemaker = aws.new_client("sagemaker")
    described = [sagemaker.describe_training_job(TrainingJobName=job["job_name"]) for job in jobs]
    assert [d["HyperParameters"]["n_estimators"] for d in described] == ["10", "10", "50", "50"]
    assert most_at_once(described) <= 2
    tags = {t["Key"]: t["Value"] for t in sagemaker.list_tags(ResourceArn=described[3]["TrainingJobArn"])["Tags"]}
    assert tags["sagepush:push"] == followed["push"]
    assert tags["sagepush:matrix:hyperparameters.n_estimators"] == "50"

    stack.drain()
    alerts = [json.loads(alert["text"]) for alert in demo.receive_alerts(queue)]
    transitions = sorted((a["job_name"], a["status"]) for a in alerts if a["kind"] == "training-state")
    assert transitions == sorted(
        (job["job_name"], status) for job in jobs for status in ("Starting", "Training", "Completed")
    )
    assert all(a["push"] == followed["push"] and a["matrix"] for a in alerts if a["kind"] == "training-state")
    [summary] = [a for a in alerts if a["kind"] == "push-summary"]
    assert summary["status"] == "PushCompleted"
    assert summary["best"] == followed["best"]
    assert [job["job_name"] for job in summary["jobs"]] == [job["job_name"] for job in jobs]
    # `status` lists the push's jobs together, in matrix order, under the push.
    listed = CliRunner().invoke(app, ["status", "--stack", stack.stack_name, "--json"])
    assert listed.exit_code == 0, listed.output
    rows = [row for row in json.loads(listed.stdout) if row["push"] == followed["push"]]
    assert [row["job_name"] for row in rows] == [job["job_name"] for job in jobs]
    table = CliRunner().invoke(app, ["status", "--stack", stack.stack_name], env={"COLUMNS": "160"}).stdout
    assert re.search(rf"push {followed['push']}\s+4 jobs: 4 Completed", table), table
    # The best job's model, and no other, is registered ([model] without register = "all"), after the summary.
    [version] = registered(stack, "iris-matrix")
    assert version["CustomerMetadataProperties"]["sagepush:job"] == followed["best"]
    assert version["ModelApprovalStatus"] == ("Approved" if best["objective"] >= 0.9 else "PendingManualApproval")


def registered(stack: LocalStack, group: str, deadline_seconds: float = 60) -> list[dict[str, Any]]:
    """The versions of `group`, once MatrixStateMachine's Register step has run (it follows the summary)."""
    sagemaker = aws.new_client("sagemaker")
    machine = stack.outputs["MatrixStateMachineArn"]
    deadline = time.monotonic() + deadline_seconds
    while True:
        stack.drain()
        executions = aws.new_client("stepfunctions").list_executions(stateMachineArn=machine)["executions"]
        if all(e["status"] != "RUNNING" for e in executions) or time.monotonic() > deadline:
            break
        time.sleep(0.1)  # the push's execution registers its best job after the summary, then ends
    listed = sagemaker.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]
    return [dict(sagemaker.describe_model_package(ModelPackageName=p["ModelPackageArn"])) for p in listed]


def best_value(followed: dict[str, Any]) -> float:
    value: float = next(job["objective"] for job in followed["jobs"] if job["job_name"] == followed["best"])
    return value


def test_the_same_upload_delivered_again_starts_nothing_new(stack: LocalStack, repo: Path) -> None:
    first = push(str(repo), "--stack", stack.stack_name, "--json")
    assert first.exit_code == 0, first.output
    pushed = json.loads(first.stdout)
    s3, sfn = aws.new_client("s3"), aws.new_client("stepfunctions")
    head = s3.head_object(Bucket=pushed["bucket"], Key=pushed["key"])
    event = json.loads((EXAMPLES.parent / "events" / "stage-object-created.json").read_text())
    event["detail"]["bucket"]["name"] = pushed["bucket"]
    event["detail"]["object"].update(
        key=pushed["key"], size=head["ContentLength"], etag=head["ETag"].strip('"'), **{"version-id": head["VersionId"]}
    )

    again = stack.invoke("StageFunction", event)
    stack.drain()

    assert again["job_name"] == pushed["push"] and again["already_started"]

    def of_push(machine: str) -> list[str]:
        listed = sfn.list_executions(stateMachineArn=stack.outputs[machine])["executions"]
        return [execution["name"] for execution in listed if execution["name"].startswith(pushed["push"])]

    def jobs_of_push() -> list[str]:
        listed = aws.new_client("sagemaker").list_training_jobs(NameContains=pushed["push"])["TrainingJobSummaries"]
        return sorted(job["TrainingJobName"] for job in listed)

    assert of_push("MatrixStateMachineArn") == [pushed["push"]]
    assert sorted(of_push("TrainingStateMachineArn")) == [f"{pushed['push']}-{n}" for n in range(1, 5)]
    assert jobs_of_push() == [f"{pushed['push']}-{n}" for n in range(1, 5)]
    # Pushed again, the commit attaches to its push and follows it: still four jobs, shown as a table.
    attached = push(str(repo), "--stack", stack.stack_name)
    assert attached.exit_code == 0, attached.output
    lines = attached.stdout.splitlines()
    assert lines[0].startswith("already pushed ") and lines[1] == f"push {pushed['push']}: 4 jobs"
    completed = [line for line in lines if re.match(r"  \d\d:\d\d:\d\d  \S+-\d\s+Completed\b", line)]
    assert len(completed) == 4, attached.stdout
    assert lines[-2] == f"push {pushed['push']}: 4 of 4 jobs completed"
    assert lines[-1] == f"best {pushed['best']} (validation:accuracy = {best_value(pushed):g})"
    assert jobs_of_push() == [f"{pushed['push']}-{n}" for n in range(1, 5)]


def test_a_failing_job_of_a_fail_fast_push_stops_the_push(stack: LocalStack, repo: Path) -> None:
    manifest = repo / "sagepush.toml"
    text = (
        manifest.read_text()
        .replace("fail_fast = false", "fail_fast = true")
        .replace("max_parallel = 2", "max_parallel = 1")
    )
    manifest.write_text(text)
    (repo / "train.py").write_text(
        "import argparse, sys\n"
        "parser = argparse.ArgumentParser()\n"
        "parser.add_argument('--n_estimators', type=int)\nparser.add_argument('--max_depth', type=int)\n"
        "args, _ = parser.parse_known_args()\n"
        "sys.exit('no such estimator count' if args.n_estimators == 10 else 0)\n"
    )
    commit_all(repo, "fail fast")
    queue = demo.subscribe_alerts(stack, name="fail-fast-alerts")

    result = push(str(repo), "--stack", stack.stack_name, "--json")

    assert result.exit_code == EXIT_FAILED, result.output
    jobs = json.loads(result.stdout)["jobs"]
    assert jobs[0]["status"] == "Failed"
    assert all(job["status"] == "NotCreated" for job in jobs[1:]), jobs  # one at a time: none started after it
    stack.drain()
    [summary] = [
        a for a in map(json.loads, (a["text"] for a in demo.receive_alerts(queue))) if a["kind"] == "push-summary"
    ]
    assert summary["status"] == "PushFailed" and summary["best"] is None
