"""sagepush.images gives the SageMaker Python SDK v3's answer, URI or error, over a grid of inference-image inputs.

The reference is sagemaker-core's `image_uris.retrieve(..., image_scope="inference")`, with a
`ServerlessInferenceConfig` for a serverless endpoint, over every framework version (full and aliased) and Python
version on CPU, GPU, Graviton, Inferentia, Trainium and serverless, the newest versions in every region. sagepush
differs from the SDK on purpose only where `DELIBERATE` says, and in wording: a version with no inference image is
named an "inference version" (a "Graviton inference version" on Graviton), since training often knows it.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from typing import Any

import pytest

from sagepush.images import FRAMEWORKS, ImageError, _release_of_base, _table, inference_image_uri
from tests.integration.test_images_sdk_parity import (
    BAD_REGIONS,
    PARTITION_REGIONS,
    _expected_message,
    _expected_where,
    _without_kept,
)
from tests.reference.sdk import SDK_V3, run_sdk_script

CPU, GPU, GRAVITON = "ml.m5.xlarge", "ml.g5.xlarge", "ml.c6g.xlarge"
# (instance type, serverless): None is what a serverless endpoint has.
CORE_TARGETS: list[tuple[str | None, bool]] = [(CPU, False), (GPU, False), (GRAVITON, False), (None, True)]
INSTANCE_TYPES: list[str | None] = [
    "ml.m5.xlarge",
    "ml.c5.large",
    "ml.t2.medium",
    "ml.g4dn.xlarge",
    "ml.g5.xlarge",
    "ml.p3.2xlarge",
    "ml.p4d.24xlarge",
    "ml.p2.xlarge",
    "ml.c6g.xlarge",
    "ml.m6g.large",
    "ml.c7g.2xlarge",
    "ml.r6gd.xlarge",
    "ml.m7g.large",
    "ml.inf1.xlarge",
    "ml.inf2.xlarge",
    "ml.trn1.2xlarge",
    "local",
    "local_gpu",
    "neuron",
    "m5.xlarge",
    "",
    None,
]
TARGETS: list[tuple[str | None, bool]] = [
    *((instance_type, False) for instance_type in INSTANCE_TYPES),
    (None, True),
    ("", True),
    (GPU, True),
    (GRAVITON, True),
]
PY_VERSIONS = [None, "py3", "py37", "py38", "py310", "py311", "py312", "py2"]
# (framework, version, py_version, base_framework_version): a spread over old and aliased releases.
ANCHORS = [
    ("pytorch", "2.6", "py312", None),
    ("pytorch", "2.1", "py310", None),
    ("pytorch", "1.12", "py38", None),
    ("pytorch", "1.6", "py3", None),
    ("tensorflow", "2.19", None, None),
    ("tensorflow", "2.14", "py310", None),
    ("tensorflow", "2.3", "py37", None),
    ("tensorflow", "1.15", None, None),
    ("sklearn", "1.2-1", "py3", None),
    ("sklearn", "1.0-1", None, None),
    ("xgboost", "1.5-1", None, None),
    ("xgboost", "latest", None, None),
    ("huggingface", "5.5", "py312", "pytorch2.6"),
    ("huggingface", "4.12", "py37", "pytorch1.9"),
    ("huggingface", "4.17.0", "py38", "tensorflow2.6"),
]
DELIBERATE = {
    "out-of-scope framework": "sagepush resolves images for its five frameworks only: any refusal",
    "sdk internal error": "the SDK trips over its own data (KeyError, AttributeError, ...): any clear refusal",
    "p2 message": "the SDK's P2 message runs two sentences together: the field and the start",
    "kept from v2": "the data keeps what v2 knew and v3 dropped: an answer where v3 refuses, longer option lists",
}
SET_LITERAL = re.compile(r"\{('[^{}]*')\}")


def _case(
    framework: str,
    version: str,
    instance_type: str | None = CPU,
    *,
    serverless: bool = False,
    region: str = "us-east-1",
    py_version: str | None = None,
    base_framework_version: str | None = None,
) -> dict[str, Any]:
    return {
        "framework": framework,
        "version": version,
        "region": region,
        "instance_type": instance_type,
        "py_version": py_version,
        "base_framework_version": base_framework_version,
        "serverless": serverless,
    }


def _scopes(framework: str) -> list[dict[str, Any]]:
    inference = _table()["inference"]
    return [inference[scope][framework] for scope in ("configs", "graviton") if framework in inference[scope]]


def _spellings(framework: str) -> list[str]:
    """Every inference version (Graviton ones too), full then aliased."""
    found: list[str] = []
    for config in _scopes(framework):
        for version in [*config["versions"], *config.get("version_aliases", {})]:
            if version not in found:
                found.append(version)
    return found


def _py_versions(framework: str, version: str) -> list[str | None]:
    """The Python versions an inference image of `version` names, then some it does not."""
    found: set[str] = set()
    for config in _scopes(framework):
        entry = config["versions"].get(config.get("version_aliases", {}).get(version, version), {})
        found.update(entry.get("py_versions", []))
        if framework == "huggingface":  # one entry per base framework
            found.update(py for base, c in entry.items() if base != "version_aliases" for py in c["py_versions"])
    return [None, *sorted(found), *(py for py in ("py3", "py312") if py not in found)]


def _huggingface_bases(version: str) -> list[str | None]:
    config = _table()["inference"]["configs"]["huggingface"]
    entry = config["versions"][config.get("version_aliases", {}).get(version, version)]
    return [*(k for k in entry if k != "version_aliases"), *entry.get("version_aliases", {}), "pytorch9.9", None]


def newest_three(framework: str) -> list[str]:
    """The three newest full inference versions of a framework."""
    config = _table()["inference"]["configs"][framework]
    return sorted(config["versions"], key=_release_of_base, reverse=True)[:3]


def _every_region() -> list[str]:
    known = sorted({region for registries in _table()["registries"] for region in registries})
    return known + BAD_REGIONS


def _every_version() -> list[dict[str, Any]]:
    """Every version and alias of the four frameworks without a base framework, with their Python versions, on
    CPU, GPU, Graviton and serverless."""
    return [
        _case(framework, version, instance_type, serverless=serverless, py_version=py)
        for framework in ("pytorch", "tensorflow", "sklearn", "xgboost")
        for version in _spellings(framework)
        for py in _py_versions(framework, version)
        for instance_type, serverless in [*CORE_TARGETS, ("ml.p4d.24xlarge", False)]
    ]


def _every_huggingface_base() -> list[dict[str, Any]]:
    """Every transformers version, full and aliased, with every base it knows, one it does not and none, on CPU,
    GPU, Inferentia, Trainium, Graviton and serverless."""
    targets = [*CORE_TARGETS, ("ml.inf1.xlarge", False), ("ml.inf2.xlarge", False), ("ml.trn1.2xlarge", False)]
    return [
        _case("huggingface", version, instance_type, serverless=serverless, py_version=py, base_framework_version=base)
        for version in _spellings("huggingface")
        for base in _huggingface_bases(version)
        for py in _py_versions("huggingface", version)
        for instance_type, serverless in targets
    ]


def _newest_everywhere() -> list[dict[str, Any]]:
    """The newest three versions of each framework, full and aliased, in every region, on every target."""
    cases = []
    for framework in FRAMEWORKS:
        aliases = _table()["inference"]["configs"][framework].get("version_aliases", {})
        for full in newest_three(framework):
            py = _py_versions(framework, full)[1]
            base = _huggingface_bases(full)[0] if framework == "huggingface" else None
            for version in [full, *(alias for alias, target in aliases.items() if target == full)]:
                anchor: dict[str, Any] = {"py_version": py, "base_framework_version": base}
                for region, (instance_type, serverless) in itertools.product(_every_region(), CORE_TARGETS):
                    cases.append(
                        _case(framework, version, instance_type, serverless=serverless, region=region, **anchor)
                    )
                for region, (instance_type, serverless) in itertools.product(PARTITION_REGIONS, TARGETS):
                    cases.append(
                        _case(framework, version, instance_type, serverless=serverless, region=region, **anchor)
                    )
    return cases


def _around_anchors() -> list[dict[str, Any]]:
    """Partitions, instance types and Python versions around a spread of releases."""
    cases = []
    for framework, version, py_version, base in ANCHORS:
        anchor: dict[str, Any] = {"base_framework_version": base}
        for region, (instance_type, serverless) in itertools.product(PARTITION_REGIONS, TARGETS):
            cases.append(
                _case(
                    framework,
                    version,
                    instance_type,
                    serverless=serverless,
                    region=region,
                    py_version=py_version,
                    **anchor,
                )
            )
        for py, (instance_type, serverless) in itertools.product(PY_VERSIONS, CORE_TARGETS):
            cases.append(_case(framework, version, instance_type, serverless=serverless, py_version=py, **anchor))
    return cases


def _odd_inputs() -> list[dict[str, Any]]:
    """Unknown frameworks, empty versions (the latest), versions only training knows, wrong shapes."""
    cases = [_case(framework, "2.0") for framework in ("keras", "PyTorch", "mxnet", "pytorch-neuron", "")]
    for framework in FRAMEWORKS:
        base = "pytorch2.6.0" if framework == "huggingface" else None
        for (instance_type, serverless), py in itertools.product(TARGETS, (None, "py312")):
            cases.append(
                _case(framework, "", instance_type, serverless=serverless, py_version=py, base_framework_version=base)
            )
        for version in ("not-a-version", *_table()["configs"][framework]["versions"]):
            cases.append(_case(framework, version, py_version="py312", base_framework_version=base))
    for base in ("jax0.4", "pytorch", "tensorflow2.6", "version_aliases"):
        cases.append(_case("huggingface", "4.37", GPU, base_framework_version=base))
    return cases


def _grid() -> list[dict[str, Any]]:
    cases = _every_version() + _every_huggingface_base() + _newest_everywhere() + _around_anchors() + _odd_inputs()
    unique = {json.dumps(case, sort_keys=True): case for case in cases}
    return list(unique.values())


def _graviton(case: dict[str, Any]) -> bool:
    match = re.match(r"^ml[\._]([a-z\d\-]+)\.?\w*$", case["instance_type"] or "")
    return match is not None and match[1] in _table()["graviton_families"]


def _expected_inference_message(case: dict[str, Any], sdk_message: str) -> str:
    """The SDK's message as sagepush words it for an inference image: its own wording (`_expected_message`), sets
    listed sorted, and inference versions named so."""
    text = SET_LITERAL.sub(lambda m: ", ".join(sorted(item.strip(" '") for item in m[1].split(","))), sdk_message)
    text = _expected_message(text)
    framework = case["framework"]
    kind = "Graviton inference" if _graviton(case) else "inference"
    return text.replace(f"upported {framework} version", f"upported {framework} {kind} version")


def _ours(case: dict[str, Any]) -> dict[str, str]:
    try:
        return {
            "uri": inference_image_uri(
                case["framework"],
                case["version"],
                case["py_version"],
                case["instance_type"],
                case["region"],
                serverless=case["serverless"],
                base_framework_version=case["base_framework_version"],
            )
        }
    except ImageError as exc:
        return {"error": "ImageError", "where": exc.where, "message": exc.message}


def _kept_leaves(framework: str) -> set[str]:
    """What the inference data keeps from v2 for a framework (versions, aliases, bases, regions, Python versions)."""
    kept = _table()["inference"]["kept"]
    return {path.rsplit("/", 1)[1] for path in kept if path.split("/")[1].startswith(framework)}


def _deliberate(case: dict[str, Any], sdk: dict[str, str], ours: dict[str, str]) -> str | None:
    if case["framework"] not in FRAMEWORKS:
        return "out-of-scope framework"
    if "error" in sdk and sdk["error"] != "ValueError":
        return "sdk internal error"
    if "error" in sdk and sdk["message"].startswith("P2 instances"):
        return "p2 message"
    leaves = _kept_leaves(case["framework"])
    if leaves and "error" in sdk and ("uri" in ours or _without_kept(ours["message"], leaves) != ours["message"]):
        return "kept from v2"
    return None


def _agrees(case: dict[str, Any], sdk: dict[str, str], ours: dict[str, str], deliberate: str | None) -> bool:
    if deliberate in ("out-of-scope framework", "sdk internal error"):
        return "error" in ours
    if deliberate == "p2 message":
        return ours.get("where") == "instance_type" and ours["message"].startswith("P2 instances")
    if deliberate == "kept from v2":
        leaves = _kept_leaves(case["framework"])
        named = {str(case[k]) for k in ("version", "region", "py_version", "base_framework_version")}
        if "uri" in ours:
            return bool(named & leaves)
        return _without_kept(ours["message"], leaves) == _expected_inference_message(case, sdk["message"])
    if "uri" in sdk:
        return ours == sdk
    expected = {
        "error": "ImageError",
        "where": _expected_where(sdk["message"]),
        "message": _expected_inference_message(case, sdk["message"]),
    }
    return ours == expected


GRID = _grid()


@pytest.fixture(scope="module")
def sdk_answers() -> list[dict[str, str]]:
    answers: list[dict[str, str]] = run_sdk_script("inference_images_reference.py", GRID, sdk=SDK_V3)
    return answers


def test_grid_is_large_and_covers_every_target(sdk_answers: list[dict[str, str]]) -> None:
    uris = sum("uri" in answer for answer in sdk_answers)
    assert len(GRID) >= 10_000
    assert uris >= 5_000
    assert len(GRID) - uris >= 2_000
    answered = [(case, answer) for case, answer in zip(GRID, sdk_answers, strict=True) if "uri" in answer]
    for framework in FRAMEWORKS:
        for version in newest_three(framework):
            asked = [c for c in GRID if c["framework"] == framework and c["version"] == version]
            assert {c["region"] for c in asked} >= set(_every_region()), (framework, version)
        uris_of = {a["uri"] for c, a in answered if c["framework"] == framework}
        assert any(c["framework"] == framework and c["serverless"] for c, _ in answered), framework
        if framework != "huggingface":
            assert any("arm64" in uri or "graviton" in uri for uri in uris_of), framework
    hf = {a["uri"] for c, a in answered if c["framework"] == "huggingface"}
    assert any("-neuron:" in uri for uri in hf)
    assert any("-gpu-" in uri for uri in hf)


def test_same_answer_as_the_sdk(sdk_answers: list[dict[str, str]]) -> None:
    mismatches = []
    deliberate: Counter[str] = Counter()
    for case, sdk in zip(GRID, sdk_answers, strict=True):
        ours = _ours(case)
        reason = _deliberate(case, sdk, ours)
        deliberate[reason or "same"] += 1
        if not _agrees(case, sdk, ours, reason):
            mismatches.append({"case": case, "sdk": sdk, "ours": ours})
    assert set(deliberate) - {"same"} <= set(DELIBERATE)
    assert not mismatches, f"{len(mismatches)} of {len(GRID)} differ, first: {json.dumps(mismatches[:5], indent=1)}"
    uris = sum("uri" in answer for answer in sdk_answers)
    print(f"\n{len(GRID)} inputs, {uris} URIs: {dict(deliberate)}")
