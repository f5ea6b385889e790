"""Jobs without a script: an image of one's own (`image_uri`, no framework, no entry_point) runs its own entrypoint.

The request is the one the SageMaker SDK's generic `Estimator` sends (tests/integration/test_request_sdk_parity.py
compares them): no `sagemaker_*` hyperparameters, each value as `str()` gives it, no code channel.
"""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from sagepush import jobs
from sagepush.request import build_request
from sagepush.spec import Defaults, Manifest, SpecError, TrainingSpec, resolve_spec

ROLE = "arn:aws:iam::123456789012:role/SagepushTraining"
DEFAULTS = Defaults(role=ROLE, output_path="s3://sagepush-artifacts/output/demo/")
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-trainer:2024.11"

# The Step Functions walkthrough's training task ("custom docker image in ECR"), as a sagepush manifest.
WALKTHROUGH = f"""
image_uri = "{IMAGE}"
instance_type = "ml.c4.2xlarge"
volume_size = 10
max_run = 172800

[channels.training]
s3_data = "s3://sagepush-data/train.csv"
content_type = "text/csv"
distribution = "FullyReplicated"
"""


def resolve(text: str, defaults: Defaults = DEFAULTS) -> TrainingSpec:
    return resolve_spec(Manifest(source="sagepush.toml", table=tomllib.loads(text)), defaults)


def build(the_spec: TrainingSpec, *, code_uri: str = "s3://sagepush-artifacts/code/demo/abc/sourcedir.tar.gz") -> Any:
    return build_request(the_spec, job_name="demo-1a2b3c4d-ef0123", code_uri=code_uri, region="us-east-1")


def demo_deployment() -> Any:
    """Project demo's deployment in us-east-1, for checking a request against a policy: no staged code."""
    from sagepush import policy

    return policy.Deployment(
        project="demo",
        region="us-east-1",
        role=ROLE,
        output_path="s3://sagepush-artifacts/output/",
        code_uri="",
        output_kms_key=None,
        framework_accounts=frozenset(),
    )


def test_the_walkthrough_manifest_gives_the_walkthrough_request() -> None:
    request = build(resolve(WALKTHROUGH))

    assert request["AlgorithmSpecification"] == {"TrainingImage": IMAGE, "TrainingInputMode": "File"}
    assert request["InputDataConfig"] == [
        {
            "ChannelName": "training",
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": "s3://sagepush-data/train.csv",
                    "S3DataDistributionType": "FullyReplicated",
                }
            },
            "ContentType": "text/csv",
        }
    ]
    assert request["ResourceConfig"] == {"InstanceCount": 1, "InstanceType": "ml.c4.2xlarge", "VolumeSizeInGB": 10}
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 172800}
    assert request["HyperParameters"] == {}


def test_hyperparameters_are_plain_strings_with_nothing_added() -> None:
    the_spec = resolve(WALKTHROUGH + '\n[hyperparameters]\nk = 10\nfeature_dim = 784\ninit = "kmeans++"\nhalf = true\n')

    assert build(the_spec)["HyperParameters"] == {"k": "10", "feature_dim": "784", "init": "kmeans++", "half": "True"}


def test_no_code_channel_even_when_network_isolated() -> None:
    request = build(resolve("enable_network_isolation = true\n" + WALKTHROUGH))
    isolated = build(
        resolve(f'image_uri = "{IMAGE}"\ninstance_type = "ml.m5.large"\nenable_network_isolation = true\n')
    )

    assert [c["ChannelName"] for c in request["InputDataConfig"]] == ["training"]
    assert "InputDataConfig" not in isolated and isolated["EnableNetworkIsolation"] is True


