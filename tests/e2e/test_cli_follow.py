"""The commands a person uses after a push, against the local stack: `push --wait`, `status`, `logs`, `stop`."""

from __future__ import annotations

import json
import shutil
from typing import TYPE_CHECKING, Any

import pytest
from typer.testing import CliRunner

from sagepush_cli.local import demo
from sagepush_cli.main import EXIT_FAILED, EXIT_INPUT, app
from tests.e2e.conftest import EXAMPLES
from tests.gitrepo import commit_all, git, isolate

if TYPE_CHECKING:
    from pathlib import Path

    from sagepush_cli.local.stack import LocalStack


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository holding the iris example, committed once."""
    isolate(monkeypatch, tmp_path)
    monkeypatch.chdir(tmp_path)  # no samconfig.toml: the options name the stack
    root = tmp_path / "iris-push"
    shutil.copytree(EXAMPLES / "sklearn-iris", root)
    commit_all(root, "iris")
    git(root, "remote", "add", "origin", "https://github.com/acme/iris-push.git")
    return root


def sagepush(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_push_wait_follows_the_job_to_completion_and_the_alert_names_the_commit(stack: LocalStack, repo: Path) -> None:
    queue = demo.subscribe_alerts(stack, name="push-wait-alerts")
    commit = git(repo, "rev-parse", "HEAD")

    result = sagepush("push", str(repo), "--stack", stack.stack_name, "--wait", "--poll-seconds", "0.2")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    job = next(line.removeprefix("job ") for line in lines if line.startswith("job "))
    assert job.startswith("iris-push-")
    transitions = lines[lines.index(f"job {job}") + 1 : lines.index("Log tail")]
    shown = [line.split()[1] for line in transitions]
    assert shown == ["Starting", "Downloading", "Training", "Uploading", "Completed"]
    assert any(line.strip().startswith("validation accuracy=") for line in lines)
    # Output goes under the project's own prefix (the job policy pins it there).
    bucket = stack.outputs["ArtifactBucketName"]
    assert f"model  s3://{bucket}/output/iris-push/{job}/output/model.tar.gz" in lines
    assert lines[-1] == f"{job} Completed (Completed)"
    stack.drain()
    alerts = demo.receive_alerts(queue)
    completed = [json.loads(a["text"]) for a in alerts if json.loads(a["text"])["status"] == "Completed"]
    assert len(completed) == 1
    assert commit in json.dumps(completed[0])

    # What the person then asks about the job, as JSON for scripts and as text.
    detail = json.loads(sagepush("status", job, "--stack", stack.stack_name, "--json").stdout)
    assert detail["status"] == "Completed" and detail["commit"] == commit and detail["project"] == "iris-push"
    assert [t["status"] for t in detail["job"]["transitions"]][-1] == "Completed"
    assert detail["job"]["metrics"]["validation:accuracy"] > 0.8
    table = sagepush("status", "--project", "iris-push", "--stack", stack.stack_name)
    assert table.exit_code == 0 and job in table.stdout and commit[:12] in table.stdout
    logs = sagepush("logs", job, "--lines", "0")
    assert logs.exit_code == 0 and any(line.startswith("validation accuracy=") for line in logs.stdout.splitlines())
    assert sagepush("logs", job, "--follow", "--lines", "1").exit_code == 0  # it completed
    stopped = sagepush("stop", job)
    assert stopped.exit_code == EXIT_FAILED and f"{job} has already ended (Completed)" in stopped.stderr


def test_push_wait_exits_non_zero_with_the_failure_reason_when_the_job_fails(stack: LocalStack, repo: Path) -> None:
    shutil.rmtree(repo / ".git")
    shutil.copytree(EXAMPLES / "failing", repo, dirs_exist_ok=True)

    result = sagepush(
        "push",
        str(repo),
        "--project",
        "fails",
        "--stack",
        stack.stack_name,
        "--wait",
        "--json",
        "--poll-seconds",
        "0.2",
    )

    assert result.exit_code == EXIT_FAILED
    document = json.loads(result.stdout)
    assert document["job"]["status"] == "Failed"
    assert "NotEnoughDataError" in document["job"]["failure_reason"]
    assert any("NotEnoughDataError" in line for line in document["log_tail"])
    # Following its log ends the same way: non-zero, with the reason.
    followed = sagepush("logs", document["job"]["job_name"], "--follow", "--lines", "1", "--poll-seconds", "0.2")
    assert followed.exit_code == EXIT_FAILED
    assert followed.stderr.startswith(f"{document['job']['job_name']} Failed: AlgorithmError: ExecuteUserScriptError")


def test_commands_name_a_missing_job_in_one_line(stack: LocalStack, repo: Path) -> None:
    for command in (["status", "nope-1"], ["logs", "nope-1"], ["stop", "nope-1"]):
        result = sagepush(*command, "--stack", stack.stack_name) if command[0] == "status" else sagepush(*command)
        assert result.exit_code == EXIT_INPUT, (command, result.output)
        assert result.stderr.strip().splitlines() == [result.stderr.strip()]
        assert "no job named 'nope-1'" in result.stderr or "no training job named 'nope-1'" in result.stderr
