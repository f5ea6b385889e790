"""Built-in algorithm images: the same URI, or the same error, as the SageMaker Python SDK v3 gives, for every
algorithm in the image data, in every region the data names (and a few no SDK knows), for its version, none, and
one that does not exist."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sagepush.images import ImageError, _table, algorithm_image_uri, algorithms, framework_accounts
from tests.integration.test_images_sdk_parity import BAD_REGIONS, _expected_message, _expected_where
from tests.reference.sdk import SDK_V3, run_sdk_script

VERSIONS = ["", "1", "2"]


def _grid() -> list[dict[str, str]]:
    regions = sorted({region for registries in _table()["registries"] for region in registries}) + BAD_REGIONS
    return [
        {"algorithm": algorithm, "region": region, "version": version}
        for algorithm in algorithms()
        for region in regions
        for version in VERSIONS
    ]


GRID = _grid()


def _ours(case: dict[str, str]) -> dict[str, str]:
    try:
        return {"uri": algorithm_image_uri(case["algorithm"], region=case["region"], version=case["version"])}
    except ImageError as exc:
        return {"error": "ImageError", "where": exc.where, "message": exc.message}


@pytest.fixture(scope="module")
def sdk_answers() -> list[dict[str, str]]:
    answers: list[dict[str, str]] = run_sdk_script("algorithm_images_reference.py", GRID, sdk=SDK_V3)
    return answers


def test_every_training_algorithm_of_the_sdk_is_known() -> None:
    assert {"kmeans", "linear-learner", "pca", "blazingtext", "forecasting-deepar", "object2vec"} <= set(algorithms())
    assert len(algorithms()) == 16


def test_same_answer_as_the_sdk_for_every_algorithm_and_region(sdk_answers: list[dict[str, str]]) -> None:
    mismatches: list[dict[str, Any]] = []
    for case, sdk in zip(GRID, sdk_answers, strict=True):
        ours = _ours(case)
        if "uri" in sdk:
            expected: dict[str, str] = sdk
        else:
            expected = {
                "error": "ImageError",
                "where": _expected_where(sdk["message"]),
                "message": _expected_message(sdk["message"]),
            }
        if ours != expected:
            mismatches.append({"case": case, "sdk": sdk, "ours": ours})
    uris = sum("uri" in answer for answer in sdk_answers)
    assert uris >= 16 * 30, uris
    assert not mismatches, f"{len(mismatches)} of {len(GRID)} differ, first: {json.dumps(mismatches[:5], indent=1)}"


def test_the_default_policy_admits_the_algorithm_accounts() -> None:
    kmeans = algorithm_image_uri("kmeans", region="us-east-1")
    assert kmeans == "382416733822.dkr.ecr.us-east-1.amazonaws.com/kmeans:1"  # the Kubeflow component's example
    assert kmeans.split(".", 1)[0] in framework_accounts("us-east-1")
