"""sagepush.images gives the SageMaker Python SDK's answer, URI or error, over a grid of estimator inputs."""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import pytest

from sagepush.images import FRAMEWORKS, ImageError, _table, supported_versions, training_image_uri
from tests.reference.sdk import run_sdk_script

REGIONS = [
    "us-east-1",
    "eu-west-1",
    "ap-southeast-3",
    "cn-north-1",
    "cn-northwest-1",
    "us-gov-west-1",
    "us-iso-east-1",
    "us-isob-east-1",
    "us-isof-south-1",
    "il-central-1",
    "mx-central-1",
    "us-moon-1",
    "US-EAST-1",
    "",
]
INSTANCE_TYPES = [
    "ml.m5.xlarge",
    "ml.c5.2xlarge",
    "ml.g5.xlarge",
    "ml.g4dn.xlarge",
    "ml.p3.2xlarge",
    "ml.p4d.24xlarge",
    "ml.p5.48xlarge",
    "ml.p2.xlarge",
    "ml.trn1.2xlarge",
    "ml.trn1n.32xlarge",
    "ml.trn2.48xlarge",
    "ml.inf1.xlarge",
    "ml.inf2.xlarge",
    "local",
    "local_gpu",
    "",
    "m5.xlarge",
    "ml_m5",
    "neuron",
]
GRAVITON_INSTANCE_TYPES = ["ml.c6g.xlarge", "ml.m6g.large", "ml.c7g.2xlarge"]
PY_VERSIONS = [None, "py3", "py38", "py310", "py311", "py312", "py2"]
SMP = {"torch_distributed": {"enabled": True}, "smdistributed": {"modelparallel": {"enabled": True}}}
DISTRIBUTIONS: list[dict[str, Any] | None] = [
    None,
    {"torch_distributed": {"enabled": True}},
    SMP,
    {"torch_distributed": {"enabled": True}, "smdistributed": {"modelparallel": {"enabled": False}}},
    {"torch_distributed": {"enabled": True}, "smdistributed": {"modelparallel": {}}},
    {"smdistributed": {"modelparallel": {"enabled": True}}},
    {"smdistributed": {"dataparallel": {"enabled": True}}},
    {"pytorchddp": {"enabled": True}},
    {"mpi": {"enabled": True, "processes_per_host": 8}},
]
# (framework, version, py_version, base_framework_version): a spread over old, aliased and current releases.
ANCHORS = [
    ("pytorch", "2.5", "py311", None),
    ("pytorch", "2.8.0", "py312", None),
    ("pytorch", "1.13", "py39", None),
    ("pytorch", "1.12", "py38", None),
    ("pytorch", "1.11.0", "py38", None),
    ("pytorch", "1.6", "py3", None),
    ("pytorch", "1.6.0", "py36", None),
    ("tensorflow", "2.14", "py310", None),
    ("tensorflow", "2.11.0", "py39", None),
    ("tensorflow", "2.3", "py37", None),
    ("tensorflow", "1.15.5", "py37", None),
    ("tensorflow", "1.13", "py3", None),
    ("sklearn", "1.2-1", "py3", None),
    ("sklearn", "0.20.0", None, None),
    ("xgboost", "1.7-1", None, None),
    ("xgboost", "0.90-1", "py3", None),
    ("xgboost", "latest", None, None),
    ("huggingface", "4.36", "py310", "pytorch2.1.0"),
    ("huggingface", "4.56.2", "py312", "pytorch2.8"),
    ("huggingface", "4.17.0", "py38", "tensorflow2.6"),
    ("huggingface", "4.6.1", "py36", "pytorch1.6.0"),
]
UPGRADE_HINT = re.compile(r" You may need to upgrade your SDK version \(pip install -U sagemaker\) for newer [^.]*s\.")
WHERE_BY_MESSAGE = [
    ("Unsupported region", "region"),
    ("Unsupported Python version", "py_version"),
    ("Unsupported base framework", "base_framework_version"),
    ("Unsupported processor", "instance_type"),
    ("Invalid SageMaker instance type", "instance_type"),
    ("Empty SageMaker instance type", "instance_type"),
    ("P2 instances", "instance_type"),
    ("Unsupported framework", "framework"),
    ("Unsupported ", "framework_version"),
]


def _case(
    framework: str,
    version: str,
    *,
    region: str = "us-east-1",
    instance_type: str = "ml.m5.xlarge",
    py_version: str | None = None,
    base_framework_version: str | None = None,
    distribution: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "framework": framework,
        "version": version,
        "region": region,
        "instance_type": instance_type,
        "py_version": py_version,
        "base_framework_version": base_framework_version,
        "distribution": distribution,
    }


