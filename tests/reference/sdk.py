"""Run a script under the SageMaker Python SDK in an environment of its own, to compare sagepush with it.

Two references: v2 (`SDK_V2`), whose estimators are the reference for the request encoding, and v3 (`SDK_V3`,
`sagemaker-core`'s image-URI config), the reference for training images. The SDK is a reference, never a
dependency: it lives in an isolated uv environment whose pins cannot touch the project's. A script reads one JSON
document on stdin and writes one JSON document on stdout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

SDK_V2 = ("sagemaker==2.257.7",)
# The release scripts/generate_images.py read (images.json records it); botocore decides the ECR hostnames.
SDK_V3 = ("sagemaker==3.27.0", "sagemaker-core==2.27.0", "botocore==1.44.18")
SDK_REQUIREMENT = SDK_V2[0]
HERE = Path(__file__).parent


def uv_path() -> str:
    """The uv that runs the tests: `uv run` (every make target) names itself in $UV; else the one on PATH."""
    found = os.environ.get("UV") or shutil.which("uv")
    if not found:
        sys.exit(
            "uv is needed to build the SageMaker SDK reference environment: run the tests through `make test` "
            "(it installs uv into .local/uv when it is missing), or put uv on PATH"
        )
    return found


def run_sdk_script(script: str, payload: Any, *, sdk: tuple[str, ...] = SDK_V2, timeout: float = 600) -> Any:
    """Run `tests/reference/<script>` with `sdk` installed, feeding `payload` as JSON; return its JSON output."""
    uv = uv_path()
    env = {**os.environ, "SAGEMAKER_SUPPRESS_V2_WARNING": "1", "PYTHONWARNINGS": "ignore"}
    env.pop("VIRTUAL_ENV", None)
    result = subprocess.run(
        [
            uv,
            "run",
            "--isolated",
            "--no-project",
            "--python",
            "3.11",
            *(arg for requirement in sdk for arg in ("--with", requirement)),
            "python",
            str(HERE / script),
        ],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{script} failed under {', '.join(sdk)}:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout)
