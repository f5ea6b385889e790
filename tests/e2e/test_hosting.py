"""Training + hosting on the local stack: a push of examples/sklearn-iris ends with an approved version in the
registry, an endpoint in service and a prediction; a version its gate holds back deploys nothing until a person
approves it, and then replaces the first without a failed request."""

from __future__ import annotations

import json
import shutil
import threading
import time
from typing import TYPE_CHECKING, Any

import boto3
from typer.testing import CliRunner

from sagepush_cli.local import demo
from sagepush_cli.main import app
from tests.e2e.conftest import EXAMPLES

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from sagepush_cli.local.stack import LocalStack

PROJECT = "iris-served"
"""The project (and so its group and endpoint) of this test alone: the e2e stack is shared by every test."""
SETOSA = "5.1,3.5,1.4,0.2"
VIRGINICA = "6.9,3.1,5.4,2.1"
DEADLINE_SECONDS = 600


def sagepush(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def wait_for(stack: LocalStack, check: Callable[[], Any], what: str) -> Any:
    """Poll `check` (letting the stack deliver what it has) until it answers, failing after the deadline."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        stack.drain()
        answer = check()
        if answer:
            return answer
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def models() -> list[dict[str, Any]]:
    listed = sagepush("models", PROJECT, "--json")
    assert listed.exit_code == 0, listed.output
    versions: list[dict[str, Any]] = json.loads(listed.stdout)
    return versions


def serving(config: str) -> Callable[[], bool]:
    def check() -> bool:
        endpoint = boto3.client("sagemaker").describe_endpoint(EndpointName=PROJECT)
        return bool(endpoint["EndpointStatus"] == "InService" and endpoint["EndpointConfigName"] == config)

    return check


def predict(row: str, tmp_path: Path) -> Any:
    body = tmp_path / "row.csv"
    body.write_text(row + "\n")
    return sagepush("predict", PROJECT, "--body", str(body), "--content-type", "text/csv", "--accept", "text/csv")


def test_a_push_registers_approves_deploys_and_a_held_back_version_waits_for_approval(
    stack: LocalStack, tmp_path: Path
) -> None:
    first = demo.run(stack, EXAMPLES / "sklearn-iris", project=PROJECT)
    assert first.completed and first.execution_status == "SUCCEEDED", first.execution_cause
    [v1] = models()
    assert (v1["version"], v1["status"], v1["job"]) == (1, "Approved", first.job_name)
    assert v1["metrics"]["validation:accuracy"] >= 0.9
    wait_for(stack, serving(f"{PROJECT}-v1"), "the endpoint to serve version 1")
    answer = predict(SETOSA, tmp_path)
    assert answer.exit_code == 0, answer.output
    assert float(answer.stdout.strip()) == 0  # setosa is class 0

    # The same project with a gate no model passes: registered, held back, nothing deployed.
    held = tmp_path / PROJECT
    shutil.copytree(EXAMPLES / "sklearn-iris", held)
    manifest = held / "sagepush.toml"
    manifest.write_text(manifest.read_text().replace('"validation:accuracy >= 0.9"', '"validation:accuracy >= 1.01"'))
    second = demo.run(stack, held, project=PROJECT)
    assert second.completed and second.execution_status == "SUCCEEDED", second.execution_cause
    v2, _ = models()
    assert (v2["version"], v2["status"], v2["job"]) == (2, "PendingManualApproval", second.job_name)
    stack.drain()
    endpoint = boto3.client("sagemaker").describe_endpoint(EndpointName=PROJECT)
    assert endpoint["EndpointConfigName"] == f"{PROJECT}-v1"

    # A person approves it: the endpoint moves to version 2 while a caller keeps asking, and no request fails.
    failures: list[str] = []
    answers: list[str] = []
    done = threading.Event()

    def keep_asking() -> None:
        runtime = boto3.client("sagemaker-runtime")
        while not done.is_set():
            try:
                reply = runtime.invoke_endpoint(
                    EndpointName=PROJECT, Body=VIRGINICA.encode(), ContentType="text/csv", Accept="text/csv"
                )
                answers.append(reply["Body"].read().decode())
            except Exception as exc:  # every failure is what the test counts
                failures.append(repr(exc))

    caller = threading.Thread(target=keep_asking)
    caller.start()
    try:
        approved = sagepush("approve", "2", "--group", PROJECT)
        assert approved.exit_code == 0, approved.output
        wait_for(stack, serving(f"{PROJECT}-v2"), "the endpoint to serve version 2")
    finally:
        done.set()
        caller.join()
    assert not failures, failures[:3]
    assert answers and {float(a.strip()) for a in answers} == {2}
    assert [v["status"] for v in models()] == ["Approved", "Approved"]
