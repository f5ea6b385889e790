"""A reset leaves nothing of the stack before it: the job SubmitFunction was creating when the reset began never
trains into the redeployed stack (its state-change events would make the new ledger list it)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from tests.integration.test_stage_submit import MANIFEST, TRAIN, executions, tar_gz

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sagepush_cli.local.stack import LocalStack

MEETING_TIMEOUT = 60.0


@pytest.fixture
def create_held(monkeypatch: pytest.MonkeyPatch, stack: LocalStack) -> Iterator[dict[str, threading.Event]]:
    """moto's CreateTrainingJob is held until the reset either stops the execution that asked for it (what a reset
    must do) or has redeployed the stack (what happens when it does not)."""
    from moto.sagemaker.models import SageMakerModelBackend
    from moto.stepfunctions.parser.asl.eval.environment import Environment

    from sagepush_cli.local.stack import LocalStack

    events = {name: threading.Event() for name in ("entered", "released", "submitted")}
    create_training_job = SageMakerModelBackend.create_training_job
    invoke_for_moto = LocalStack._invoke_for_moto
    set_stop = Environment.set_stop
    deploy = LocalStack.deploy

    def held_create(backend: Any, *args: Any, **kwargs: Any) -> Any:
        events["entered"].set()
        assert events["released"].wait(MEETING_TIMEOUT), "neither the stop nor the redeploy came"
        return create_training_job(backend, *args, **kwargs)

    def invoke_marks_submitted(self: LocalStack, function_name: str, *args: Any) -> bytes:
        try:
            return invoke_for_moto(self, function_name, *args)
        finally:
            if "SubmitFunction" in function_name:
                events["submitted"].set()

    def stop_releases(env: Any, *args: Any, **kwargs: Any) -> None:
        set_stop(env, *args, **kwargs)
        events["released"].set()

    def deploy_releases(self: LocalStack) -> None:
        deploy(self)
        events["released"].set()

    monkeypatch.setattr(SageMakerModelBackend, "create_training_job", held_create)
    monkeypatch.setattr(LocalStack, "_invoke_for_moto", invoke_marks_submitted)
    monkeypatch.setattr(Environment, "set_stop", stop_releases)
    monkeypatch.setattr(LocalStack, "deploy", deploy_releases)
    yield events
    events["released"].set()


def test_a_job_being_submitted_at_reset_leaves_nothing_in_the_redeployed_stack(
    stack: LocalStack, create_held: dict[str, threading.Event]
) -> None:
    boto3.client("s3").put_object(
        Bucket=stack.outputs["IngestBucketName"],
        Key="incoming/mnist/main.tar.gz",
        Body=tar_gz({"train.py": TRAIN, "sagepush.toml": MANIFEST}),
    )
    assert create_held["entered"].wait(MEETING_TIMEOUT), "SubmitFunction never called CreateTrainingJob"

    stack.reset()
    assert create_held["submitted"].wait(MEETING_TIMEOUT), "SubmitFunction never returned"
    for run in list(stack.trainer.runs.values()):
        assert run.done.wait(MEETING_TIMEOUT), f"{run.name} never ended"
    stack.drain()

    assert boto3.client("sagemaker").list_training_jobs()["TrainingJobSummaries"] == []
    assert boto3.client("dynamodb").scan(TableName=stack.resources["LedgerTable"])["Items"] == []
    assert executions(stack, boto3.client("stepfunctions")) == []
