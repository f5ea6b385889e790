"""`sagepush models`, `approve`, `reject` and `predict` against the local stack's SageMaker."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from typer.testing import CliRunner

from sagepush_cli.main import EXIT_INPUT, app

if TYPE_CHECKING:
    from pathlib import Path

    from sagepush_cli.local.stack import LocalStack

GROUP = "iris"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"


@pytest.fixture(autouse=True)
def _elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no manifest here: only the arguments name the group


def sagepush(*args: str, stdin: bytes | None = None) -> Any:
    return CliRunner().invoke(app, list(args), input=stdin, env={"COLUMNS": "160"})


def register(sagemaker: Any, *, accuracy: float, commit: str, job: str, status: str = "PendingManualApproval") -> str:
    """Register a version of GROUP as the model function does: its lineage and metrics in CustomerMetadataProperties."""
    arn: str = sagemaker.create_model_package(
        ModelPackageGroupName=GROUP,
        ModelApprovalStatus=status,
        InferenceSpecification={
            "Containers": [{"Image": IMAGE, "ModelDataUrl": f"s3://artifacts/output/{job}/output/model.tar.gz"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        CustomerMetadataProperties={
            "sagepush:project": GROUP,
            "sagepush:job": job,
            "sagepush:commit": commit,
            "sagepush:branch": "main",
            "sagepush:endpoint": "iris-prod",
            "sagepush:endpoint:instance_type": "ml.m5.large",
            "metric:validation:accuracy": str(accuracy),
        },
    )["ModelPackageArn"]
    return arn


@pytest.fixture
def versions(stack: LocalStack, sagemaker: Any) -> list[str]:
    sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    return [
        register(sagemaker, accuracy=0.81, commit="a" * 40, job="iris-aaaaaaaa-000001"),
        register(sagemaker, accuracy=0.93, commit="b" * 40, job="iris-bbbbbbbb-000002", status="Approved"),
        register(sagemaker, accuracy=0.95, commit="c" * 40, job="iris-cccccccc-000003"),
    ]


def listed(*args: str) -> list[dict[str, Any]]:
    result = sagepush("models", GROUP, "--json", *args)
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def test_models_lists_versions_newest_first_with_metrics_and_lineage(versions: list[str]) -> None:
    rows = listed()

    assert [row["version"] for row in rows] == [3, 2, 1]
    assert [row["status"] for row in rows] == ["PendingManualApproval", "Approved", "PendingManualApproval"]
    assert rows[0]["metrics"] == {"validation:accuracy": 0.95}
    assert rows[0]["commit"] == "c" * 40 and rows[0]["job"] == "iris-cccccccc-000003"
    assert rows[0]["endpoint"] == "iris-prod" and rows[0]["arn"] == versions[2]
    assert rows[0]["created"]
    assert [row["version"] for row in listed("--limit", "2")] == [3, 2]


def test_models_prints_a_table(versions: list[str]) -> None:
    result = sagepush("models", "--group", GROUP)

    assert result.exit_code == 0, result.output
    assert "validation:accuracy=0.95" in result.stdout and "iris-cccccccc-000003" in result.stdout
    assert "c" * 12 in result.stdout and "c" * 13 not in result.stdout


def test_models_of_a_group_that_does_not_exist_is_an_input_error(stack: LocalStack) -> None:
    result = sagepush("models", "nothing-here")

    assert result.exit_code == EXIT_INPUT
    assert "no model package group 'nothing-here'" in result.stderr


def test_approve_sets_the_version_approved(versions: list[str], sagemaker: Any) -> None:
    result = sagepush("approve", "3", "--group", GROUP)

    assert result.exit_code == 0, result.output
    assert "approved iris version 3 (was PendingManualApproval); endpoint iris-prod deploys it" in result.stdout
    assert sagemaker.describe_model_package(ModelPackageName=versions[2])["ModelApprovalStatus"] == "Approved"
    assert listed()[0] | {"status": "Approved", "metrics": {"validation:accuracy": 0.95}} == listed()[0]


def test_approving_an_approved_version_changes_nothing(versions: list[str], sagemaker: Any) -> None:
    before = sagemaker.describe_model_package(ModelPackageName=versions[1])

    result = sagepush("approve", "2", "--group", GROUP, "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["updated"] is False
    after = sagemaker.describe_model_package(ModelPackageName=versions[1])
    assert after.get("LastModifiedTime") == before.get("LastModifiedTime")
    assert after["CustomerMetadataProperties"] == before["CustomerMetadataProperties"]


def test_reject_by_arn_keeps_the_reason(versions: list[str], sagemaker: Any) -> None:
    result = sagepush("reject", versions[0], "--reason", "accuracy below the bar")

    assert result.exit_code == 0, result.output
    assert "rejected iris version 1" in result.stdout
    described = sagemaker.describe_model_package(ModelPackageName=versions[0])
    assert described["ModelApprovalStatus"] == "Rejected"
    assert described["ApprovalDescription"] == "accuracy below the bar"
    assert listed()[-1]["status"] == "Rejected"


def test_a_version_that_does_not_exist_is_named(versions: list[str]) -> None:
    result = sagepush("approve", "7", "--group", GROUP)

    assert result.exit_code == EXIT_INPUT
    assert "no version 7 in model package group 'iris' (its versions are 1-3)" in result.stderr


def test_predict_to_an_endpoint_that_does_not_exist_is_an_input_error(stack: LocalStack, tmp_path: Path) -> None:
    row = tmp_path / "row.csv"
    row.write_text("5.1,3.5,1.4,0.2\n")

    result = sagepush("predict", "iris-prod", "--body", str(row), "--content-type", "text/csv")

    assert result.exit_code == EXIT_INPUT, result.output
    assert result.stdout == ""
    assert "ENDPOINT: iris-prod: Endpoint iris-prod of account 123456789012 not found." in result.stderr


def test_predict_with_a_body_that_cannot_be_read_is_an_input_error(stack: LocalStack, tmp_path: Path) -> None:
    result = sagepush("predict", "iris-prod", "--body", str(tmp_path / "absent.csv"))

    assert result.exit_code == EXIT_INPUT
    assert "--body" in result.stderr and "absent.csv" in result.stderr
