"""The layer's requirements.txt is generated from uv.lock with hashes, keeps the CLI out, and cannot drift."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "layers/sagepush/requirements.txt"
SCRIPT = ROOT / "scripts/layer_requirements.py"
UV = os.environ.get("UV") or shutil.which("uv")
PIN = re.compile(r"^([a-z0-9][a-z0-9._-]*)==(\S+) \\$", re.MULTILINE)

pytestmark = pytest.mark.skipif(UV is None, reason="needs uv (make and `uv run` name it in $UV)")


def check(path: Path) -> subprocess.CompletedProcess[str]:
    """Run the check `make lint-deps` runs against `path`."""
    command = [sys.executable, str(SCRIPT), "--check", "--uv", str(UV), str(path)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False, timeout=120)


def test_the_committed_file_is_what_the_lock_gives() -> None:
    done = check(REQUIREMENTS)

    assert done.returncode == 0, done.stderr
    assert "is what uv.lock gives" in done.stdout


def test_every_package_is_pinned_with_hashes_and_the_cli_and_dev_tools_stay_out() -> None:
    text = REQUIREMENTS.read_text()
    blocks = re.split(r"\n(?=[a-z])", text.split("\n\n", 1)[1])
    pins = dict(PIN.findall(text))

    assert len(blocks) == len(pins)  # every requirement is an exact == pin
    for block in blocks:
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", block), f"no hash: {block.splitlines()[0]}"
    assert {"aws-lambda-powertools", "boto3", "botocore", "isal", "pathspec"} <= pins.keys()
    assert not {"typer", "rich", "tomlkit", "click", "pytest", "moto", "aws-sam-cli", "mypy", "sagepush"} & pins.keys()


@pytest.mark.parametrize(
    "drift",
    [
        pytest.param(lambda t: re.sub(r"(?m)^(boto3==)1\.44\.5", r"\g<1>1.44.4", t), id="hand-changed-version"),
        pytest.param(lambda t: re.sub(r"sha256:[0-9a-f]{64}", "sha256:" + "0" * 64, t, count=1), id="other-hash"),
        pytest.param(lambda t: re.sub(r"(?ms)^six==.*?(?=^[a-z])", "", t), id="package-dropped"),
        pytest.param(lambda t: t + "typer==0.20.0\n", id="cli-package-added"),
        pytest.param(lambda t: re.sub(r" \\\n\s+--hash=\S+", "", t), id="hashes-stripped"),
    ],
)
def test_a_requirements_file_that_drifted_from_the_lock_fails_the_check(
    tmp_path: Path, drift: Callable[[str], str]
) -> None:
    drifted = tmp_path / "requirements.txt"
    drifted.write_text(drift(REQUIREMENTS.read_text()))
    assert drifted.read_text() != REQUIREMENTS.read_text()

    done = check(drifted)

    assert done.returncode == 1
    assert "differs from what uv.lock gives: run `uv run --frozen python scripts/layer_requirements.py`" in done.stderr
    assert "--- " in done.stderr and "+++ from uv.lock" in done.stderr  # the diff says what changed


def test_a_missing_requirements_file_fails_the_check(tmp_path: Path) -> None:
    assert check(tmp_path / "requirements.txt").returncode == 1
