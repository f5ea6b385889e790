from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import boto3
import jsonschema
import pytest
from botocore.stub import ANY, Stubber

from sagepush import alerts
from sagepush.events import training_state_change
from sagepush.ledger import LedgerEntry

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "docs" / "alerts.schema.json").read_text())
ENTRY = LedgerEntry(
    job_name="iris-3f5c0f2a-6b1e9d",
    project="iris",
    code_uri="s3://artifacts/code/iris/3f5c/sourcedir.tar.gz",
    source={"commit": "9fceb02d0ae598e95dc970b74767f19372d61af8", "branch": "main", "author": "Ada"},
)


def state(name: str) -> Any:
    return training_state_change(json.loads((ROOT / "events" / f"{name}.json").read_text()))


def client(service: Literal["logs", "sns"]) -> Any:
    return boto3.client(
        service,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.mark.parametrize(
    "event",
    ["status-starting", "status-training", "status-interrupted", "status-completed", "status-failed", "status-stopped",
     "status-max-runtime-exceeded", "status-foreign-job"],
)  # fmt: skip
def test_every_json_alert_matches_the_published_schema(event: str) -> None:
    alert = alerts.build_alert(state(event), ENTRY if "foreign" not in event else None, log_tail=("line",))
    messages = alert.messages()
    for protocol in ("sqs", "lambda", "http", "firehose"):
        jsonschema.validate(json.loads(messages[protocol]), SCHEMA)
    assert json.loads(messages["sqs"])["schema"] == "sagepush.alert.v1"


def test_failure_alert_says_why_with_commit_duration_billing_links_and_log_tail() -> None:
    alert = alerts.build_alert(state("status-failed"), ENTRY, log_tail=("Traceback", "ValueError: Input contains NaN"))
    text = alert.text()
    for fact in ("AlgorithmError", "9fceb02d0ae5", "Duration: 11m 40s", "Billable: 11m 40s", "ValueError: Input"):
        assert fact in text
    assert (
        alert.console_url
        == "https://us-east-1.console.aws.amazon.com/sagemaker/home?region=us-east-1#/jobs/iris-3f5c0f2a-6b1e9d"
    )
    assert alert.logs_url in text and alert.severity == "error"
    assert alert.attributes() == {"project": "iris", "status": "Failed", "severity": "error"}


def test_chat_format_is_a_chatbot_custom_notification_under_the_https_key() -> None:
    messages = alerts.build_alert(state("status-completed"), ENTRY).messages()
    chat = json.loads(messages["https"])
    assert (chat["version"], chat["source"]) == ("1.0", "custom")
    assert chat["content"]["textType"] == "client-markdown"
    assert "completed" in chat["content"]["title"]
    assert json.loads(chat["metadata"]["additionalContext"]["alert"])["schema"] == "sagepush.alert.v1"
    assert set(messages) == {"default", "email", "sms", "sqs", "lambda", "http", "https", "firehose"}


@pytest.mark.parametrize(
    ("project", "job"),
    [("iris", "iris-3f5c0f2a-6b1e9d"), ("p" * 60, "j" * 63), ("ünïcode", "job\nwith-newline")],
    ids=["plain", "long", "non-ascii"],
)
def test_subject_is_one_ascii_line_within_100_characters(project: str, job: str) -> None:
    alert = alerts.build_alert(state("status-training"), LedgerEntry(job_name=job, project=project))
    alert = alerts.Alert(
        **{**{f: getattr(alert, f) for f in alert.__dataclass_fields__}, "job_name": job, "project": project}
    )
    subject = alert.subject
    assert len(subject) <= 100 and subject.isascii() and "\n" not in subject and subject.isprintable()


@pytest.mark.parametrize(
    ("region", "console"),
    [
        ("eu-west-1", "https://eu-west-1.console.aws.amazon.com/"),
        ("cn-north-1", "https://console.amazonaws.cn/"),
        ("us-gov-west-1", "https://console.amazonaws-us-gov.com/"),
    ],
    ids=["aws", "aws-cn", "aws-us-gov"],
)
def test_links_use_the_console_domain_of_the_region_partition(region: str, console: str) -> None:
    job_link, logs_link = alerts.links(region, "iris-1")
    assert job_link.startswith(console) and logs_link.startswith(console)
    assert f"region={region}" in job_link and "TrainingJobs" in logs_link and "iris-1" in logs_link


def test_log_tail_reads_the_last_lines_of_the_first_host_stream() -> None:
    logs = client("logs")
    with Stubber(logs) as stub:
        stub.add_response(
            "describe_log_streams",
            {"logStreams": [{"logStreamName": "job/algo-1-1700000000"}]},
            {"logGroupName": "/aws/sagemaker/TrainingJobs", "logStreamNamePrefix": "job/algo-1-"},
        )
        stub.add_response(
            "get_log_events",
            {"events": [{"timestamp": i, "message": f"line {i}\n"} for i in range(25)]},
            {
                "logGroupName": "/aws/sagemaker/TrainingJobs",
                "logStreamName": "job/algo-1-1700000000",
                "startFromHead": False,
                "limit": 20,
            },
        )
        tail = alerts.last_log_lines("job", logs=logs)
    assert len(tail) == 20 and tail[-1] == "line 24"


@pytest.mark.parametrize("streams", [None, []], ids=["no-log-group", "no-stream"])
def test_a_missing_log_group_or_stream_is_an_empty_tail(streams: list[Any] | None) -> None:
    logs = client("logs")
    with Stubber(logs) as stub:
        if streams is None:
            stub.add_client_error("describe_log_streams", "ResourceNotFoundException")
        else:
            stub.add_response("describe_log_streams", {"logStreams": streams})
        assert alerts.last_log_lines("job", logs=logs) == ()


def test_publish_sends_every_format_in_one_json_structured_message() -> None:
    sns = client("sns")
    alert = alerts.build_alert(state("status-completed"), ENTRY)
    with Stubber(sns) as stub:
        stub.add_response(
            "publish",
            {"MessageId": "m-1"},
            {
                "TopicArn": "arn:aws:sns:us-east-1:123456789012:alerts",
                "Subject": "[sagepush] iris: iris-3f5c0f2a-6b1e9d completed",
                "Message": ANY,
                "MessageStructure": "json",
                "MessageAttributes": {
                    "project": {"DataType": "String", "StringValue": "iris"},
                    "status": {"DataType": "String", "StringValue": "Completed"},
                    "severity": {"DataType": "String", "StringValue": "info"},
                },
            },
        )
        assert alerts.publish_alert(alert, topic_arn="arn:aws:sns:us-east-1:123456789012:alerts", sns=sns) == "m-1"


EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:TrainingStateMachine:iris-3f5c0f2a-6b1e9d"
SUBMIT_LOGS = "/aws/lambda/sagepush-SubmitFunction-AbCdEf123456"


def submit_failed(region: str = "us-east-1", cause: str | None = "instance_type: bad") -> alerts.Alert:
    return alerts.submit_failed_alert(
        job_name=ENTRY.job_name,
        project="iris",
        error="SpecError",
        cause=cause,
        execution_arn=EXECUTION.replace("us-east-1", region),
        region=region,
        log_group=SUBMIT_LOGS,
        source=ENTRY.source,
        code_uri=ENTRY.code_uri,
        time="2025-01-01T10:00:02.123Z",
    )


def test_a_submit_failed_alert_matches_the_published_schema_with_the_error_and_its_cause() -> None:
    alert = submit_failed()
    messages = alert.messages()
    for protocol in ("sqs", "lambda", "http", "firehose"):
        jsonschema.validate(json.loads(messages[protocol]), SCHEMA)
    document = json.loads(messages["sqs"])
    assert (document["kind"], document["status"], document["job_status"], document["severity"]) == (
        "submit-failed", "SubmitFailed", None, "error"
    )  # fmt: skip
    assert (document["headline"], document["job_name"], document["time"]) == (
        "could not submit", ENTRY.job_name, "2025-01-01T10:00:02.123Z"
    )  # fmt: skip
    assert document["error"] == "SpecError" and document["cause"] == document["failure_reason"] == "instance_type: bad"
    assert document["source"] == ENTRY.source and document["code_uri"] == ENTRY.code_uri
    assert (document["log_tail"], document["duration_seconds"], document["model_artifacts"]) == ([], None, None)
    assert alert.attributes() == {"project": "iris", "status": "SubmitFailed", "severity": "error"}
    assert alert.subject == f"[sagepush] iris: {ENTRY.job_name} could not submit"
    assert "Error: SpecError\nReason: instance_type: bad\n" in messages["default"]
    chat = json.loads(messages["https"])
    assert chat["content"]["title"] == f":x: iris: {ENTRY.job_name} could not submit"
    assert chat["content"]["nextSteps"][0].endswith("|Open the execution>")
    assert json.loads(chat["metadata"]["additionalContext"]["alert"]) == document


def test_a_submit_failed_alert_shows_a_lambda_errors_message_and_keeps_the_cause_as_reported() -> None:
    cause = json.dumps({"errorMessage": 'instance_type: "x" is not', "errorType": "SpecError", "stackTrace": []})
    document = submit_failed(cause=cause).document()
    assert (document["failure_reason"], document["cause"]) == ('instance_type: "x" is not', cause)
    for kept in ("not json", "{broken", '{"errorMessage": 3}', "[1]"):
        assert submit_failed(cause=kept).document()["failure_reason"] == kept
    assert submit_failed(cause=None).document()["failure_reason"] is None


@pytest.mark.parametrize(
    ("region", "console"),
    [
        ("eu-west-1", "https://eu-west-1.console.aws.amazon.com/"),
        ("cn-north-1", "https://console.amazonaws.cn/"),
        ("us-gov-west-1", "https://console.amazonaws-us-gov.com/"),
    ],
    ids=["aws", "aws-cn", "aws-us-gov"],
)
def test_a_submit_failed_alert_links_the_execution_and_submits_logs_on_the_partitions_console(
    region: str, console: str
) -> None:
    alert = submit_failed(region)
    execution = EXECUTION.replace("us-east-1", region)
    assert alert.console_url == f"{console}states/home?region={region}#/v2/executions/details/{execution}"
    assert alert.logs_url == (
        f"{console}cloudwatch/home?region={region}#logsV2:log-groups/log-group/"
        "$252Faws$252Flambda$252Fsagepush-SubmitFunction-AbCdEf123456"
    )
