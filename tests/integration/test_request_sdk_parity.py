"""`build_request` sends what the SageMaker Python SDK v2 sends for the equivalent framework estimator and `fit()`."""

from __future__ import annotations

import zlib
from typing import Any

import pytest

from sagepush.request import build_request
from sagepush.spec import Defaults, Manifest, resolve_spec, spec_to_manifest
from tests.reference.sdk import run_sdk_script

# sagepush leaves SageMaker Debugger and Profiler unconfigured; the SDK adds them by default. Nothing else differs:
# both sides get the same job name and staged code URI, so the values derived from them are compared too.
IGNORED_KEYS = frozenset({"DebugHookConfig", "DebugRuleConfigurations", "ProfilerConfig", "ProfilerRuleConfigurations"})

ROLE = "arn:aws:iam::123456789012:role/SagepushTraining"
ROLES = {
    "aws": ROLE,
    "aws-cn": "arn:aws-cn:iam::123456789012:role/SagepushTraining",
    "aws-us-gov": "arn:aws-us-gov:iam::123456789012:role/SagepushTraining",
}
PARTITIONS = {"cn-north-1": "aws-cn", "us-gov-west-1": "aws-us-gov"}
SAGEPUSH_TAGS = {
    "sagepush:project": "demo",
    "sagepush:commit": "0123456789abcdef",
    "sagepush:branch": "main",
    "sagepush:repo": "example/demo",
    "sagepush:code-digest": "a1b2c3d4e5f6",
}
PYTORCH = {"framework": "pytorch", "framework_version": "2.5", "py_version": "py311"}
TENSORFLOW = {"framework": "tensorflow", "framework_version": "2.13", "py_version": "py310"}
SKLEARN = {"framework": "sklearn", "framework_version": "1.2-1", "py_version": "py3", "instance_type": "ml.m5.large"}
XGBOOST = {"framework": "xgboost", "framework_version": "1.7-1"}
HUGGINGFACE = {
    "framework": "huggingface",
    "transformers_version": "4.28.1",
    "pytorch_version": "2.0.0",
    "py_version": "py310",
    "instance_type": "ml.g5.2xlarge",
}
VPC = {"subnets": ["subnet-0abc1234", "subnet-0def5678"], "security_group_ids": ["sg-0123abcd"]}
KMS = {
    "volume_kms_key": "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555",
    "output_kms_key": "alias/sagepush-output",
}

CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "pytorch-gpu-design-example": (
        "us-east-1",
        {
            **PYTORCH,
            "instance_type": "ml.g5.xlarge",
            "max_run": "2h",
            "hyperparameters": {"epochs": 10, "lr": 0.001},
            "channels": {"train": "s3://my-data/train/"},
            "metric_definitions": [{"Name": "val:loss", "Regex": "val_loss=([0-9.]+)"}],
        },
    ),
    "pytorch-cpu-channels-environment": (
        "eu-central-1",
        {
            **PYTORCH,
            "framework_version": "2.1",
            "py_version": "py310",
            "environment": {"OMP_NUM_THREADS": "4", "WANDB_MODE": "offline"},
            "hyperparameters": {"optimizer": "adamw", "layers": [64, 32], "dropout": 0.1, "amp": True},
            "channels": {
                "train": {"s3_uri": "s3://my-data/train/", "input_mode": "FastFile", "distribution": "ShardedByS3Key"},
                "validation": {"s3_uri": "s3://my-data/val/", "input_mode": "Pipe", "compression": "Gzip"},
                "manifest": {
                    "s3_uri": "s3://my-data/train.manifest",
                    "s3_data_type": "AugmentedManifestFile",
                    "attribute_names": ["source-ref", "label"],
                    "record_wrapping": "RecordIO",
                    "content_type": "application/x-recordio",
                    "input_mode": "Pipe",
                },
            },
        },
    ),
    "pytorch-torch-distributed-p4d": (
        "us-east-1",
        {
            **PYTORCH,
            "framework_version": "2.3.0",
            "instance_type": "ml.p4d.24xlarge",
            "instance_count": 2,
            "distribution": {"torch_distributed": {"enabled": True}},
        },
    ),
    "pytorch-smddp": (
        "us-east-1",
        {
            **PYTORCH,
            "framework_version": "1.13.1",
            "py_version": "py39",
            "instance_type": "ml.p4d.24xlarge",
            "instance_count": 2,
            "distribution": {"smdistributed": {"dataparallel": {"enabled": True}}},
        },
    ),
    "pytorch-mpi": (
        "eu-central-1",
        {
            **PYTORCH,
            "instance_type": "ml.g5.12xlarge",
            "instance_count": 2,
            "distribution": {"mpi": {"enabled": True, "processes_per_host": 4, "custom_mpi_options": "-verbose"}},
        },
    ),
    "pytorch-cn-cpu": ("cn-north-1", {**PYTORCH, "framework_version": "2.2", "py_version": "py310"}),
    "pytorch-gov-gpu-vpc-kms": (
        "us-gov-west-1",
        {**PYTORCH, "framework_version": "2.3", "instance_type": "ml.p3.2xlarge", **VPC, **KMS},
    ),
    "pytorch-spot-checkpoints": (
        "us-east-1",
        {
            **PYTORCH,
            "instance_type": "ml.g5.xlarge",
            "use_spot_instances": True,
            "max_run": "1h30m",
            "max_wait": "3h",
            "checkpoint_s3_uri": "s3://ckpt-bucket/demo/",
            "checkpoint_local_path": "/opt/ml/ckpt",
        },
    ),
    "pytorch-isolated-encrypted": (
        "eu-central-1",
        {
            **PYTORCH,
            "instance_type": "ml.g5.12xlarge",
            "instance_count": 2,
            "enable_network_isolation": True,
            "encrypt_inter_container_traffic": True,
            "channels": {"train": "s3://my-data/train/"},
            **VPC,
        },
    ),
    "pytorch-image-uri-and-knobs": (
        "us-east-1",
        {
            "framework": "pytorch",
            "image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/custom-training:1.0",
            "instance_type": "ml.m5.2xlarge",
            "keep_alive_period_in_seconds": 600,
            "max_retry_attempts": 3,
            "container_log_level": "DEBUG",
            "disable_output_compression": True,
            "enable_infra_check": True,
            "volume_size": 200,
        },
    ),
    "pytorch-model-uri-tags": (
        "us-east-1",
        {
            **PYTORCH,
            "instance_type": "ml.g5.xlarge",
            "model_uri": "s3://models/base/model.tar.gz",
            "tags": {"team": "vision", "cost-center": "1234"},
            "metric_definitions": [{"Name": "loss", "Regex": "loss=(\\S+)"}, {"Name": "acc", "Regex": "acc=(\\S+)"}],
        },
    ),
    "tensorflow-gpu-model-dir-default": (
        "us-east-1",
        {**TENSORFLOW, "instance_type": "ml.g5.xlarge", "channels": {"training": "s3://tf-data/train"}},
    ),
    "tensorflow-parameter-server": (
        "eu-central-1",
        {
            **TENSORFLOW,
            "framework_version": "2.11",
            "py_version": "py39",
            "instance_type": "ml.c5.xlarge",
            "instance_count": 2,
            "distribution": {"parameter_server": {"enabled": True}},
        },
    ),
    "tensorflow-mpi": (
        "us-east-1",
        {
            **TENSORFLOW,
            "instance_type": "ml.g5.12xlarge",
            "instance_count": 2,
            "distribution": {"mpi": {"enabled": True, "processes_per_host": 4}},
        },
    ),
    "tensorflow-multi-worker-mirrored": (
        "us-east-1",
        {
            **TENSORFLOW,
            "instance_type": "ml.g5.2xlarge",
            "instance_count": 2,
            "distribution": {"multi_worker_mirrored_strategy": {"enabled": True}},
        },
    ),
    "tensorflow-cn-no-model-dir": (
        "cn-north-1",
        {**TENSORFLOW, "instance_type": "ml.m5.xlarge", "model_dir": False},
    ),
    "tensorflow-gov-explicit-model-dir": (
        "us-gov-west-1",
        {**TENSORFLOW, "instance_type": "ml.m5.xlarge", "model_dir": "s3://tf-models/run-1/", "max_run": 7200},
    ),
    "sklearn-cpu": (
        "us-east-1",
        {
            **SKLEARN,
            "hyperparameters": {"n_estimators": 100, "criterion": "gini"},
            "channels": {
                "train": {"s3_uri": "s3://tabular/train.csv", "content_type": "text/csv", "s3_data_type": "S3Prefix"}
            },
        },
    ),
    "sklearn-gov-vpc": ("us-gov-west-1", {**SKLEARN, **VPC}),
    "xgboost-eu": (
        "eu-central-1",
        {
            **XGBOOST,
            "instance_type": "ml.m5.xlarge",
            "instance_count": 2,
            "hyperparameters": {"max_depth": 5, "objective": "reg:squarederror", "num_round": 50},
        },
    ),
    "xgboost-cn-gpu-spot": (
        "cn-north-1",
        {**XGBOOST, "instance_type": "ml.g4dn.xlarge", "use_spot_instances": True, "max_run": "45m"},
    ),
    "huggingface-pytorch-gpu": (
        "us-east-1",
        {**HUGGINGFACE, "hyperparameters": {"model_name_or_path": "bert-base-uncased", "epochs": 1}},
    ),
    "huggingface-torch-distributed": (
        "eu-central-1",
        {
            **HUGGINGFACE,
            "instance_type": "ml.p4d.24xlarge",
            "instance_count": 2,
            "distribution": {"torch_distributed": {"enabled": True}},
        },
    ),
    "huggingface-gov-smddp": (
        "us-gov-west-1",
        {
            **HUGGINGFACE,
            "transformers_version": "4.26.0",
            "pytorch_version": "1.13.1",
            "py_version": "py39",
            "instance_type": "ml.p4d.24xlarge",
            "instance_count": 2,
            "distribution": {"smdistributed": {"dataparallel": {"enabled": True}}},
        },
    ),
    "own-image-walkthrough": (
        "us-east-1",
        {
            "image_uri": "382416733822.dkr.ecr.us-east-1.amazonaws.com/kmeans:1",
            "instance_type": "ml.c4.2xlarge",
            "volume_size": 10,
            "max_run": 172800,
            "channels": {
                "training": {
                    "s3_data": "s3://sagepush-data/train.csv",
                    "content_type": "text/csv",
                    "distribution": "FullyReplicated",
                }
            },
        },
    ),
    "own-image-kmeans-hyperparameters": (
        "eu-central-1",
        {
            "image_uri": "664544806723.dkr.ecr.eu-central-1.amazonaws.com/kmeans:1",
            "instance_type": "ml.m5.xlarge",
            "hyperparameters": {
                "k": 10,
                "feature_dim": 784,
                "mini_batch_size": "500",
                "extra_center_factor": 1.5,
                "local_lloyd_init_method": "kmeans++",
                "eval_metrics": ["msd", "ssd"],
                "half": True,
            },
            "channels": {
                "train": "s3://sagepush-data/kmeans/",
                "test": {
                    "s3_data": "s3://sagepush-data/test/",
                    "s3_data_type": "ManifestFile",
                    "input_mode": "Pipe",
                    "record_wrapping": "RecordIO",
                },
            },
            "metric_definitions": [{"Name": "test:msd", "Regex": "msd: ([0-9.]+)"}],
            "use_spot_instances": True,
            "checkpoint_s3_uri": "s3://sagepush-data/checkpoints/",
        },
    ),
    "algorithm-kmeans-kubeflow-example": (
        "us-east-1",
        {
            "algorithm": "kmeans",
            "instance_type": "ml.m4.xlarge",
            "volume_size": 50,
            "max_run": 3600,
            "hyperparameters": {"k": "10", "feature_dim": "784"},
            "channels": {
                "train": {
                    "s3_data": "s3://kubeflow-pipeline-data/mnist_kmeans_example/data",
                    "distribution": "FullyReplicated",
                    "record_wrapping": "RecordIO",
                }
            },
        },
    ),
    "algorithm-xgboost-built-in-cn": (
        "cn-north-1",
        {
            "algorithm": "xgboost",
            "framework_version": "1.7-1",
            "instance_type": "ml.m5.2xlarge",
            "hyperparameters": {"objective": "binary:logistic", "num_round": 100, "eta": 0.2},
            "channels": {"train": {"s3_data": "s3://sagepush-data/train/", "content_type": "text/csv"}},
        },
    ),
    "pytorch-tensorboard": (
        "eu-central-1",
        {
            **PYTORCH,
            "tensorboard_output_config": {
                "s3_output_path": "s3://sagepush-artifacts/output/demo/tensorboard/",
                "container_local_output_path": "/opt/ml/output/tensorboard",
            },
        },
    ),
    "pytorch-training-plan-chained-session": (
        "us-west-2",
        {
            **PYTORCH,
            "instance_type": "ml.p5.48xlarge",
            "instance_count": 2,
            "training_plan": "arn:aws:sagemaker:us-west-2:123456789012:training-plan/reserved-p5-december",
            "enable_session_tag_chaining": True,
        },
    ),
    "own-image-session-not-chained": (
        "us-east-1",
        {
            "image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-trainer:2024.11",
            "instance_type": "ml.g5.xlarge",
            "enable_session_tag_chaining": False,
            "training_plan": "arn:aws:sagemaker:us-east-1:123456789012:training-plan/reserved-g5",
        },
    ),
    "own-image-tensorboard": (
        "us-east-1",
        {
            "image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-trainer:2024.11",
            "instance_type": "ml.g5.xlarge",
            "tensorboard_output_config": {"s3_output_path": "s3://sagepush-artifacts/output/demo/tb/"},
        },
    ),
    "own-image-isolated-vpc": (
        "us-gov-west-1",
        {
            "image_uri": "123456789012.dkr.ecr.us-gov-west-1.amazonaws.com/my-trainer:2024.11",
            "instance_type": "ml.p3.2xlarge",
            "instance_count": 2,
            "enable_network_isolation": True,
            "encrypt_inter_container_traffic": True,
            "environment": {"MODE": "full"},
            "container_entry_point": ["python", "/opt/program/train"],
            "container_arguments": ["--epochs", "3"],
            **VPC,
        },
    ),
}


