"""`make build` (sam build of the real template): the layer carries bytecode for the Lambda runtime's Python.

Lambda's /opt is read-only: a layer without bytecode has every cold start compile botocore, Powertools and sagepush
from source. The layer's Makefile compiles it with unchecked-hash invalidation, valid whatever times the zip gives.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNCHECKED_HASH = 0b01
"""A .pyc header's flags (PEP 552): hash-based, and the source is not checked against it."""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    build_dir = tmp_path_factory.mktemp("sam-build")
    env = {**os.environ, "SAM_BUILD_ARGS": f"--build-dir {build_dir} --no-cached --cache-dir {build_dir}.cache"}
    env.pop("VIRTUAL_ENV", None)
    done = subprocess.run(
        ["make", "--no-print-directory", "build"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return build_dir


def test_the_layer_holds_bytecode_for_every_module_valid_without_its_source_times(built: Path) -> None:
    layer = built / "SagepushLayer" / "python"
    sources = sorted(layer.rglob("*.py"))
    assert any(path.parts[-2:] == ("sagepush", "status.py") for path in sources)
    assert any(path.parts[-2:] == ("botocore", "client.py") for path in sources)
    missing, checked = [], []
    for source in sources:
        cached = source.parent / "__pycache__" / f"{source.stem}.cpython-313.pyc"
        if not cached.is_file():
            missing.append(str(source.relative_to(layer)))
            continue
        flags = int.from_bytes(cached.read_bytes()[4:8], "little")
        if flags != UNCHECKED_HASH:
            checked.append(str(source.relative_to(layer)))
    assert not missing, f"{len(missing)} of {len(sources)} modules have no python3.13 bytecode, e.g. {missing[:3]}"
    assert not checked, f"bytecode checked against source times, e.g. {checked[:3]}"


def test_the_layer_is_built_for_the_runtime_architecture(built: Path) -> None:
    extensions = list((built / "SagepushLayer" / "python" / "isal").glob("*.so"))
    assert extensions and all("cpython-313-aarch64-linux-gnu" in path.name for path in extensions)


def test_every_function_is_built_with_its_handler(built: Path) -> None:
    for name in ("StageFunction", "SubmitFunction", "StatusFunction", "ReconcileFunction", "NotifyFunction"):
        assert (built / name / "app.py").is_file(), name
