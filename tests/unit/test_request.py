"""A TrainingSpec becomes the CreateTrainingJob request the SageMaker SDK would send; bad ones name the field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sagepush import request as request_module
from sagepush.request import RequestError, build_request, deep_merge, partition_for_region
from sagepush.spec import Defaults, Manifest, TrainingSpec, resolve_spec

ROLE = "arn:aws:iam::123456789012:role/SagepushTraining"
CODE = "s3://sagepush-artifacts/code/demo/abc/sourcedir.tar.gz"
DEFAULTS = Defaults(
    role=ROLE,
    instance_type="ml.m5.xlarge",
    output_path="s3://sagepush-artifacts/output/",
    framework="pytorch",
    framework_version="2.5",
    py_version="py311",
    entry_point="train.py",
)
TAGS = {"sagepush:project": "demo", "sagepush:code-digest": "a1b2c3d4e5f6"}


def spec(**table: Any) -> TrainingSpec:
    return resolve_spec(Manifest(source="sagepush.toml", table=table), DEFAULTS)


def build(the_spec: TrainingSpec, region: str = "us-east-1") -> dict[str, Any]:
    return dict(build_request(the_spec, job_name="demo-1a2b3c4d-ef0123", code_uri=CODE, region=region, tags=TAGS))


def test_builds_the_design_example() -> None:
    request = build(
        spec(
            instance_type="ml.g5.xlarge",
            max_run="2h",
            hyperparameters={"epochs": 10, "lr": 0.001},
            channels={"train": "s3://my-data/train/"},
            metric_definitions=[{"Name": "val:loss", "Regex": "val_loss=([0-9.]+)"}],
        )
    )
    assert request == {
        "AlgorithmSpecification": {
            "TrainingInputMode": "File",
            "TrainingImage": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5-gpu-py311",
            "MetricDefinitions": [{"Name": "val:loss", "Regex": "val_loss=([0-9.]+)"}],
            "EnableSageMakerMetricsTimeSeries": True,
        },
        "OutputDataConfig": {"S3OutputPath": "s3://sagepush-artifacts/output/"},
        "TrainingJobName": "demo-1a2b3c4d-ef0123",
        "StoppingCondition": {"MaxRuntimeInSeconds": 7200},
        "ResourceConfig": {"VolumeSizeInGB": 30, "InstanceCount": 1, "InstanceType": "ml.g5.xlarge"},
        "RoleArn": ROLE,
        "InputDataConfig": [
            {
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": "s3://my-data/train/",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
                "ChannelName": "train",
            }
        ],
        "HyperParameters": {
            "epochs": "10",
            "lr": "0.001",
            "sagemaker_submit_directory": json.dumps(CODE),
            "sagemaker_program": '"train.py"',
            "sagemaker_container_log_level": "20",
            "sagemaker_job_name": '"demo-1a2b3c4d-ef0123"',
            "sagemaker_region": '"us-east-1"',
        },
        "Tags": [
            {"Key": "sagepush:project", "Value": "demo"},
            {"Key": "sagepush:code-digest", "Value": "a1b2c3d4e5f6"},
        ],
    }


def test_every_hyperparameter_value_is_json() -> None:
    hyperparameters = build(spec(hyperparameters={"name": "bert", "flag": True, "layers": [1, 2], "cfg": {"a": 1}}))[
        "HyperParameters"
    ]
    assert {k: hyperparameters[k] for k in ("name", "flag", "layers", "cfg")} == {
        "name": '"bert"',
        "flag": "true",
        "layers": "[1, 2]",
        "cfg": '{"a": 1}',
    }


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        pytest.param(
            {
                "instance_type": "ml.p4d.24xlarge",
                "framework_version": "2.3.0",
                "distribution": {"torch_distributed": {"enabled": True}},
            },
            {"sagemaker_torch_distributed_enabled": "true", "sagemaker_instance_type": '"ml.p4d.24xlarge"'},
            id="torch-distributed",
        ),
        pytest.param(
            {"distribution": {"mpi": {"enabled": True, "processes_per_host": 4}}},
            {
                "sagemaker_mpi_enabled": "true",
                "sagemaker_mpi_num_of_processes_per_host": "4",
                "sagemaker_mpi_custom_mpi_options": '""',
            },
            id="mpi",
        ),
        pytest.param(
            {
                "instance_type": "ml.p4d.24xlarge",
                "framework_version": "1.13.1",
                "py_version": "py39",
                "distribution": {"smdistributed": {"dataparallel": {"enabled": True}}},
            },
            {
                "sagemaker_distributed_dataparallel_enabled": "true",
                "sagemaker_instance_type": '"ml.p4d.24xlarge"',
                "sagemaker_distributed_dataparallel_custom_mpi_options": '""',
            },
            id="smddp",
        ),
        pytest.param(
            {
                "framework": "tensorflow",
                "framework_version": "2.13",
                "py_version": "py310",
                "distribution": {"parameter_server": {"enabled": True}},
            },
            {
                "sagemaker_parameter_server_enabled": "true",
                "model_dir": '"s3://sagepush-artifacts/output/demo-1a2b3c4d-ef0123/model"',
            },
            id="parameter-server",
        ),
        pytest.param(
            {
                "framework": "tensorflow",
                "framework_version": "2.13",
                "py_version": "py310",
                "distribution": {"mpi": {"enabled": True}},
            },
            {"sagemaker_mpi_enabled": "true", "sagemaker_mpi_custom_mpi_options": '""', "model_dir": '"/opt/ml/model"'},
            id="tensorflow-mpi-model-dir",
        ),
    ],
)
def test_encodes_distribution_as_the_sdk(table: dict[str, Any], expected: dict[str, str]) -> None:
    hyperparameters = build(spec(**table))["HyperParameters"]
    sdk_keys = {k: v for k, v in hyperparameters.items() if k.startswith("sagemaker_") or k == "model_dir"}
    for key in ("sagemaker_submit_directory", "sagemaker_program", "sagemaker_container_log_level"):
        sdk_keys.pop(key)
    sdk_keys.pop("sagemaker_job_name")
    sdk_keys.pop("sagemaker_region")
    assert sdk_keys == expected


def test_network_isolation_delivers_code_as_a_channel() -> None:
    request = build(spec(enable_network_isolation=True))
    assert request["EnableNetworkIsolation"] is True
    assert request["HyperParameters"]["sagemaker_submit_directory"] == '"/opt/ml/input/data/code/sourcedir.tar.gz"'
    assert request["InputDataConfig"][-1]["ChannelName"] == "code"
    assert request["InputDataConfig"][-1]["DataSource"]["S3DataSource"]["S3Uri"] == CODE


def test_spot_vpc_kms_checkpoints_and_retries() -> None:
    request = build(
        spec(
            use_spot_instances=True,
            max_run="1h",
            max_wait="2h",
            checkpoint_s3_uri="s3://ckpt-bucket/demo/",
            subnets=["subnet-1"],
            security_group_ids=["sg-1"],
            volume_kms_key="alias/vol",
            output_kms_key="alias/out",
            encrypt_inter_container_traffic=True,
            max_retry_attempts=2,
        )
    )
    assert request["EnableManagedSpotTraining"] is True
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    assert request["CheckpointConfig"] == {"S3Uri": "s3://ckpt-bucket/demo/"}
    assert request["VpcConfig"] == {"Subnets": ["subnet-1"], "SecurityGroupIds": ["sg-1"]}
    assert request["ResourceConfig"]["VolumeKmsKeyId"] == "alias/vol"
    assert request["OutputDataConfig"]["KmsKeyId"] == "alias/out"
    assert request["EnableInterContainerTrafficEncryption"] is True
    assert request["RetryStrategy"] == {"MaximumRetryAttempts": 2}


@pytest.mark.parametrize(
    ("region", "partition", "registry"),
    [
        ("cn-north-1", "aws-cn", "727897471807.dkr.ecr.cn-north-1.amazonaws.com.cn"),
        ("us-gov-west-1", "aws-us-gov", "442386744353.dkr.ecr.us-gov-west-1.amazonaws.com"),
    ],
)
def test_other_partitions_need_a_role_of_their_own(region: str, partition: str, registry: str) -> None:
    with pytest.raises(RequestError, match=rf"^defaults: role: .* is in partition aws, but region {region} is in"):
        build(spec(), region=region)
    own = spec(role=ROLE.replace("arn:aws:", f"arn:{partition}:"))
    assert build(own, region=region)["AlgorithmSpecification"]["TrainingImage"].startswith(registry)


@pytest.mark.parametrize(
    ("region", "partition"),
    [
        ("us-east-1", "aws"),
        ("eu-central-1", "aws"),
        ("cn-northwest-1", "aws-cn"),
        ("us-gov-east-1", "aws-us-gov"),
        ("us-iso-east-1", "aws-iso"),
        ("us-isob-east-1", "aws-iso-b"),
    ],
)
def test_partition_for_region(region: str, partition: str) -> None:
    assert partition_for_region(region) == partition


def test_partition_for_region_agrees_with_botocore_for_every_region_it_lists() -> None:
    from botocore.loaders import create_loader
    from botocore.regions import EndpointResolver

    endpoints = create_loader().load_data("endpoints")
    resolver = EndpointResolver(endpoints)
    regions = [region for partition in endpoints["partitions"] for region in partition["regions"]]
    assert {r: partition_for_region(r) for r in regions} == {r: resolver.get_partition_for_region(r) for r in regions}


def test_unknown_region_is_an_error() -> None:
    with pytest.raises(RequestError, match=r'^region: "mars-north-1" is not an AWS region'):
        partition_for_region("mars-north-1")


def test_overrides_deep_merge_into_the_request() -> None:
    request = build(
        spec(
            request_overrides={
                "ResourceConfig": {"KeepAlivePeriodInSeconds": 120},
                "AlgorithmSpecification": {"TrainingImageConfig": {"TrainingRepositoryAccessMode": "Vpc"}},
                "ExperimentConfig": {"ExperimentName": "demo"},
            }
        )
    )
    assert request["ResourceConfig"] == {
        "VolumeSizeInGB": 30,
        "InstanceCount": 1,
        "InstanceType": "ml.m5.xlarge",
        "KeepAlivePeriodInSeconds": 120,
    }
    assert request["AlgorithmSpecification"]["TrainingImageConfig"] == {"TrainingRepositoryAccessMode": "Vpc"}
    assert request["AlgorithmSpecification"]["TrainingInputMode"] == "File"
    assert request["ExperimentConfig"] == {"ExperimentName": "demo"}


def test_deep_merge_replaces_lists_and_scalars() -> None:
    assert deep_merge({"a": {"b": 1, "c": [1]}, "d": 1}, {"a": {"c": [2]}, "d": {"e": 1}}) == {
        "a": {"b": 1, "c": [2]},
        "d": {"e": 1},
    }


@pytest.mark.parametrize(
    ("table", "message"),
    [
        pytest.param(
            {"request_overrides": {"ResourceConfig": {"InstanceType": "ml.g5.xlarg"}}},
            'sagepush.toml: request_overrides.ResourceConfig.InstanceType: "ml.g5.xlarg" is not a value SageMaker '
            "accepts (did you mean ml.g5.xlarge?)",
            id="override-enum",
        ),
        pytest.param(
            {"request_overrides": {"ResourceConfig": {"VolumeSizeInGB": "big"}}},
            'sagepush.toml: request_overrides.ResourceConfig.VolumeSizeInGB: "big" has the wrong type',
            id="override-type",
        ),
        pytest.param(
            {"request_overrides": {"ResourceConfg": {}}},
            "sagepush.toml: request_overrides.ResourceConfg: is not a field SageMaker accepts here (did you mean "
            "`ResourceConfig`?)",
            id="override-unknown-top",
        ),
        pytest.param(
            {"request_overrides": {"AlgorithmSpecification": {"TrainingImag": "x"}}},
            "sagepush.toml: request_overrides.AlgorithmSpecification.TrainingImag: is not a field SageMaker accepts "
            "here (did you mean `TrainingImage`?)",
            id="override-unknown-nested",
        ),
        pytest.param(
            {"instance_type": "ml.m5.huge"},
            'sagepush.toml: instance_type: "ml.m5.huge" is not a value SageMaker accepts',
            id="instance-type-enum",
        ),
        pytest.param(
            {"hyperparameters": {"text": "x" * 3000}},
            "sagepush.toml: hyperparameters.text: ",
            id="hyperparameter-too-long",
        ),
        pytest.param(
            {"environment": {f"V{i}": "x" for i in range(101)}},
            "sagepush.toml: environment: has 101 entries, above the maximum 100",
            id="environment-too-big",
        ),
        pytest.param(
            {"tags": {"k": "v" * 300}},
            "sagepush.toml: tags",
            id="tag-too-long",
        ),
        pytest.param(
            {"framework_version": "0.1"},
            "sagepush.toml: framework_version: ",
            id="no-image-for-version",
        ),
        pytest.param(
            {"py_version": "py27"},
            "sagepush.toml: py_version: ",
            id="no-image-for-python",
        ),
    ],
)
def test_invalid_requests_name_the_manifest_field(table: dict[str, Any], message: str) -> None:
    with pytest.raises(RequestError) as caught:
        build(spec(**table))
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_image_errors_for_huggingface_name_its_version_fields() -> None:
    hf = spec(framework="huggingface", transformers_version="4.28.1", pytorch_version="9.9.9", py_version="py310")
    with pytest.raises(RequestError, match=r"^sagepush.toml: pytorch_version: "):
        build(hf)


def test_explicit_image_skips_the_lookup() -> None:
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/custom:1"
    request = build(spec(framework_version="0.1", image_uri=image))
    assert request["AlgorithmSpecification"]["TrainingImage"] == image


# ---- the cut-down model validation reads


def _reports(shape: Any, requests: list[dict[str, Any]]) -> list[str]:
    from botocore.validate import ParamValidator

    return [ParamValidator().validate(request, shape).generate_report() for request in requests]


def test_the_cut_model_validates_exactly_as_botocores_whole_model(tmp_path: Any, monkeypatch: Any) -> None:
    from botocore.loaders import create_loader
    from botocore.model import ServiceModel

    whole = create_loader().load_service_model("sagemaker", "service-2")
    cut = request_module.operation_model("sagemaker", "CreateTrainingJob")
    assert len(cut["shapes"]) < len(whole["shapes"]) / 10
    good = build(spec(channels={"train": "s3://my-data/train/"}, use_spot_instances=True, max_run="2h", max_wait="3h"))
    bad = [
        {**good, "Unknown": 1},
        {**good, "ResourceConfig": {"InstanceCount": "two"}},
        {k: v for k, v in good.items() if k != "RoleArn"},
        {**good, "InputDataConfig": [{"ChannelName": "x", "DataSource": {"S3DataSource": {"S3Uri": 5}}}]},
    ]
    shape_of = {
        name: ServiceModel(model, "sagemaker").operation_model("CreateTrainingJob").input_shape
        for name, model in (("whole", whole), ("cut", cut))
    }
    assert _reports(shape_of["cut"], [good, *bad]) == _reports(shape_of["whole"], [good, *bad])
    assert _reports(shape_of["cut"], [good]) == [""] and all(_reports(shape_of["cut"], bad))


def test_the_packaged_cut_model_is_the_locked_botocores(monkeypatch: Any) -> None:
    # scripts/cut_botocore_model.py writes it; after a botocore upgrade this fails until it is run again.
    import botocore
    from botocore.loaders import create_loader

    shipped = json.loads((request_module.PACKAGED_MODELS / "sagemaker-CreateTrainingJob.json").read_text())
    assert shipped["botocore"] == botocore.__version__
    whole = create_loader().load_service_model("sagemaker", "service-2")
    assert shipped["model"] == request_module.cut_model(whole, "CreateTrainingJob")
    monkeypatch.setattr(request_module, "_loader", lambda: pytest.fail("the packaged model was not used"))
    assert request_module.operation_model("sagemaker", "CreateTrainingJob") == shipped["model"]


def test_another_botocore_cuts_its_own_model(monkeypatch: Any) -> None:
    import botocore

    packaged = request_module.operation_model("sagemaker", "CreateTrainingJob")
    request_module._cut_from_botocore.cache_clear()
    monkeypatch.setattr(botocore, "__version__", "0.0.1")
    loads: list[int] = []
    real = request_module._loader

    def counted() -> Any:
        loads.append(1)
        return real()

    monkeypatch.setattr(request_module, "_loader", counted)
    assert request_module.operation_model("sagemaker", "CreateTrainingJob") == packaged
    assert request_module.operation_model("sagemaker", "CreateTrainingJob") == packaged
    assert loads == [1]  # cut once per process
