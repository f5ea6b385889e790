"""The deployment's job policy: `sagepush render` refuses every escalation a manifest can ask for, naming each field."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import pytest
from typer.testing import CliRunner

from sagepush import policy
from sagepush_cli import template
from sagepush_cli.main import app
from sagepush_cli.project import DEFAULT_POLICY, template_policy, template_policy_text

if TYPE_CHECKING:
    from pathlib import Path

BASE = {
    "framework": '"pytorch"',
    "framework_version": '"2.5"',
    "py_version": '"py311"',
    "entry_point": '"train.py"',
    "instance_type": '"ml.m5.large"',
    "max_run": '"1h"',
}
FOREIGN_KEY = "arn:aws:kms:us-east-1:999999999999:key/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
# One line per escalation, and the manifest field the refusal must name.
ESCALATIONS = {
    "role": ('role = "arn:aws:iam::999999999999:role/admin"', "sagepush.toml: role"),
    "image": (
        'image_uri = "999999999999.dkr.ecr.us-east-1.amazonaws.com/anything:latest"',
        "sagepush.toml: image_uri",
    ),
    "foreign-output": ('output_path = "s3://someone-elses-bucket/out/"', "sagepush.toml: output_path"),
    "other-project-output": ('output_path = "s3://sagepush-artifacts/output/vision/"', "sagepush.toml: output_path"),
    "tensorboard-elsewhere": (
        'tensorboard_output_config = { s3_output_path = "s3://someone-elses-bucket/tb/" }',
        "sagepush.toml: tensorboard_output_config",
    ),
    "other-project-tensorboard": (
        'tensorboard_output_config = { s3_output_path = "s3://sagepush-artifacts/output/vision/tb/" }',
        "sagepush.toml: tensorboard_output_config",
    ),
    "output-key": (f'output_kms_key = "{FOREIGN_KEY}"', "sagepush.toml: output_kms_key"),
    "volume-key": (f'volume_kms_key = "{FOREIGN_KEY}"', "sagepush.toml: volume_kms_key"),
    "network": (
        'subnets = ["subnet-0123abcd"]\nsecurity_group_ids = ["sg-0123abcd"]',
        "sagepush.toml: subnets",
    ),
    "instance-type": ('instance_type = "ml.p5.48xlarge"', "sagepush.toml: instance_type"),
    "instance-count": ("instance_count = 64", "sagepush.toml: instance_count"),
    "max-run": ('max_run = "28d"', "sagepush.toml: max_run"),
    "volume": ("volume_size = 16000", "sagepush.toml: volume_size"),
    "channel": ('channels = { train = "s3://another-team/private/" }', "sagepush.toml: channels.train"),
    "checkpoints": ('checkpoint_s3_uri = "s3://another-team/checkpoints/"', "sagepush.toml: checkpoint_s3_uri"),
    "spot-wait": ('use_spot_instances = true\nmax_wait = "28d"', "sagepush.toml: max_wait"),
    "tag": ('tags = { "sagepush:project" = "vision" }', "sagepush.toml: tags.sagepush:project"),
    "training-plan": (
        'training_plan = "arn:aws:sagemaker:us-east-1:999999999999:training-plan/their-reserved-p5"',
        "sagepush.toml: training_plan",
    ),
    "training-plan-elsewhere": (
        'training_plan = "arn:aws:sagemaker:eu-west-1:111122223333:training-plan/our-plan-in-another-region"',
        "sagepush.toml: training_plan",
    ),
    "mlflow": (
        'mlflow_config = { mlflow_resource_arn = "arn:aws:sagemaker:us-east-1:999999999999:mlflow-app/theirs" }',
        "sagepush.toml: mlflow_config",
    ),
    "override-name": (
        'request_overrides = { TrainingJobName = "vision-00000000-000000" }',
        "request_overrides.TrainingJobName",
    ),
    "override-role": (
        'request_overrides = { RoleArn = "arn:aws:iam::999999999999:role/admin" }',
        "request_overrides.RoleArn",
    ),
    "override-tags": (
        'request_overrides = { Tags = [{ Key = "sagepush:project", Value = "vision" }] }',
        "request_overrides.Tags",
    ),
    "override-code": (
        'request_overrides = { HyperParameters = { sagemaker_submit_directory = "\\"s3://x/y.tar.gz\\"" } }',
        "request_overrides.HyperParameters",
    ),
    "override-instances": (
        "request_overrides = { ResourceConfig = { InstanceCount = 64 } }",
        "request_overrides.ResourceConfig.InstanceCount",
    ),
}


def manifest_with(*lines: str) -> str:
    """BASE with `lines` (`key = value`) added, each replacing BASE's own line for the same key."""
    table = dict(BASE)
    for line in lines:
        for part in line.splitlines():
            key, _, value = part.partition(" = ")
            table[key] = value
    return "".join(f"{key} = {value}\n" for key, value in table.items())


def render(tmp_path: Path, manifest: str, *extra: str) -> tuple[int, str]:
    (tmp_path / "train.py").write_text("print('training')\n")
    (tmp_path / "sagepush.toml").write_text(manifest)
    result = CliRunner().invoke(app, ["render", str(tmp_path), "--project", "iris", "--json", *extra])
    return result.exit_code, " ".join(result.output.split())


@pytest.mark.parametrize("name", sorted(ESCALATIONS))
def test_each_escalation_alone_is_refused_by_render_naming_its_field(tmp_path: Path, name: str) -> None:
    line, field = ESCALATIONS[name]
    code, output = render(tmp_path, manifest_with(line))
    assert code == 2, output
    assert field in output, output
    assert name == "tag" or "beyond the deployment's policy" in output  # reserved tags are the spec's own refusal


