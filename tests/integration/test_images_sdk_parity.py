"""sagepush.images gives the SageMaker Python SDK v3's answer, URI or error, over a grid of training-image inputs.

The reference is sagemaker-core's `image_uris.retrieve(..., image_scope="training")` as the SDK's training path
(`get_training_image_uri`) calls it; every input is also put to `retrieve` as it is, and the two differ only where
that path adds what a training job needs (see `_training_path_differs`). sagepush differs from the SDK on purpose
only where `DELIBERATE` says, and, when the image data keeps something v2 knew and v3 dropped, there.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from typing import Any

import pytest

from sagepush.images import FRAMEWORKS, ImageError, _release_of_base, _table, supported_versions, training_image_uri
from tests.reference.sdk import SDK_V3, run_sdk_script

BAD_REGIONS = ["us-moon-1", "US-EAST-1", ""]
INSTANCE_TYPES = [
    "ml.m5.xlarge",
    "ml.c5.2xlarge",
    "ml.c7i.large",
    "ml.r5.large",
    "ml.t3.medium",
    "ml.g4dn.xlarge",
    "ml.g5.xlarge",
    "ml.g6.xlarge",
    "ml.g6e.2xlarge",
    "ml.p3.2xlarge",
    "ml.p4d.24xlarge",
    "ml.p4de.24xlarge",
    "ml.p5.48xlarge",
    "ml.p5en.48xlarge",
    "ml.p6-b200.48xlarge",
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
GRAVITON_INSTANCE_TYPES = ["ml.c6g.xlarge", "ml.m6g.large", "ml.c7g.2xlarge", "ml.r6gd.xlarge"]
# One region of each partition the image data names, and one the SDK does not know.
PARTITION_REGIONS = [
    "us-east-1",
    "cn-northwest-1",
    "us-gov-east-1",
    "us-iso-east-1",
    "us-isob-east-1",
    "us-isof-south-1",
    "eu-isoe-west-1",
    "eusc-de-east-1",
    "us-moon-1",
]
PY_VERSIONS = [None, "py3", "py38", "py310", "py311", "py312", "py313", "py2"]
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
# (framework, version, py_version, base_framework_version): a spread over old and aliased releases.
ANCHORS = [
    ("pytorch", "2.5", "py311", None),
    ("pytorch", "1.13", "py39", None),
    ("pytorch", "1.12", "py38", None),
    ("pytorch", "1.6", "py3", None),
    ("pytorch", "1.6.0", "py36", None),
    ("tensorflow", "2.14", "py310", None),
    ("tensorflow", "2.3", "py37", None),
    ("tensorflow", "1.15.5", "py37", None),
    ("tensorflow", "1.13", "py3", None),
    ("sklearn", "1.2-1", "py3", None),
    ("sklearn", "0.20.0", None, None),
    ("xgboost", "0.90-1", "py3", None),
    ("xgboost", "latest", None, None),
    ("huggingface", "4.36", "py310", "pytorch2.1.0"),
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
# Where sagepush answers differently from the SDK on purpose (README, "Training images"): the check each such case
# gets instead of equality.
DELIBERATE = {
    "out-of-scope framework": "sagepush builds images for its five frameworks only: any refusal",
    "graviton instance": "the SDK answers an inference_graviton image; SageMaker trains on no Graviton: a refusal",
    "huggingface neuron inference": "the SDK checks Neuron inference images sagepush does not carry: the field only",
    "sdk internal error": "the SDK trips over its own data (KeyError, TypeError, ...): any clear refusal",
    "p2 message": "the SDK's P2 message runs two sentences together: the field and the start",
    "kept from v2": "the data keeps what v2 knew and v3 dropped: an answer where v3 refuses, longer option lists",
}


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


def _aliases(framework: str) -> dict[str, str]:
    aliases: dict[str, str] = _table()["configs"][framework].get("version_aliases", {})
    return aliases


def _every_region() -> list[str]:
    """Every region of every partition the image data names, then regions no SDK knows."""
    known = sorted({region for registries in _table()["registries"] for region in registries})
    return known + BAD_REGIONS


def _huggingface_bases(version: str) -> list[str]:
    config = _table()["configs"]["huggingface"]["versions"][version]
    return [k for k in config if k != "version_aliases"] + list(config.get("version_aliases", {}))


def newest_three(framework: str) -> list[str]:
    """The three newest full versions of a framework."""
    return sorted(_table()["configs"][framework]["versions"], key=_release_of_base, reverse=True)[:3]


def _newest_spellings() -> list[tuple[str, str, list[str | None], list[str | None]]]:
    """(framework, version as written, its Python versions, its bases) for each framework's newest three versions,
    full and aliased."""
    found: list[tuple[str, str, list[str | None], list[str | None]]] = []
    for framework in FRAMEWORKS:
        for version in newest_three(framework):
            spellings = [version, *(a for a, full in _aliases(framework).items() if full == version)]
            config = _table()["configs"][framework]["versions"][version]
            bases: list[str | None] = [None]
            py_versions: list[str | None] = list(config.get("py_versions", [])) or [None]
            if framework == "huggingface":
                bases = list(_huggingface_bases(version))
                py_versions = [
                    *sorted({py for base, c in config.items() if base != "version_aliases" for py in c["py_versions"]})
                ]
            found.extend((framework, spelled, py_versions, bases) for spelled in spellings)
    return found


def _newest_everywhere() -> list[dict[str, Any]]:
    """The newest three versions of each framework in every region, on every instance family, with every Python
    version and distribution."""
    cases = []
    for framework, version, py_versions, bases in _newest_spellings():
        for base, py in itertools.product(bases, py_versions):
            anchor: dict[str, Any] = {"py_version": py, "base_framework_version": base}
            for region, instance_type in itertools.product(_every_region(), ("ml.m5.xlarge", "ml.g5.xlarge")):
                cases.append(_case(framework, version, region=region, instance_type=instance_type, **anchor))
            for region, instance_type in itertools.product(PARTITION_REGIONS, INSTANCE_TYPES + GRAVITON_INSTANCE_TYPES):
                cases.append(_case(framework, version, region=region, instance_type=instance_type, **anchor))
            for distribution, instance_type in itertools.product(
                DISTRIBUTIONS, ("ml.p4d.24xlarge", "ml.p5.48xlarge", "ml.g5.xlarge")
            ):
                cases.append(
                    _case(framework, version, instance_type=instance_type, distribution=distribution, **anchor)
                )
        for py, instance_type in itertools.product(PY_VERSIONS, ("ml.m5.xlarge", "ml.g5.xlarge")):
            cases.append(
                _case(framework, version, instance_type=instance_type, py_version=py, base_framework_version=bases[0])
            )
    return cases


def _every_version() -> list[dict[str, Any]]:
    """Every version and alias of the four frameworks without a base framework, on CPU and GPU."""
    return [
        _case(framework, version, instance_type=instance_type, py_version=py_version)
        for framework in ("pytorch", "tensorflow", "sklearn", "xgboost")
        for version, instance_type, py_version in itertools.product(
            supported_versions(framework), ("ml.m5.xlarge", "ml.g5.xlarge"), (None, "py3", "py310", "py312")
        )
    ]


def _every_huggingface_base() -> list[dict[str, Any]]:
    """Every transformers version, full and aliased, with every base it knows, one it does not, and none."""
    aliases = {full: alias for alias, full in _aliases("huggingface").items()}
    return [
        _case("huggingface", spelled, instance_type=instance_type, py_version=py_version, base_framework_version=base)
        for version in _table()["configs"]["huggingface"]["versions"]
        for base, instance_type, py_version in itertools.product(
            [*_huggingface_bases(version), "pytorch9.9", None], ("ml.g5.xlarge", "ml.m5.xlarge"), (None, "py310")
        )
        for spelled in sorted({version, aliases.get(version, version)})
    ]


def _around_anchors() -> list[dict[str, Any]]:
    """Partitions, instance types, Python versions and distributions around a spread of older releases."""
    cases = []
    for framework, version, py_version, base in ANCHORS:
        anchor: dict[str, Any] = {"py_version": py_version, "base_framework_version": base}
        for region, instance_type in itertools.product(PARTITION_REGIONS, INSTANCE_TYPES + GRAVITON_INSTANCE_TYPES):
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
            ("2.0", "2.0.1", "2.1", "2.2", "2.3.1", "2.4.1", "2.5", "2.5.1", "2.7", "2.8", "2.8.0", "2.10.0", "1.13"),
            ("ml.p4d.24xlarge", "ml.p5.48xlarge", "ml.g5.48xlarge", "ml.m5.xlarge", "ml.trn1.32xlarge"),
            (None, "py310", "py311", "py312"),
        )
    ]
    neuron = [
        _case("pytorch", version, instance_type=instance_type, py_version=py_version)
        for version, instance_type, py_version in itertools.product(
            ("2.10.0", "2.5", "1.11", "1.11.0", "9.9", ""),
            ("ml.trn1.2xlarge", "ml.trn1n.32xlarge", "ml.trn2.48xlarge", "ml.inf2.xlarge"),
            (None, "py38", "py310"),
        )
    ]
    return smp + neuron


def _odd_inputs() -> list[dict[str, Any]]:
    """Unknown frameworks, empty versions (the latest), and inputs in the wrong shape."""
    cases = [_case(framework, "2.0") for framework in ("keras", "PyTorch", "mxnet", "pytorch-smp", "")]
    for framework in FRAMEWORKS:
        for base in ("pytorch2.9.0", "pytorch2.8.0", None):
            cases.append(_case(framework, "", instance_type="ml.g5.xlarge", base_framework_version=base))
        cases.append(_case(framework, "", instance_type="ml.m5.xlarge"))
        cases.append(_case(framework, "not-a-version"))
    for base in ("jax0.4", "pytorch", "tensorflow2.6", "version_aliases"):
        cases.append(_case("huggingface", "4.36", base_framework_version=base, instance_type="ml.g5.xlarge"))
    for version, instance_type, missing_base in itertools.product(
        ("5.3", "4.36", "4.12.3", "4.28"), ("ml.inf2.xlarge", "ml.inf1.xlarge", "ml.trn1.2xlarge"), (None, "jax0.4")
    ):
        cases.append(_case("huggingface", version, instance_type=instance_type, base_framework_version=missing_base))
    return cases


def _grid() -> list[dict[str, Any]]:
    cases = (
        _newest_everywhere()
        + _every_version()
        + _every_huggingface_base()
        + _around_anchors()
        + _accelerators()
        + _odd_inputs()
    )
    unique = {json.dumps(case, sort_keys=True): case for case in cases}
    return list(unique.values())


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


def _kept_leaves(framework: str) -> set[str]:
    """What the image data keeps from v2 for a framework (versions, aliases, bases, regions, Python versions)."""
    return {path.rsplit("/", 1)[1] for path in _table()["kept"] if path.split("/")[0].startswith(framework)}


def _without_kept(message: str, leaves: set[str]) -> str:
    head, sep, options = message.partition("(s): ")
    if not sep or not leaves:
        return message
    return head + sep + ", ".join(o for o in options.split(", ") if o not in leaves)


def _deliberate(case: dict[str, Any], sdk: dict[str, str], ours: dict[str, str]) -> str | None:
    """The entry of DELIBERATE this case falls under, if any."""
    framework, instance_type = case["framework"], case["instance_type"]
    if framework not in FRAMEWORKS:
        return "out-of-scope framework"
    if instance_type in GRAVITON_INSTANCE_TYPES:
        return "graviton instance"
    if "error" in sdk and sdk["error"] != "ValueError":
        return "sdk internal error"
    if (
        framework == "huggingface"
        and instance_type.startswith("ml.inf")
        and not re.match(r"^(pytorch|tensorflow)", case["base_framework_version"] or "")
    ):
        return "huggingface neuron inference"
    if "error" in sdk and sdk["message"].startswith("P2 instances"):
        return "p2 message"
    leaves = _kept_leaves(framework)
    if leaves and "error" in sdk and ("uri" in ours or _without_kept(ours["message"], leaves) != ours["message"]):
        return "kept from v2"
    return None


def _agrees(case: dict[str, Any], sdk: dict[str, str], ours: dict[str, str], deliberate: str | None) -> bool:
    if deliberate in ("out-of-scope framework", "graviton instance", "sdk internal error"):
        return "error" in ours
    if deliberate == "huggingface neuron inference":
        return "error" in sdk and ours.get("where") == "base_framework_version"
    if deliberate == "p2 message":
        return ours.get("where") == "instance_type" and ours["message"].startswith("P2 instances")
    if deliberate == "kept from v2":
        leaves = _kept_leaves(case["framework"])
        named = {str(case[k]) for k in ("version", "region", "py_version", "base_framework_version")}
        if "uri" in ours:
            return bool(named & leaves)
        return _without_kept(ours["message"], leaves) == _expected_message(sdk["message"])
    if "uri" in sdk:
        return ours == sdk
    expected = {"error": "ImageError", "where": _expected_where(sdk["message"]), "message": ""}
    expected["message"] = _expected_message(sdk["message"])
    return ours == expected


def _training_path_differs(case: dict[str, Any]) -> str | None:
    """Why the SDK's training path may answer other than a bare `retrieve(..., image_scope="training")`."""
    distribution = case["distribution"] or {}
    if (
        case["framework"] in ("pytorch", "tensorflow", "huggingface")
        and "torch_distributed" in distribution
        and "modelparallel" in distribution.get("smdistributed", {})
    ):
        return "model-parallel image"
    if case["framework"] == "huggingface" and re.match(r"^(pytorch|tensorflow)", case["base_framework_version"] or ""):
        return "huggingface GPU container and base framework split"
    return None