def test_the_staged_code_reaches_the_image_as_the_channel_it_names() -> None:
    entry = '["sh", "-c", "tar -xzf /opt/ml/input/data/code/sourcedir.tar.gz -C /tmp && python /tmp/train.py"]'
    the_spec = resolve(f'code_channel = "code"\ncontainer_entry_point = {entry}\n' + WALKTHROUGH)
    request = build(the_spec, code_uri="s3://sagepush-artifacts/code/demo/abc/sourcedir.tar.gz")

    assert the_spec.stages_code and not the_spec.runs_script
    code = {
        "S3DataSource": {
            "S3DataType": "S3Prefix",
            "S3Uri": "s3://sagepush-artifacts/code/demo/abc/sourcedir.tar.gz",
            "S3DataDistributionType": "FullyReplicated",
        }
    }
    assert request["InputDataConfig"][-1] == {"ChannelName": "code", "DataSource": code}
    assert request["HyperParameters"] == {}
    assert request["AlgorithmSpecification"]["ContainerEntrypoint"][:2] == ["sh", "-c"]
    assert not resolve(WALKTHROUGH).stages_code  # without it, nothing is staged


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ('code_channel = "code"\nentry_point = "train.py"\n', "sagepush.toml: code_channel", "gets its code already"),
        ('code_channel = "training"\n', "sagepush.toml: channels.training", "is reserved for the code"),
        ('code_channel = "my code"\n', "sagepush.toml: code_channel", "is not a channel name"),
    ],
    ids=["beside-a-script", "a-data-channels-name", "bad-name"],
)
def test_a_code_channel_is_refused_where_it_cannot_apply(text: str, where: str, problem: str) -> None:
    with pytest.raises(SpecError) as caught:
        resolve(text + WALKTHROUGH)
    assert caught.value.where == where
    assert problem in caught.value.message


def test_the_staged_code_need_not_hold_an_entry_point() -> None:
    jobs.check_entry_point(resolve(WALKTHROUGH), frozenset({"sagepush.toml"}))  # nothing to look for: no error


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ('instance_type = "ml.m5.large"\n', "sagepush.toml: entry_point", "is required"),
        (
            f'image_uri = "{IMAGE}"\nframework = "pytorch"\nframework_version = "2.5"\npy_version = "py311"\n',
            "sagepush.toml: entry_point",
            "is required",
        ),
        (f'image_uri = "{IMAGE}"\nsource_dir = "src"\n', "sagepush.toml: source_dir", "applies only to a script"),
        (
            f'image_uri = "{IMAGE}"\n[distribution.torch_distributed]\nenabled = true\n',
            "sagepush.toml: distribution",
            "applies only to a script: set entry_point too",
        ),
    ],
    ids=["no-image", "framework-image", "source-dir", "distribution"],
)
def test_what_needs_a_script_is_refused_without_one(text: str, where: str, problem: str) -> None:
    defaults = Defaults(role=ROLE, instance_type="ml.m5.large", output_path="s3://sagepush-artifacts/output/demo/")
    with pytest.raises(SpecError) as caught:
        resolve(text, defaults)
    assert caught.value.where == where
    assert problem in caught.value.message


def test_an_image_with_an_entry_point_stays_a_script_job() -> None:
    the_spec = resolve('entry_point = "train.py"\n' + WALKTHROUGH)

    assert the_spec.runs_script
    assert build(the_spec)["HyperParameters"]["sagemaker_program"] == '"train.py"'


def test_a_built_in_algorithm_is_named_and_its_image_resolved() -> None:
    the_spec = resolve('algorithm = "kmeans"\ninstance_type = "ml.m4.xlarge"\n[hyperparameters]\nk = 10\n')
    request = build(the_spec)

    assert not the_spec.runs_script
    assert request["AlgorithmSpecification"]["TrainingImage"] == "382416733822.dkr.ecr.us-east-1.amazonaws.com/kmeans:1"
    assert request["HyperParameters"] == {"k": "10"}


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ('algorithm = "kmean"\n', "sagepush.toml: algorithm", "did you mean `kmeans`?"),
        ('algorithm = "kmeans"\nentry_point = "train.py"\n', "sagepush.toml: algorithm", "remove entry_point"),
        (f'algorithm = "kmeans"\nimage_uri = "{IMAGE}"\n', "sagepush.toml: algorithm", "remove image_uri"),
        ('algorithm = "xgboost"\n', "sagepush.toml: framework_version", 'is required for algorithm = "xgboost"'),
    ],
    ids=["unknown", "with-a-script", "with-an-image", "xgboost-without-version"],
)
def test_an_algorithm_is_refused_beside_what_would_choose_another_image(text: str, where: str, problem: str) -> None:
    defaults = Defaults(role=ROLE, instance_type="ml.m5.large", output_path="s3://sagepush-artifacts/output/demo/")
    with pytest.raises(SpecError) as caught:
        resolve(text, defaults)
    assert caught.value.where == where
    assert problem in caught.value.message


