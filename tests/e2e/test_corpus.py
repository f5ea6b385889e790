"""The corpus (tests/corpus/): script-mode projects written by others for SageMaker, each pushed unchanged to the
local stack as a person would push it, and trained to Completed.

Each project is laid out from its upstream files (byte for byte, checked by SHA-256) and its sagepush.toml, committed
to a git repository, its channel data uploaded under the artifact bucket's data/<project>/, and `sagepush push
--wait` run with the manifest's channels pointed at that bucket. The job must complete and its model.tar.gz hold
what the script saves. A failure shows the job's FailureReason and its log tail. A project marked `fails` needs what
no environment but its image has (the image's own library): it must fail with that reason, its log naming the gap.

The PyTorch projects are marked `corpus_slow` (their environment holds torch, a multi-GB CUDA build from PyPI):
`make test` leaves them out, `make corpus` runs the whole corpus. Without the upstream files (no cache, no
$SAGEPUSH_CORPUS_GIT, no GitHub) a project is skipped saying so, or fails under $SAGEPUSH_CORPUS_REQUIRED=1.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from typing import TYPE_CHECKING, Any

import pytest
from typer.testing import CliRunner

from sagepush import aws
from sagepush_cli import follow
from sagepush_cli.main import app
from tests.corpus import data, projects, upstream
from tests.gitrepo import commit_all, git, isolate

if TYPE_CHECKING:
    from pathlib import Path

    from sagepush_cli.local.stack import LocalStack

REQUIRED_ENV = "SAGEPUSH_CORPUS_REQUIRED"
SLOW_TIMEOUT_SECONDS = 3600
"""A slow project's first run builds an environment holding torch."""
LOG_LINES = 40


def _param(project: projects.Project) -> Any:
    marks = [pytest.mark.corpus_slow, pytest.mark.timeout(SLOW_TIMEOUT_SECONDS)] if project.slow else []
    return pytest.param(project, id=project.name, marks=marks)


@pytest.fixture
def repository(project: projects.Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The project laid out and committed in a git repository of its own; skipped (failed under
    $SAGEPUSH_CORPUS_REQUIRED) when its upstream files cannot be had."""
    isolate(monkeypatch, tmp_path)
    monkeypatch.chdir(tmp_path)  # no samconfig.toml: the options name the stack
    try:
        root = projects.lay_out(project, tmp_path / project.name)
        data.make(project.data)  # its upstream data files too, before the push
    except upstream.UnavailableError as exc:
        if os.environ.get(REQUIRED_ENV):
            pytest.fail(str(exc))
        pytest.skip(f"upstream files unavailable ({REQUIRED_ENV}=1 fails instead): {exc}")
    commit_all(root, f"{project.repository}@{project.commit[:12]}:{project.root}")
    git(root, "remote", "add", "origin", f"https://github.com/{project.repository}.git")
    return root


def upload_data(stack: LocalStack, project: projects.Project) -> dict[str, str]:
    """Upload the project's channel data; return the --set values that point its channels at it."""
    bucket = stack.outputs["ArtifactBucketName"]
    s3 = aws.new_client("s3")
    for key, body in data.make(project.data).items():
        s3.put_object(Bucket=bucket, Key=f"data/{project.name}/{key}", Body=body)
    placeholder = f"s3://{projects.PLACEHOLDER_BUCKET}/"
    channels: dict[str, str] = project.manifest.get("channels", {})
    for name, uri in channels.items():
        assert uri.startswith(f"{placeholder}data/{project.name}/"), f"{project.name}: channel {name}: {uri}"
    return {f"channels.{name}": uri.replace(placeholder, f"s3://{bucket}/", 1) for name, uri in channels.items()}


def model_members(uri: str) -> set[str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    body = aws.new_client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
        return {member.name.removeprefix("./") for member in archive.getmembers() if member.isfile()}


def explain(project: projects.Project, document: dict[str, Any]) -> str:
    """What a failed job said: its status, FailureReason and the last lines of its log."""
    job = document.get("job") or {}
    name = job.get("job_name")
    tail = follow.log_tail(aws.new_client("logs"), name, LOG_LINES) if name else document.get("log_tail", [])
    return (
        f"{project.name} ({project.repository} {project.root}): job {name} {job.get('status')}\n"
        f"FailureReason: {job.get('failure_reason')}\n"
        f"log tail:\n" + "\n".join(f"  {line}" for line in tail)
    )


@pytest.mark.parametrize("project", [_param(p) for p in projects.load()])
def test_an_upstream_project_trains_unchanged(stack: LocalStack, project: projects.Project, repository: Path) -> None:
    settings = upload_data(stack, project)

    arguments = ["push", str(repository), "--project", project.name, "--stack", stack.stack_name, "--new"]
    for key, value in settings.items():
        arguments += ["--set", f"{key}={json.dumps(value)}"]
    result = CliRunner().invoke(app, [*arguments, "--wait", "--json", "--poll-seconds", "0.5"])

    # Refused before a job exists (by push's checks, or by staging): no JSON, the reason on stderr.
    assert result.stdout.strip(), f"{project.name}: push exited {result.exit_code} without a job:\n{result.output}"
    document = json.loads(result.stdout)
    job = document.get("job") or {}
    if project.fails is not None:
        assert job.get("status") == "Failed", explain(project, document)
        assert project.fails in job.get("failure_reason", ""), explain(project, document)
        lines = follow.log_tail(aws.new_client("logs"), job["job_name"], 10_000)
        assert any("(the image's own library, on no package index)" in line for line in lines), explain(
            project, document
        )
        return
    assert job.get("status") == "Completed", explain(project, document)
    assert result.exit_code == 0, result.output
    model = job["model_uri"]
    assert model is not None and model.endswith(f"/{job['job_name']}/output/model.tar.gz")
    members = model_members(model)
    assert set(project.model) <= members, f"{project.name}: model.tar.gz holds {sorted(members)}"
    if project.log:
        lines = follow.log_tail(aws.new_client("logs"), job["job_name"], 10_000)
        assert any(line.strip() == project.log for line in lines), explain(project, document)
