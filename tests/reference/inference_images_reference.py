"""Ask the SageMaker Python SDK v3 (sagemaker-core's image_uris) for the inference image of every case on stdin.

Input: a JSON list of `{framework, version, region, instance_type, py_version, base_framework_version,
serverless}`. Output: a JSON list, one answer per case, `{"uri": ...}` or `{"error": <exception class>,
"message": ...}`, of `image_uris.retrieve(framework, region, version=..., py_version=..., instance_type=...,
image_scope="inference", base_framework_version=..., serverless_inference_config=...)`, the config a
`ServerlessInferenceConfig()` where the case is serverless, else None.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from typing import Any

# The SDK may log to stdout on import: keep stdout for the answer alone.
_ANSWER, sys.stdout = sys.stdout, sys.stderr
from sagemaker.core import common_utils, image_uris  # noqa: E402
from sagemaker.core.serverless_inference_config import ServerlessInferenceConfig  # noqa: E402

# Each lookup re-reads the framework's JSON and botocore's endpoint data: read each once, as images_reference.py
# does; main() checks that no lookup changed a config.
_read_config = image_uris.config_for_framework
_config = functools.cache(_read_config)
image_uris.config_for_framework = _config
common_utils._botocore_resolver = functools.cache(common_utils._botocore_resolver)


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


def answer(case: dict[str, Any]) -> dict[str, str]:
    try:
        return {"uri": retrieve(case)}
    except Exception as exc:  # every failure is an answer to compare, whatever its class
        return {"error": type(exc).__name__, "message": str(exc)}


def main() -> None:
    logging.disable(logging.CRITICAL)
    cases = json.load(sys.stdin)
    answers = [answer(case) for case in cases]
    frameworks = {case["framework"] for case in cases} | {"pytorch-neuron", "huggingface-neuron"}
    for framework in frameworks:
        try:
            changed = _config(framework) != _read_config(framework)
        except OSError:
            continue
        if changed:
            sys.exit(f"the SDK changed its {framework} config while answering: the shared copy is not safe")
    json.dump(answers, _ANSWER)


if __name__ == "__main__":
    main()
