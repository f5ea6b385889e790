"""The whole loop on the local stack: an upload trains for real, alerts arrive, the execution ends as the job did."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import time
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from sagepush_cli import main
from sagepush_cli.local import demo
from tests.e2e.conftest import EXAMPLES

if TYPE_CHECKING:
    from pathlib import Path

    from sagepush_cli.follow import JobView
    from sagepush_cli.local.stack import LocalStack


def model_files(uri: str) -> dict[str, bytes]:
    """The members of a model.tar.gz in the stack's S3, by name."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
        return {m.name: archive.extractfile(m).read() for m in archive.getmembers() if m.isfile()}  # type: ignore[union-attr]


def ended(result: demo.DemoResult) -> JobView:
    """The job's last view, as `follow.watch` saw it at its end."""
    assert result.job is not None
    assert result.job.finished
    return result.job


def alert_statuses(result: demo.DemoResult) -> list[str]:
    """The job status each of the job's alerts on the subscriber's queue reports, in arrival order."""
    assert result.alerts, "no alert reached the AlertsTopic subscriber"
    statuses = []
    for alert in result.alerts:
        assert result.job_name is not None
        document = json.loads(alert["text"])
        if document["kind"] in ("model-registered", "model-approval", "endpoint-state"):
            continue  # the model's own alerts ([model], [endpoint]): tests/e2e/test_hosting.py
        assert result.job_name in alert["subject"]
        statuses.append(document["status"])
    return statuses


def assert_each_alert_once(result: demo.DemoResult, final: str) -> None:
    statuses = alert_statuses(result)
    assert len(statuses) == len(set(statuses)), f"an alert arrived twice: {statuses}"
    assert final in statuses
    assert statuses[0] == "Starting"


def test_iris_trains_and_its_model_reaches_s3(stack: LocalStack, capsys: pytest.CaptureFixture[str]) -> None:
    result = demo.run(stack, EXAMPLES / "sklearn-iris")
    job = ended(result)

    assert (job.status, job.secondary_status) == ("Completed", "Completed")
    assert [t[0] for t in job.transitions] == ["Starting", "Downloading", "Training", "Uploading", "Completed"]
    assert 0.8 < job.metrics["validation:accuracy"] <= 1.0
    assert job.model_uri is not None
    assert job.model_uri.endswith(f"/{result.job_name}/output/model.tar.gz")
    assert {"model.pkl", "metrics.json"} <= set(model_files(job.model_uri))
    assert any(line.startswith("validation accuracy=") for line in result.log_tail)
    assert result.execution_status == "SUCCEEDED"
    assert_each_alert_once(result, "Completed")
    # What `sagepush local demo` prints: the JSON document and the summary.
    document = json.loads(json.dumps(result.as_dict(), default=str))
    assert (document["job_name"], document["status"], document["completed"]) == (result.job_name, "Completed", True)
    assert [t["status"] for t in document["transitions"]][-1] == "Completed"
    main._print_demo(result)
    printed = capsys.readouterr().out
    assert f"{result.job_name}  Completed (Completed)" in printed
    assert "validation:accuracy = " in printed


def test_a_script_that_exits_without_a_traceback_fails_with_its_last_error_line(
    stack: LocalStack, tmp_path: Path
) -> None:
    # Given: a script whose argparse refuses a hyperparameter (exit 2, one line on stderr, no traceback).
    project = tmp_path / "argparse-refusal"
    project.mkdir()
    (project / "sagepush.toml").write_text(
        (EXAMPLES / "failing" / "sagepush.toml").read_text().replace("min_rows = 1000", 'epochs = "many"')
    )
    (project / "train.py").write_text(
        "import argparse\n"
        "parser = argparse.ArgumentParser()\n"
        "parser.add_argument('--epochs', type=int, required=True)\n"
        "print('parsing', parser.parse_args().epochs)\n"
    )

    result = demo.run(stack, project)
    job = ended(result)

    # Then: the reason names the script's own error, not the toolkit's wrapper line.
    assert job.failure_reason is not None
    refusal = "train.py: error: argument --epochs: invalid int value: 'many'"
    assert job.failure_reason.startswith("AlgorithmError: ExecuteUserScriptError: ExitCode 2, ErrorMessage ")
    assert refusal in job.failure_reason.splitlines()[0]
    assert "sagemaker-training-toolkit" not in job.failure_reason


def test_a_network_isolated_job_gets_its_code_as_a_channel_and_trains(stack: LocalStack, tmp_path: Path) -> None:
    project = tmp_path / "iris-isolated"
    shutil.copytree(EXAMPLES / "sklearn-iris", project)
    manifest = project / "sagepush.toml"
    manifest.write_text("enable_network_isolation = true\n" + manifest.read_text())  # a top-level key, before [model]

    result = demo.run(stack, project)
    job = ended(result)

    assert result.request["EnableNetworkIsolation"] is True
    assert result.request["HyperParameters"]["sagemaker_submit_directory"].startswith('"/opt/ml/input/data/code/')
    assert job.status == "Completed", job.failure_reason
    assert job.metrics["validation:accuracy"] > 0.8


