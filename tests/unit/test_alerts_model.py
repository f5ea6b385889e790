"""The registry and hosting alerts: a version registered (with the gate's verdict per condition), approved or
rejected, and its endpoint deploying, in service, failed or rolled back; in every format, within the schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from sagepush import alerts

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "docs" / "alerts.schema.json").read_text())
JOB = "iris-3f5c0f2a-6b1e9d"
ARN = "arn:aws:sagemaker:us-east-1:123456789012:model-package/iris/3"
GATE = (
    {"condition": "validation:accuracy >= 0.9", "value": 0.95, "holds": True},
    {"condition": "validation:loss < 0.2", "value": 0.31, "holds": False},
)


def alert(status: str, **facts: Any) -> alerts.Alert:
    model = alerts.ModelFacts(group="iris", version=3, package_arn=ARN, **facts)
    return alerts.model_alert(
        status=status,
        project="iris",
        model=model,
        region="us-east-1",
        time="2026-12-06T10:00:00Z",
        job_name=JOB,
        source={"commit": "9fceb02d0ae598e95dc970b74767f19372d61af8", "branch": "main"},
        final_metrics={"validation:accuracy": 0.95, "validation:loss": 0.31},
    )


def document(alert: alerts.Alert) -> dict[str, Any]:
    rendered: dict[str, Any] = json.loads(alert.messages()["sqs"])
    jsonschema.validate(rendered, SCHEMA)
    return rendered


def test_registered_alert_gives_each_conditions_verdict_in_every_format() -> None:
    registered = alert("ModelRegistered", approval_status="PendingManualApproval", gate=GATE, endpoint="iris")
    rendered = document(registered)
    assert rendered["kind"] == "model-registered"
    assert rendered["model"]["version"] == 3
    assert rendered["model"]["gate"] == [dict(verdict) for verdict in GATE]
    assert rendered["model"]["approval_status"] == "PendingManualApproval"
    text = registered.text()
    assert "validation:accuracy >= 0.9: 0.95, holds" in text
    assert "validation:loss < 0.2: 0.31, fails" in text
    assert "Approval: PendingManualApproval" in text
    assert registered.subject == "[sagepush] iris: model iris v3 registered"
    chat = registered.chat()
    assert "validation:loss < 0.2: 0.31, fails" in chat["content"]["description"]
    assert chat["content"]["nextSteps"][0].endswith("|Open the model version>")


@pytest.mark.parametrize(
    ("status", "kind", "severity"),
    [
        ("ModelApproved", "model-approval", "info"),
        ("ModelRejected", "model-approval", "warning"),
        ("EndpointDeploying", "endpoint-state", "info"),
        ("EndpointInService", "endpoint-state", "info"),
        ("EndpointFailed", "endpoint-state", "error"),
        ("EndpointRolledBack", "endpoint-state", "error"),
    ],
)
def test_each_transition_has_its_kind_severity_and_filterable_attributes(status: str, kind: str, severity: str) -> None:
    sent = alert(status, approval_status="Approved", endpoint="iris", endpoint_config="iris-v3")
    rendered = document(sent)
    assert (rendered["kind"], rendered["status"], rendered["severity"]) == (kind, status, severity)
    assert sent.attributes() == {"project": "iris", "status": status, "severity": severity}
    assert alerts.HEADLINES[status] in sent.sms()


def test_endpoint_alerts_name_the_endpoint_and_link_to_it() -> None:
    rolled_back = alerts.model_alert(
        status="EndpointRolledBack",
        project="iris",
        model=alerts.ModelFacts(group="iris", version=4, endpoint="iris-prod", endpoint_config="iris-prod-v3"),
        region="eu-west-1",
        time="2026-12-06T10:00:00Z",
        job_name=JOB,
        failure_reason="Alarm iris-5xx fired: the update was rolled back",
    )
    assert rolled_back.subject == "[sagepush] iris: endpoint iris-prod (model iris v4) deployment rolled back"
    assert rolled_back.console_url.endswith("#/endpoints/iris-prod")
    text = rolled_back.text()
    assert "Reason: Alarm iris-5xx fired" in text
    assert "Endpoint config: iris-prod-v3" in text
    assert document(rolled_back)["failure_reason"].startswith("Alarm iris-5xx")


def test_rejection_carries_the_reason_a_person_gave() -> None:
    rejected = alert("ModelRejected", approval_status="Rejected", approval_description="overfits the holdout")
    assert "Approval note: overfits the holdout" in rejected.text()
    assert document(rejected)["model"]["approval_description"] == "overfits the holdout"
