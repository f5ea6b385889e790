"""template.yaml loses nothing: Submit outlasts botocore's retries, failures are parked, queues and functions alarm."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider
from botocore.retries import standard
from samtranslator.yaml_helper import yaml_parse

from sagepush import aws

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = yaml_parse((ROOT / "template.yaml").read_text())
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]


def _of_type(kind: str) -> dict[str, dict[str, Any]]:
    return {name: resource for name, resource in RESOURCES.items() if resource["Type"] == kind}


FUNCTIONS = _of_type("AWS::Serverless::Function")
QUEUES = _of_type("AWS::SQS::Queue")
ALARMS = _of_type("AWS::CloudWatch::Alarm")
# Every alarm notifies the deployer's topic when AlarmTopicArn names one, the stack's AlarmsTopic otherwise.
ALARM_ACTIONS = [{"Fn::If": ["HasAlarmTopic", {"Ref": "AlarmTopicArn"}, {"Ref": "AlarmsTopic"}]}]
# The AWS calls one SubmitFunction invocation makes at most (sagepush.submitting.submit_job): the ledger's PutItem, and its
# UpdateItem when the job is already recorded (a retried task) or SageMaker refused it for good; CreateTrainingJob, and
# DescribeTrainingJob when the job exists already (the attach path, the one that matters most).
SUBMIT_CALLS = {"dynamodb": 2, "sagemaker": 2}
# Init, building and validating the request, logging: what Submit does besides waiting on AWS.
SUBMIT_OWN_SECONDS = 30
# The Powertools metrics with an alarm, and the handler that emits each.
COUNTED = {"EventsDropped": "status", "UploadsRefused": "stage", "ReconcileFailures": "reconcile"}


def _alarms_on(namespace: str, metric: str) -> dict[str, dict[str, Any]]:
    return {
        name: alarm["Properties"]
        for name, alarm in ALARMS.items()
        if alarm["Properties"].get("Namespace") == namespace and alarm["Properties"].get("MetricName") == metric
    }


# ------------------------------------------------------------------------------------------------------ timeouts


@pytest.fixture
def _clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # A client looks for credentials when it is made: dummy ones keep it from asking the instance metadata service.
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    aws.clear_clients()
    yield
    aws.clear_clients()


def _worst_case_call_seconds(service: str) -> float:
    """Seconds botocore may spend on one call of the handlers' `service` client before it gives up."""
    config: Any = aws.client(service).meta.config  # type: ignore[call-overload]
    attempts: int = config.retries["total_max_attempts"]
    # botocore.retries.standard: the n-th retry waits at most min(scale * 2**(n-1), 20) s (the throttling scale, 1 s,
    # is the largest), stretched by at most 5 s more when the answer asks for it (x-amz-retry-after).
    policy: Any = standard.ExponentialBackoff  # the figures are class attributes the stubs do not declare
    scale = policy._DEFAULT_BACKOFF_CONFIG["throttling_base_scale"]
    backoff = sum(
        min(scale * 2 ** (n - 1), policy._MAX_BACKOFF) + policy._RETRY_AFTER_MAX_ADDITIONAL for n in range(1, attempts)
    )
    return float(attempts * (config.connect_timeout + config.read_timeout) + backoff)


@pytest.mark.usefixtures("_clients")
def test_submit_outlasts_botocore_retrying_every_call_it_makes() -> None:
    # Lambda must not kill Submit while botocore still resends a CreateTrainingJob whose answer was lost: the resend
    # is what attaches to the job (ResourceInUse), and giving up is what raises the retryable UnansweredError.
    worst = sum(calls * _worst_case_call_seconds(service) for service, calls in SUBMIT_CALLS.items())
    timeout = FUNCTIONS["SubmitFunction"]["Properties"]["Timeout"]
    assert worst + SUBMIT_OWN_SECONDS <= timeout <= 900, f"Submit's {timeout} s against {worst:.0f} s of AWS calls"


