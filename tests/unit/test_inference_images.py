"""Inference image URIs: known answers of the SageMaker SDK, its refusals, and the table behind them."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from sagepush.images import DATA_FILE, FRAMEWORKS, ImageError, _table, inference_image_uri

DLC = "763104351884.dkr.ecr.us-east-1.amazonaws.com"
SKLEARN = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn"
GENERATOR = Path(__file__).resolve().parents[2] / "scripts" / "generate_images.py"

# Answers of sagemaker==3.27.0 for the same inputs: `retrieve(..., image_scope="inference")`, with a
# `ServerlessInferenceConfig()` where serverless.
KNOWN = [
    pytest.param(("sklearn", "1.2-1", "py3", "ml.m5.large"), {}, f"{SKLEARN}:1.2-1-cpu-py3", id="sklearn-cpu"),
    pytest.param(
        ("sklearn", "1.9-0", None, None, "eu-west-1"),
        {"serverless": True},
        "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-scikit-learn:1.9-0-cpu-py3",
        id="sklearn-serverless",
    ),
    pytest.param(
        ("sklearn", "1.2-1", "py3", "ml.c6g.large"),
        {},
        f"{SKLEARN}:1.0-1-arm64-cpu-py3",
        id="sklearn-graviton-has-one-version-which-wins",
    ),
    pytest.param(
        ("xgboost", "1.5-1", None, "ml.m6g.large", "us-west-2"),
        {},
        "246618743249.dkr.ecr.us-west-2.amazonaws.com/sagemaker-xgboost:1.5-1-arm64",
        id="xgboost-graviton",
    ),
    pytest.param(
        ("xgboost", "1.7-1", "py3", "ml.m5.large"),
        {},
        "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
        id="xgboost-framework",
    ),
    pytest.param(
        ("xgboost", "", None, "ml.m5.large"),
        {},
        "811284229777.dkr.ecr.us-east-1.amazonaws.com/xgboost:1",
        id="xgboost-latest-is-the-built-in-algorithm",
    ),
    pytest.param(
        ("pytorch", "2.6", "py312", "ml.g5.xlarge"), {}, f"{DLC}/pytorch-inference:2.6-gpu-py312", id="pytorch-gpu"
    ),
    pytest.param(
        ("pytorch", "2.6", "py312", None),
        {"serverless": True},
        f"{DLC}/pytorch-inference:2.6-cpu-py312",
        id="pytorch-serverless-takes-the-cpu-image",
    ),
    pytest.param(
        ("pytorch", "2.6", "py312", "ml.c7g.large", "eu-west-1"),
        {},
        "763104351884.dkr.ecr.eu-west-1.amazonaws.com/pytorch-inference-arm64:2.6-cpu-py312-ubuntu22.04-sagemaker",
        id="pytorch-graviton-arm64",
    ),
    pytest.param(
        ("pytorch", "2.1", "py310", "ml.c6g.large"),
        {},
        f"{DLC}/pytorch-inference-graviton:2.1-cpu-py310-ubuntu20.04-sagemaker",
        id="pytorch-graviton",
    ),
    pytest.param(
        ("pytorch", "", None, "ml.m5.large", "cn-north-1"),
        {},
        "727897471807.dkr.ecr.cn-north-1.amazonaws.com.cn/pytorch-inference:2.6.0-cpu-py312",
        id="pytorch-latest-inference-version",
    ),
    pytest.param(
        ("pytorch", "1.6", "py3", "ml.p4d.24xlarge"),
        {},
        f"{DLC}/pytorch-inference:1.6-gpu-py3-cu110-ubuntu18.04-v3",
        id="pytorch-p4d-container-suffix",
    ),
    pytest.param(
        ("tensorflow", "2.19", "py312", "ml.g5.xlarge", "us-gov-west-1"),
        {},
        "442386744353.dkr.ecr.us-gov-west-1.amazonaws.com/tensorflow-inference:2.19-gpu",
        id="tensorflow-python-version-ignored",
    ),
    pytest.param(
        ("tensorflow", "2.16", None, "ml.c6g.xlarge"),
        {},
        f"{DLC}/tensorflow-inference-graviton:2.16-cpu-py310-ubuntu20.04-sagemaker",
        id="tensorflow-graviton",
    ),
    pytest.param(
        ("huggingface", "5.5", "py312", "ml.g5.xlarge"),
        {"base_framework_version": "pytorch2.6"},
        f"{DLC}/huggingface-pytorch-inference:2.6-transformers5.5.3-gpu-py312-cu124-ubuntu22.04",
        id="huggingface-gpu",
    ),
    pytest.param(
        ("huggingface", "4.49.0", "py312", None),
        {"serverless": True, "base_framework_version": "pytorch2.6.0"},
        f"{DLC}/huggingface-pytorch-inference:2.6.0-transformers4.49.0-cpu-py312-ubuntu22.04",
        id="huggingface-serverless",
    ),
    pytest.param(
        ("huggingface", "4.12", "py37", "ml.inf1.xlarge"),
        {"base_framework_version": "pytorch1.9"},
        f"{DLC}/huggingface-pytorch-inference-neuron:1.9.1-transformers4.12.3-neuron-py37-sdk1.17.1-ubuntu18.04",
        id="huggingface-inferentia",
    ),
]

# Refusals of sagemaker==3.27.0 for the same inputs: the field to fix and the start of the SDK's message (a version
# with no inference image is named an inference version).
REFUSED = [
    pytest.param(("keras", "2.0", None, "ml.m5.large"), {}, "framework", "Unsupported framework: keras", id="unknown"),
    pytest.param(
        ("pytorch", "2.8", "py312", "ml.m5.large"),
        {},
        "framework_version",
        "Unsupported pytorch inference version: 2.8; supported pytorch inference version(s): 0.4.0, ",
        id="training-version-without-inference-image",
    ),
    pytest.param(
        ("pytorch", "2.5", "py311", "ml.c6g.large"),
        {},
        "framework_version",
        "Unsupported pytorch Graviton inference version: 2.5; supported pytorch Graviton inference version(s): 1.12.1",
        id="version-without-graviton-image",
    ),
    pytest.param(
        ("xgboost", "3.2-0", None, "ml.c6g.large"),
        {},
        "framework_version",
        "Unsupported xgboost Graviton inference version: 3.2-0; supported xgboost Graviton inference version(s): 1.3-1",
        id="xgboost-version-without-graviton-image",
    ),
    pytest.param(
        ("pytorch", "2.6", "py312", None),
        {},
        "instance_type",
        "Empty SageMaker instance type; for options, see: https://",
        id="no-instance-type-and-not-serverless",
    ),
    pytest.param(
        ("tensorflow", "2.20", "py310", "ml.m5.large"),
        {},
        "py_version",
        "Unsupported Python version: py310; supported Python version(s): py312",
        id="python-version",
    ),
    pytest.param(
        ("pytorch", "2.6", "py312", "ml.inf2.xlarge"),
        {},
        "py_version",
        "Unsupported Python version: py312; supported Python version(s): py38",
        id="pytorch-on-inferentia-takes-the-neuron-training-config",
    ),
    pytest.param(
        ("sklearn", "1.9-0", None, "ml.m5.large", "us-moon-1"),
        {},
        "region",
        "Unsupported region: us-moon-1; supported region(s): af-south-1, ",
        id="region",
    ),
    pytest.param(
        ("huggingface", "5.5", "py312", "ml.c6g.xlarge"),
        {"base_framework_version": "pytorch2.6"},
        "framework",
        "Unsupported framework: huggingface; supported framework(s) for Graviton instances: pytorch, sklearn, "
        "tensorflow, xgboost",
        id="huggingface-on-graviton",
    ),
    pytest.param(
        ("huggingface", "5.5", "py312", "ml.g5.xlarge"),
        {},
        "base_framework_version",
        "Unsupported base framework: None; supported base framework(s): version_aliases, pytorch2.6.0",
        id="huggingface-without-base",
    ),
    pytest.param(
        ("tensorflow", "2.19", None, "ml.trn1.2xlarge"),
        {},
        "framework",
        "Unsupported framework: tensorflow; supported framework(s) for Trainium instances: pytorch",
        id="tensorflow-on-trainium",
    ),
]


def _resolve(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    if len(args) == 4:
        args = (*args, "us-east-1")
    return inference_image_uri(*args, **kwargs)


@pytest.mark.parametrize(("args", "kwargs", "uri"), KNOWN)
def test_resolves_the_sdk_image(args: tuple[Any, ...], kwargs: dict[str, Any], uri: str) -> None:
    assert _resolve(args, kwargs) == uri


@pytest.mark.parametrize(("args", "kwargs", "where", "message"), REFUSED)
def test_refuses_what_the_sdk_refuses_naming_the_field(
    args: tuple[Any, ...], kwargs: dict[str, Any], where: str, message: str
) -> None:
    with pytest.raises(ImageError) as raised:
        _resolve(args, kwargs)
    assert raised.value.where == where
    assert raised.value.message.startswith(message)
    assert not raised.value.message.endswith(".")
    assert str(raised.value).startswith(f"{where}: ")


def test_serverless_takes_the_cpu_image_even_when_named_a_gpu_instance() -> None:
    assert inference_image_uri("pytorch", "2.6", "py312", "ml.g5.xlarge", "us-east-1", serverless=True) == (
        f"{DLC}/pytorch-inference:2.6-cpu-py312"
    )


def test_no_instance_type_is_an_empty_one() -> None:
    with pytest.raises(ImageError) as none:
        inference_image_uri("pytorch", "2.6", "py312", None, "us-east-1")
    with pytest.raises(ImageError) as empty:
        inference_image_uri("pytorch", "2.6", "py312", "", "us-east-1")
    assert none.value.message == empty.value.message


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_every_inference_version_resolves_or_names_its_field(framework: str) -> None:
    config = _table()["inference"]["configs"][framework]
    for version in [*config["versions"], *config.get("version_aliases", {})]:
        for instance_type, serverless in (("ml.g5.xlarge", False), (None, True)):
            try:
                uri = inference_image_uri(
                    framework,
                    version,
                    None,
                    instance_type,
                    "us-west-2",
                    serverless=serverless,
                    base_framework_version="pytorch2.6.0" if framework == "huggingface" else None,
                )
            except ImageError as exc:
                assert exc.where in {"py_version", "instance_type", "region", "base_framework_version"}
            else:
                assert uri.split("/")[0].endswith(".dkr.ecr.us-west-2.amazonaws.com")


def test_table_holds_the_inference_scopes_beside_the_training_ones() -> None:
    table = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    inference = table["inference"]
    assert set(inference["configs"]) == {*FRAMEWORKS, "huggingface-neuron"}
    assert (
        set(inference["graviton"])
        == set(inference["graviton_frameworks"])
        == {
            "pytorch",
            "sklearn",
            "tensorflow",
            "xgboost",
        }
    )
    assert set(inference["latest"]) == set(FRAMEWORKS)
    assert set(inference["arm64_tags"]) == {"sklearn", "xgboost"}
    assert all(path.split("/")[0] in ("configs", "graviton") for path in inference["kept"])
    references: list[int] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "registries":
                    references.append(value)
                else:
                    collect(value)

    collect(inference)
    assert references and all(isinstance(r, int) and 0 <= r < len(table["registries"]) for r in references)


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("generate_images", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generator_pins_the_releases_the_table_records() -> None:
    current, legacy = _generator().recorded_requirements(_table())
    source = _table()["source"]
    assert current == (
        f"sagemaker=={source['sagemaker']} sagemaker-core=={source['sagemaker-core']} botocore=={source['botocore']}"
    )
    assert legacy == " ".join(f"{name}=={version}" for name, version in source["legacy"].items())


def test_generator_keeps_inference_knowledge_only_v2_has_and_shares_registries() -> None:
    generator = _generator()
    registries = generator._Registries()
    registries.ref({"us-east-1": "1"})
    v3 = {
        "latest": {"pytorch": "2.6.0"},
        "graviton_frameworks": ["pytorch"],
        "arm64_tags": {},
        "configs": {"pytorch": {"versions": {"2.6.0": {"registries": {"us-east-1": "1"}, "repository": "r"}}}},
        "graviton": {"pytorch": {"versions": {"2.6.0": {"registries": {"us-east-1": "2"}, "repository": "g"}}}},
    }
    v2 = {"configs": {"pytorch": {"versions": {"2.5.1": {"registries": {"us-east-1": "1"}, "repository": "r"}}}}}

    built = generator._build_inference(v3, v2, registries)

    assert built["kept"] == ["configs/pytorch/versions/2.5.1"]
    assert built["configs"]["pytorch"]["versions"] == {
        "2.5.1": {"registries": 0, "repository": "r"},
        "2.6.0": {"registries": 0, "repository": "r"},
    }
    assert built["graviton"]["pytorch"]["versions"]["2.6.0"]["registries"] == 1
    assert registries.maps == [{"us-east-1": "1"}, {"us-east-1": "2"}]