def _case(case_id: str, region: str, table: dict[str, Any]) -> dict[str, Any]:
    partition = PARTITIONS.get(region, "aws")
    own_entrypoint = ("image_uri" in table or "algorithm" in table) and "framework" not in table  # no script
    defaults = Defaults(
        role=ROLES[partition],
        instance_type="ml.m5.xlarge",
        output_path="s3://sagepush-artifacts/output/",
        entry_point=None if own_entrypoint else "train.py",
    )
    spec = resolve_spec(Manifest(source="sagepush.toml", table=table), defaults)
    job_name = f"demo-{zlib.crc32(case_id.encode()):08x}-abc123"
    code_uri = f"s3://sagepush-artifacts/code/demo/{case_id}/sourcedir.tar.gz"
    request = build_request(spec, job_name=job_name, code_uri=code_uri, region=region, tags=SAGEPUSH_TAGS)
    return {
        "id": case_id,
        "region": region,
        "job_name": job_name,
        "code_uri": code_uri,
        "tags": [{"Key": k, "Value": v} for k, v in SAGEPUSH_TAGS.items()],
        "spec": spec_to_manifest(spec),
        "sagepush": request,
    }


@pytest.fixture(scope="module")
def compared() -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    cases = [_case(case_id, region, table) for case_id, (region, table) in CASES.items()]
    answers = run_sdk_script("request_reference.py", [{k: v for k, v in c.items() if k != "sagepush"} for c in cases])
    return {c["id"]: (c["sagepush"], answers[c["id"]]) for c in cases}


def test_covers_the_required_spread() -> None:
    regions = {region for region, _ in CASES.values()}
    frameworks = {table["framework"] for _, table in CASES.values() if "framework" in table}
    assert len(CASES) >= 20
    assert {"us-east-1", "eu-central-1", "cn-north-1", "us-gov-west-1"} <= regions
    assert frameworks == {"pytorch", "tensorflow", "sklearn", "xgboost", "huggingface"}


@pytest.mark.parametrize("case_id", list(CASES))
def test_request_matches_the_sdk(case_id: str, compared: dict[str, tuple[dict[str, Any], dict[str, Any]]]) -> None:
    ours, sdk = compared[case_id]
    assert "error" not in sdk, sdk.get("error")
    if ours.get("HyperParameters") == {} and "HyperParameters" not in sdk:
        # The SDK leaves an empty map out; sagepush sends it as the Step Functions walkthrough writes it. SageMaker
        # reads the two alike.
        sdk = {**sdk, "HyperParameters": {}}
    assert {k: v for k, v in ours.items() if k not in IGNORED_KEYS} == {
        k: v for k, v in sdk.items() if k not in IGNORED_KEYS
    }