GRID = _grid()


@pytest.fixture(scope="module")
def sdk_answers() -> list[dict[str, dict[str, str]]]:
    answers: list[dict[str, dict[str, str]]] = run_sdk_script("images_reference.py", GRID, sdk=SDK_V3)
    return answers


def test_reference_is_the_sdk_the_data_came_from() -> None:
    source = _table()["source"]
    assert f"sagemaker=={source['sagemaker']}" in SDK_V3
    assert f"sagemaker-core=={source['sagemaker-core']}" in SDK_V3
    assert f"botocore=={source['botocore']}" in SDK_V3


def test_grid_is_large_and_covers_the_newest_versions_everywhere(sdk_answers: list[dict[str, Any]]) -> None:
    uris = sum("uri" in answer["training"] for answer in sdk_answers)
    assert len(GRID) >= 4000
    assert uris >= 1500
    assert len(GRID) - uris >= 1000
    for framework in FRAMEWORKS:
        for version in newest_three(framework):
            asked = [c for c in GRID if c["framework"] == framework and c["version"] == version]
            assert {c["region"] for c in asked} >= set(_every_region()), (framework, version)
            assert {c["instance_type"] for c in asked} >= set(INSTANCE_TYPES), (framework, version)


def test_same_answer_as_the_sdk(sdk_answers: list[dict[str, Any]]) -> None:
    mismatches = []
    deliberate: Counter[str] = Counter()
    for case, answer in zip(GRID, sdk_answers, strict=True):
        sdk, ours = answer["training"], _ours(case)
        reason = _deliberate(case, sdk, ours)
        deliberate[reason or "same"] += 1
        if not _agrees(case, sdk, ours, reason):
            mismatches.append({"case": case, "sdk": sdk, "ours": ours})
    assert set(deliberate) - {"same"} <= set(DELIBERATE)
    assert not mismatches, f"{len(mismatches)} of {len(GRID)} differ, first: {json.dumps(mismatches[:5], indent=1)}"
    print(f"\n{len(GRID)} inputs: {dict(deliberate)}")


def test_training_path_is_retrieve_with_the_training_scope(sdk_answers: list[dict[str, Any]]) -> None:
    unexplained = [
        {"case": case, **answer}
        for case, answer in zip(GRID, sdk_answers, strict=True)
        if answer["training"] != answer["retrieve"] and _training_path_differs(case) is None
    ]
    assert not unexplained, json.dumps(unexplained[:5], indent=1)
