from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from samtranslator.yaml_helper import yaml_parse

from sagepush.config import (
    RUNTIME_VARIABLES,
    ConfigError,
    JobStatusSettings,
    NotifySettings,
    ReconcileSettings,
    StageSettings,
    StatusSettings,
    SubmitSettings,
)

if TYPE_CHECKING:
    from sagepush.config import _Settings

TEMPLATE = yaml_parse((Path(__file__).resolve().parents[2] / "template.yaml").read_text())
SETTINGS: dict[str, type[_Settings]] = {
    "StageFunction": StageSettings,
    "SubmitFunction": SubmitSettings,
    "StatusFunction": StatusSettings,
    "ReconcileFunction": ReconcileSettings,
    "NotifyFunction": NotifySettings,
}
VALID = {
    "AWS_REGION": "eu-west-1",
    "SAGEMAKER_ROLE_ARN": "arn:aws:iam::123456789012:role/train",
    "OUTPUT_PATH": "s3://artifacts/output/",
    "OUTPUT_KMS_KEY": "",
    "DEFAULT_INSTANCE_TYPE": "ml.m5.xlarge",
    "DEFAULT_VOLUME_SIZE": "30",
    "DEFAULT_MAX_RUN": "3600",
    "DEFAULT_TAGS": '{"team": "ml"}',
    "JOB_POLICY": '{"instance_types": "ml.m5.*", "max_run": "3600"}',
    "ARTIFACT_BUCKET": "artifacts",
    "INGEST_PREFIX": "incoming/",
    "CODE_PREFIX": "code/",
    "STATE_MACHINE_ARN": "arn:aws:states:eu-west-1:123456789012:stateMachine:training",
    "MATRIX_STATE_MACHINE_ARN": "arn:aws:states:eu-west-1:123456789012:stateMachine:matrix",
    "MAX_UPLOAD_BYTES": "1000",
    "MAX_EXPANDED_BYTES": "2000",
    "MAX_MEMBERS": "10",
    "ALERTS_TOPIC_ARN": "arn:aws:sns:eu-west-1:123456789012:alerts",
    "DEAD_LETTER_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/stage-dlq",
    "LEDGER_TABLE": "ledger",
}


@pytest.mark.parametrize("logical_id", sorted(SETTINGS))
def test_settings_read_exactly_the_variables_the_template_declares(logical_id: str) -> None:
    declared = set(TEMPLATE["Resources"][logical_id]["Properties"]["Environment"]["Variables"])
    declared |= {
        v for v in TEMPLATE["Globals"]["Function"]["Environment"]["Variables"] if not v.startswith("POWERTOOLS_")
    }
    assert set(SETTINGS[logical_id].variables()) - RUNTIME_VARIABLES == declared


def test_valid_environment_parses_into_typed_values() -> None:
    settings = StageSettings.from_env(VALID)
    assert settings.default_volume_size == 30
    assert settings.default_tags == {"team": "ml"}
    assert settings.output_kms_key is None


def test_every_missing_or_malformed_variable_is_named_at_once() -> None:
    env = {**VALID, "DEFAULT_VOLUME_SIZE": "thirty", "STATE_MACHINE_ARN": "training", "DEFAULT_TAGS": "[1]"}
    del env["ARTIFACT_BUCKET"]
    with pytest.raises(ConfigError) as caught:
        StageSettings.from_env(env)
    message = str(caught.value)
    for name in (
        "DEFAULT_VOLUME_SIZE='thirty'",
        "STATE_MACHINE_ARN='training' is not an ARN",
        "DEFAULT_TAGS",
        "ARTIFACT_BUCKET is not set",
    ):
        assert name in message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Completed,Failed", {"Completed", "Failed"}),
        ("all", None),
        ("none", set()),
    ],
    ids=["list", "all", "none"],
)
def test_alert_on_reads_secondary_statuses(value: str, expected: set[str] | None) -> None:
    env = {
        "AWS_REGION": "eu-west-1",
        "LEDGER_TABLE": "ledger",
        "ALERTS_TOPIC_ARN": "arn:aws:sns:eu-west-1:123456789012:alerts",
        "ALERT_ON": value,
    }
    alert_on = JobStatusSettings.from_env(env).alert_on
    assert alert_on == expected if expected is not None else "Interrupted" in alert_on


def test_alert_on_with_an_unknown_status_is_named() -> None:
    env = {
        "AWS_REGION": "eu-west-1",
        "LEDGER_TABLE": "t",
        "ALERTS_TOPIC_ARN": "arn:aws:sns:eu-west-1:1:a",
        "ALERT_ON": "Done",
    }
    with pytest.raises(ConfigError, match="ALERT_ON='Done' is not"):
        JobStatusSettings.from_env(env)
