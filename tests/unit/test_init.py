"""`sagepush init` and the CI workflow: a manifest that renders, the framework read from the requirements."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from sagepush_cli import init as initialising
from sagepush_cli.main import EXIT_INPUT, app
from sagepush_cli.project import render

ROOT = Path(__file__).resolve().parents[2]


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
        ("tensorflow\n", "tensorflow", "2.19"),
        ("scikit-learn>=1.3  # the model\npandas\n", "sklearn", "1.4-2"),
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
    request = render(directory, region="eu-west-1")
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


def test_existing_files_are_kept_and_nothing_is_written(tmp_path: Path) -> None:
    directory = project(tmp_path, "torch\n")
    (directory / "sagepush.toml").write_text("# mine\n")

    result = CliRunner().invoke(app, ["init", str(directory)])

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

    result = CliRunner().invoke(app, ["init", str(directory)])

    assert result.exit_code == 0, result.output
    workflow = (directory / ".github/workflows/sagepush.yml").read_text()
    assert workflow == initialising.workflow_text("churn")
    assert '--project "churn"' in workflow


def test_the_example_workflow_is_the_one_init_writes() -> None:
    assert (ROOT / "examples/ci/github-actions.yml").read_text() == initialising.workflow_text()


def test_the_workflow_assumes_the_role_through_oidc_and_runs_a_valid_push_wait() -> None:
    document = yaml.safe_load(initialising.workflow_text())

    assert document[True] == {"push": {"branches": ["main"]}}  # YAML 1.1 reads the key `on` as true
    assert document["permissions"]["id-token"] == "write"
    steps = document["jobs"]["train"]["steps"]
    [credentials] = [s for s in steps if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@")]
    assert credentials["with"]["role-to-assume"] == "${{ vars.SAGEPUSH_ROLE_ARN }}"
    [command] = [s["run"] for s in steps if "run" in s]
    words = shlex.split(command.replace("${{ vars.SAGEPUSH_BUCKET }}", "bucket"))
    assert words[:3] == ["uvx", "sagepush", "push"] and "--wait" in words
    group = typer.main.get_command(app)
    context = group.make_context("sagepush", ["push"])
    push = group.get_command(context, "push")  # type: ignore[attr-defined]
    parsed = push.make_context("push", words[3:]).params
    assert parsed["wait"] is True and parsed["bucket"] == "bucket"
