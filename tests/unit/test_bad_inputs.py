"""Bad events and manifests: each names the field, a refused upload is parked once and alerted, nothing retries forever."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import jsonschema
import pytest
from botocore.stub import ANY, Stubber
from samtranslator.yaml_helper import yaml_parse

from sagepush import refusals, request, spec, staging
from sagepush.errors import InputError
from sagepush.events import EventError, ObjectCreated, object_created, object_named
from sagepush.naming import NamingError, project_from_key
from tests.unit.archives import file, tar_bytes

if TYPE_CHECKING:
    from collections.abc import Callable

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = yaml_parse((ROOT / "template.yaml").read_text())
SCHEMA = json.loads((ROOT / "docs" / "alerts.schema.json").read_text())
EVENT = json.loads((ROOT / "events" / "stage-object-created.json").read_text())


def changed(change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    event: dict[str, Any] = copy.deepcopy(EVENT)
    change(event)
    return event


# ------------------------------------------------------------------------------------------------------ events

MALFORMED_EVENTS: list[tuple[str, Any, str]] = [
    ("not-an-object", [], "$"),
    ("no-detail", changed(lambda e: e.pop("detail")), "$.detail"),
    ("detail-is-text", changed(lambda e: e.__setitem__("detail", "x")), "$.detail.object"),
    ("key-is-a-number", changed(lambda e: e["detail"]["object"].__setitem__("key", 3)), "$.detail.object.key"),
    ("bucket-missing", changed(lambda e: e["detail"].pop("bucket")), "$.detail.bucket"),
    ("size-is-text", changed(lambda e: e["detail"]["object"].__setitem__("size", "3")), "$.detail.object.size"),
    ("size-negative", changed(lambda e: e["detail"]["object"].__setitem__("size", -3)), "$.detail.object.size"),
    ("size-boolean", changed(lambda e: e["detail"]["object"].__setitem__("size", True)), "$.detail.object.size"),
    ("time-is-an-object", changed(lambda e: e.__setitem__("time", {})), "$.time"),
    ("other-source", changed(lambda e: e.__setitem__("source", "aws.ec2")), "$.source"),
    ("object-deleted", changed(lambda e: e.__setitem__("detail-type", "Object Deleted")), "$.detail-type"),
]


@pytest.mark.parametrize(("event", "where"), [c[1:] for c in MALFORMED_EVENTS], ids=[c[0] for c in MALFORMED_EVENTS])
def test_malformed_upload_events_name_the_json_path(event: Any, where: str) -> None:
    with pytest.raises(EventError) as caught:
        object_created(event)
    assert caught.value.where == where
    assert "\n" not in str(caught.value)


BAD_KEYS = [
    ("outside-incoming", "uploads/iris/main.tar.gz", "is outside 'incoming/'"),
    ("no-file", "incoming/iris/", "does not name a file"),
    ("no-project", "incoming/main.tar.gz", "does not name a file"),
    ("upper-case-project", "incoming/Iris/main.tar.gz", "is not a project name"),
    ("underscore-project", "incoming/my_proj/main.tar.gz", "is not a project name"),
    ("dot-dot-project", "incoming/../main.tar.gz", "is not a project name"),
]


@pytest.mark.parametrize(("key", "problem"), [c[1:] for c in BAD_KEYS], ids=[c[0] for c in BAD_KEYS])
def test_keys_outside_incoming_and_invalid_projects_are_named(key: str, problem: str) -> None:
    with pytest.raises(NamingError) as caught:
        project_from_key(key)
    assert caught.value.where == "detail.object.key"
    assert problem in caught.value.message
    assert (
        refusals.project_of(
            object_created(changed(lambda e: e["detail"]["object"].__setitem__("key", key))), prefix="incoming/"
        )
        is None
    )


# --------------------------------------------------------------------------------------------------- manifests

HEAD = 'framework = "pytorch"\nframework_version = "2.5"\npy_version = "py311"\nentry_point = "train.py"\n'
DEFAULTS = spec.Defaults(
    role="arn:aws:iam::123456789012:role/train",
    instance_type="ml.m5.xlarge",
    volume_size=30,
    max_run=3600,
    output_path="s3://artifacts/output/",
    output_kms_key=None,
    tags={},
)
# (id, sagepush.toml text, `where` of the error)
BAD_MANIFESTS: list[tuple[str, str, str]] = [
    ("deep-nesting-crashes-no-parser", HEAD + "hyperparameters = { x = " + "[" * 5000 + "]" * 5000 + " }\n", "sagepush.toml"),
    ("deep-overrides", HEAD + "request_overrides = { X = " + "[" * 100 + "]" * 100 + " }\n", "sagepush.toml"),
    ("tool-not-a-table", "tool = 1\n", "sagepush.toml: tool"),
    ("tool-sagepush-not-a-table", "tool = { sagepush = 3 }\n", "sagepush.toml: [tool.sagepush]"),
    ("negative-instance-count", HEAD + "instance_count = -1\n", "sagepush.toml: instance_count"),
    ("absurd-instance-count", HEAD + "instance_count = 100000000000000000000\n", "sagepush.toml: instance_count"),
    ("boolean-instance-count", HEAD + "instance_count = true\n", "sagepush.toml: instance_count"),
    ("zero-volume", HEAD + "volume_size = 0\n", "sagepush.toml: volume_size"),
    ("negative-max-run", HEAD + 'max_run = "-5h"\n', "sagepush.toml: max_run"),
    ("absurd-max-run", HEAD + 'max_run = "99999h"\n', "sagepush.toml: max_run"),
    ("infinite-max-run", HEAD + "max_run = inf\n", "sagepush.toml: max_run"),
    ("nan-hyperparameter", HEAD + "hyperparameters = { lr = nan }\n", "sagepush.toml: hyperparameters.lr"),
    ("huge-hyperparameter", HEAD + 'hyperparameters = { lr = "' + "x" * 300_000 + '" }\n', "sagepush.toml: hyperparameters.lr"),
    ("5000-hyperparameters", HEAD + "hyperparameters = {" + ",".join(f"k{i} = {i}" for i in range(5000)) + "}\n", "sagepush.toml: hyperparameters"),
    ("entry-point-number", HEAD.replace('"train.py"', "3"), "sagepush.toml: entry_point"),
    ("entry-point-escapes", HEAD.replace('"train.py"', '"../../etc/passwd"'), "sagepush.toml: entry_point"),
    ("version-as-float", HEAD.replace('"2.5"', "2.5"), "sagepush.toml: framework_version"),
    ("channels-a-number", HEAD + "channels = 3\n", "sagepush.toml: channels"),
    ("override-wrong-type", HEAD + 'request_overrides = { ResourceConfig = { InstanceCount = "two" } }\n', "sagepush.toml: request_overrides.ResourceConfig.InstanceCount"),
    ("override-negative", HEAD + "request_overrides = { ResourceConfig = { InstanceCount = -3 } }\n", "sagepush.toml: request_overrides.ResourceConfig.InstanceCount"),
    ("unknown-key", HEAD + 'instance_typ = "ml.m5.xlarge"\n', "sagepush.toml: instance_typ"),
    ("not-toml", HEAD + "this is not toml\n", "sagepush.toml"),
    ("huge-manifest", HEAD + "# " + "x" * (2 << 20) + "\n", "sagepush.toml"),
]  # fmt: skip


@pytest.mark.timeout(20)
@pytest.mark.parametrize(("text", "where"), [c[1:] for c in BAD_MANIFESTS], ids=[c[0] for c in BAD_MANIFESTS])
def test_bad_manifests_are_refused_naming_the_file_and_field(text: str, where: str) -> None:
    # What StageFunction does before it starts anything: stage, resolve, build and validate the request.
    archive = tar_bytes([file("train.py", b"print(1)\n"), file("sagepush.toml", text.encode())])
    with pytest.raises(InputError) as caught:
        staged = staging.stage_archive(io.BytesIO(archive), io.BytesIO(), filename="code.tar.gz")
        resolved = spec.resolve_spec(staged.manifest, DEFAULTS)
        request.build_request(
            resolved, job_name="iris-0a1b2c3d-4e5f6a", code_uri="s3://artifacts/code/x/sourcedir.tar.gz",
            region="us-east-1", tags={"sagepush:project": "iris"},
        )  # fmt: skip
    assert caught.value.where == where, str(caught.value)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 400


@pytest.mark.parametrize("block", ["# tool = 1\n", "# [tool]\n# sagepush = 1\n"], ids=["tool", "tool.sagepush"])
def test_a_script_whose_tool_block_is_not_a_table_is_refused(block: str) -> None:
    script = f"# /// script\n{block}# ///\nprint(1)\n".encode()
    with pytest.raises(InputError) as caught:
        staging.stage_archive(io.BytesIO(script), io.BytesIO(), filename="train.py")
    assert caught.value.where.startswith("train.py: ")


# ---------------------------------------------------------------------------------------------------- refusals

QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/stage-dlq"
TOPIC = "arn:aws:sns:us-east-1:123456789012:alerts"
FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:stage"


def _clients() -> tuple[Any, Any]:
    sqs = boto3.client("sqs", region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s")
    sns = boto3.client("sns", region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s")
    return sqs, sns


def _refuse(event: Any, error: InputError, sqs: Any, sns: Any) -> refusals.Refusal:
    """Refuse `event` as StageFunction does: with the upload read from it, or None when it cannot be read."""
    upload: ObjectCreated | None
    try:
        upload = object_created(event)
    except InputError:
        upload = object_named(event)
    return refusals.refuse(
        event, error, upload, function_arn=FUNCTION, queue_url=QUEUE, topic_arn=TOPIC, region="us-east-1",
        ingest_prefix="incoming/", sqs=sqs, sns=sns,
    )  # fmt: skip


def test_a_refused_upload_is_parked_once_then_alerted_to_its_project() -> None:
    sqs, sns = _clients()
    error = staging.StagingError("../evil.py", "contains '..'; paths must stay inside the archive root", rule="path")
    sent: dict[str, Any] = {}
    with Stubber(sqs) as sqs_stub, Stubber(sns) as sns_stub:
        sqs_stub.add_response("send_message", {"MessageId": "m-1"}, {"QueueUrl": QUEUE, "MessageBody": ANY})
        sns_stub.add_response(
            "publish",
            {"MessageId": "a-1"},
            {"TopicArn": TOPIC, "Subject": ANY, "Message": ANY, "MessageStructure": "json", "MessageAttributes": ANY},
        )
        sqs.meta.events.register("before-parameter-build.sqs.SendMessage", lambda params, **_: sent.update(sqs=params))
        sns.meta.events.register("before-parameter-build.sns.Publish", lambda params, **_: sent.update(sns=params))
        refusal = _refuse(EVENT, error, sqs, sns)
        sqs_stub.assert_no_pending_responses()
        sns_stub.assert_no_pending_responses()
    assert refusal.as_dict() == {
        "refused": True, "where": "../evil.py", "problem": error.message, "project": "iris", "alerted": True,
    }  # fmt: skip
    record = json.loads(sent["sqs"]["MessageBody"])
    assert record["requestContext"]["condition"] == "InputRefused"
    assert record["requestPayload"] == EVENT
    assert record["responsePayload"]["errorType"] == "StagingError"
    messages = json.loads(sent["sns"]["Message"])
    document = json.loads(messages["sqs"])
    jsonschema.validate(document, SCHEMA)
    assert (document["kind"], document["project"], document["job_name"]) == ("upload-refused", "iris", None)
    assert document["cause"] == f"../evil.py: {error.message}"
    assert "../evil.py" in messages["email"] and "nothing was staged" in messages["email"]
    attributes = {k: v["StringValue"] for k, v in sent["sns"]["MessageAttributes"].items()}
    assert attributes == {"project": "iris", "status": "UploadRefused", "severity": "error"}
    assert sent["sns"]["Subject"].isascii() and len(sent["sns"]["Subject"]) <= 100


@pytest.mark.parametrize(
    "event",
    [[], changed(lambda e: e["detail"]["object"].__setitem__("key", "incoming/Bad_Name/x.zip"))],
    ids=["malformed", "invalid-project"],
)
def test_an_event_naming_no_project_is_parked_without_an_alert(event: Any) -> None:
    sqs, sns = _clients()
    with Stubber(sqs) as sqs_stub, Stubber(sns):  # the SNS stubber has no response: a publish would fail the test
        sqs_stub.add_response("send_message", {"MessageId": "m-1"}, {"QueueUrl": QUEUE, "MessageBody": ANY})
        refusal = _refuse(event, EventError("$", "is wrong"), sqs, sns)
    assert (refusal.project, refusal.alert_id) == (None, None)


def test_a_huge_event_is_parked_cut_to_what_sqs_takes() -> None:
    sqs, _ = _clients()
    event = changed(lambda e: e["detail"].__setitem__("padding", "x" * 1_000_000))
    bodies: list[str] = []
    sqs.meta.events.register(
        "before-parameter-build.sqs.SendMessage", lambda params, **_: bodies.append(params["MessageBody"])
    )
    with Stubber(sqs) as sqs_stub:
        sqs_stub.add_response("send_message", {"MessageId": "m-1"}, {"QueueUrl": QUEUE, "MessageBody": ANY})
        refusals.park(event, EventError("$.detail", "is too big"), function_arn=FUNCTION, queue_url=QUEUE, sqs=sqs)
    assert len(bodies[0].encode()) < 256 * 1024
    assert json.loads(bodies[0])["requestPayload"]["truncated"] is True


# ---------------------------------------------------------------------------------------------------- template


def _functions() -> dict[str, dict[str, Any]]:
    return {k: v for k, v in TEMPLATE["Resources"].items() if v["Type"] == "AWS::Serverless::Function"}


@pytest.mark.parametrize("logical_id", sorted(_functions()))
def test_no_asynchronous_hop_retries_forever(logical_id: str) -> None:
    function = _functions()[logical_id]["Properties"]
    # Every function, even one with no event of its own (Submit, whose ARN is published), can be invoked asynchronously.
    invoke = function["EventInvokeConfig"]
    assert 0 <= invoke["MaximumRetryAttempts"] <= 2
    assert invoke["MaximumEventAgeInSeconds"] <= 6 * 3600
    assert "Destination" in invoke["DestinationConfig"]["OnFailure"]
    for event in function.get("Events", {}).values():
        retry = event["Properties"]["RetryPolicy"]
        assert retry["MaximumRetryAttempts"] <= 185 and retry["MaximumEventAgeInSeconds"] <= 86400
        assert "Arn" in event["Properties"]["DeadLetterConfig"]


def test_staging_limits_are_deployment_parameters_the_stage_function_reads() -> None:
    variables = TEMPLATE["Resources"]["StageFunction"]["Properties"]["Environment"]["Variables"]
    for variable, parameter in {
        "MAX_UPLOAD_BYTES": "MaxUploadBytes", "MAX_EXPANDED_BYTES": "MaxExpandedBytes", "MAX_MEMBERS": "MaxMembers",
    }.items():  # fmt: skip
        assert variables[variable] == {"Ref": parameter}
        assert TEMPLATE["Parameters"][parameter]["MinValue"] == 1
    assert TEMPLATE["Parameters"]["MaxExpandedBytes"]["Default"] == staging.DEFAULT_LIMITS.max_total_bytes
    assert TEMPLATE["Parameters"]["MaxMembers"]["Default"] == staging.DEFAULT_LIMITS.max_members


def test_refused_uploads_can_be_parked_and_alerted_by_the_stage_function() -> None:
    stage = TEMPLATE["Resources"]["StageFunction"]["Properties"]
    statements = [s for policy in stage["Policies"] for s in policy["Statement"]]
    allowed = {(s["Action"] if isinstance(s["Action"], str) else tuple(s["Action"])): s["Resource"] for s in statements}
    assert allowed["sqs:SendMessage"] == {"Fn::GetAtt": ["StageDeadLetterQueue", "Arn"]}
    assert allowed["sns:Publish"] == {"Ref": "AlertsTopic"}
    assert stage["Environment"]["Variables"]["DEAD_LETTER_QUEUE_URL"] == {"Ref": "StageDeadLetterQueue"}
