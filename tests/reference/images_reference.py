"""Ask the SageMaker Python SDK v3 (sagemaker-core's image_uris) for the training image of every case on stdin.

Input: a JSON list of `{framework, version, region, instance_type, py_version, base_framework_version,
distribution}`. Output: a JSON list, one `{"training": answer, "retrieve": answer}` per case, where an answer is
`{"uri": ...}` or `{"error": <exception class>, "message": ...}`:

- `retrieve`: `image_uris.retrieve(framework, ..., image_scope="training")` with the case's arguments as they are.
- `training`: the SDK's training path, `image_uris.get_training_image_uri`, for pytorch, tensorflow and huggingface
  (HuggingFace with `pytorch_version`/`tensorflow_version` split out of `base_framework_version`): the same `retrieve`
  call, after it switches to the model-parallel image for an smdistributed distribution and gives HuggingFace its
  GPU container tag. sklearn and xgboost have no such path: `training` is `retrieve`, without the distribution.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
from typing import Any

# The SDK may log to stdout on import: keep stdout for the answer alone.
_ANSWER, sys.stdout = sys.stdout, sys.stderr
from sagemaker.core import common_utils, image_uris  # noqa: E402

# Each lookup re-reads the framework's JSON and botocore's endpoint data: read each once. Pure functions of files
# that do not change during a run, so answers stay the SDK's. The SDK only reads a config (a copy per lookup costs
# nine tenths of the run): main() checks that no lookup changed one.
_read_config = image_uris.config_for_framework
_config = functools.cache(_read_config)
image_uris.config_for_framework = _config
common_utils._botocore_resolver = functools.cache(common_utils._botocore_resolver)

BASE_FRAMEWORK = re.compile(r"^(pytorch|tensorflow)(.*)$")


def retrieve(case: dict[str, Any], *, distribution: bool = True) -> Any:
    return image_uris.retrieve(
        case["framework"],
        case["region"],
        version=case["version"],
        py_version=case.get("py_version"),
        instance_type=case["instance_type"],
        image_scope="training",
        distribution=case.get("distribution") if distribution else None,
        base_framework_version=case.get("base_framework_version"),
    )


def training(case: dict[str, Any]) -> Any:
    framework = case["framework"]
    if framework in ("sklearn", "xgboost"):
        return retrieve(case, distribution=False)
    base = case.get("base_framework_version")
    common = {
        "region": case["region"],
        "framework": framework,
        "framework_version": case["version"],
        "py_version": case.get("py_version"),
        "instance_type": case["instance_type"],
        "distribution": case.get("distribution"),
    }
    if framework == "huggingface" and base is not None:
        match = BASE_FRAMEWORK.match(base)
        if match is None:
            # get_training_image_uri cannot carry such a base; it would reach retrieve with it as it is.
            return retrieve(case)
        return image_uris.get_training_image_uri(**common, **{f"{match.group(1)}_version": match.group(2)})
    return image_uris.get_training_image_uri(**common)


def answer(function: Any, case: dict[str, Any]) -> dict[str, str]:
    try:
        return {"uri": function(case)}
    except Exception as exc:  # every failure is an answer to compare, whatever its class
        return {"error": type(exc).__name__, "message": str(exc)}


def send(answers: list[Any], frameworks: set[str]) -> None:
    """Write the answers, once no lookup has changed a config the cache above shares (`frameworks` names them).

    inference_images_reference.py sends its answers through here too (it imports this module, which runs beside it)."""
    for framework in frameworks:
        try:
            changed = _config(framework) != _read_config(framework)
        except OSError:
            continue
        if changed:
            sys.exit(f"the SDK changed its {framework} config while answering: the shared copy is not safe")
    json.dump(answers, _ANSWER)


def main() -> None:
    logging.disable(logging.CRITICAL)
    cases = json.load(sys.stdin)
    answers = [{"training": answer(training, case), "retrieve": answer(retrieve, case)} for case in cases]
    send(answers, {case["framework"] for case in cases} | {"pytorch-neuron", "pytorch-smp"})


if __name__ == "__main__":
    main()