@pytest.mark.usefixtures("_clients")
def test_one_create_training_job_gives_up_well_inside_submits_timeout() -> None:
    # The relation this issue is about: botocore's read timeout on SageMaker was Submit's whole timeout.
    config: Any = aws.client("sagemaker").meta.config
    timeout = FUNCTIONS["SubmitFunction"]["Properties"]["Timeout"]
    assert config.retries["total_max_attempts"] * (config.connect_timeout + config.read_timeout) < timeout / 2


# ------------------------------------------------------------------------------------------------------ dead letters


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_every_function_parks_failed_asynchronous_invocations_in_an_encrypted_queue(logical_id: str) -> None:
    # Any function can be invoked asynchronously: Stage and Status by their rules, Reconcile by its schedule, Submit
    # by anyone holding the published SubmitFunctionArn (InvocationType Event).
    invoke = FUNCTIONS[logical_id]["Properties"]["EventInvokeConfig"]
    assert 0 <= invoke["MaximumRetryAttempts"] <= 2
    on_failure = invoke["DestinationConfig"]["OnFailure"]
    assert on_failure["Type"] == "SQS"
    queue, attribute = on_failure["Destination"]["Fn::GetAtt"]
    assert attribute == "Arn" and queue in QUEUES
    properties = QUEUES[queue]["Properties"]
    assert properties.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in properties
    assert properties["MessageRetentionPeriod"] == 14 * 24 * 3600


def _queue_statements(queue: str) -> list[dict[str, Any]]:
    return [
        statement
        for policy in _of_type("AWS::SQS::QueuePolicy").values()
        if {"Ref": queue} in policy["Properties"]["Queues"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


@pytest.mark.parametrize("queue", sorted(QUEUES))
def test_every_queue_takes_messages_only_from_its_sources(queue: str) -> None:
    statements = _queue_statements(queue)
    assert statements, f"{queue} has no queue policy"
    for statement in statements:
        assert statement["Action"] == "sqs:SendMessage"
        assert statement["Resource"] == {"Fn::GetAtt": [queue, "Arn"]}
        if statement["Effect"] == "Allow":
            # A service may send only on behalf of the rule or topic that feeds this queue.
            assert set(statement["Principal"]) == {"Service"}
            assert "aws:SourceArn" in statement["Condition"]["ArnEquals"]
        else:
            assert statement["Principal"] == "*"
            assert "aws:PrincipalArn" in statement["Condition"]["ArnNotEquals"]


def test_only_submit_functions_own_role_may_send_to_its_dead_letter_queue() -> None:
    [deny] = _queue_statements("SubmitDeadLetterQueue")
    assert deny["Effect"] == "Deny"
    # SAM names the role it makes for a function <logical id>Role; Lambda sends to the destination with that role.
    assert deny["Condition"]["ArnNotEquals"]["aws:PrincipalArn"] == {"Fn::GetAtt": ["SubmitFunctionRole", "Arn"]}
    assert "Role" not in FUNCTIONS["SubmitFunction"]["Properties"], "a role of our own would not be SubmitFunctionRole"


# ------------------------------------------------------------------------------------------------------ alarms


def test_alarms_are_on_by_default_and_go_to_a_topic_of_their_own_unless_one_is_given() -> None:
    assert TEMPLATE["Parameters"]["Alarms"]["Default"] == "Enabled"
    assert TEMPLATE["Parameters"]["AlarmTopicArn"]["Default"] == ""
    conditions = TEMPLATE["Conditions"]
    assert conditions["CreateAlarms"] == {"Fn::Equals": [{"Ref": "Alarms"}, "Enabled"]}
    assert conditions["HasAlarmTopic"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]}
    assert conditions["CreateAlarmsTopic"] == {
        "Fn::And": [{"Condition": "CreateAlarms"}, {"Fn::Not": [{"Condition": "HasAlarmTopic"}]}]
    }
    topic = RESOURCES["AlarmsTopic"]
    assert topic["Condition"] == "CreateAlarmsTopic"
    # CloudWatch cannot publish to a topic under the AWS managed key (AlertsTopic's), whose policy it is not in.
    assert "KmsMasterKeyId" not in topic["Properties"]
    [publish] = RESOURCES["AlarmsTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert publish["Principal"] == {"Service": "cloudwatch.amazonaws.com"} and publish["Action"] == "sns:Publish"
    assert publish["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}


@pytest.mark.parametrize("alarm", sorted(ALARMS))
def test_every_alarm_notifies_the_chosen_topic_and_stays_quiet_without_data(alarm: str) -> None:
    assert ALARMS[alarm]["Condition"] == "CreateAlarms"
    properties = ALARMS[alarm]["Properties"]
    assert properties["AlarmActions"] == ALARM_ACTIONS
    assert properties["TreatMissingData"] == "notBreaching"
    assert properties["Threshold"] == 0 and properties["ComparisonOperator"] == "GreaterThanThreshold"
    assert properties["AlarmDescription"].strip()


@pytest.mark.parametrize("queue", sorted(QUEUES))
def test_every_queue_has_a_depth_alarm(queue: str) -> None:
    alarms = [
        alarm
        for alarm in _alarms_on("AWS/SQS", "ApproximateNumberOfMessagesVisible").values()
        if alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]
    ]
    assert alarms, f"no alarm on the depth of {queue}"
    assert all(alarm["Statistic"] == "Maximum" for alarm in alarms)


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_every_function_has_an_error_alarm(logical_id: str) -> None:
    alarms = [
        alarm
        for alarm in _alarms_on("AWS/Lambda", "Errors").values()
        if alarm["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": logical_id}}]
    ]
    assert alarms, f"no alarm on the errors of {logical_id}"
    assert all(alarm["Statistic"] == "Sum" for alarm in alarms)


