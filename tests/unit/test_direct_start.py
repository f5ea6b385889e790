"""A hand-started execution's input: read, `set` applied to the manifest table, checked as an upload's manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sagepush.config import JobDefaultSettings
from sagepush.errors import InputError
from sagepush.events import EventError, direct_start
from sagepush.policy import Policy
from sagepush.starting import apply_settings, prepare_direct_start

SAMPLE: dict[str, Any] = json.loads((Path(__file__).resolve().parents[2] / "events" / "direct-start.json").read_text())
SETTINGS = JobDefaultSettings(
    aws_region="us-east-1",
    sagemaker_role_arn="arn:aws:iam::123456789012:role/SagepushTraining",
    output_path="s3://sagepush-artifacts-example/output/",
    output_kms_key=None,
    default_instance_type="ml.m5.large",
    default_volume_size=30,
    default_max_run=3600,
    default_tags={},
    job_policy=Policy(),
)


def test_the_sample_becomes_the_document_an_uploads_execution_carries() -> None:
    document = prepare_direct_start(direct_start(SAMPLE), execution_name="iris-lr-sweep-1", settings=SETTINGS)

    assert document["job_name"].startswith("iris-3f5c0f2a-")
    assert document["code_digest"] == SAMPLE["code_uri"].split("/")[-2]
    assert document["spec"]["hyperparameters"] == {"n_estimators": 200, "max_depth": 4}
    assert document["spec"]["max_run"] == "45m"
    assert document["timeout_seconds"] == 45 * 60 + 3600
    again = prepare_direct_start(direct_start(SAMPLE), execution_name="iris-lr-sweep-1", settings=SETTINGS)
    other = prepare_direct_start(direct_start(SAMPLE), execution_name="iris-lr-sweep-2", settings=SETTINGS)
    assert again["job_name"] == document["job_name"] != other["job_name"]


def test_set_reaches_into_tables_and_names_a_key_that_is_not_one() -> None:
    assert apply_settings({"a": {"b": 1}}, {"a.c": 2, "d.e": 3}) == {"a": {"b": 1, "c": 2}, "d": {"e": 3}}
    with pytest.raises(InputError) as caught:
        apply_settings({"max_run": "1h"}, {"max_run.hours": 2})
    assert caught.value.where == "set.max_run.hours"


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"project": 7}, "$.project"),
        ({"set": ["max_run"]}, "$.set"),
        ({"spec": "sagepush.toml"}, "$.spec"),
        ({"source": {"commit": 1}}, "$.source"),
    ],
    ids=["project", "set", "spec", "source"],
)
def test_a_malformed_input_names_its_path(change: dict[str, Any], where: str) -> None:
    with pytest.raises(EventError) as caught:
        direct_start({**SAMPLE, **change})
    assert caught.value.where == where


def test_a_script_job_needs_its_code_and_a_bad_field_is_named_as_the_inputs() -> None:
    without_code = {key: value for key, value in SAMPLE.items() if key != "code_uri"}
    with pytest.raises(InputError) as caught:
        prepare_direct_start(direct_start(without_code), execution_name="x", settings=SETTINGS)
    assert caught.value.where == "code_uri"
    with pytest.raises(InputError) as refused:
        prepare_direct_start(
            direct_start({**SAMPLE, "set": {"instance_type": "ml.p5.48xlarge"}}), execution_name="x", settings=SETTINGS
        )
    assert "input: instance_type" in str(refused.value)
