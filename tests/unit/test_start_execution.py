"""StageFunction starts one execution per job: the execution is named after the job, and a repeat is not an error."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.stub import ANY, Stubber

from sagepush.starting import _start_execution

MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:sagepush-training"
JOB = "iris-3f5c0f2a-6b1e9d"
EXECUTION = f"arn:aws:states:us-east-1:123456789012:execution:sagepush-training:{JOB}"
STARTED = {"executionArn": EXECUTION, "startDate": 0}
DESCRIBED = {
    "executionArn": EXECUTION,
    "stateMachineArn": MACHINE,
    "name": JOB,
    "status": "RUNNING",
    "startDate": 0,
}


def stepfunctions() -> Any:
    return boto3.client(
        "stepfunctions", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )


def test_a_new_job_starts_its_execution_named_after_it() -> None:
    sfn = stepfunctions()
    with Stubber(sfn) as stub:
        stub.add_client_error(
            "describe_execution", "ExecutionDoesNotExist", expected_params={"executionArn": EXECUTION}
        )
        stub.add_response("start_execution", STARTED, {"stateMachineArn": MACHINE, "name": JOB, "input": '{"a": 1}'})

        assert _start_execution(sfn, MACHINE, JOB, {"a": 1}) == (EXECUTION, False)
        stub.assert_no_pending_responses()


def test_a_redelivered_upload_finds_its_execution_and_starts_nothing() -> None:
    sfn = stepfunctions()
    with Stubber(sfn) as stub:
        stub.add_response("describe_execution", DESCRIBED, {"executionArn": EXECUTION})

        assert _start_execution(sfn, MACHINE, JOB, {"a": 1}) == (EXECUTION, True)
        stub.assert_no_pending_responses()


def test_an_execution_started_between_the_look_and_the_start_counts_as_already_started() -> None:
    # A concurrent delivery of the same upload started the execution after this one looked and found nothing.
    sfn = stepfunctions()
    with Stubber(sfn) as stub:
        stub.add_client_error(
            "describe_execution", "ExecutionDoesNotExist", expected_params={"executionArn": EXECUTION}
        )
        stub.add_client_error(
            "start_execution",
            "ExecutionAlreadyExists",
            expected_params={"stateMachineArn": MACHINE, "name": JOB, "input": ANY},
        )

        assert _start_execution(sfn, MACHINE, JOB, {"a": 1}) == (EXECUTION, True)
        stub.assert_no_pending_responses()
