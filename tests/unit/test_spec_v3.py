"""The manifest takes the SageMaker Python SDK v3 (ModelTrainer) names beside the v2 estimator names: a v3-style
manifest resolves to the same TrainingSpec, and so the same request, as its v2-style twin."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from sagepush.request import build_request
from sagepush.spec import MANIFEST_KEYS, V3_KEYS, V3_NAMES, Defaults, Manifest, SpecError, TrainingSpec, resolve_spec

README = Path(__file__).resolve().parents[2] / "README.md"
ROLE = "arn:aws:iam::123456789012:role/SagepushTraining"
DEFAULTS = Defaults(role=ROLE, instance_type="ml.m5.xlarge", output_path="s3://sagepush-artifacts/output/")
KMS = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
PLAN = "arn:aws:sagemaker:us-east-1:123456789012:training-plan/reserved-g5"
VPC: dict[str, Any] = {"subnets": ["subnet-0abc1234"], "security_group_ids": ["sg-0123abcd"]}

# (v2 table, v3 table) for each framework, each spelling every field it can.
TWINS = [
    pytest.param(
        {
            "framework": "pytorch",
            "framework_version": "2.8.0",
            "py_version": "py312",
            "entry_point": "train.py",
            "source_dir": "src",
            "instance_type": "ml.g5.12xlarge",
            "instance_count": 2,
            "volume_size": 100,
            "volume_kms_key": KMS,
            "keep_alive_period_in_seconds": 600,
            "training_plan": PLAN,
            "enable_session_tag_chaining": True,
            "use_spot_instances": True,
            "max_run": "2h",
            "max_wait": "3h",
            "max_pending_time": "1h",
            "input_mode": "FastFile",
            "hyperparameters": {"epochs": 3, "lr": 0.001},
            "environment": {"NCCL_DEBUG": "INFO"},
            "channels": {
                "train": "s3://my-data/train/",
                "val": {
                    "s3_uri": "s3://my-data/val/",
                    "distribution": "ShardedByS3Key",
                    "input_mode": "File",
                    "compression": "Gzip",
                    "content_type": "application/x-parquet",
                    "record_wrapping": "RecordIO",
                    "shuffle_seed": 7,
                },
            },
            "output_path": "s3://sagepush-artifacts/output/mnist/",
            "output_kms_key": "alias/sagepush-output",
            "disable_output_compression": True,
            "checkpoint_s3_uri": "s3://sagepush-artifacts/checkpoints/mnist/",
            "checkpoint_local_path": "/opt/ml/checkpoints",
            **VPC,
            "enable_network_isolation": True,
            "encrypt_inter_container_traffic": True,
            "distribution": {"torch_distributed": {"enabled": True}},
        },
        {
            "framework": "pytorch",
            "framework_version": "2.8.0",
            "py_version": "py312",
            "source_code": {"source_dir": "src", "entry_script": "train.py", "requirements": "requirements.txt"},
            "compute": {
                "instance_type": "ml.g5.12xlarge",
                "instance_count": 2,
                "volume_size_in_gb": 100,
                "volume_kms_key_id": KMS,
                "keep_alive_period_in_seconds": 600,
                "training_plan_arn": PLAN,
                "enable_managed_spot_training": True,
            },
            "session_chaining_config": {"enable_session_tag_chaining": True},
            "stopping_condition": {
                "max_runtime_in_seconds": 7200,
                "max_wait_time_in_seconds": 10800,
                "max_pending_time_in_seconds": 3600,
            },
            "training_input_mode": "FastFile",
            "hyperparameters": {"epochs": 3, "lr": 0.001},
            "environment": {"NCCL_DEBUG": "INFO"},
            "input_data_config": [
                {"channel_name": "train", "data_source": "s3://my-data/train/"},
                {
                    "channel_name": "val",
                    "data_source": {
                        "s3_data_source": {"s3_uri": "s3://my-data/val/", "s3_data_distribution_type": "ShardedByS3Key"}
                    },
                    "input_mode": "File",
                    "compression_type": "Gzip",
                    "content_type": "application/x-parquet",
                    "record_wrapper_type": "RecordIO",
                    "shuffle_config": {"seed": 7},
                },
            ],
            "output_data_config": {
                "s3_output_path": "s3://sagepush-artifacts/output/mnist/",
                "kms_key_id": "alias/sagepush-output",
                "compression_type": "NONE",
            },
            "checkpoint_config": {
                "s3_uri": "s3://sagepush-artifacts/checkpoints/mnist/",
                "local_path": "/opt/ml/checkpoints",
            },
            "networking": VPC | {"enable_network_isolation": True, "enable_inter_container_traffic_encryption": True},
            "distributed": {"Torchrun": {}},
        },
        id="pytorch-torchrun",
    ),
    pytest.param(
        {
            "framework": "pytorch",
            "framework_version": "2.10.0",
            "py_version": "py313",
            "entry_point": "train.py",
            "instance_type": "ml.g5.xlarge",
            "max_run": 3600,
        },
        {
            "framework": "pytorch",
            "framework_version": "2.10.0",
            "py_version": "py313",
            "source_code": {"entry_script": "train.py"},
            "compute": {"instance_type": "ml.g5.xlarge"},
            "stopping_condition": {"max_runtime_in_seconds": 3600},
        },
        id="pytorch-newest",
    ),
    pytest.param(
        {
            "framework": "tensorflow",
            "framework_version": "2.21.0",
            "py_version": "py312",
            "entry_point": "train.py",
            "instance_type": "ml.p4d.24xlarge",
            "instance_count": 2,
            "distribution": {"mpi": {"enabled": True, "processes_per_host": 8, "custom_mpi_options": "-x NCCL_DEBUG"}},
            "channels": {"train": "s3://my-data/train/"},
        },
        {
            "framework": "tensorflow",
            "framework_version": "2.21.0",
            "py_version": "py312",
            "source_code": {"entry_script": "train.py"},
            "compute": {"instance_type": "ml.p4d.24xlarge", "instance_count": 2},
            "distributed": {"MPI": {"process_count_per_node": 8, "mpi_additional_options": ["-x", "NCCL_DEBUG"]}},
            "input_data_config": [{"channel_name": "train", "data_source": "s3://my-data/train/"}],
        },
        id="tensorflow-mpi",
    ),
    pytest.param(
        {
            "framework": "sklearn",
            "framework_version": "1.9-0",
            "entry_point": "train.py",
            "instance_type": "ml.m5.large",
            "volume_size": 50,
            "hyperparameters": {"n_estimators": 80},
            "output_path": "s3://sagepush-artifacts/output/iris/",
            "disable_output_compression": False,
        },
        {
            "framework": "sklearn",
            "framework_version": "1.9-0",
            "source_code": {"entry_script": "train.py", "requirements": "./requirements.txt"},
            "compute": {"instance_type": "ml.m5.large", "volume_size_in_gb": 50},
            "hyperparameters": {"n_estimators": 80},
            "output_data_config": {
                "s3_output_path": "s3://sagepush-artifacts/output/iris/",
                "compression_type": "GZIP",
            },
        },
        id="sklearn",
    ),
    pytest.param(
        {
            "framework": "xgboost",
            "framework_version": "3.2-0",
            "entry_point": "train.py",
            "instance_type": "ml.m5.2xlarge",
            "use_spot_instances": True,
            "max_run": "1h",
            "channels": {
                "train": {"s3_uri": "s3://my-data/train.csv", "content_type": "text/csv", "s3_data_type": "S3Prefix"},
                "validation": {"s3_uri": "s3://my-data/validation.csv", "content_type": "text/csv"},
            },
        },
        {
            "framework": "xgboost",
            "framework_version": "3.2-0",
            "source_code": {"entry_script": "train.py"},
            "compute": {"instance_type": "ml.m5.2xlarge", "enable_managed_spot_training": True},
            "stopping_condition": {"max_runtime_in_seconds": "1h"},
            "input_data_config": [
                {
                    "channel_name": "train",
                    "data_source": {"s3_data_source": {"s3_uri": "s3://my-data/train.csv", "s3_data_type": "S3Prefix"}},
                    "content_type": "text/csv",
                },
                {
                    "channel_name": "validation",
                    "data_source": "s3://my-data/validation.csv",
                    "content_type": "text/csv",
                },
            ],
        },
        id="xgboost-spot",
    ),
    pytest.param(
        {
            "framework": "huggingface",
            "transformers_version": "5.3.0",
            "pytorch_version": "2.9.0",
            "py_version": "py312",
            "entry_point": "train.py",
            "source_dir": ".",
            "instance_type": "ml.g5.2xlarge",
            "checkpoint_s3_uri": "s3://sagepush-artifacts/checkpoints/bert/",
            "keep_alive_period_in_seconds": 1800,
        },
        {
            "framework": "huggingface",
            "transformers_version": "5.3.0",
            "pytorch_version": "2.9.0",
            "py_version": "py312",
            "source_code": {"source_dir": ".", "entry_script": "train.py"},
            "compute": {"instance_type": "ml.g5.2xlarge", "keep_alive_period_in_seconds": 1800},
            "checkpoint_config": {"s3_uri": "s3://sagepush-artifacts/checkpoints/bert/"},
        },
        id="huggingface",
    ),
    pytest.param(
        {
            "image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/custom-training:1.0",
            "entry_point": "train.py",
            "instance_type": "ml.c5.xlarge",
        },
        {
            "training_image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/custom-training:1.0",
            "source_code": {"entry_script": "train.py"},
            "compute": {"instance_type": "ml.c5.xlarge"},
        },
        id="own-image",
    ),
]


def resolve(table: dict[str, Any]) -> TrainingSpec:
    return resolve_spec(Manifest(source="sagepush.toml", table=table), DEFAULTS)


def request(spec: TrainingSpec) -> dict[str, Any]:
    return dict(build_request(spec, job_name="demo-1a2b3c4d-ef0123", code_uri="s3://b/code.tar.gz", region="us-east-1"))


@pytest.mark.parametrize(("v2", "v3"), TWINS)
def test_v3_manifest_resolves_to_the_same_spec_and_request_as_its_v2_twin(
    v2: dict[str, Any], v3: dict[str, Any]
) -> None:
    spec_v2, spec_v3 = resolve(v2), resolve(v3)

    assert spec_v3 == spec_v2
    assert spec_v3.declared == spec_v2.declared
    assert request(spec_v3) == request(spec_v2)


def test_twins_cover_every_framework_and_every_v3_name() -> None:
    tables: list[dict[str, Any]] = [param.values[1] for param in TWINS]  # type: ignore[misc]
    frameworks = {table.get("framework") for table in tables}
    assert frameworks >= {"pytorch", "tensorflow", "sklearn", "xgboost", "huggingface"}
    used = {
        f"{key}.{attribute}" if isinstance(value, dict) and f"{key}.{attribute}" in V3_KEYS else key
        for table in tables
        for key, value in table.items()
        for attribute in (value if isinstance(value, dict) else [None])
    }
    assert set(V3_KEYS) <= used, sorted(set(V3_KEYS) - used)


def test_v3_names_set_only_manifest_fields_and_share_none_with_v2() -> None:
    assert set(V3_NAMES.values()) <= set(MANIFEST_KEYS)
    assert not {key.split(".")[0] for key in V3_KEYS} & set(MANIFEST_KEYS)


@pytest.mark.parametrize(
    ("table", "where", "message"),
    [
        pytest.param(
            {"instance_type": "ml.m5.large", "compute": {"instance_type": "ml.m5.xlarge"}},
            "compute.instance_type",
            "sets the same field as `instance_type`; keep one of the two spellings",
            id="instance-type",
        ),
        pytest.param(
            {"training_image": "x:1", "image_uri": "x:1"},
            "image_uri",
            "sets the same field as `training_image`",
            id="image",
        ),
        pytest.param(
            {"source_code": {"entry_script": "a.py"}, "entry_point": "a.py"},
            "entry_point",
            "sets the same field as `source_code.entry_script`",
            id="entry-point",
        ),
        pytest.param(
            {"stopping_condition": {"max_runtime_in_seconds": 60}, "max_run": 60},
            "max_run",
            "sets the same field as `stopping_condition.max_runtime_in_seconds`",
            id="max-run",
        ),
        pytest.param(
            {"channels": {"a": "s3://my-data/a/"}, "input_data_config": []},
            "input_data_config",
            "sets the same field as `channels`",
            id="channels",
        ),
        pytest.param(
            {"output_data_config": {"compression_type": "NONE"}, "disable_output_compression": True},
            "disable_output_compression",
            "sets the same field as `output_data_config.compression_type`",
            id="compression",
        ),
        pytest.param(
            {
                "networking": {"enable_inter_container_traffic_encryption": True},
                "encrypt_inter_container_traffic": True,
            },
            "encrypt_inter_container_traffic",
            "sets the same field as `networking.enable_inter_container_traffic_encryption`",
            id="encryption",
        ),
        pytest.param(
            {"distribution": {"mpi": {"enabled": True}}, "distributed": {"MPI": {}}},
            "distributed",
            "sets the same field as `distribution`",
            id="distribution",
        ),
        pytest.param(
            {"keep_alive_period_in_seconds": 60, "compute": {"keep_alive_period_in_seconds": 60}},
            "compute.keep_alive_period_in_seconds",
            "sets the same field as `keep_alive_period_in_seconds`",
            id="warm-pool",
        ),
    ],
)
def test_one_field_spelled_both_ways_is_refused_naming_both_keys(
    table: dict[str, Any], where: str, message: str
) -> None:
    with pytest.raises(SpecError) as caught:
        resolve({"framework": "pytorch", "framework_version": "2.5", "py_version": "py311", **table})
    assert caught.value.where == f"sagepush.toml: {where}"
    assert caught.value.message.startswith(message)


@pytest.mark.parametrize(
    ("table", "where", "message"),
    [
        pytest.param(
            {"compute": {"volume_size_in_gb": 0}}, "compute.volume_size_in_gb", "0 is out of range", id="range"
        ),
        pytest.param(
            {"compute": {"volume_size": 10}},
            "compute.volume_size",
            "unknown key (did you mean `volume_size_in_gb`?)",
            id="v2-name-in-v3-group",
        ),
        pytest.param({"compute": "ml.m5.large"}, "compute", "must be a table", id="group-not-table"),
        pytest.param(
            {"stopping_condition": {"max_pending_time_in_seconds": 60}},
            "stopping_condition.max_pending_time_in_seconds",
            "60 is out of range (30 minutes to 28 days)",
            id="pending-time-range",
        ),
        pytest.param(
            {"compute": {"instance_groups": [{"instance_group_name": "a"}]}},
            "compute.instance_groups",
            "unknown key",
            id="unsupported-attribute",
        ),
        pytest.param(
            {"traning_image": "x:1"}, "traning_image", "unknown key (did you mean `training_image`?)", id="typo"
        ),
        pytest.param(
            {"source_code": {"requirements": "reqs/dev.txt"}},
            "source_code.requirements",
            '"reqs/dev.txt": the framework containers install requirements.txt',
            id="requirements-elsewhere",
        ),
        pytest.param(
            {"source_code": {"command": "python train.py"}},
            "source_code.command",
            "unknown key",
            id="command",
        ),
        pytest.param(
            {"output_data_config": {"compression_type": "gzip"}},
            "output_data_config.compression_type",
            '"gzip" is not one of GZIP, NONE',
            id="compression-value",
        ),
        pytest.param(
            {"distributed": {"Torchrun": {"process_count_per_node": 4}}},
            "distributed.Torchrun.process_count_per_node",
            "is not supported (torchrun starts one process per GPU",
            id="torchrun-processes",
        ),
        pytest.param(
            {"distributed": {"Torchrun": {"smp": {"tensor_parallel_degree": 2}}}},
            "distributed.Torchrun.smp",
            "is not supported (model parallelism needs request_overrides)",
            id="torchrun-smp",
        ),
        pytest.param(
            {"distributed": {"DeepSpeed": {}}}, "distributed", "must hold one runner: Torchrun or MPI", id="runner"
        ),
        pytest.param(
            {"distributed": {"MPI": {"processes_per_host": 2}}},
            "distributed.MPI.processes_per_host",
            "unknown option",
            id="mpi-option",
        ),
        pytest.param(
            {"distributed": {"MPI": {"process_count_per_node": 0}}},
            "distributed.MPI.process_count_per_node",
            "0 is out of range",
            id="mpi-range",
        ),
        pytest.param(
            {
                "input_data_config": [
                    {
                        "channel_name": "train",
                        "data_source": {
                            "s3_data_source": {"s3_uri": "s3://my-data/", "s3_data_distribution_type": "x"}
                        },
                    }
                ]
            },
            "input_data_config[0].data_source.s3_data_source.s3_data_distribution_type",
            '"x" is not one of FullyReplicated, ShardedByS3Key',
            id="s3-distribution",
        ),
        pytest.param(
            {
                "input_data_config": [
                    {"channel_name": "t", "data_source": "s3://my-data/", "shuffle_config": {"seed": -1}}
                ]
            },
            "input_data_config[0].shuffle_config.seed",
            "-1 is out of range",
            id="shuffle-seed",
        ),
        pytest.param(
            {"input_data_config": {"train": "s3://my-data/train/"}},
            "input_data_config",
            "must be a list of { channel_name, data_source } tables",
            id="channels-table",
        ),
        pytest.param(
            {"input_data_config": [{"data_source": "s3://my-data/train/"}]},
            "input_data_config[0].channel_name",
            "is required",
            id="channel-name",
        ),
        pytest.param(
            {
                "input_data_config": [
                    {"channel_name": "train", "data_source": "s3://my-data/a/"},
                    {"channel_name": "train", "data_source": "s3://my-data/b/"},
                ]
            },
            "input_data_config[1].channel_name",
            '"train" names a channel twice',
            id="channel-twice",
        ),
        pytest.param(
            {
                "input_data_config": [
                    {"channel_name": "fs", "data_source": {"file_system_data_source": {"file_system_id": "fs-1"}}}
                ]
            },
            "input_data_config[0].data_source",
            "supports an S3 URI or `s3_data_source` only",
            id="file-system",
        ),
        pytest.param(
            {"input_data_config": [{"channel_name": "train", "data_source": "s3://my-data/", "input_mod": "File"}]},
            "input_data_config[0].input_mod",
            "unknown channel option (did you mean `input_mode`?)",
            id="channel-option",
        ),
        pytest.param(
            {"input_data_config": [{"channel_name": "train", "data_source": "https://example.com/x"}]},
            "input_data_config[0].data_source",
            "is not an S3 URI",
            id="channel-uri",
        ),
    ],
)
def test_bad_v3_keys_name_the_key_as_written(table: dict[str, Any], where: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        resolve({"framework": "tensorflow", "framework_version": "2.21.0", "py_version": "py312", **table})
    assert caught.value.where == f"sagepush.toml: {where}"
    assert message in caught.value.message
    assert "\n" not in str(caught.value)


def test_readme_reference_gives_each_field_its_v3_spelling() -> None:
    table = README.read_text(encoding="utf-8").split("| manifest key |", 1)[1].split("\n\n", 1)[0]
    rows = [line.split(" | ") for line in table.splitlines()[2:]]
    column = {key: row[3] for row in rows for key in re.findall(r"`([a-z0-9_]+)`", row[0])}
    for v3_key, field in V3_NAMES.items():
        assert f"`{v3_key}`" in column[field], (field, v3_key)


BASE_V3 = {
    "framework": "pytorch",
    "framework_version": "2.8.0",
    "py_version": "py312",
    "source_code": {"entry_script": "train.py"},
}


@pytest.mark.parametrize(
    ("v2", "v3", "v2_error", "v3_error"),
    [
        (
            {"max_run": 3600, "max_wait": 7200},
            {"stopping_condition": {"max_runtime_in_seconds": 3600, "max_wait_time_in_seconds": 7200}},
            "max_wait: applies only with use_spot_instances = true",
            "stopping_condition.max_wait_time_in_seconds: applies only with compute.enable_managed_spot_training = true",
        ),
        (
            {"use_spot_instances": True, "max_run": 3600, "max_wait": 60},
            {
                "compute": {"enable_managed_spot_training": True},
                "stopping_condition": {"max_runtime_in_seconds": 3600, "max_wait_time_in_seconds": 60},
            },
            "max_wait: 60s is shorter than max_run (3600s)",
            "stopping_condition.max_wait_time_in_seconds: 60s is shorter than "
            "stopping_condition.max_runtime_in_seconds (3600s)",
        ),
        (
            {"checkpoint_local_path": "/opt/ml/checkpoints"},
            {"checkpoint_config": {"local_path": "/opt/ml/checkpoints"}},
            "checkpoint_local_path: needs checkpoint_s3_uri (where the checkpoints go)",
            "checkpoint_config.local_path: needs checkpoint_config.s3_uri (where the checkpoints go)",
        ),
        (
            {"subnets": ["subnet-0abc1234"]},
            {"networking": {"subnets": ["subnet-0abc1234"]}},
            "subnets: needs security_group_ids too: a VPC job needs both",
            "networking.subnets: needs networking.security_group_ids too: a VPC job needs both",
        ),
    ],
    ids=["max-wait-without-spot", "max-wait-short", "checkpoint-path-alone", "subnets-alone"],
)
def test_a_check_across_fields_names_every_field_in_the_manifest_s_own_vocabulary(
    v2: dict[str, Any], v3: dict[str, Any], v2_error: str, v3_error: str
) -> None:
    v2_base = {k: v for k, v in BASE_V3.items() if k != "source_code"} | {"entry_point": "train.py"}
    for table, expected in ((v2_base | v2, v2_error), (BASE_V3 | v3, v3_error)):
        with pytest.raises(SpecError) as caught:
            resolve(table)
        assert str(caught.value) == f"sagepush.toml: {expected}"


def test_max_pending_time_reaches_the_stopping_condition_in_either_spelling() -> None:
    v3 = resolve(
        {**BASE_V3, "compute": {"instance_type": "ml.g5.xlarge"}}
        | {"stopping_condition": {"max_runtime_in_seconds": 3600, "max_pending_time_in_seconds": 7200}}
    )
    v2 = resolve(
        {k: v for k, v in BASE_V3.items() if k != "source_code"}
        | {"entry_point": "train.py", "instance_type": "ml.g5.xlarge", "max_run": "1h", "max_pending_time": "2h"}
    )

    assert v2 == v3
    assert request(v3)["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxPendingTimeInSeconds": 7200}
