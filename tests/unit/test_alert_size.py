"""Every alert fits SNS's 256 KiB limit whatever the log holds, and a publish SNS refuses as invalid is sent minimal.

Sizes are measured here from the parameters the SNS client was called with, as SNS counts them (the UTF-8 bytes of
`Message` plus each attribute's name, type and value), not through `sagepush.alerts`.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any, Literal

import boto3
import jsonschema
import pytest
from botocore.stub import ANY, Stubber

from sagepush import alerts, refusals, staging
from sagepush.events import object_created, training_state_change
from sagepush.ledger import LedgerEntry

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "docs" / "alerts.schema.json").read_text())
SNS_LIMIT = 262_144
TOPIC = "arn:aws:sns:us-east-1:123456789012:alerts"
JOB = "iris-3f5c0f2a-6b1e9d"
ENTRY = LedgerEntry(
    job_name=JOB,
    project="iris",
    code_uri="s3://artifacts/code/iris/3f5c/sourcedir.tar.gz",
    source={"commit": "9fceb02d0ae598e95dc970b74767f19372d61af8", "branch": "main", "author": "Ada"},
)
PROTOCOLS = {"default", "email", "sms", "sqs", "lambda", "http", "firehose", "https"}
_SURROGATES = re.compile("[\ud800-\udfff]")


def _tqdm(step: int) -> str:
    """One CloudWatch event of a tqdm bar: every update is a carriage return, and only the last one ends the line."""
    return "".join(
        f"\r epoch {step}: {p:3d}%|{'█' * (p // 10)}{' ' * (10 - p // 10)}| {p}/100 [00:{p:02d}<00:{100 - p:02d}]"
        for p in range(101)
    )


HOSTILE_TAILS: dict[str, list[str]] = {
    "quotes-20x15kb": [f"{i:02d} " + '"' * 15_000 for i in range(20)],
    "quotes-and-backslashes": [f'{i:02d} {{"path": "C:\\\\data\\\\x"}}' * 40 for i in range(20)],
    "emoji": [f"{i:02d} " + "😀🔥" * 250 for i in range(20)],
    "cjk": [f"{i:02d} " + "训练失败,输入包含非数字值。" * 40 for i in range(20)],
    "tqdm-progress": [_tqdm(i) for i in range(20)],
    "one-300kb-line": ['{"grad": "' + '\\u0000\\"' * 37_500 + '"}'],
    "10000-short-lines": [f"step {i} loss 0.{i:04d}" for i in range(10_000)],
    "lone-surrogates": [f"{i:02d} bad \ud800 half \udcff\udcfe pair" * 20 for i in range(20)],
    "control-and-ansi": [f"{i:02d} \x1b[31merror\x1b[0m \x00\x01\x07" * 60 for i in range(20)],
}
# Tails too big for one publish even at 20 lines of 500 characters (the reviewer's 295 KB and 279 KB cases), or longer
# than the 20 lines the document holds: earlier lines must be cut. (Read from the log, a tail is 20 lines already.)
MUST_CUT = {
    "tail-given": {"quotes-20x15kb", "emoji", "10000-short-lines"},
    "read-from-the-log": {"quotes-20x15kb", "emoji"},
}


def failed() -> Any:
    return training_state_change(json.loads((ROOT / "events" / "status-failed.json").read_text()))


def client(service: Literal["logs", "sns", "sqs"]) -> Any:
    return boto3.client(service, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")


def sns_counted_bytes(params: dict[str, Any]) -> int:
    """The size of a Publish as SNS counts it: Message's UTF-8 bytes, and each attribute's name, type and value."""
    attributes = params.get("MessageAttributes", {})
    counted = sum(
        len(name.encode()) + len(value["DataType"].encode()) + len(value.get("StringValue", "").encode())
        for name, value in attributes.items()
    )
    return len(params["Message"].encode("utf-8")) + counted


class Publishes:
    """A real SNS client under Stubber; every Publish's parameters are kept."""

    def __init__(self) -> None:
        self.sns = client("sns")
        self.stub = Stubber(self.sns)
        self.sent: list[dict[str, Any]] = []
        self.sns.meta.events.register("provide-client-params.sns.Publish", lambda params, **_: self.sent.append(params))

    def accept(self, message_id: str = "m-1") -> None:
        self.stub.add_response("publish", {"MessageId": message_id}, {
            "TopicArn": TOPIC, "Subject": ANY, "Message": ANY, "MessageStructure": "json", "MessageAttributes": ANY
        })  # fmt: skip

    def refuse(self, code: str, status: int = 400, message: str = "Invalid parameter: Message too long") -> None:
        self.stub.add_client_error("publish", code, message, http_status_code=status)

    def messages(self, index: int = -1) -> dict[str, str]:
        decoded: dict[str, str] = json.loads(self.sent[index]["Message"])
        return decoded


