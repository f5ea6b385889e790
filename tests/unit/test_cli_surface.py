"""The CLI's surface: complete help, `--help` that imports nothing heavy, moto only for `local` commands."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner

from sagepush_cli.main import app

ROOT = Path(__file__).resolve().parents[2]


def commands() -> dict[str, Any]:
    """Every command by its full name, e.g. `push` and `local demo`."""
    found: dict[str, Any] = {}

    def walk(command: Any, prefix: str) -> None:
        if hasattr(command, "commands"):  # a group
            for name, sub in command.commands.items():
                walk(sub, f"{prefix} {name}".strip())
        else:
            found[prefix] = command

    walk(typer.main.get_command(app), "")
    return found


def test_every_command_and_option_explains_itself() -> None:
    found = commands()
    assert {"push", "status", "logs", "stop", "init", "render", "stage", "image-uri", "invoke"} <= set(found)
    assert {"models", "approve", "reject", "predict"} <= set(found)
    assert {"local up", "local demo", "local stop"} <= set(found)
    for name, command in found.items():
        assert command.help and command.help.strip(), f"`sagepush {name}` has no help"
        for parameter in command.params:
            if getattr(parameter, "hidden", False) or parameter.name == "help":
                continue
            assert getattr(parameter, "help", None), f"`sagepush {name}`: {parameter.name} has no help"


def test_exit_codes_are_documented_where_aws_is_called() -> None:
    for name in ("push", "status", "logs", "stop", "init", "models", "approve", "reject", "predict"):
        assert "Exit codes:" in (commands()[name].help or ""), name


def test_shell_completion_is_offered() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert "--install-completion" in result.stdout and "--show-completion" in result.stdout


def modules_after(*argv: str) -> set[str]:
    """Run `sagepush ARGV` in a fresh interpreter; return the top-level modules it had imported by the end."""
    script = textwrap.dedent(
        f"""
        import json, sys
        from sagepush_cli.main import app
        try:
            app({list(argv)!r}, standalone_mode=False)
        except SystemExit:
            pass
        json.dump(sorted(sys.modules), sys.stderr)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
    )
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def test_help_imports_neither_aws_sdks_nor_the_local_stack() -> None:
    loaded = modules_after("--help")
    assert not {"boto3", "botocore", "moto", "sagepush_cli.local", "sagepush_cli.local.stack"} & loaded


def test_only_local_commands_import_moto_or_the_local_stack() -> None:
    for argv in (
        ("render", "examples/sklearn-iris", "--json"),
        ("push", "--help"),
        ("status", "--help"),
        ("init", "--help"),
        ("image-uri", "--framework", "pytorch", "--version", "2.5", "--instance-type", "ml.g5.xlarge"),
    ):
        loaded = modules_after(*argv)
        assert "moto" not in loaded and not any(m.startswith("sagepush_cli.local") for m in loaded), argv
