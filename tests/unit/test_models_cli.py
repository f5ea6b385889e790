"""`sagepush models`, `approve`, `reject` and `predict`: what they ask SageMaker, and what they print, from stubs."""

from __future__ import annotations

import datetime as dt
import io
import json
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber
from typer.testing import CliRunner

from sagepush_cli import main, models
from sagepush_cli.main import EXIT_FAILED, EXIT_INPUT, app

if TYPE_CHECKING:
    from pathlib import Path

ACCOUNT_ARN = "arn:aws:sagemaker:us-east-1:111122223333:model-package"
CREATED = dt.datetime(2025, 5, 1, 12, 0, tzinfo=dt.UTC)


class StubbedSession:
    """A session whose SageMaker clients answer from Stubbers: a call nothing was queued for fails the test."""

    region_name = "us-east-1"

    def __init__(self) -> None:
        session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
        self.clients = {name: session.client(name) for name in ("sagemaker", "sagemaker-runtime")}
        self.stubs = {name: Stubber(client) for name, client in self.clients.items()}

    def client(self, service: str, **options: Any) -> Any:
        return self.clients[service]


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> StubbedSession:
    monkeypatch.chdir(tmp_path)
    session = StubbedSession()
    monkeypatch.setattr(main, "_session", lambda *args, **kwargs: session)
    for stub in session.stubs.values():
        stub.activate()
    return session


def run(*args: str, stdin: bytes | None = None) -> Any:
    return CliRunner().invoke(app, list(args), input=stdin, env={"COLUMNS": "160"})


def summary(version: int, group: str = "iris") -> dict[str, Any]:
    return {
        "ModelPackageGroupName": group,
        "ModelPackageVersion": version,
        "ModelPackageArn": f"{ACCOUNT_ARN}/{group}/{version}",
        "CreationTime": CREATED + dt.timedelta(minutes=version),
        "ModelPackageStatus": "Completed",
        "ModelApprovalStatus": "PendingManualApproval",
    }


def description(version: int, status: str = "PendingManualApproval", **properties: str) -> dict[str, Any]:
    return {
        **summary(version),
        "ModelPackageName": "iris",
        "ModelApprovalStatus": status,
        "ModelPackageStatusDetails": {"ValidationStatuses": []},
        "CustomerMetadataProperties": {
            "sagepush:job": f"iris-0000000{version}-abcdef",
            "sagepush:commit": f"{version}" * 40,
            "metric:validation:accuracy": "0.9",
            **properties,
        },
    }


def listing(aws: StubbedSession, *versions: int, group: str = "iris") -> None:
    expected = {"ModelPackageGroupName": group, "SortBy": "CreationTime", "SortOrder": "Descending"}
    answer = {"ModelPackageSummaryList": [summary(v, group) for v in versions]}
    aws.stubs["sagemaker"].add_response("list_model_packages", answer, expected)


def described(aws: StubbedSession, answer: dict[str, Any]) -> None:
    aws.stubs["sagemaker"].add_response(
        "describe_model_package", answer, {"ModelPackageName": answer["ModelPackageArn"]}
    )


# ------------------------------------------------------------------------------------------------ reading packages


def test_a_version_reads_metrics_lineage_and_the_endpoint_it_deploys_to() -> None:
    properties = {
        "sagepush:endpoint": "iris-prod",
        "sagepush:endpoint:instance_type": "ml.m5.large",
        "metric:validation:loss": "0.25",
        "metric:broken": "n/a",
    }

    version = models.ModelVersion.from_description(description(3, "Approved", **properties))

    assert (version.version, version.status, version.endpoint) == (3, "Approved", "iris-prod")
    assert version.as_dict()["metrics"] == {"validation:accuracy": 0.9, "validation:loss": 0.25}
    assert version.as_dict()["created"] == "2025-05-01T12:03:00+00:00"
    assert version.job == "iris-00000003-abcdef" and version.commit == "3" * 40


def test_a_version_whose_endpoint_settings_do_not_read_is_still_listed() -> None:
    properties = {"sagepush:endpoint": "iris-prod", "sagepush:endpoint:initial_instance_count": "two"}

    assert models.ModelVersion.from_description(description(1, **properties)).endpoint is None


@pytest.mark.parametrize(
    ("project", "group", "manifest", "expected"),
    [
        (None, "other", '[model]\ngroup = "from-manifest"\n', "other"),
        ("named", None, '[model]\ngroup = "from-manifest"\n', "named"),
        (None, None, '[model]\ngroup = "from-manifest"\n', "from-manifest"),
        (None, None, "[model]\nregister = true\n", "my-project"),
        (None, None, None, "my-project"),
    ],
    ids=["group-option", "project-argument", "manifest-group", "manifest-without-group", "no-manifest"],
)
def test_the_group_defaults_to_the_manifests_then_the_projects_name(
    tmp_path: Path, project: str | None, group: str | None, manifest: str | None, expected: str
) -> None:
    directory = tmp_path / "My_Project"
    directory.mkdir()
    if manifest is not None:
        (directory / "sagepush.toml").write_text(manifest)

    assert models.default_group(project, group, directory) == expected


