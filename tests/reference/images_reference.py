"""Ask the SageMaker Python SDK v2 for the training image of every case on stdin, as its estimators do.

Input: a JSON list of `{framework, version, region, instance_type, py_version, base_framework_version,
distribution}`. Output: a JSON list, one `{"uri": ...}` or `{"error": <exception class>, "message": ...}` per case.
PyTorch, TensorFlow and HuggingFace estimators go through `image_uris.get_training_image_uri` (HuggingFace with
`pytorch_version`/`tensorflow_version` split out of `base_framework_version`); SKLearn and XGBoost estimators call
`image_uris.retrieve` as their constructors do, without the distribution.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import re
import sys
from typing import Any

# The SDK logs its config lookup to stdout on import: keep stdout for the answer alone.
_ANSWER, sys.stdout = sys.stdout, sys.stderr
from sagemaker import image_uris, utils  # noqa: E402

# Each lookup re-reads the framework's JSON and botocore's endpoint data (about 50 ms): read each once. Pure
# functions of files that do not change during a run, so answers stay the SDK's.
_config = functools.cache(image_uris.config_for_framework)
image_uris.config_for_framework = lambda framework: copy.deepcopy(_config(framework))
utils._botocore_resolver = functools.cache(utils._botocore_resolver)

BASE_FRAMEWORK = re.compile(r"^(pytorch|tensorflow)(.*)$")


def image_uri(case: dict[str, Any]) -> Any:
    framework = case["framework"]
    common = {"region": case["region"], "py_version": case.get("py_version"), "instance_type": case["instance_type"]}
    if framework == "sklearn":
        return image_uris.retrieve(framework, version=case["version"], **common)
    if framework == "xgboost":
        return image_uris.retrieve(framework, version=case["version"], image_scope="training", **common)
    base = case.get("base_framework_version")
    if framework == "huggingface" and base is not None:
        match = BASE_FRAMEWORK.match(base)
        if match is None:
            # No estimator can send such a base; ask retrieve, which get_training_image_uri would call with it.
            return image_uris.retrieve(
                framework,
                version=case["version"],
                image_scope="training",
                distribution=case.get("distribution"),
                base_framework_version=base,
                **common,
            )
        return image_uris.get_training_image_uri(
            framework=framework,
            framework_version=case["version"],
            distribution=case.get("distribution"),
            **{f"{match.group(1)}_version": match.group(2)},
            **common,
        )
    return image_uris.get_training_image_uri(
        framework=framework, framework_version=case["version"], distribution=case.get("distribution"), **common
    )


def answer(case: dict[str, Any]) -> dict[str, str]:
    try:
        return {"uri": image_uri(case)}
    except Exception as exc:  # every failure is an answer to compare, whatever its class
        return {"error": type(exc).__name__, "message": str(exc)}


def main() -> None:
    logging.disable(logging.CRITICAL)
    json.dump([answer(case) for case in json.load(sys.stdin)], _ANSWER)


if __name__ == "__main__":
    main()
