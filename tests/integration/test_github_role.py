"""The GitHub push role: created only when asked for, trusted by one repository's branch, able to write one prefix."""

from __future__ import annotations

import ast
import fnmatch
import json
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import boto3
import pytest

from sagepush_cli.local.stack import ACCOUNT_ID

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sagepush_cli.local.stack import LocalStack

PROVIDER = f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/token.actions.githubusercontent.com"
# moto's CloudFormation cannot create an AWS::IAM::OIDCProvider: these tests take the account's existing provider.
PARAMETERS = {"GitHubRepository": "acme/churn", "GitHubProject": "churn", "GitHubOidcProviderArn": PROVIDER}


@pytest.fixture
def github_stack(stack: LocalStack) -> Iterator[LocalStack]:
    saved = dict(stack.parameters)
    stack.parameters = {**saved, **PARAMETERS}
    stack.reset()
    yield stack
    stack.parameters = saved
    stack.reset()


def role_of(stack: LocalStack) -> tuple[dict[str, Any], dict[str, Any]]:
    iam = boto3.client("iam")
    name = stack.outputs["GitHubPushRoleArn"].rsplit("/", 1)[-1]
    role = iam.get_role(RoleName=name)["Role"]
    trust = role["AssumeRolePolicyDocument"]
    [policy_name] = iam.list_role_policies(RoleName=name)["PolicyNames"]
    policy = iam.get_role_policy(RoleName=name, PolicyName=policy_name)["PolicyDocument"]
    return decode(trust), decode(policy)


def decode(document: Any) -> dict[str, Any]:
    """A policy document as IAM returns it: URL-encoded JSON (moto keeps a CloudFormation inline policy's repr)."""
    if isinstance(document, dict):
        return document
    text = unquote(document)
    try:
        parsed: dict[str, Any] = json.loads(text)
    except json.JSONDecodeError:
        parsed = ast.literal_eval(text)
    return parsed


def test_no_github_role_by_default(stack: LocalStack) -> None:
    assert "GitHubPushRoleArn" not in stack.outputs


def test_github_role_trusts_one_branch_and_writes_only_its_prefix(github_stack: LocalStack) -> None:
    trust, policy = role_of(github_stack)
    bucket = github_stack.outputs["IngestBucketName"]

    [statement] = trust["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"]["Federated"] == PROVIDER
    assert statement["Condition"]["StringEquals"] == {
        "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
        "token.actions.githubusercontent.com:sub": "repo:acme/churn:ref:refs/heads/main",
    }
    allowed = {}
    for rule in policy["Statement"]:
        actions = [rule["Action"]] if isinstance(rule["Action"], str) else rule["Action"]
        assert rule["Effect"] == "Allow" and "*" not in "".join(actions)
        for action in actions:
            allowed[action] = rule["Resource"]
    writes = {a for a in allowed if a.split(":")[1].startswith(("Put", "Create", "Delete", "Stop", "Update"))}
    assert writes == {"s3:PutObject"}
    assert allowed["s3:PutObject"] == f"arn:aws:s3:::{bucket}/incoming/churn/*"
    # Only this project's jobs (<project>-<8>-<6>), not those of a project whose name merely starts the same way.
    assert allowed["sagemaker:DescribeTrainingJob"].endswith(":training-job/churn-????????-??????")
    assert allowed["logs:GetLogEvents"].endswith(":log-stream:churn-????????-??????/*")
    assert not fnmatch.fnmatchcase(
        "churn-prod-3f5c0f2a-6b1e9d", allowed["sagemaker:DescribeTrainingJob"].split("/")[-1]
    )
    assert fnmatch.fnmatchcase("churn-3f5c0f2a-6b1e9d", allowed["sagemaker:DescribeTrainingJob"].split("/")[-1])


@pytest.fixture
def image_pushing_stack(stack: LocalStack) -> Iterator[LocalStack]:
    saved = dict(stack.parameters)
    stack.parameters = {**saved, **PARAMETERS, "GitHubImageRepository": "churn-trainer"}
    stack.reset()
    yield stack
    stack.parameters = saved
    stack.reset()


def test_with_an_image_repository_the_role_may_push_to_that_one_repository(image_pushing_stack: LocalStack) -> None:
    iam = boto3.client("iam")
    name = image_pushing_stack.outputs["GitHubPushRoleArn"].rsplit("/", 1)[-1]
    policies = {
        p: decode(iam.get_role_policy(RoleName=name, PolicyName=p)["PolicyDocument"])
        for p in iam.list_role_policies(RoleName=name)["PolicyNames"]
    }
    assert set(policies) == {"push-one-project", "push-one-image-repository"}
    statements = {s["Sid"]: s for s in policies["push-one-image-repository"]["Statement"]}
    assert statements["SignInToTheRegistry"]["Action"] == "ecr:GetAuthorizationToken"
    repository = f"arn:aws:ecr:us-east-1:{ACCOUNT_ID}:repository/churn-trainer"
    assert statements["PushToItsOwnRepository"]["Resource"] == repository
    assert "ecr:PutImage" in statements["PushToItsOwnRepository"]["Action"]
    uri = image_pushing_stack.outputs["GitHubImageRepositoryUri"]
    assert uri == f"{ACCOUNT_ID}.dkr.ecr.us-east-1.amazonaws.com/churn-trainer"