def published(alert: alerts.Alert) -> Publishes:
    publishes = Publishes()
    publishes.accept()
    with publishes.stub:
        alerts.publish_alert(alert, topic_arn=TOPIC, sns=publishes.sns)
        publishes.stub.assert_no_pending_responses()
    return publishes


def through_the_log(lines: list[str]) -> tuple[str, ...]:
    """Read `lines` back as the job's log stream, the way the status logic does."""
    logs = client("logs")
    with Stubber(logs) as stub:
        stub.add_response("describe_log_streams", {"logStreams": [{"logStreamName": f"{JOB}/algo-1-1735725700"}]})
        stub.add_response("get_log_events", {"events": [{"timestamp": i, "message": m} for i, m in enumerate(lines)]})
        return alerts.last_log_lines(JOB, logs=logs)


def assert_within_the_limit_and_valid(publishes: Publishes) -> dict[str, Any]:
    """Check the last publish fits SNS, is valid UTF-8 JSON with a string per protocol; return its JSON document."""
    params = publishes.sent[-1]
    assert sns_counted_bytes(params) <= SNS_LIMIT
    params["Message"].encode("utf-8")  # strict: a lone surrogate would raise here, as it would in botocore
    messages = publishes.messages()
    assert set(messages) == PROTOCOLS and all(isinstance(value, str) for value in messages.values())
    document: dict[str, Any] = json.loads(messages["sqs"])
    jsonschema.validate(document, SCHEMA)
    assert json.loads(json.loads(messages["https"])["metadata"]["additionalContext"]["alert"]) == document
    return document


@pytest.mark.parametrize("path", ["tail-given", "read-from-the-log"])
@pytest.mark.parametrize("tail", list(HOSTILE_TAILS), ids=list(HOSTILE_TAILS))
def test_every_publish_fits_sns_whatever_the_log_holds_and_keeps_the_newest_lines(tail: str, path: str) -> None:
    given = through_the_log(HOSTILE_TAILS[tail]) if path == "read-from-the-log" else tuple(HOSTILE_TAILS[tail])
    alert = alerts.build_alert(failed(), ENTRY, log_tail=given)

    publishes = published(alert)

    document = assert_within_the_limit_and_valid(publishes)
    kept, cut = document["log_tail"], document["log_lines_cut"]
    assert kept, "at least the newest line (cut if it must be) is kept"
    assert cut + len(kept) == len(given)
    # The newest lines, in order, each at most 500 characters; only the newest may be cut shorter.
    expected = [_SURROGATES.sub("\ufffd", line) for line in given[len(given) - len(kept) :]]
    assert kept[:-1] == [line if len(line) <= 500 else line[:499] + "…" for line in expected[:-1]]
    assert kept[-1] == expected[-1] or (kept[-1].endswith("…") and expected[-1].startswith(kept[-1][:-1]))
    text = publishes.messages()["default"]
    assert publishes.messages()["email"] == text
    if cut:
        assert f"… {cut} earlier lines cut" in text
    assert text.rstrip().endswith(alert.logs_url) and "Reason: AlgorithmError" in text
    if tail in MUST_CUT[path]:
        assert cut > 0


def test_a_progress_bar_is_shown_as_its_last_state_without_colour_codes() -> None:
    [line] = through_the_log(["\x1b[32m" + _tqdm(7) + "\x1b[0m\r\n"])
    assert line.startswith(" epoch 7: 100%|██████████| 100/100") and "\r" not in line and "\x1b" not in line


def test_the_oldest_lines_go_first_and_the_text_says_how_many() -> None:
    alert = alerts.build_alert(failed(), ENTRY, log_tail=tuple(f"line {i}" for i in range(20)))
    three = alerts.fit(dataclasses.replace(alert, log_tail=alert.log_tail[-3:], log_lines_cut=17))

    fitted = alerts.fit(alert, budget=three.size)

    document = json.loads(json.loads(fitted.message)["sqs"])
    assert (document["log_tail"], document["log_lines_cut"]) == (["line 17", "line 18", "line 19"], 17)
    assert "Last 3 log lines:\n  … 17 earlier lines cut\n  line 17\n" in json.loads(fitted.message)["default"]


def test_when_the_log_is_gone_and_the_alert_is_still_too_big_the_free_text_is_cut() -> None:
    alert = dataclasses.replace(
        alerts.build_alert(failed(), ENTRY, log_tail=tuple(HOSTILE_TAILS["quotes-20x15kb"])),
        failure_reason="AlgorithmError: " + '"' * 300_000,
        status_message="😀" * 100_000,
    )

    document = assert_within_the_limit_and_valid(published(alert))

    assert (document["log_tail"], document["log_lines_cut"]) == ([], 20)
    assert document["failure_reason"].startswith("AlgorithmError: ") and document["failure_reason"].endswith("…")
    assert document["status_message"].endswith("…") and document["job_name"] == JOB