def test_a_channel_may_name_an_s3_express_one_zone_directory_bucket() -> None:
    from sagepush import policy

    express = "s3://training-data--use1-az4--x-s3/mnist/"
    the_spec = resolve(WALKTHROUGH + f'[channels.train]\ns3_data = "{express}"\ninput_mode = "FastFile"\n')
    request = build_request(
        the_spec, job_name="demo-1a2b3c4d-ef0123", code_uri="", region="us-east-1", tags={"sagepush:project": "demo"}
    )

    [train] = [c for c in request["InputDataConfig"] if c["ChannelName"] == "train"]
    assert train["DataSource"]["S3DataSource"]["S3Uri"] == express and train["InputMode"] == "FastFile"
    allowing = policy.Policy(
        instance_types=("ml.c4.*",),
        max_run=48 * 3600,
        input_locations=(express, "s3://sagepush-data/"),
    )
    deployment = demo_deployment()
    policy.check(request, allowing, deployment, overrides={}, manifest_tags={}, where=str)  # no PolicyError


def test_tensorboard_output_goes_where_the_sdk_sends_it_and_needs_its_s3_path() -> None:
    tensorboard = '[tensorboard_output_config]\ns3_output_path = "s3://sagepush-artifacts/output/demo/tb/"\n'
    request = build(resolve(WALKTHROUGH + tensorboard + 'container_local_output_path = "/opt/ml/output/tb"\n'))

    assert request["TensorBoardOutputConfig"] == {
        "S3OutputPath": "s3://sagepush-artifacts/output/demo/tb/",
        "LocalPath": "/opt/ml/output/tb",
    }
    with pytest.raises(SpecError) as missing:
        resolve(WALKTHROUGH + '[tensorboard_output_config]\ncontainer_local_output_path = "/tb"\n')
    assert missing.value.where == "sagepush.toml: tensorboard_output_config.s3_output_path"
    with pytest.raises(SpecError) as unknown:
        resolve(WALKTHROUGH + tensorboard + 'local_path = "/tb"\n')
    assert unknown.value.where == "sagepush.toml: tensorboard_output_config.local_path"


MARKETPLACE = (
    "arn:aws:sagemaker:us-east-1:865070037744:algorithm/scikit-decision-trees-15423055-57b73412d2e93e9239e4e16f83298b8f"
)


@pytest.mark.parametrize("name", ["my-algorithm", MARKETPLACE])
def test_an_algorithm_resource_runs_by_name_with_no_image(name: str) -> None:
    from sagepush import policy

    the_spec = resolve(
        f'algorithm_name = "{name}"\ninstance_type = "ml.m5.xlarge"\n[hyperparameters]\nmax_leaf_nodes = 10\n'
    )
    request = build_request(
        the_spec, job_name="demo-1a2b3c4d-ef0123", code_uri="", region="us-east-1", tags={"sagepush:project": "demo"}
    )

    assert request["AlgorithmSpecification"] == {"TrainingInputMode": "File", "AlgorithmName": name}
    assert request["HyperParameters"] == {"max_leaf_nodes": "10"}
    deployment = demo_deployment()
    trusting = policy.Policy(image_accounts=("865070037744",))
    policy.check(request, trusting, deployment, overrides={}, manifest_tags={}, where=str)  # allowed
    if name == MARKETPLACE:  # a seller's algorithm runs only when the policy trusts its account
        with pytest.raises(policy.PolicyError) as refused:
            policy.check(request, policy.Policy(), deployment, overrides={}, manifest_tags={}, where=str)
        assert "AlgorithmSpecification.AlgorithmName" in str(refused.value)


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ('algorithm_name = "not an algorithm!"\n', "sagepush.toml: algorithm_name", "is not an algorithm name or ARN"),
        ('algorithm_name = "mine"\nalgorithm = "kmeans"\n', "sagepush.toml: algorithm", "remove algorithm_name"),
        (f'algorithm_name = "mine"\nimage_uri = "{IMAGE}"\n', "sagepush.toml: algorithm_name", "remove image_uri"),
    ],
    ids=["malformed", "with-a-built-in", "with-an-image"],
)
def test_an_algorithm_resource_is_refused_beside_an_image(text: str, where: str, problem: str) -> None:
    defaults = Defaults(role=ROLE, instance_type="ml.m5.large", output_path="s3://sagepush-artifacts/output/demo/")
    with pytest.raises(SpecError) as caught:
        resolve(text, defaults)
    assert caught.value.where == where
    assert problem in caught.value.message
