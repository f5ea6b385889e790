"""Ask the SageMaker Python SDK v3 (sagemaker-core's image_uris) for the inference image of every case on stdin.

Input: a JSON list of `{framework, version, region, instance_type, py_version, base_framework_version,
serverless}`. Output: a JSON list, one answer per case, `{"uri": ...}` or `{"error": <exception class>,
"message": ...}`, of `image_uris.retrieve(framework, region, version=..., py_version=..., instance_type=...,
image_scope="inference", base_framework_version=..., serverless_inference_config=...)`, the config a
`ServerlessInferenceConfig()` where the case is serverless, else None.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

# Run as a script, this file's folder is first on sys.path: the training reference beside it keeps stdout for the
# answer alone and reads each framework's config once (its module level), and sends the answers (`send`).
from images_reference import answer, image_uris, send
from sagemaker.core.serverless_inference_config import ServerlessInferenceConfig


def retrieve(case: dict[str, Any]) -> Any:
    return image_uris.retrieve(
        case["framework"],
        case["region"],
        version=case["version"],
        py_version=case.get("py_version"),
        instance_type=case["instance_type"],
        image_scope="inference",
        base_framework_version=case.get("base_framework_version"),
        serverless_inference_config=ServerlessInferenceConfig() if case.get("serverless") else None,
    )


def main() -> None:
    logging.disable(logging.CRITICAL)
    cases = json.load(sys.stdin)
    send(
        [answer(retrieve, case) for case in cases],
        {case["framework"] for case in cases} | {"pytorch-neuron", "huggingface-neuron"},
    )


if __name__ == "__main__":
    main()
