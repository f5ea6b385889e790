"""A second local stack reuses the code the first one staged, as a deployed artifact bucket would."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

from sagepush_cli.local.trainer import home

ROOT = Path(__file__).resolve().parents[2]

# Each run is its own process: moto's backends are process-wide, and the point is a stack that starts from nothing.
RUN = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from sagepush_cli.local import demo
    from sagepush_cli.local.stack import LocalStack

    with LocalStack(stack_name=sys.argv[1], keep_staged_code=True) as stack:
        result = demo.push(stack, Path("examples/sklearn-iris"))
        demo.wait_for_job(stack, result, time.monotonic())
    print(json.dumps({"code_uri": result.code_uri, "code_reused": result.code_reused}))
    """
)


def run_once(stack_name: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", RUN, stack_name], cwd=ROOT, capture_output=True, text=True, timeout=300, check=True
    )
    document: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return document


def test_second_stack_reuses_the_staged_code() -> None:
    stack_name = f"sagepush-reuse-{uuid.uuid4().hex[:8]}"
    store = home() / "staged-code" / stack_name
    try:
        first, second = run_once(stack_name), run_once(stack_name)
    finally:
        subprocess.run(["rm", "-rf", str(store)], check=False)

    assert first["code_reused"] is False
    assert second["code_reused"] is True
    # The same content address; the bucket's name is new with each stack.
    assert str(second["code_uri"]).split("/", 3)[3] == str(first["code_uri"]).split("/", 3)[3]
