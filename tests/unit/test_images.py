"""Training image URIs: known answers of the SageMaker SDK, its refusals, and the generated table behind them."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sagepush.errors import InputError
from sagepush.images import DATA_FILE, FRAMEWORKS, ImageError, supported_versions, training_image_uri

SMP = {"torch_distributed": {"enabled": True}, "smdistributed": {"modelparallel": {"enabled": True}}}
DLC = "763104351884.dkr.ecr.us-east-1.amazonaws.com"
GENERATOR = Path(__file__).resolve().parents[2] / "scripts" / "generate_images.py"

# Answers of sagemaker==3.27.0 for the same inputs (`get_training_image_uri`, `retrieve(image_scope="training")`).
KNOWN = [
    pytest.param(
        ("pytorch", "2.5"),
        {"instance_type": "ml.g5.xlarge", "py_version": "py311"},
        f"{DLC}/pytorch-training:2.5-gpu-py311",
        id="pytorch-alias-gpu",
    ),
    pytest.param(
        ("pytorch", "2.5.1"),
        {"region": "eu-west-1", "py_version": "py311"},
        "763104351884.dkr.ecr.eu-west-1.amazonaws.com/pytorch-training:2.5.1-cpu-py311",
        id="pytorch-full-version-cpu",
    ),
    pytest.param(
        ("pytorch", "2.8"),
        {"region": "cn-north-1", "instance_type": "ml.p4d.24xlarge"},
        "727897471807.dkr.ecr.cn-north-1.amazonaws.com.cn/pytorch-training:2.8-gpu-py312",
        id="pytorch-china-default-py",
    ),
    pytest.param(
        ("pytorch", "2.3"),
        {"region": "cn-northwest-1", "instance_type": "ml.g5.xlarge", "py_version": "py311"},
        "727897471807.dkr.ecr.cn-northwest-1.amazonaws.com.cn/pytorch-training:2.3-gpu-py311",
        id="pytorch-ningxia",
    ),
    pytest.param(
        ("pytorch", "1.13"),
        {"region": "us-gov-west-1", "instance_type": "local_gpu", "py_version": "py39"},
        "442386744353.dkr.ecr.us-gov-west-1.amazonaws.com/pytorch-training:1.13-gpu-py39",
        id="pytorch-govcloud-local-gpu",
    ),
    pytest.param(
        ("pytorch", "2.4"),
        {"region": "il-central-1"},
        "780543022126.dkr.ecr.il-central-1.amazonaws.com/pytorch-training:2.4-cpu-py311",
        id="pytorch-tel-aviv",
    ),
    pytest.param(
        ("pytorch", "2.5"),
        {"instance_type": "ml.trn1.32xlarge"},
        f"{DLC}/pytorch-training-neuron:1.11.0-neuron-py38-sdk2.4.0-ubuntu20.04",
        id="pytorch-trainium-takes-the-neuron-image",
    ),
    pytest.param(
        ("pytorch", "1.6"),
        {"instance_type": "ml.p4d.24xlarge", "py_version": "py3"},
        f"{DLC}/pytorch-training:1.6-gpu-py3-cu110-ubuntu18.04-v3",
        id="pytorch-p4d-container-suffix",
    ),
    pytest.param(
        ("pytorch", "2.2"),
        {"instance_type": "ml.p4d.24xlarge", "py_version": "py310", "distribution": SMP},
        "658645717510.dkr.ecr.us-east-1.amazonaws.com/smdistributed-modelparallel:2.2-gpu-py310-cu121",
        id="pytorch-model-parallel-cu121",
    ),
    pytest.param(
        ("pytorch", "2.5.1"),
        {"instance_type": "ml.p5.48xlarge", "distribution": SMP},
        "658645717510.dkr.ecr.us-east-1.amazonaws.com/smdistributed-modelparallel:2.5.1-gpu-py311-cu124",
        id="pytorch-model-parallel-cu124",
    ),
    pytest.param(
        ("pytorch", ""),
        {},
        f"{DLC}/pytorch-training:2.10.0-cpu-py313",
        id="pytorch-empty-version-is-latest",
    ),
    pytest.param(
        ("pytorch", "2.10.0"),
        {"instance_type": "ml.g5.xlarge", "py_version": "py313"},
        f"{DLC}/pytorch-training:2.10.0-gpu-py313",
        id="pytorch-newest",
    ),
    pytest.param(
        ("pytorch", "2.9"),
        {"region": "eusc-de-east-1", "instance_type": "ml.p5.48xlarge"},
        "204133271717.dkr.ecr.eusc-de-east-1.amazonaws.eu/pytorch-training:2.9-gpu-py312",
        id="pytorch-european-sovereign-cloud",
    ),
    pytest.param(
        ("tensorflow", "2.21.0"),
        {"region": "eu-isoe-west-1", "py_version": "py312"},
        "371248457586.dkr.ecr.eu-isoe-west-1.cloud.adc-e.uk/tensorflow-training:2.21.0-cpu-py312",
        id="tensorflow-newest-iso-e",
    ),
    pytest.param(
        ("sklearn", "1.9-0"),
        {"region": "cn-northwest-1"},
        "451049120500.dkr.ecr.cn-northwest-1.amazonaws.com.cn/sagemaker-scikit-learn:1.9-0-cpu-py3",
        id="sklearn-newest",
    ),
    pytest.param(
        ("sklearn", ""),
        {},
        "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.9-0-cpu-py3",
        id="sklearn-empty-version-is-latest-in-the-training-scope",
    ),
    pytest.param(
        ("xgboost", "3.2-0"),
        {"region": "us-gov-west-1", "instance_type": "ml.g5.xlarge"},
        "414596584902.dkr.ecr.us-gov-west-1.amazonaws.com/sagemaker-xgboost:3.2-0",
        id="xgboost-newest",
    ),
    pytest.param(
        ("huggingface", "5.3"),
        {"instance_type": "ml.g6.xlarge", "base_framework_version": "pytorch2.9", "py_version": "py312"},
        f"{DLC}/huggingface-pytorch-training:2.9-transformers5.3.0-gpu-py312-cu130-ubuntu22.04",
        id="huggingface-newest-alias-tags-the-full-version",
    ),
    pytest.param(
        ("tensorflow", "2.14"),
        {"region": "ap-southeast-3", "instance_type": "ml.g5.xlarge", "py_version": "py310"},
        "907027046896.dkr.ecr.ap-southeast-3.amazonaws.com/tensorflow-training:2.14-gpu-py310",
        id="tensorflow-jakarta",
    ),
    pytest.param(
        ("tensorflow", "1.13"),
        {"py_version": "py2"},
        "520713654638.dkr.ecr.us-east-1.amazonaws.com/sagemaker-tensorflow-scriptmode:1.13-cpu-py2",
        id="tensorflow-per-python-repository",
    ),
    pytest.param(
        ("tensorflow", "2.3"),
        {"instance_type": "ml.p4d.24xlarge", "py_version": "py37"},
        f"{DLC}/tensorflow-training:2.3-gpu-py37-cu110-ubuntu18.04-v3",
        id="tensorflow-p4d-container-suffix",
    ),
    pytest.param(
        ("sklearn", "1.2-1"),
        {},
        "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
        id="sklearn",
    ),
    pytest.param(
        ("sklearn", "1.2-1"),
        {"region": "us-iso-east-1"},
        "833128469047.dkr.ecr.us-iso-east-1.c2s.ic.gov/sagemaker-scikit-learn:1.2-1-cpu-py3",
        id="sklearn-c2s",
    ),
    pytest.param(
        ("xgboost", "1.7-1"),
        {"region": "us-isob-east-1", "instance_type": "ml.g5.xlarge"},
        "281123927165.dkr.ecr.us-isob-east-1.sc2s.sgov.gov/sagemaker-xgboost:1.7-1",
        id="xgboost-sc2s-no-processor-tag",
    ),
    pytest.param(
        ("xgboost", "latest"),
        {},
        "811284229777.dkr.ecr.us-east-1.amazonaws.com/xgboost:latest",
        id="xgboost-latest-alias",
    ),
    pytest.param(
        ("xgboost", "0.90-1"),
        {"region": "us-isof-south-1"},
        "124985052026.dkr.ecr.us-isof-south-1.csp.hci.ic.gov/sagemaker-xgboost:0.90-1-cpu-py3",
        id="xgboost-isof",
    ),
    pytest.param(
        ("xgboost", "1.7-1"),
        {"distribution": SMP},
        "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
        id="xgboost-ignores-distribution",
    ),
    pytest.param(
        ("huggingface", "4.36"),
        {"instance_type": "ml.g5.xlarge", "base_framework_version": "pytorch2.1.0"},
        f"{DLC}/huggingface-pytorch-training:2.1.0-transformers4.36.0-gpu-py310-cu121-ubuntu20.04",
        id="huggingface-pytorch",
    ),
    pytest.param(
        ("huggingface", "4.4.2"),
        {"instance_type": "ml.p3.2xlarge", "base_framework_version": "pytorch1.6.0"},
        f"{DLC}/huggingface-pytorch-training:1.6.0-transformers4.4.2-gpu-py36-cu110-ubuntu18.04",
        id="huggingface-default-gpu-container",
    ),
    pytest.param(
        ("huggingface", "4.17"),
        {"region": "cn-north-1", "instance_type": "ml.g4dn.xlarge", "base_framework_version": "tensorflow2.6"},
        "727897471807.dkr.ecr.cn-north-1.amazonaws.com.cn/huggingface-tensorflow-training:"
        "2.6-transformers4.17.0-gpu-py38-cu112-ubuntu20.04",
        id="huggingface-tensorflow-china",
    ),
]

# Refusals of sagemaker==3.27.0 for the same inputs: the field to fix and the start of the SDK's message.
REFUSED = [
    pytest.param(("keras", "2.0"), {}, "framework", "Unsupported framework: keras", id="unknown-framework"),
    pytest.param(
        ("pytorch", "9.9"), {}, "framework_version", "Unsupported pytorch version: 9.9; supported", id="version"
    ),
    pytest.param(
        ("pytorch", "2.11"), {}, "framework_version", "Unsupported pytorch version: 2.11; supported", id="future"
    ),
    pytest.param(
        ("tensorflow", "2.14"),
        {"py_version": "py27"},
        "py_version",
        "Unsupported Python version: py27; supported Python version(s): py310",
        id="python-version",
    ),
    pytest.param(
        ("pytorch", "2.5"),
        {"region": "cn-north-1", "py_version": "py310"},
        "py_version",
        "Unsupported Python version: py310; supported Python version(s): py311",
        id="python-version-for-alias",
    ),
    pytest.param(
        ("pytorch", "2.5"),
        {"region": "us-moon-1"},
        "region",
        "Unsupported region: us-moon-1; supported region(s): af-south-1, ",
        id="region",
    ),
    pytest.param(
        ("pytorch", "2.5"),
        {"instance_type": "m5.xlarge"},
        "instance_type",
        "Invalid SageMaker instance type: m5.xlarge; for options, see: https://",
        id="instance-type-without-ml-prefix",
    ),
    pytest.param(
        ("pytorch", "2.5"), {"instance_type": ""}, "instance_type", "Empty SageMaker instance type", id="empty-instance"
    ),
    pytest.param(
        ("pytorch", "2.5"),
        {"instance_type": "ml.inf2.xlarge"},
        "instance_type",
        "Unsupported processor: inf; supported processor(s): trn",
        id="pytorch-on-inferentia",
    ),
    pytest.param(
        ("tensorflow", "2.14"),
        {"instance_type": "ml.trn1.2xlarge"},
        "framework",
        "Unsupported framework: tensorflow; supported framework(s) for Trainium instances: pytorch",
        id="tensorflow-on-trainium",
    ),
    pytest.param(
        ("sklearn", "1.2-1"),
        {"instance_type": "ml.g5.xlarge"},
        "instance_type",
        "Unsupported processor: gpu; supported processor(s): cpu",
        id="sklearn-on-gpu",
    ),
    pytest.param(
        ("huggingface", "4.56.2"),
        {"base_framework_version": "pytorch2.8"},
        "instance_type",
        "Unsupported processor: cpu; supported processor(s): gpu",
        id="huggingface-gpu-only",
    ),
    pytest.param(
        ("pytorch", "2.0"),
        {"instance_type": "ml.p2.xlarge"},
        "instance_type",
        "P2 instances have been deprecated",
        id="p2-deprecated",
    ),
    pytest.param(
        ("huggingface", "4.36"),
        {"instance_type": "ml.g5.xlarge", "base_framework_version": "pytorch2.8.0"},
        "base_framework_version",
        "Unsupported base framework: pytorch2.8.0; supported base framework(s): version_aliases, pytorch2.1.0",
        id="huggingface-base-version",
    ),
    pytest.param(
        ("huggingface", "4.36"),
        {"instance_type": "ml.g5.xlarge"},
        "base_framework_version",
        "Unsupported base framework: None",
        id="huggingface-without-base",
    ),
    pytest.param(
        ("huggingface", "4.36"),
        {"instance_type": "ml.trn1.2xlarge", "base_framework_version": "pytorch2.1.0"},
        "instance_type",
        "Unsupported processor: trn; supported processor(s): cpu, gpu",
        id="huggingface-on-trainium",
    ),
    pytest.param(
        ("pytorch", "2.3"),
        {"instance_type": "ml.p5.48xlarge", "distribution": SMP},
        "framework_version",
        "Unsupported pytorch-smp version: 2.3; supported pytorch-smp version(s): 2.0.1",
        id="model-parallel-version",
    ),
    pytest.param(
        ("pytorch", "2.0"),
        {"instance_type": "ml.c6g.xlarge"},
        "instance_type",
        "Unsupported instance type: ml.c6g.xlarge; SageMaker trains on no Graviton instance",
        id="graviton-has-no-training-image",
    ),
]


def _resolve(args: tuple[str, str], kwargs: dict[str, Any]) -> str:
    return training_image_uri(*args, **{"region": "us-east-1", "instance_type": "ml.m5.xlarge", **kwargs})


@pytest.mark.parametrize(("args", "kwargs", "uri"), KNOWN)
def test_resolves_the_sdk_image(args: tuple[str, str], kwargs: dict[str, Any], uri: str) -> None:
    assert _resolve(args, kwargs) == uri


@pytest.mark.parametrize(("args", "kwargs", "where", "message"), REFUSED)
def test_refuses_what_the_sdk_refuses_naming_the_field(
    args: tuple[str, str], kwargs: dict[str, Any], where: str, message: str
) -> None:
    with pytest.raises(ImageError) as raised:
        _resolve(args, kwargs)
    assert raised.value.where == where
    assert raised.value.message.startswith(message)
    assert not raised.value.message.endswith(".")
    assert str(raised.value).startswith(f"{where}: ")


def test_image_error_is_an_input_error() -> None:
    assert issubclass(ImageError, InputError)


def test_lists_full_versions_then_aliases() -> None:
    versions = supported_versions("pytorch")
    assert versions[0] == "0.4.0"
    assert versions.index("2.5.1") < versions.index("2.5")
    assert {"1.13", "2.5", "2.8.0"} <= set(versions)
    assert "latest" in supported_versions("xgboost")


def test_lists_versions_only_for_known_frameworks() -> None:
    with pytest.raises(ImageError) as raised:
        supported_versions("mxnet")
    assert raised.value.where == "framework"


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_every_listed_version_resolves_or_names_its_field(framework: str) -> None:
    for version in supported_versions(framework):
        try:
            uri = training_image_uri(
                framework,
                version,
                region="us-west-2",
                instance_type="ml.g5.xlarge",
                base_framework_version="pytorch2.8.0" if framework == "huggingface" else None,
            )
        except ImageError as exc:
            assert exc.where in {"py_version", "instance_type", "region", "base_framework_version"}
        else:
            assert uri.split("/")[0].endswith(".dkr.ecr.us-west-2.amazonaws.com")


def test_table_is_compact_and_complete() -> None:
    table = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    assert table["format"] == 2
    assert int(table["source"]["sagemaker"].split(".")[0]) >= 3
    assert {"sagemaker-core", "botocore", "legacy"} <= set(table["source"])
    assert table["source"]["legacy"]["sagemaker"].startswith("2.")
    assert all(path.split("/")[0] in table["configs"] for path in table["kept"])
    assert set(FRAMEWORKS) <= set(table["configs"])
    hosted = {region for regions in table["hosts"].values() for region in regions}
    assert {"cn-north-1", "us-gov-west-1", "us-iso-east-1"} <= hosted
    assert all(set(registries) <= hosted for registries in table["registries"])
    assert len(table["registries"]) == len({json.dumps(r) for r in table["registries"]})
    assert DATA_FILE.stat().st_size < 64_000


def test_import_is_light_and_reads_nothing() -> None:
    probe = (
        "import sys, sagepush.images as images; "
        "assert images._table.cache_info().currsize == 0; "
        "print(sorted({'boto3', 'botocore', 'packaging', 'importlib.resources'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("generate_images", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generator_keeps_what_only_v2_knows_and_lets_v3_win() -> None:
    v3 = {
        "version_aliases": {"2.9": "2.9.0"},
        "versions": {
            "2.8.0": {"py_versions": ["py312"], "registries": {"us-east-1": "1"}, "repository": "pytorch-training"},
            "2.9.0": {"py_versions": ["py312"], "registries": {"us-east-1": "1"}, "repository": "pytorch-training"},
        },
    }
    v2 = {
        "version_aliases": {"2.7": "2.7.1", "2.9": "2.9.1"},
        "versions": {
            "2.7.1": {"py_versions": ["py311"], "registries": {"us-east-1": "1"}, "repository": "pytorch-training"},
            "2.8.0": {
                "py_versions": ["py311", "py312"],
                "registries": {"us-east-1": "2", "il-central-1": "3"},
                "repository": "old-name",
            },
        },
    }
    kept: list[str] = []

    merged = _generator().merge(v3, v2, "pytorch", kept)

    assert list(merged["versions"]) == ["2.7.1", "2.8.0", "2.9.0"]
    assert merged["version_aliases"] == {"2.7": "2.7.1", "2.9": "2.9.0"}
    assert merged["versions"]["2.8.0"] == {
        "py_versions": ["py312", "py311"],
        "registries": {"us-east-1": "1", "il-central-1": "3"},
        "repository": "pytorch-training",
    }
    assert kept == [
        "pytorch/version_aliases/2.7",
        "pytorch/versions/2.8.0/py_versions/py311",
        "pytorch/versions/2.8.0/registries/il-central-1",
        "pytorch/versions/2.7.1",
    ]
