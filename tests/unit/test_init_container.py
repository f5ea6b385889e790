"""`sagepush init --container`: a project that trains in its own image gets a manifest that runs the image and a
workflow that builds it, pushes it to ECR and pushes the commit pinned to the image's digest."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any

import typer
import yaml
from typer.testing import CliRunner

from sagepush_cli import init as initialising
from sagepush_cli.main import app
from sagepush_cli.project import render_jobs
from sagepush_cli.push import parse_settings
from tests.unit.test_init import PINNED_ACTION, SOURCE

if TYPE_CHECKING:
    from pathlib import Path

REPOSITORY = "111122223333.dkr.ecr.us-east-1.amazonaws.com/churn-trainer"
EXIT_INPUT = 2


def container_project(tmp_path: Path, *, dockerfile: bool = True) -> Path:
    directory = tmp_path / "churn"
    directory.mkdir()
    (directory / "train.py").write_text("print('training')\n")
    if dockerfile:
        (directory / "Dockerfile").write_text(
            'FROM python:3.12-slim\nCOPY train.py /opt/program/\nENTRYPOINT ["python"]\n'
        )
    return directory


def steps_of(directory: Path) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = yaml.safe_load((directory / ".github/workflows/sagepush.yml").read_text())["jobs"][
        "train"
    ]["steps"]
    return steps


def test_the_manifest_runs_the_image_and_renders(tmp_path: Path) -> None:
    directory = container_project(tmp_path)

    result = CliRunner().invoke(app, ["init", str(directory), "--container", "--image-repository", REPOSITORY, *SOURCE])

    assert result.exit_code == 0, result.output
    (request,) = render_jobs(directory, region="us-east-1", project="churn")
    assert request["AlgorithmSpecification"]["TrainingImage"] == f"{REPOSITORY}:latest"
    assert request["HyperParameters"] == {}  # the image's own entrypoint: no sagemaker_program
    assert f"kept in {REPOSITORY}" in result.stdout


def test_the_workflow_builds_pushes_and_pins_the_manifest_to_the_digest(tmp_path: Path) -> None:
    directory = container_project(tmp_path)
    CliRunner().invoke(app, ["init", str(directory), "--container", "--image-repository", REPOSITORY, *SOURCE])

    steps = steps_of(directory)
    actions = [step["uses"] for step in steps if "uses" in step]
    assert len(actions) == 3 and all(PINNED_ACTION.fullmatch(action) for action in actions)
    [build] = [step for step in steps if step.get("id") == "image"]
    assert build["env"]["REPOSITORY"] == "${{ vars.SAGEPUSH_IMAGE_REPOSITORY }}"
    script = build["run"]
    assert 'docker build --tag "$REPOSITORY:$GITHUB_SHA" "."' in script
    assert 'docker push "$REPOSITORY:$GITHUB_SHA"' in script
    assert "{{index .RepoDigests 0}}" in script and '>> "$GITHUB_OUTPUT"' in script
    # The build comes before the push of the manifest, which takes the digest the build step wrote.
    [push] = [step for step in steps if "sagepush push" in step.get("run", "")]
    assert steps.index(build) < steps.index(push)
    words = shlex.split(push["run"].replace("${{ vars.SAGEPUSH_BUCKET }}", "bucket"))
    group = typer.main.get_command(app)
    command = group.get_command(group.make_context("sagepush", ["push"]), "push")  # type: ignore[attr-defined]
    parsed = command.make_context("push", words[5:]).params
    assert parsed["wait"] is True
    assert parsed["settings"] == ["image_uri=${{ steps.image.outputs.uri }}"]
    # What the build step writes there, the digest, reaches the manifest as a string.
    pinned = f"{REPOSITORY}@sha256:{'0a' * 32}"
    assert parse_settings([f"image_uri={pinned}"]) == ((("image_uri",), pinned),)


def test_the_workflow_is_the_one_the_template_outputs_name(tmp_path: Path) -> None:
    from sagepush_cli import template

    outputs = template.load()["Outputs"]
    text = initialising.container_workflow_text(initialising.CliSource("https://github.com/acme/sagepush", "0" * 40))
    assert "GitHubImageRepositoryUri" in text and "GitHubImageRepositoryUri" in outputs
    assert "SAGEPUSH_IMAGE_REPOSITORY" in outputs["GitHubImageRepositoryUri"]["Description"]


def test_a_project_without_a_dockerfile_is_refused_naming_it(tmp_path: Path) -> None:
    directory = container_project(tmp_path, dockerfile=False)

    result = CliRunner().invoke(app, ["init", str(directory), "--container", "--image-repository", REPOSITORY, *SOURCE])

    assert result.exit_code == EXIT_INPUT
    assert "Dockerfile: is missing" in result.stderr
    assert not (directory / "sagepush.toml").exists()


def test_the_repository_is_required_and_must_be_an_ecr_uri_without_a_tag(tmp_path: Path) -> None:
    directory = container_project(tmp_path)
    runner = CliRunner()

    missing = runner.invoke(app, ["init", str(directory), "--container", *SOURCE])
    tagged = runner.invoke(app, ["init", str(directory), "--container", "--image-repository", f"{REPOSITORY}:v1"])
    docker_hub = runner.invoke(app, ["init", str(directory), "--container", "--image-repository", "python"])
    framework = runner.invoke(
        app, ["init", str(directory), "--container", "--image-repository", REPOSITORY, "--framework", "pytorch"]
    )

    assert missing.exit_code == EXIT_INPUT and "--image-repository: is required with --container" in missing.stderr
    for refused in (tagged, docker_hub):
        assert refused.exit_code == EXIT_INPUT and "is not an ECR repository URI without a tag" in refused.stderr
    assert framework.exit_code == EXIT_INPUT and "--framework and --entry-point do not apply" in framework.stderr
    assert not (directory / "sagepush.toml").exists()