def test_failing_script_fails_the_execution_with_its_traceback(stack: LocalStack) -> None:
    result = demo.run(stack, EXAMPLES / "failing")
    job = ended(result)

    assert (job.status, job.secondary_status) == ("Failed", "Failed")
    assert job.failure_reason is not None
    exception = "NotEnoughDataError: only 150 rows of training data, at least 1000 needed"
    assert job.failure_reason.startswith("AlgorithmError: ExecuteUserScriptError: ExitCode 1")
    assert job.failure_reason.rstrip().endswith(exception)
    assert "in check_size" in job.failure_reason
    assert job.model_uri is None
    assert result.execution_status == "FAILED"
    assert result.execution_error == "sagepush.TrainingFailed"
    assert result.execution_cause is not None
    assert exception in result.execution_cause
    assert "in check_size" in result.execution_cause
    assert_each_alert_once(result, "Failed")


def test_single_script_installs_its_pep723_dependencies_and_trains(stack: LocalStack) -> None:
    result = demo.run(stack, EXAMPLES / "single-script" / "train.py", project="single-script")
    job = ended(result)

    assert job.status == "Completed", job.failure_reason
    code = boto3.client("s3")
    bucket, _, key = (result.code_uri or "").removeprefix("s3://").partition("/")
    with tarfile.open(fileobj=io.BytesIO(code.get_object(Bucket=bucket, Key=key)["Body"].read())) as staged:
        assert staged.extractfile("requirements.txt").read() == b"scikit-learn>=1.3\n"  # type: ignore[union-attr]
    assert job.metrics["validation:accuracy"] > 0.8
    assert job.model_uri is not None
    assert "model.pkl" in model_files(job.model_uri)
    assert result.execution_status == "SUCCEEDED"
    assert_each_alert_once(result, "Completed")


def test_max_runtime_stops_the_job_after_its_sigterm_handler_saved(stack: LocalStack) -> None:
    result = demo.run(stack, EXAMPLES / "slow")  # MaxRuntimeInSeconds 5
    job = ended(result)

    assert (job.status, job.secondary_status) == ("Stopped", "MaxRuntimeExceeded")
    assert [t[0] for t in job.transitions][-3:] == ["Stopping", "Uploading", "MaxRuntimeExceeded"]
    assert job.model_uri is not None
    saved = json.loads(model_files(job.model_uri)["sigterm.json"])
    assert saved["signal"] == 15
    assert saved["epoch"] >= 1
    # A job that ran out of time did not do what it was asked: the status function fails the execution.
    assert result.execution_status == "FAILED"
    assert result.execution_error == "sagepush.TrainingFailed"
    assert_each_alert_once(result, "MaxRuntimeExceeded")


def test_stop_training_job_stops_a_running_job(stack: LocalStack, tmp_path: Path) -> None:
    project = tmp_path / "long"
    shutil.copytree(EXAMPLES / "slow", project)
    manifest = project / "sagepush.toml"
    manifest.write_text(manifest.read_text().replace('max_run = "5s"', 'max_run = "10m"'))
    pushed = demo.push(stack, project)
    demo.wait_for_job(stack, pushed, time.monotonic())
    assert pushed.job_name is not None
    sagemaker = boto3.client("sagemaker")
    wait_until(lambda: any(line.startswith("epoch 1/") for line in _log(stack, pushed.job_name)), timeout=120)

    sagemaker.stop_training_job(TrainingJobName=pushed.job_name)

    assert stack.trainer.wait(pushed.job_name, timeout=30)
    job = sagemaker.describe_training_job(TrainingJobName=pushed.job_name)
    assert (job["TrainingJobStatus"], job["SecondaryStatus"]) == ("Stopped", "Stopped")
    assert "sigterm.json" in model_files(job["ModelArtifacts"]["S3ModelArtifacts"])
    with pytest.raises(sagemaker.exceptions.ClientError, match="only an InProgress job can be stopped"):
        sagemaker.stop_training_job(TrainingJobName=pushed.job_name)


def test_a_taken_job_name_is_refused_and_the_first_job_runs_on(stack: LocalStack) -> None:
    sagemaker = boto3.client("sagemaker")
    result = demo.run(stack, EXAMPLES / "sklearn-iris", project="iris-again")
    request = dict(result.request)

    with pytest.raises(sagemaker.exceptions.ClientError, match="ResourceInUse"):
        sagemaker.create_training_job(**request)

    job = sagemaker.describe_training_job(TrainingJobName=result.job_name or "")
    assert job["TrainingJobStatus"] == "Completed"


def _log(stack: LocalStack, job_name: str) -> list[str]:
    path = stack.trainer.log_file(job_name)
    return path.read_text().splitlines() if path and path.is_file() else []


def wait_until(condition: Any, *, timeout: float) -> None:
    """Poll `condition` until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"condition not met within {timeout}s"
        time.sleep(0.1)