def test_the_whole_escalation_is_refused_with_every_field_named(tmp_path: Path) -> None:
    singles = [
        line for key, (line, _) in ESCALATIONS.items() if not key.startswith(("override", "other-project", "tag"))
    ]
    overrides = (
        'request_overrides = { TrainingJobName = "vision-x", RoleArn = "arn:aws:iam::999999999999:role/admin", '
        "ResourceConfig = { InstanceCount = 64 } }"
    )
    code, output = render(tmp_path, manifest_with(*singles, overrides))
    assert code == 2, output
    for field in ("image_uri", "output_path", "output_kms_key", "volume_kms_key", "subnets", "max_wait"):
        assert f"sagepush.toml: {field}" in output
    for field in ("instance_type", "max_run", "volume_size", "channels.train", "checkpoint_s3_uri"):
        assert f"sagepush.toml: {field}" in output
    for path in ("TrainingJobName", "RoleArn", "ResourceConfig"):  # the manifest's role too: overrides set it last
        assert f"request_overrides.{path}" in output


def test_this_accounts_training_plan_and_mlflow_server_are_the_jobs_to_use(tmp_path: Path) -> None:
    plan = "arn:aws:sagemaker:us-east-1:111122223333:training-plan/reserved-g5-december"
    server = "arn:aws:sagemaker:us-east-1:111122223333:mlflow-tracking-server/team"
    manifest = manifest_with(
        f'training_plan = "{plan}"',
        f'mlflow_config = {{ mlflow_resource_arn = "{server}", mlflow_experiment_name = "iris" }}',
        "enable_session_tag_chaining = true",
    )
    code, output = render(tmp_path, manifest)
    assert code == 0, output
    request = json.loads(output)
    assert request["ResourceConfig"]["TrainingPlanArn"] == plan
    assert request["MlflowConfig"] == {"MlflowResourceArn": server, "MlflowExperimentName": "iris"}
    assert request["SessionChainingConfig"] == {"EnableSessionTagChaining": True}


def test_a_manifest_inside_the_policy_renders_under_the_projects_own_prefixes(tmp_path: Path) -> None:
    manifest = manifest_with(
        'channels = { train = "s3://sagepush-artifacts/data/iris/train/" }',
        'checkpoint_s3_uri = "s3://sagepush-artifacts/checkpoints/iris/run-1/"',
        "request_overrides = { RetryStrategy = { MaximumRetryAttempts = 2 } }",
    )
    code, output = render(tmp_path, manifest)
    assert code == 0, output
    request = json.loads(output)
    assert request["OutputDataConfig"]["S3OutputPath"] == "s3://sagepush-artifacts/output/iris/"
    assert request["RetryStrategy"] == {"MaximumRetryAttempts": 2}


def test_a_policy_file_widens_what_render_accepts(tmp_path: Path) -> None:
    wide = tmp_path / "policy.toml"
    wide.write_text('[policy]\ninstance_types = ["ml.p5.*"]\nmax_instance_count = 64\n')
    project = tmp_path / "project"
    project.mkdir()
    manifest = manifest_with('instance_type = "ml.p5.48xlarge"', "instance_count = 64")
    assert render(project, manifest)[0] == 2
    code, output = render(project, manifest, "--policy", str(wide))
    assert code == 0, output


def test_a_policy_file_with_an_unknown_key_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "policy.toml"
    bad.write_text("instance_typs = ['ml.m5.*']\n")
    project = tmp_path / "project"
    project.mkdir()
    code, output = render(project, manifest_with(), "--policy", str(bad))
    assert code == 2 and "instance_typs" in output and "unknown policy key" in output


def test_the_installed_default_policy_is_the_templates() -> None:
    # Installed with the CLI for renders without a deployment: it must say what template.yaml says.
    expected = template_policy_text(template.load())
    assert DEFAULT_POLICY.read_text() == expected + "\n", "run: python -m tests.unit.test_policy --write"


def test_the_template_defaults_are_the_documented_policy() -> None:
    rendered = template_policy("artifacts")
    assert rendered.instance_types == policy.Policy().instance_types
    assert rendered.input_locations == ("s3://artifacts/data/{project}/",)
    assert rendered.checkpoint_location == "s3://artifacts/checkpoints/{project}/"
    assert (rendered.max_instance_count, rendered.max_run, rendered.max_volume_size) == (2, 86400, 512)


def test_every_function_and_the_output_carry_the_same_policy() -> None:
    document = template.load()
    resources = document["Resources"]
    rendered = {
        name: resources[name]["Properties"]["Environment"]["Variables"]["JOB_POLICY"]["Fn::Sub"]
        for name in ("StageFunction", "SubmitFunction")
    }
    rendered["JobPolicy output"] = document["Outputs"]["JobPolicy"]["Value"]["Fn::Sub"]
    assert len(set(rendered.values())) == 1, rendered


def test_overrides_may_reach_only_the_allowed_paths() -> None:
    overrides: dict[str, dict[str, Any]] = {
        "RetryStrategy": {"MaximumRetryAttempts": 2},
        "ResourceConfig": {"KeepAlivePeriodInSeconds": 60},
    }
    assert list(policy.overridden_paths(overrides)) == []
    overrides["ResourceConfig"]["InstanceType"] = "ml.p5.48xlarge"
    overrides["OutputDataConfig"] = {"S3OutputPath": "s3://x/"}
    assert list(policy.overridden_paths(overrides)) == ["ResourceConfig.InstanceType", "OutputDataConfig"]


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    DEFAULT_POLICY.write_text(template_policy_text(template.load()) + "\n")
