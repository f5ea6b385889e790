"""Every IAM statement in template.yaml is one the project has reviewed: a widened policy fails here.

`tests/unit/iam_statements.json` lists each statement (identity policies of functions, roles and the state machine,
and the resource policies of buckets, queues and topics) with its effect, actions, resources and condition keys. A
change to any of them — a new action, a wider resource, a dropped condition — fails
`test_every_iam_statement_is_on_the_reviewed_list` with the difference. After reviewing the change, record it with
`uv run python -m tests.unit.test_template_iam --write` and commit the list with the template.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from sagepush import images
from sagepush_cli import template

REVIEWED = Path(__file__).with_name("iam_statements.json")
# Statements whose resource must be "*": the API has no resource-level permission for these actions.
STAR_RESOURCES = {"ecr:GetAuthorizationToken", "cloudwatch:PutMetricData", "xray:PutTraceSegments",
                  "xray:PutTelemetryRecords", "logs:CreateLogDelivery", "logs:GetLogDelivery",
                  "logs:UpdateLogDelivery", "logs:DeleteLogDelivery", "logs:ListLogDeliveries",
                  "logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
                  "sagemaker:ListModelPackages"}  # fmt: skip


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _canonical(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _statement(owner: str, index: int, statement: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    key = f"{owner}/{statement.get('Sid', index)}"
    return key, {
        "effect": statement["Effect"],
        "actions": sorted(_canonical(a) for a in _listed(statement.get("Action", statement.get("NotAction", [])))),
        "resources": sorted(_canonical(r) for r in _listed(statement.get("Resource", []))),
        "principal": _canonical(statement["Principal"]) if "Principal" in statement else None,
        "conditions": sorted(f"{op}:{k}" for op, keys in statement.get("Condition", {}).items() for k in keys),
    }


def statements(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every IAM statement in the template, keyed `<logical id>[/<policy>]/<Sid or index>`."""
    found: dict[str, dict[str, Any]] = {}
    for logical_id, resource in document["Resources"].items():
        properties = resource.get("Properties", {})
        kind = resource["Type"]
        documents: list[tuple[str, Any]] = []
        if kind in ("AWS::Serverless::Function", "AWS::Serverless::StateMachine"):
            for n, policy in enumerate(_listed(properties.get("Policies", []))):
                if isinstance(policy, dict) and "Statement" in policy:
                    documents.append((f"{logical_id}/{n}", policy))
                else:  # a SAM policy template or a managed policy: listed whole
                    found[f"{logical_id}/{n}"] = {"policy": _canonical(policy)}
        elif kind == "AWS::IAM::Role":
            documents.append((f"{logical_id}/trust", properties["AssumeRolePolicyDocument"]))
            for policy in properties.get("Policies", []):
                documents.append((f"{logical_id}/{policy['PolicyName']}", policy["PolicyDocument"]))
            for arn in properties.get("ManagedPolicyArns", []):
                found[f"{logical_id}/managed/{_canonical(arn)}"] = {"policy": _canonical(arn)}
        elif kind in ("AWS::IAM::Policy", "AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy"):
            documents.append((logical_id, properties["PolicyDocument"]))
        for owner, policy in documents:
            for index, statement in enumerate(_listed(policy["Statement"])):
                key, value = _statement(owner, index, statement)
                found[key] = value
    return found


@pytest.fixture(scope="module")
def current() -> dict[str, dict[str, Any]]:
    return statements(template.load())


def test_every_iam_statement_is_on_the_reviewed_list(current: dict[str, dict[str, Any]]) -> None:
    reviewed = json.loads(REVIEWED.read_text())
    added = sorted(set(current) - set(reviewed))
    changed = sorted(key for key in set(current) & set(reviewed) if current[key] != reviewed[key])
    details = [f"new: {key}: {current[key]}" for key in added]
    details += [f"changed: {key}:\n  reviewed {reviewed[key]}\n  now      {current[key]}" for key in changed]
    assert not details, "IAM statements differ from tests/unit/iam_statements.json:\n" + "\n".join(details)


def test_no_allow_statement_grants_every_action_or_every_resource(current: dict[str, dict[str, Any]]) -> None:
    for key, statement in current.items():
        if statement.get("effect") != "Allow":
            continue
        assert not any(a == "*" or a.endswith(":*") for a in statement["actions"]), key
        if "*" in statement["resources"]:
            assert set(statement["actions"]) <= STAR_RESOURCES, f"{key} grants {statement['actions']} on *"


def test_create_training_job_carries_the_job_policys_condition_keys(current: dict[str, dict[str, Any]]) -> None:
    [create] = [s for s in current.values() if "sagemaker:CreateTrainingJob" in s.get("actions", [])]
    assert {
        "ForAllValues:StringLike:sagemaker:InstanceTypes",
        "NumericLessThanEquals:sagemaker:MaxRuntimeInSeconds",
        "ForAllValues:StringEquals:sagemaker:VpcSubnets",
        "ForAllValues:StringEquals:sagemaker:VpcSecurityGroupIds",
        "StringEqualsIfExists:sagemaker:VolumeKmsKey",
        "StringEqualsIfExists:sagemaker:OutputKmsKey",
        "Null:aws:RequestTag/sagepush:project",
    } <= set(create["conditions"])
    [tagging] = [s for s in current.values() if s.get("actions") == ["sagemaker:AddTags"]]
    assert tagging["conditions"] == ["StringEquals:sagemaker:TaggingAction"]


def test_the_template_knows_every_framework_image_account() -> None:
    mapping = template.load()["Mappings"]["FrameworkImageAccounts"]
    regions = {region for registries in images._table()["registries"] for region in registries}
    assert set(mapping) == regions, "run scripts/template_image_accounts.py --write"
    for region in regions:
        assert set(mapping[region]["Accounts"].split(",")) == images.framework_accounts(region), region


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    REVIEWED.write_text(json.dumps(statements(template.load()), indent=1, sort_keys=True) + "\n")
    print(f"wrote {REVIEWED}")