def test_version_ranges_are_compact() -> None:
    assert models._ranges([5, 3, 2, 1, 9, 10]) == "1-3, 5, 9-10"


# ------------------------------------------------------------------------------------------------ sagepush models


def test_models_lists_the_newest_versions_first(
    aws: StubbedSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "iris").mkdir()
    monkeypatch.chdir(tmp_path / "iris")  # no manifest: the directory names the project, and so the group
    listing(aws, 2, 1)
    described(aws, description(2, "Approved"))
    described(aws, description(1))

    result = run("models", "--json")

    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(row["version"], row["status"]) for row in rows] == [(2, "Approved"), (1, "PendingManualApproval")]
    assert rows[0]["job"] == "iris-00000002-abcdef" and rows[0]["commit"] == "2" * 40
    aws.stubs["sagemaker"].assert_no_pending_responses()


def test_models_stops_at_the_limit(aws: StubbedSession) -> None:
    listing(aws, 3, 2, 1)
    described(aws, description(3))

    result = run("models", "iris", "--limit", "1", "--json")

    assert result.exit_code == 0, result.output
    assert [row["version"] for row in json.loads(result.stdout)] == [3]


def test_models_of_a_missing_group_says_so(aws: StubbedSession) -> None:
    listing(aws, group="gone")
    aws.stubs["sagemaker"].add_client_error(
        "describe_model_package_group", "ValidationException", "ModelPackageGroup gone does not exist."
    )

    result = run("models", "gone")

    assert result.exit_code == EXIT_INPUT
    assert "no model package group 'gone'" in result.stderr and "Traceback" not in result.output


def test_models_of_an_empty_group_says_so(aws: StubbedSession) -> None:
    listing(aws)
    aws.stubs["sagemaker"].add_response(
        "describe_model_package_group",
        {
            "ModelPackageGroupName": "iris",
            "ModelPackageGroupArn": "arn:aws:sagemaker:us-east-1:111122223333:model-package-group/iris",
            "CreationTime": CREATED,
            "CreatedBy": {},
            "ModelPackageGroupStatus": "Completed",
        },
    )

    result = run("models", "iris")

    assert result.exit_code == 0, result.output
    assert "no versions in model package group 'iris' yet" in result.stdout


# ------------------------------------------------------------------------------------------------ approve, reject


def test_approve_updates_a_pending_version(aws: StubbedSession) -> None:
    listing(aws, 2, 1)
    described(aws, description(1))
    aws.stubs["sagemaker"].add_response(
        "update_model_package",
        {"ModelPackageArn": f"{ACCOUNT_ARN}/iris/1"},
        {"ModelPackageArn": f"{ACCOUNT_ARN}/iris/1", "ModelApprovalStatus": "Approved"},
    )

    result = run("approve", "1", "--group", "iris")

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "approved iris version 1 (was PendingManualApproval)"
    aws.stubs["sagemaker"].assert_no_pending_responses()