def test_a_refused_upload_with_a_huge_reason_fits_and_is_alerted_in_the_same_formats() -> None:
    event = json.loads((ROOT / "events" / "stage-object-created.json").read_text())
    error = staging.StagingError("src/" + "é" * 200 + ".py", "is refused: " + '"😀' * 100_000, rule="name")
    sqs, publishes = client("sqs"), Publishes()
    publishes.accept("a-1")
    with Stubber(sqs) as sqs_stub, publishes.stub:
        sqs_stub.add_response("send_message", {"MessageId": "m-1"})
        refusal = refusals.refuse(
            event, error, object_created(event), function_arn="arn:aws:lambda:us-east-1:123456789012:function:stage",
            queue_url="https://sqs.us-east-1.amazonaws.com/123456789012/stage-dlq", topic_arn=TOPIC,
            region="us-east-1", ingest_prefix="incoming/", sqs=sqs, sns=publishes.sns,
        )  # fmt: skip

    assert refusal.alert_id == "a-1"
    document = assert_within_the_limit_and_valid(publishes)
    assert (document["kind"], document["status"], document["job_name"]) == ("upload-refused", "UploadRefused", None)
    assert document["cause"].startswith("src/é") and document["cause"].endswith("…")
    assert document["cause"] == document["failure_reason"] and document["error"] == "StagingError"
    subject = publishes.sent[-1]["Subject"]
    assert subject.startswith("[sagepush] iris: upload refused: ") and len(subject) <= 100


@pytest.mark.parametrize("code", ["InvalidParameter", "ParameterValueInvalid", "InvalidParameterValue"])
def test_a_publish_sns_refuses_as_invalid_is_replaced_by_the_minimal_alert(code: str) -> None:
    alert = alerts.build_alert(failed(), ENTRY, log_tail=("Traceback (most recent call last):", "ValueError: NaN"))
    publishes = Publishes()
    publishes.refuse(code)
    publishes.accept("m-minimal")

    with publishes.stub:
        message_id = alerts.publish_alert(alert, topic_arn=TOPIC, sns=publishes.sns)
        publishes.stub.assert_no_pending_responses()

    assert message_id == "m-minimal" and len(publishes.sent) == 2
    document = assert_within_the_limit_and_valid(publishes)
    assert (document["job_name"], document["project"], document["status"]) == (JOB, "iris", "Failed")
    assert (document["log_tail"], document["log_lines_cut"], document["status_message"]) == ([], 2, None)
    assert document["failure_reason"] and len(document["failure_reason"]) <= 200
    assert "cut short" in publishes.messages()["default"]
    assert publishes.sent[1]["MessageAttributes"] == publishes.sent[0]["MessageAttributes"]
    assert publishes.sent[1]["Subject"] == publishes.sent[0]["Subject"]


@pytest.mark.parametrize(
    ("code", "status"), [("Throttled", 429), ("InternalError", 500), ("AuthorizationError", 403)],
    ids=["throttled", "sns-unavailable", "not-authorized"],
)  # fmt: skip
def test_other_publish_errors_propagate_so_the_invocation_is_retried(code: str, status: int) -> None:
    publishes = Publishes()
    publishes.refuse(code, status, message="injected")

    with publishes.stub, pytest.raises(publishes.sns.exceptions.ClientError) as raised:
        alerts.publish_alert(alerts.build_alert(failed(), ENTRY), topic_arn=TOPIC, sns=publishes.sns)

    assert raised.value.response["Error"]["Code"] == code and len(publishes.sent) == 1


def test_a_minimal_alert_refused_too_is_raised() -> None:
    publishes = Publishes()
    publishes.refuse("InvalidParameter")
    publishes.refuse("InvalidParameter", message="Invalid parameter: TopicArn")

    with publishes.stub, pytest.raises(publishes.sns.exceptions.InvalidParameterException):
        alerts.publish_alert(alerts.build_alert(failed(), ENTRY), topic_arn=TOPIC, sns=publishes.sns)

    assert len(publishes.sent) == 2


def test_a_submit_failure_with_a_32k_cause_of_quotes_and_emoji_fits_and_keeps_its_error() -> None:
    # Step Functions allows a cause of 32,768 characters; each quote is escaped up to three times over in the publish.
    cause = ('"' * 3 + "🚀") * 8192
    alert = alerts.submit_failed_alert(
        job_name=JOB, project="iris", error="SpecError", cause=cause,
        execution_arn=f"arn:aws:states:us-east-1:123456789012:execution:TrainingStateMachine:{JOB}",
        region="us-east-1", log_group="/aws/lambda/submit", source=ENTRY.source, code_uri=ENTRY.code_uri,
        time="2025-01-01T10:00:02.123Z",
    )  # fmt: skip
    assert alert.publication().size > SNS_LIMIT, "without fit the alert would not fit"

    publishes = published(alert)

    document = assert_within_the_limit_and_valid(publishes)
    assert (document["kind"], document["error"], document["job_name"]) == ("submit-failed", "SpecError", JOB)
    assert document["cause"].startswith('"""🚀') and document["cause"].endswith("…")
    assert document["failure_reason"] == document["cause"] and len(publishes.sent) == 1