def _huggingface_bases() -> dict[str, list[str]]:
    """Every base framework (full and alias) each transformers version names; the SDK decides every answer."""
    bases: dict[str, list[str]] = {}
    for version, config in _table()["configs"]["huggingface"]["versions"].items():
        bases[version] = [k for k in config if k != "version_aliases"] + list(config.get("version_aliases", {}))
    return bases


def _every_version() -> list[dict[str, Any]]:
    """Every version and alias of the four estimators without a base framework, on CPU and GPU."""
    return [
        _case(framework, version, instance_type=instance_type, py_version=py_version)
        for framework in ("pytorch", "tensorflow", "sklearn", "xgboost")
        for version, instance_type, py_version in itertools.product(
            supported_versions(framework), ("ml.m5.xlarge", "ml.g5.xlarge"), (None, "py3", "py310", "py312")
        )
    ]


def _every_huggingface_base() -> list[dict[str, Any]]:
    """Every transformers version, full and aliased, with every base it knows, one it does not, and none."""
    aliases = {full: alias for alias, full in _table_aliases("huggingface").items()}
    return [
        _case("huggingface", spelled, instance_type=instance_type, py_version=py_version, base_framework_version=base)
        for version, names in _huggingface_bases().items()
        for base, instance_type, py_version in itertools.product(
            [*names, "pytorch9.9", None], ("ml.g5.xlarge", "ml.m5.xlarge"), (None, "py310")
        )
        for spelled in sorted({version, aliases.get(version, version)})
    ]


def _around_anchors() -> list[dict[str, Any]]:
    """Regions, instance types, Python versions and distributions around a spread of releases."""
    cases = []
    for framework, version, py_version, base in ANCHORS:
        anchor: dict[str, Any] = {"py_version": py_version, "base_framework_version": base}
        for region, instance_type in itertools.product(REGIONS, ("ml.m5.xlarge", "ml.p3.2xlarge")):
            cases.append(_case(framework, version, region=region, instance_type=instance_type, **anchor))
        for region, instance_type in itertools.product(
            ("us-east-1", "cn-northwest-1", "us-gov-west-1"), INSTANCE_TYPES + GRAVITON_INSTANCE_TYPES
        ):
            cases.append(_case(framework, version, region=region, instance_type=instance_type, **anchor))
        for py in PY_VERSIONS:
            cases.append(
                _case(framework, version, instance_type="ml.g5.xlarge", py_version=py, base_framework_version=base)
            )
        for distribution, instance_type in itertools.product(
            DISTRIBUTIONS, ("ml.p4d.24xlarge", "ml.p5.48xlarge", "ml.g5.xlarge")
        ):
            cases.append(_case(framework, version, instance_type=instance_type, distribution=distribution, **anchor))
    return cases


def _accelerators() -> list[dict[str, Any]]:
    """The model-parallel image (its tag follows version and instance), and pytorch on Trainium and Inferentia."""
    smp = [
        _case("pytorch", version, instance_type=instance_type, py_version=py_version, distribution=SMP)
        for version, instance_type, py_version in itertools.product(
            ("2.0", "2.0.1", "2.1", "2.2", "2.2.0", "2.3.1", "2.4.1", "2.5", "2.5.1", "1.13"),
            ("ml.p4d.24xlarge", "ml.p5.48xlarge", "ml.g5.48xlarge", "ml.m5.xlarge", "ml.trn1.32xlarge"),
            (None, "py310", "py311"),
        )
    ]
    neuron = [
        _case("pytorch", version, instance_type=instance_type, py_version=py_version)
        for version, instance_type, py_version in itertools.product(
            ("2.5", "1.11", "1.11.0", "9.9", ""),
            ("ml.trn1.2xlarge", "ml.trn1n.32xlarge", "ml.inf2.xlarge"),
            (None, "py38", "py310"),
        )
    ]
    return smp + neuron