def test_approving_an_approved_version_sends_no_update(aws: StubbedSession) -> None:
    listing(aws, 1)
    described(aws, description(1, "Approved"))  # no update_model_package queued: sending one fails the test

    result = run("approve", "1", "--group", "iris", "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) | {"updated": False, "previous_status": "Approved"} == json.loads(result.stdout)


def test_reject_by_arn_sends_the_reason(aws: StubbedSession) -> None:
    arn = f"{ACCOUNT_ARN}/iris/2"
    described(aws, description(2, "Approved"))
    aws.stubs["sagemaker"].add_response(
        "update_model_package",
        {"ModelPackageArn": arn},
        {"ModelPackageArn": arn, "ModelApprovalStatus": "Rejected", "ApprovalDescription": "overfits"},
    )

    result = run("reject", arn, "--reason", "overfits")

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "rejected iris version 2 (was Approved): overfits"


def test_reject_needs_a_reason(aws: StubbedSession) -> None:
    result = run("reject", "1")

    assert result.exit_code == EXIT_INPUT
    assert "--reason" in result.output


@pytest.mark.parametrize(
    ("version", "listed", "message"),
    [
        ("7", (3, 2, 1), "no version 7 in model package group 'iris' (its versions are 1-3)"),
        ("1", (), "no version 1 in model package group 'iris' (it has no versions yet)"),
        ("latest", None, "VERSION: 'latest' is neither a version number (1, 2, …) nor a model package ARN"),
        ("0", None, "VERSION: '0' is neither a version number"),
    ],
    ids=["absent", "empty-group", "not-a-number", "zero"],
)
def test_a_version_that_names_nothing_is_an_input_error(
    aws: StubbedSession, version: str, listed: tuple[int, ...] | None, message: str
) -> None:
    if listed is not None:
        listing(aws, *listed)
    if listed == ():
        aws.stubs["sagemaker"].add_response(
            "describe_model_package_group",
            {
                "ModelPackageGroupName": "iris",
                "ModelPackageGroupArn": "arn:aws:sagemaker:us-east-1:111122223333:model-package-group/iris",
                "CreationTime": CREATED,
                "CreatedBy": {},
                "ModelPackageGroupStatus": "Completed",
            },
        )

    result = run("approve", version, "--group", "iris")

    assert result.exit_code == EXIT_INPUT
    assert message in result.stderr, result.stderr


def test_an_arn_that_names_no_package_is_an_input_error(aws: StubbedSession) -> None:
    arn = f"{ACCOUNT_ARN}/iris/9"
    aws.stubs["sagemaker"].add_client_error("describe_model_package", "ValidationException", f"{arn} not found")

    result = run("approve", arn)

    assert result.exit_code == EXIT_INPUT
    assert f"no model package {arn}" in result.stderr


# ------------------------------------------------------------------------------------------------ predict


def body(data: bytes) -> StreamingBody:
    return StreamingBody(io.BytesIO(data), len(data))


def test_predict_sends_the_file_and_prints_the_answer_as_is(aws: StubbedSession, tmp_path: Path) -> None:
    row = tmp_path / "row.csv"
    row.write_bytes(b"5.1,3.5,1.4,0.2\n")
    aws.stubs["sagemaker-runtime"].add_response(
        "invoke_endpoint",
        {"Body": body(b"0"), "ContentType": "text/csv"},
        {"EndpointName": "iris", "Body": b"5.1,3.5,1.4,0.2\n", "ContentType": "text/csv", "Accept": "text/csv"},
    )

    result = run("predict", "iris", "--body", str(row), "--accept", "text/csv")

    assert (result.exit_code, result.stdout) == (0, "0")


def test_predict_reads_stdin_for_a_dash(aws: StubbedSession) -> None:
    aws.stubs["sagemaker-runtime"].add_response(
        "invoke_endpoint",
        {"Body": body(b'{"predictions": [2]}\n'), "ContentType": "application/json"},
        {"EndpointName": "iris", "Body": b"[[6.3, 3.3, 6.0, 2.5]]", "ContentType": "application/json"},
    )

    result = run(
        "predict", "iris", "--body", "-", "--content-type", "application/json", stdin=b"[[6.3, 3.3, 6.0, 2.5]]"
    )

    assert (result.exit_code, result.stdout) == (0, '{"predictions": [2]}\n')


def test_a_model_error_prints_the_models_message_and_fails(aws: StubbedSession, tmp_path: Path) -> None:
    (tmp_path / "row.csv").write_text("not,numbers\n")
    log_stream = "arn:aws:logs:us-east-1:111122223333:log-group:/aws/sagemaker/Endpoints/iris"
    aws.stubs["sagemaker-runtime"].add_client_error(
        "invoke_endpoint",
        "ModelError",
        "Received client error (400) from primary with message ...",
        http_status_code=424,
        modeled_fields={
            "OriginalStatusCode": 400,
            "OriginalMessage": "could not convert string to float: 'not'",
            "LogStreamArn": log_stream,
        },
    )

    result = run("predict", "iris", "--body", "row.csv")

    assert result.exit_code == EXIT_FAILED
    assert result.stdout == ""
    assert "the model behind endpoint 'iris' answered 400: could not convert string to float: 'not'" in result.stderr
    assert log_stream in result.stderr and "Traceback" not in result.output


def test_predict_to_an_endpoint_that_does_not_exist_is_an_input_error(aws: StubbedSession, tmp_path: Path) -> None:
    (tmp_path / "row.csv").write_text("1,2,3,4\n")
    aws.stubs["sagemaker-runtime"].add_client_error(
        "invoke_endpoint", "ValidationError", "Endpoint gone of account 111122223333 not found.", http_status_code=400
    )

    result = run("predict", "gone", "--body", "row.csv")

    assert result.exit_code == EXIT_INPUT
    assert "ENDPOINT: gone: Endpoint gone of account 111122223333 not found." in result.stderr


def test_predict_with_an_unreadable_body_sends_nothing(aws: StubbedSession) -> None:
    result = run("predict", "iris", "--body", "absent.csv")

    assert result.exit_code == EXIT_INPUT
    assert "--body: absent.csv: No such file or directory" in result.stderr