@pytest.mark.parametrize(("metric", "function"), sorted(COUNTED.items()))
def test_parked_and_dropped_alarms_match_the_metric_powertools_emits(
    monkeypatch: pytest.MonkeyPatch, metric: str, function: str
) -> None:
    # The handler counts it under this name...
    source = (ROOT / "functions" / function / "app.py").read_text()
    assert re.search(rf'add_metric\(\s*name="{metric}"', source), f"functions/{function}/app.py emits no {metric}"
    # ...and Powertools, configured as the template configures every function, emits it in this namespace with these
    # dimensions: a CloudWatch alarm matches a metric only on its exact namespace, name and set of dimensions.
    for name, value in TEMPLATE["Globals"]["Function"]["Environment"]["Variables"].items():
        monkeypatch.setenv(name, value)
    emf = AmazonCloudWatchEMFProvider()
    emf.add_metric(name=metric, unit="Count", value=1)
    blob: Any = emf.serialize_metric_set()
    [directive] = blob["_aws"]["CloudWatchMetrics"]
    [dimension_names] = directive["Dimensions"]
    emitted = [{"Name": name, "Value": blob[name]} for name in dimension_names]

    [alarm] = _alarms_on(directive["Namespace"], metric).values()
    assert alarm["Dimensions"] == emitted
    assert alarm["Statistic"] == "Sum"


def test_a_failure_that_reaches_no_dead_letter_queue_alarms() -> None:
    metrics = [
        m["MetricStat"]["Metric"]
        for m in RESOURCES["DeadLettersLostAlarm"]["Properties"]["Metrics"]
        if "MetricStat" in m
    ]
    watched = {(m["Namespace"], m["MetricName"], m["Dimensions"][0]["Value"].get("Ref", "")) for m in metrics}
    for logical_id, function in FUNCTIONS.items():
        assert ("AWS/Lambda", "DestinationDeliveryFailures", logical_id) in watched
        for event in function["Properties"].get("Events", {}):
            # SAM names the rule it makes for an event <function><event>; each rule has a DLQ of its own.
            assert ("AWS/Events", "InvocationsFailedToBeSentToDlq", f"{logical_id}{event}") in watched
    topics = {m["Dimensions"][0]["Value"]["Fn::GetAtt"][0] for m in metrics if m["Namespace"] == "AWS/SNS"}
    assert topics == {"AlertsTopic"}
