"""A `[strategy]` upload on the moto server: staged once, one matrix execution named after the push, every job's
document and tags as TrainingStateMachine runs them; a matrix beyond the policy is refused with nothing staged."""

from __future__ import annotations

import json
import tomllib
from typing import TYPE_CHECKING, Any

import pytest

from sagepush_cli import follow
from tests.integration.test_stage_submit import TRAIN, staged_objects, tar_gz, upload, upload_tags
from tests.integration.test_status import wait_for

if TYPE_CHECKING:
    from sagepush_cli.local.stack import LocalStack

MATRIX = b"""framework = "sklearn"
framework_version = "1.2-1"
entry_point = "train.py"
max_run = "1h"
hyperparameters = { max_depth = 4 }
metric_definitions = [{ Name = "validation:accuracy", Regex = "accuracy=([0-9.]+)" }]

[strategy]
max_parallel = 3
objective_metric_name = "validation:accuracy"

[strategy.matrix]
instance_type = ["ml.m5.large", "ml.c5.xlarge"]
hyperparameters = { n_estimators = [50, 100] }
exclude = [{ instance_type = "ml.c5.xlarge", hyperparameters = { n_estimators = 100 } }]
"""


def matrix_executions(stack: LocalStack, sfn: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = sfn.list_executions(stateMachineArn=stack.outputs["MatrixStateMachineArn"])[
        "executions"
    ]
    return found


@pytest.mark.usefixtures("instant_jobs")
def test_a_matrix_upload_is_staged_once_and_starts_one_execution_for_its_jobs(
    stack: LocalStack, s3: Any, sfn: Any, sagemaker: Any
) -> None:
    key = "incoming/iris/main.tar.gz"
    upload(stack, s3, key, tar_gz({"train.py": TRAIN, "sagepush.toml": MATRIX}), **{"sagepush-commit": "9fceb02"})

    [staged] = staged_objects(stack, s3)
    [execution] = matrix_executions(stack, sfn)
    document = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])
    push = execution["name"]
    assert document["push"] == push and document["max_parallel"] == 3 and document["fail_fast"] is False
    assert document["objective_metric_name"] == "validation:accuracy"
    assert [job["job_name"] for job in document["jobs"]] == [f"{push}-1", f"{push}-2", f"{push}-3"]
    assert [job["matrix"]["values"] for job in document["jobs"]] == [
        {"instance_type": "ml.m5.large", "hyperparameters.n_estimators": 50},
        {"instance_type": "ml.m5.large", "hyperparameters.n_estimators": 100},
        {"instance_type": "ml.c5.xlarge", "hyperparameters.n_estimators": 50},
    ]
    assert all(job["code_uri"].endswith(staged) for job in document["jobs"])
    assert all("strategy" not in job["spec"] for job in document["jobs"])
    assert document["jobs"][2]["spec"]["hyperparameters"] == {"max_depth": 4, "n_estimators": 50}
    tags = upload_tags(stack, s3, key)
    assert tags["sagepush-push"] == push and tags["sagepush-jobs"] == "3"
    staged_upload = follow.jobs_of_upload(
        s3, bucket=stack.outputs["IngestBucketName"], key=key, version_id=None, timeout=0
    )
    assert staged_upload.push == push and staged_upload.jobs == (f"{push}-1", f"{push}-2", f"{push}-3")

    # moto's jobs end at once, with no events: each job is described, its tags carry its values.
    wait_for(lambda: len(sagemaker.list_training_jobs()["TrainingJobSummaries"]) == 3, "the three jobs")
    job = sagemaker.describe_training_job(TrainingJobName=f"{push}-3")
    assert job["ResourceConfig"]["InstanceType"] == "ml.c5.xlarge"
    assert job["HyperParameters"]["n_estimators"] == "50"
    job_tags = {t["Key"]: t["Value"] for t in sagemaker.list_tags(ResourceArn=job["TrainingJobArn"])["Tags"]}
    assert job_tags["sagepush:push"] == push
    assert job_tags["sagepush:matrix:instance_type"] == "ml.c5.xlarge"
    assert job_tags["sagepush:matrix:hyperparameters.n_estimators"] == "50"
    assert job_tags["sagepush:commit"] == "9fceb02"


def test_a_matrix_beyond_the_policy_is_refused_with_nothing_staged(stack: LocalStack, s3: Any, sfn: Any) -> None:
    wide = MATRIX.replace(
        b"hyperparameters = { n_estimators = [50, 100] }", b"hyperparameters = { n_estimators = [1, 2, 3] }"
    )
    key = "incoming/iris/wide.tar.gz"
    upload(stack, s3, key, tar_gz({"train.py": TRAIN, "sagepush.toml": wide}))

    assert staged_objects(stack, s3) == []
    assert matrix_executions(stack, sfn) == []
    with pytest.raises(follow.UploadRefusedError) as refused:
        follow.jobs_of_upload(s3, bucket=stack.outputs["IngestBucketName"], key=key, version_id=None, timeout=0)
    assert "strategy.matrix: makes 6 jobs, more than the deployment's policy allows per push (4)" in str(refused.value)


def test_a_bad_job_of_the_matrix_is_refused_by_its_field_before_anything_runs(
    stack: LocalStack, s3: Any, sfn: Any
) -> None:
    bad = MATRIX.replace(b'"ml.c5.xlarge"]', b'"ml.p4d.24xlarge"]').replace(b"exclude = [", b"# exclude = [")
    assert tomllib.loads(bad.decode())["strategy"]["matrix"]["instance_type"][1] == "ml.p4d.24xlarge"
    key = "incoming/iris/big.tar.gz"
    upload(stack, s3, key, tar_gz({"train.py": TRAIN, "sagepush.toml": bad}))

    assert staged_objects(stack, s3) == [] and matrix_executions(stack, sfn) == []
    with pytest.raises(follow.UploadRefusedError) as refused:
        follow.jobs_of_upload(s3, bucket=stack.outputs["IngestBucketName"], key=key, version_id=None, timeout=0)
    assert "sagepush.toml (matrix job 3: instance_type=ml.p4d.24xlarge, hyperparameters.n_estimators=50): " in str(
        refused.value
    )
    assert "instance_type: Unsupported processor: gpu" in str(refused.value)