def _odd_inputs() -> list[dict[str, Any]]:
    """Unknown frameworks, empty versions (the latest), and inputs in the wrong shape."""
    cases = [_case(framework, "2.0") for framework in ("keras", "PyTorch", "mxnet", "pytorch-smp", "")]
    for framework in FRAMEWORKS:
        cases.append(_case(framework, "", instance_type="ml.g5.xlarge", base_framework_version="pytorch2.8.0"))
        cases.append(_case(framework, "not-a-version"))
    for base in ("jax0.4", "pytorch", "tensorflow2.6", "version_aliases"):
        cases.append(_case("huggingface", "4.36", base_framework_version=base, instance_type="ml.g5.xlarge"))
    for version, instance_type, missing_base in itertools.product(
        ("4.36", "4.12.3", "4.28"), ("ml.inf2.xlarge", "ml.inf1.xlarge", "ml.trn1.2xlarge"), (None, "jax0.4")
    ):
        cases.append(_case("huggingface", version, instance_type=instance_type, base_framework_version=missing_base))
    return cases


def _grid() -> list[dict[str, Any]]:
    cases = _every_version() + _every_huggingface_base() + _around_anchors() + _accelerators() + _odd_inputs()
    unique = {json.dumps(case, sort_keys=True): case for case in cases}
    return list(unique.values())


def _table_aliases(framework: str) -> dict[str, str]:
    aliases: dict[str, str] = _table()["configs"][framework].get("version_aliases", {})
    return aliases


def _expected_message(sdk_message: str) -> str:
    """The SDK's message as sagepush words it: no upgrade hint, one sentence, no trailing period."""
    text = UPGRADE_HINT.sub("", sdk_message)
    text = re.sub(r"\. ([A-Z])", lambda m: "; " + m[1].lower(), text)
    return text.removesuffix(".")


def _expected_where(sdk_message: str) -> str:
    return next(where for prefix, where in WHERE_BY_MESSAGE if sdk_message.startswith(prefix))


def _ours(case: dict[str, Any]) -> dict[str, str]:
    try:
        return {
            "uri": training_image_uri(
                case["framework"],
                case["version"],
                region=case["region"],
                instance_type=case["instance_type"],
                py_version=case["py_version"],
                base_framework_version=case["base_framework_version"],
                distribution=case["distribution"],
            )
        }
    except ImageError as exc:
        return {"error": "ImageError", "where": exc.where, "message": exc.message}


def _huggingface_neuron_inference(case: dict[str, Any]) -> bool:
    """huggingface on Inferentia with no pytorch/tensorflow base: the SDK checks it against its Neuron inference
    images, which sagepush does not carry, so only the field at fault is compared."""
    return (
        case["framework"] == "huggingface"
        and case["instance_type"].startswith("ml.inf")
        and not re.match(r"^(pytorch|tensorflow)", case["base_framework_version"] or "")
    )


def _deliberately_refused(case: dict[str, Any]) -> bool:
    """Inputs sagepush refuses where the SDK answers: frameworks out of scope, Graviton instances."""
    return case["framework"] not in FRAMEWORKS or case["instance_type"] in GRAVITON_INSTANCE_TYPES


GRID = _grid()


@pytest.fixture(scope="module")
def sdk_answers() -> list[dict[str, str]]:
    answers: list[dict[str, str]] = run_sdk_script("images_reference.py", GRID)
    return answers


def test_grid_is_large_and_covers_uris_and_errors(sdk_answers: list[dict[str, str]]) -> None:
    uris = sum("uri" in answer for answer in sdk_answers)
    assert len(GRID) >= 1000
    assert uris >= 300
    assert len(GRID) - uris >= 300


def test_same_answer_as_the_sdk(sdk_answers: list[dict[str, str]]) -> None:
    mismatches = []
    for case, sdk in zip(GRID, sdk_answers, strict=True):
        ours = _ours(case)
        if _deliberately_refused(case):
            ok = "error" in ours
        elif "uri" in sdk:
            ok = ours == sdk
        elif sdk["error"] != "ValueError":
            # The SDK trips over its own data here (KeyError, TypeError, missing file): any clear refusal will do.
            ok = "error" in ours
        elif _huggingface_neuron_inference(case):
            ok = sdk["error"] == "ValueError" and ours.get("where") == "base_framework_version"
        elif sdk["message"].startswith("P2 instances"):
            ok = ours.get("where") == "instance_type" and ours["message"].startswith("P2 instances")
        else:
            expected = {
                "error": "ImageError",
                "where": _expected_where(sdk["message"]),
                "message": _expected_message(sdk["message"]),
            }
            ok = ours == expected
        if not ok:
            mismatches.append({"case": case, "sdk": sdk, "ours": ours})
    assert not mismatches, f"{len(mismatches)} of {len(GRID)} differ, first: {json.dumps(mismatches[:5], indent=1)}"
