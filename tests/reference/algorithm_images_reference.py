"""Ask the SageMaker Python SDK v3 (sagemaker-core's image_uris) for the image of each built-in algorithm case on stdin.

Input: a JSON list of `{algorithm, region, version}`. Output: a JSON list, one answer per case: `{"uri": ...}` from
`image_uris.retrieve(algorithm, region, version=version or None, image_scope="training")`, or
`{"error": <exception class>, "message": ...}`.
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

# Each lookup re-reads the algorithm's JSON and botocore's endpoint data: read each once (pure functions of files
# that do not change during a run, so the answers stay the SDK's; images_reference.py checks that no lookup changes a
# config, and these are the same lookups).
image_uris.config_for_framework = functools.cache(image_uris.config_for_framework)
common_utils._botocore_resolver = functools.cache(common_utils._botocore_resolver)


def answer(case: dict[str, Any]) -> dict[str, str]:
    try:
        uri = image_uris.retrieve(
            case["algorithm"], case["region"], version=case["version"] or None, image_scope="training"
        )
    except Exception as exc:  # every failure is an answer to compare, whatever its class
        return {"error": type(exc).__name__, "message": str(exc)}
    return {"uri": uri}


def main() -> None:
    logging.disable(logging.CRITICAL)
    json.dump([answer(case) for case in json.load(sys.stdin)], _ANSWER)


if __name__ == "__main__":
    main()
