"""`sagepush push` against the local stack: a git commit becomes an upload, then a staged job; bad targets upload nothing."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from typer.testing import CliRunner

from sagepush_cli.main import EXIT_INPUT, app
from tests.gitrepo import commit_all, git, isolate

if TYPE_CHECKING:
    from pathlib import Path

    from sagepush_cli.local.stack import LocalStack

MANIFEST = 'framework = "pytorch"\nframework_version = "2.5"\npy_version = "py311"\nentry_point = "train.py"\n'


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    isolate(monkeypatch, tmp_path)
    monkeypatch.chdir(tmp_path)  # no samconfig.toml here: only the options name the target
    root = tmp_path / "mnist"
    root.mkdir()
    (root / "train.py").write_text("print('training')\n")
    (root / "sagepush.toml").write_text(MANIFEST)
    commit_all(root)
    return root


def sagepush(*args: str) -> Any:
    return CliRunner().invoke(app, ["push", *args])


def ingest_keys(stack: LocalStack, s3: Any) -> list[str]:
    listed = s3.list_objects_v2(Bucket=stack.outputs["IngestBucketName"])
    return [item["Key"] for item in listed.get("Contents", [])]


def one_line_error(result: Any) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in result.output
    line: str = lines[0]
    return line


@pytest.mark.usefixtures("instant_jobs")  # the job is not trained: its PyTorch image's packages are gigabytes
def test_push_uploads_the_commit_and_staging_starts_its_job(stack: LocalStack, s3: Any, sfn: Any, repo: Path) -> None:
    commit = git(repo, "rev-parse", "HEAD")

    result = sagepush(str(repo), "--stack", stack.stack_name, "--set", "hyperparameters.epochs=3", "--json")
    stack.drain()

    assert result.exit_code == 0, result.output
    pushed = json.loads(result.stdout)
    assert pushed["key"] == f"incoming/mnist/{commit}.tar.gz"
    head = s3.head_object(Bucket=stack.outputs["IngestBucketName"], Key=pushed["key"])
    assert head["Metadata"]["sagepush-commit"] == commit
    assert head["Metadata"]["sagepush-branch"] == "main"
    [execution] = sfn.list_executions(stateMachineArn=stack.outputs["TrainingStateMachineArn"])["executions"]
    assert execution["name"].startswith(pushed["job_name_prefix"])
    document = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])
    assert document["source"]["commit"] == commit
    assert document["spec"]["hyperparameters"] == {"epochs": 3}


@pytest.mark.usefixtures("instant_jobs")  # the job is not trained: its PyTorch image's packages are gigabytes
def test_push_prints_the_upload_and_the_job_name_it_becomes(stack: LocalStack, repo: Path) -> None:
    result = sagepush(str(repo), "--bucket", stack.outputs["IngestBucketName"])

    assert result.exit_code == 0, result.output
    uploaded, job = result.stdout.strip().splitlines()
    assert uploaded.startswith(f"pushed s3://{stack.outputs['IngestBucketName']}/incoming/mnist/")
    assert job.startswith("job mnist-") and job.endswith("-…")


@pytest.mark.usefixtures("instant_jobs")  # the job is not trained: its PyTorch image's packages are gigabytes
def test_pushing_a_commit_again_attaches_to_its_job_and_new_starts_another(
    stack: LocalStack, s3: Any, sfn: Any, repo: Path
) -> None:
    bucket = stack.outputs["IngestBucketName"]
    machine = stack.outputs["TrainingStateMachineArn"]
    first = json.loads(sagepush(str(repo), "--stack", stack.stack_name, "--json").stdout)
    stack.drain()
    [execution] = sfn.list_executions(stateMachineArn=machine)["executions"]

    # The same commit and code again (a retried workflow, a push --wait interrupted and run again): no upload.
    again = sagepush(str(repo), "--stack", stack.stack_name)
    stack.drain()

    assert again.exit_code == 0, again.output
    assert again.stdout.splitlines() == [
        f"already pushed s3://{bucket}/{first['key']} (commit {git(repo, 'rev-parse', 'HEAD')[:12]}, same code): "
        "not uploaded again",
        f"job {execution['name']}",
    ]
    assert len(s3.list_object_versions(Bucket=bucket, Prefix=first["key"])["Versions"]) == 1
    # Another manifest for the same commit is another job.
    other = json.loads(sagepush(str(repo), "--stack", stack.stack_name, "--set", "max_run=3h", "--json").stdout)
    assert other["attached"] is None and other["digest"] != first["digest"]
    # --new uploads the same code again, and it becomes a second job.
    forced = json.loads(sagepush(str(repo), "--stack", stack.stack_name, "--new", "--json").stdout)
    stack.drain()

    assert forced["attached"] is None
    assert len(s3.list_object_versions(Bucket=bucket, Prefix=first["key"])["Versions"]) == 3
    assert len(sfn.list_executions(stateMachineArn=machine)["executions"]) == 3


@pytest.mark.usefixtures("instant_jobs")  # the job is not trained: its PyTorch image's packages are gigabytes
def test_large_files_in_the_code_are_named_with_how_to_leave_them_out(stack: LocalStack, repo: Path) -> None:
    import inspect

    from sagepush_cli import main, push

    (repo / "data").mkdir()
    (repo / "data" / "train.csv").write_text("1,2,3\n" * 500_000)  # 3 MB
    (repo / "vocab.txt").write_text("word\n" * 250_000)  # 1.25 MB
    commit_all(repo, "data")

    result = sagepush(str(repo), "--stack", stack.stack_name, "--large-file-mb", "2", "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["large_files"] == [{"path": "data/train.csv", "bytes": 3_000_000}]
    [warning] = result.stderr.splitlines()
    assert warning.startswith("warning: data/train.csv is 3 MB and ships with the code to every job")
    assert "'data/train.csv' in .sagepushignore" in warning
    assert inspect.signature(main.push).parameters["large_file_mb"].default == push.LARGE_FILE_MB


def test_missing_bucket_is_one_line_and_uploads_nothing(stack: LocalStack, s3: Any, repo: Path) -> None:
    result = sagepush(str(repo), "--bucket", "sagepush-no-such-bucket")

    assert result.exit_code == EXIT_INPUT
    assert "bucket 'sagepush-no-such-bucket' does not exist" in one_line_error(result)
    assert ingest_keys(stack, s3) == []


def test_unknown_stack_is_one_line_and_uploads_nothing(stack: LocalStack, s3: Any, repo: Path) -> None:
    result = sagepush(str(repo), "--stack", "no-such-stack")

    assert result.exit_code == EXIT_INPUT
    assert "--stack: stack 'no-such-stack' is not in us-east-1" in one_line_error(result)
    assert ingest_keys(stack, s3) == []


def test_dirty_tree_and_secret_are_refused_before_any_upload(stack: LocalStack, s3: Any, repo: Path) -> None:
    bucket = stack.outputs["IngestBucketName"]
    (repo / "train.py").write_text("print('changed')\n")
    dirty = sagepush(str(repo), "--bucket", bucket)
    git(repo, "checkout", "--", "train.py")
    (repo / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    git(repo, "add", "id_rsa")
    git(repo, "commit", "-q", "-m", "key")
    secret = sagepush(str(repo), "--bucket", bucket)

    assert dirty.exit_code == EXIT_INPUT and "uncommitted changes" in one_line_error(dirty)
    assert secret.exit_code == EXIT_INPUT and "id_rsa: looks like a secret" in one_line_error(secret)
    assert ingest_keys(stack, s3) == []


def test_a_job_running_its_images_entrypoint_is_refused_for_the_local_stack_before_upload(
    stack: LocalStack, s3: Any, repo: Path
) -> None:
    import boto3

    from sagepush_cli import push as pushing
    from sagepush_cli.push import PushError

    (repo / "sagepush.toml").write_text(
        'image_uri = "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-trainer:1"\ninstance_type = "ml.m5.large"\n'
    )
    (repo / "train.py").unlink()
    commit_all(repo)

    with pytest.raises(PushError) as refused:
        pushing.push(repo, session=boto3.Session(), stack=stack.stack_name, local=True)

    assert refused.value.where == "--local"
    assert refused.value.message.startswith("the local stack runs scripts, not images: this job runs the entrypoint")
    assert ingest_keys(stack, s3) == []
    # The same push to AWS goes ahead: only the local stack cannot run it.
    pushed = pushing.push(repo, session=boto3.Session(), stack=stack.stack_name)
    assert ingest_keys(stack, s3) == [pushed.key]
