"""The import contracts in pyproject.toml (`make lint` runs lint-imports) hold, and break on a forbidden import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = {
    "sagepush": ROOT / "layers/sagepush/sagepush",
    "sagepush_cli": ROOT / "cli/sagepush_cli",
    "functions": ROOT / "functions",
}
LINT_IMPORTS = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"

LAYERS = "Handlers and the CLI import the core; the core imports neither, and neither imports the other"
POWERTOOLS = "Only the handlers import Powertools"
MOTO = "Only sagepush_cli.local imports moto"
NO_TESTS = "Product code imports no test module"
ACYCLIC = "No import cycle inside the core or the CLI"


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run lint-imports as `make lint` does, on the packages found from `cwd` (it puts `cwd` first on the path)."""
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    command = [sys.executable, "-c", LINT_IMPORTS, "--no-cache", "--no-logo"]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=120)


def broken(output: str) -> set[str]:
    """The names of the contracts lint-imports reports broken."""
    flat = " ".join(output.split())  # lint-imports wraps long contract names
    return {name for name in (LAYERS, POWERTOOLS, MOTO, NO_TESTS, ACYCLIC) if f"{name} BROKEN" in flat}


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The core, the CLI, the handlers and pyproject.toml copied side by side, as lint-imports finds them."""
    for name, source in SOURCES.items():
        shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "data"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def test_the_tree_keeps_every_import_contract() -> None:
    done = lint_imports(ROOT)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_an_unchanged_copy_keeps_every_contract(copy: Path) -> None:
    done = lint_imports(copy)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        pytest.param("sagepush/naming.py", "from sagepush_cli import follow", LAYERS, id="core-cli"),
        pytest.param("sagepush/ledger.py", "from functions.status import app", LAYERS, id="core-handler"),
        pytest.param("functions/stage/app.py", "from sagepush_cli import push", LAYERS, id="handler-cli"),
        pytest.param("sagepush_cli/push.py", "import functions.submit.app", LAYERS, id="cli-handler"),
        pytest.param("sagepush/events.py", "import aws_lambda_powertools", POWERTOOLS, id="core-powertools"),
        pytest.param(
            "sagepush_cli/main.py", "from aws_lambda_powertools import Logger", POWERTOOLS, id="cli-powertools"
        ),
        pytest.param("sagepush/aws.py", "import moto", MOTO, id="core-moto"),
        pytest.param("sagepush_cli/push.py", "from moto.server import ThreadedMotoServer", MOTO, id="cli-moto"),
        pytest.param("functions/status/app.py", "import moto", MOTO, id="handler-moto"),
        pytest.param("sagepush/alerts.py", "from tests.unit import archives", NO_TESTS, id="core-tests"),
        pytest.param("sagepush/errors.py", "from sagepush import naming", ACYCLIC, id="core-cycle"),
        pytest.param("sagepush_cli/follow.py", "from sagepush_cli import main", ACYCLIC, id="cli-cycle"),
        pytest.param("sagepush_cli/local/trainer.py", "import sagepush_cli.local.stack", ACYCLIC, id="local-cycle"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(copy: Path, module: str, line: str, contract: str) -> None:
    path = copy / module
    path.write_text(f"{path.read_text()}\n{line}  # added by the test\n")

    done = lint_imports(copy)

    assert done.returncode == 1, done.stdout + done.stderr
    assert broken(done.stdout) == {contract}, done.stdout
