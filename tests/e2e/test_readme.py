"""README.md's commands and snippets, executed: every fenced block is run or checked, so the README cannot rot.

- `bash` blocks run as scripts (`set -euo pipefail`) with `sagepush` on PATH: against the e2e local stack from a
  git repository holding the iris example (its samconfig.toml names the stack), or against a `sagepush local up`
  in its own process for the block that follows one. Lines that need a real AWS account are checked instead:
  `make T` with `make -n T`, `sam deploy` options against `sam deploy --help`, samconfig.toml and the template's
  parameters.
- `toml` manifests are rendered into the request they make; the `json` state machine runs on the local stack.
- A block of any other language, or a bash line no rule covers, fails the test.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
import yaml

from sagepush import spec, staging
from sagepush_cli.project import archive_directory, render_jobs
from tests.e2e.conftest import EXAMPLES
from tests.gitrepo import commit_all, isolate

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sagepush_cli.local.stack import LocalStack

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BIN = Path(sys.executable).parent
NOT_RUN = {"mermaid": "a diagram", "text": "sample output", "": "the layout listing"}


def blocks() -> list[tuple[str, str, str]]:
    """Every fenced block of README.md: (the heading it is under, its language, its text)."""
    found, heading = [], ""
    lines = README.read_text().splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif line.startswith("```"):
            language, body = line[3:].strip(), []
            index += 1
            while not lines[index].startswith("```"):
                body.append(lines[index])
                index += 1
            found.append((heading, language, "\n".join(body) + "\n"))
        index += 1
    return found


def of(heading: str, language: str = "bash") -> list[str]:
    return [text for h, lang, text in blocks() if h == heading and lang == language]


def commands(text: str) -> list[str]:
    """The block's command lines, comments stripped."""
    return [re.sub(r"\s+#\s.*$", "", line).strip() for line in text.splitlines() if line.strip()]


def test_every_block_is_checked_by_a_test_here() -> None:
    checked = {
        ("Two commands", "bash"),
        ("Deploy", "bash"),
        ("The job policy", "bash"),
        ("Push from CI", "bash"),
        ("The CLI", "bash"),
        ("The manifest", "toml"),
        ("The staged code: `source_dir` and `dependencies`", "toml"),
        ("Bring your own container", "toml"),
        ("Models and endpoints: `[model]` and `[endpoint]`", "toml"),
        ("Submit from your own state machine", "json"),
        ("Run everything locally", "bash"),
    }
    for heading, language, _ in blocks():
        assert language in NOT_RUN or (heading, language) in checked, f"README block under {heading!r} is unchecked"


# ------------------------------------------------------------------------------- lines that need an AWS account


def check_offline(line: str) -> None:
    """Check a command that needs an AWS account (or is `make test` itself) without running it."""
    words = shlex.split(line)
    if words[0] == "make":
        done = subprocess.run(["make", "-n", *words[1:]], cwd=ROOT, capture_output=True, text=True, check=False)
        assert done.returncode == 0, f"{line}: {done.stderr}"
        return
    assert words[:4] == ["uv", "run", "sam", "deploy"], f"README line {line!r} is not covered by the doc-test"
    help_text = subprocess.run(
        [str(BIN / "sam"), "deploy", "--help"], capture_output=True, text=True, check=True
    ).stdout
    samconfig = tomllib.loads((ROOT / "samconfig.toml").read_text())
    template = yaml.load((ROOT / "template.yaml").read_text(), Loader=_CloudFormationLoader)
    options = iter(words[4:])
    for word in options:
        assert word in help_text, f"{line}: sam deploy has no {word}"
        if word == "--config-env":
            env = next(options)
            assert "deploy" in samconfig[env], f"{line}: samconfig.toml has no [{env}.deploy.parameters]"
        elif word == "--parameter-overrides":
            for assignment in list(options):
                name, _, value = assignment.partition("=")
                parameter = template["Parameters"][name]
                assert re.fullmatch(parameter.get("AllowedPattern", ".*"), value), f"{line}: {name}={value}"


class _CloudFormationLoader(yaml.SafeLoader):  # type: ignore[misc]  # yaml ships no types: SafeLoader is Any
    """Reads template.yaml, keeping intrinsic functions (`!Ref`, `!Sub`, …) as plain values."""


_CloudFormationLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


@pytest.mark.parametrize("heading", ["Two commands", "Deploy", "The job policy", "Push from CI"])
def test_commands_that_need_an_aws_account_name_real_targets_and_options(heading: str) -> None:
    [text] = of(heading)
    for line in commands(text):
        check_offline(line)


# --------------------------------------------------------------------------------------------- the CLI, for real


def run_script(text: str, *, cwd: Path, env: dict[str, str], timeout: float = 600) -> str:
    script = "set -euo pipefail\n" + text
    done = subprocess.run(
        ["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"README block failed ({done.returncode}):\n{text}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


@pytest.fixture
def iris_repo(tmp_path: Path, stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository holding the iris example, its samconfig.toml naming the local stack."""
    isolate(monkeypatch, tmp_path)
    root = tmp_path / "iris"
    shutil.copytree(EXAMPLES / "sklearn-iris", root)
    (root / "samconfig.toml").write_text(
        f'version = 0.1\n[default.global.parameters]\nstack_name = "{stack.stack_name}"\n'
    )
    commit_all(root, "iris")
    return root


def test_starting_a_project_writes_a_manifest_that_renders(tmp_path: Path) -> None:
    [text] = [block for block in of("The CLI") if "sagepush init" in block]
    project = tmp_path / "churn"
    project.mkdir()
    (project / "train.py").write_text("print('training')\n")
    (project / "requirements.txt").write_text("scikit-learn>=1.3\n")
    # The tests run sagepush from this checkout (an editable install), which is no source a workflow could install:
    # the repository and commit are given as "Push from CI" says.
    commit = "3f1c2a9d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39"
    pinned = environment(SAGEPUSH_CLI_SOURCE="https://github.com/acme/sagepush", SAGEPUSH_CLI_COMMIT=commit)

    output = run_script(text, cwd=project, env=pinned)

    assert (project / "sagepush.toml").is_file()
    assert f"git+https://github.com/acme/sagepush@{commit}" in (project / ".github/workflows/sagepush.yml").read_text()
    assert "framework sklearn 1.9-0 (from requirements.txt)" in output  # the newest the image data knows
    assert re.search(r"^churn-[0-9a-f]{8}-0{6}  \(code", output, re.MULTILINE), output


def test_following_a_push_works_as_written(iris_repo: Path, stack: LocalStack) -> None:
    [text] = [block for block in of("The CLI") if "sagepush push" in block]

    output = run_script(text, cwd=iris_repo, env=environment())

    assert "Completed (Completed)" in output
    assert output.count("validation accuracy=") >= 2  # the push's log tail, then `sagepush logs`
    job = re.search(r"^job (iris-\S+)$", output, re.MULTILINE)
    assert job is not None
    description = boto3.client("sagemaker").describe_training_job(TrainingJobName=job.group(1))
    assert description["HyperParameters"]["n_estimators"] == "80"  # the --set reached the job


def test_commands_without_aws_work_as_written(tmp_path: Path) -> None:
    [text] = [block for block in of("The CLI") if "sagepush stage" in block]
    env = {k: v for k, v in environment().items() if not k.startswith("AWS_")}

    output = run_script(text, cwd=ROOT, env=env)

    assert "/pytorch-training:2.5" in output and '"job_name": "iris-' in output
    Path("/tmp/sourcedir.tar.gz").unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------------ the snippets


def test_the_manifest_sample_renders(tmp_path: Path) -> None:
    [text] = [block for block in of("The manifest", "toml") if "[strategy" not in block]
    (tmp_path / "sagepush.toml").write_text(text)
    (tmp_path / "train.py").write_text("print('training')\n")

    (request,) = render_jobs(tmp_path, region="us-east-1", project="mnist")

    assert request["ResourceConfig"]["InstanceType"] == "ml.g5.xlarge"
    assert request["StoppingCondition"]["MaxRuntimeInSeconds"] == 7200


def test_the_strategy_sample_renders_one_request_per_job(tmp_path: Path) -> None:
    from sagepush import policy

    [text] = [block for block in of("The manifest", "toml") if "[strategy" in block]
    job = 'framework = "xgboost"\nframework_version = "1.7-1"\nentry_point = "train.py"\n'
    metrics = 'metric_definitions = [{ Name = "validation:accuracy", Regex = "accuracy=([0-9.]+)" }]\n'
    (tmp_path / "sagepush.toml").write_text(job + metrics + text)
    (tmp_path / "train.py").write_text("print('training')\n")
    allowing = policy.Policy(max_jobs_per_push=8, instance_types=("ml.m5.*", "ml.c5.*", "ml.g5.xlarge"))

    requests = render_jobs(tmp_path, region="us-east-1", project="boost", job_policy=allowing)

    assert len(requests) == 3 * 2 - 1 + 1
    assert requests[-1]["ResourceConfig"]["InstanceType"] == "ml.g5.xlarge"


def test_the_models_sample_is_the_iris_example_and_registers_as_described(tmp_path: Path) -> None:
    from sagepush import registry

    [text] = of("Models and endpoints: `[model]` and `[endpoint]`", "toml")
    iris = tomllib.loads((EXAMPLES / "sklearn-iris" / "sagepush.toml").read_text())
    sample = tomllib.loads(text)
    assert {key: iris[key] for key in sample} == sample  # what the README shows is what the example holds
    job = 'framework = "sklearn"\nframework_version = "1.2-1"\nentry_point = "train.py"\n'
    (tmp_path / "sagepush.toml").write_text(job + text)
    (tmp_path / "train.py").write_text("print('training')\n")

    render_jobs(tmp_path, region="us-east-1", project="iris")  # checked as a push checks it
    model = registry.read_model(sample, project="iris", origin="README")

    assert model is not None and model.register == "best" and model.group == "iris"
    assert [c.text for c in model.approve_if] == ["validation:accuracy >= 0.9"]
    assert model.endpoint is not None and model.endpoint.name == "iris" and not model.endpoint.serverless
    (tmp_path / "sagepush.toml").write_text(job + text.replace("validation:accuracy >=", "validation:acc >="))
    with pytest.raises(spec.SpecError, match=r"model\.approve_if\[0\]"):
        render_jobs(tmp_path, region="us-east-1", project="iris")


def test_the_staged_code_sample_stages_as_described_and_its_error_reads_as_shown(tmp_path: Path) -> None:
    heading = "The staged code: `source_dir` and `dependencies`"
    [text] = of(heading, "toml")
    [shown] = of(heading, "text")
    project = tmp_path / "shared"
    files = {
        "src/train.py": "import common, utils\n",
        "src/requirements.txt": "pandas\n",
        "lib/common/__init__.py": "",
        "tools/utils.py": "",
        "notebooks/explore.ipynb": "{}\n",
    }
    for name, content in files.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(content)
    basics = 'framework = "sklearn"\nframework_version = "1.2-1"\npy_version = "py3"\ninstance_type = "ml.m5.large"\n'
    (project / "sagepush.toml").write_text(basics + text)

    (request,) = render_jobs(project, region="us-east-1", project="shared")
    archive = archive_directory(project, tmp_path / "upload.tar")
    with archive.open("rb") as src, (tmp_path / "sourcedir.tar.gz").open("wb") as dst:
        staged = staging.stage_archive(src, dst, filename=archive.name)

    assert request["HyperParameters"]["sagemaker_program"] == '"train.py"'
    assert staged.files == {"train.py", "requirements.txt", "common/__init__.py", "utils.py", "sagepush.toml"}
    (project / "sagepush.toml").write_text(basics + text.replace('"lib/common"', '"lib/comon"'))
    with pytest.raises(spec.SpecError) as refused:
        render_jobs(project, region="us-east-1", project="shared")
    assert f"error: {refused.value}\n" == shown


def test_the_own_container_sample_renders_the_walkthrough_request(tmp_path: Path) -> None:
    from sagepush import policy

    [text] = [block for block in of("Bring your own container", "toml") if "172800" in block]
    (tmp_path / "sagepush.toml").write_text(text)
    # The walkthrough asks for more than the template's default policy allows, as README says.
    widened = policy.Policy(
        instance_types=("ml.c4.*",),
        max_run=48 * 3600,
        image_accounts=("123456789012",),
        input_locations=("s3://my-bucket/",),
    )

    (request,) = render_jobs(tmp_path, region="us-east-1", project="walkthrough", job_policy=widened)

    # The Step Functions walkthrough's Parameters block, field for field.
    assert request["AlgorithmSpecification"] == {
        "TrainingImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-trainer:2024.11",
        "TrainingInputMode": "File",
    }
    assert request["InputDataConfig"] == [
        {
            "ChannelName": "training",
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": "s3://my-bucket/train.csv",
                    "S3DataDistributionType": "FullyReplicated",
                }
            },
            "ContentType": "text/csv",
        }
    ]
    assert request["ResourceConfig"] == {"InstanceCount": 1, "InstanceType": "ml.c4.2xlarge", "VolumeSizeInGB": 10}
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 172800}
    assert request["HyperParameters"] == {}


def test_the_code_channel_sample_gives_its_image_the_pushed_code(tmp_path: Path) -> None:
    from sagepush import policy

    [text] = [block for block in of("Bring your own container", "toml") if "code_channel" in block]
    (tmp_path / "sagepush.toml").write_text(text)
    (tmp_path / "train.py").write_text("print('training')\n")
    allowing = policy.Policy(image_accounts=("123456789012",))

    (request,) = render_jobs(tmp_path, region="us-east-1", project="runtime", job_policy=allowing)

    [code] = request["InputDataConfig"]
    assert code["ChannelName"] == "code"
    assert code["DataSource"]["S3DataSource"]["S3Uri"].endswith("/sourcedir.tar.gz")
    entry = request["AlgorithmSpecification"]["ContainerEntrypoint"]
    assert "/opt/ml/input/data/code/sourcedir.tar.gz" in entry[-1] and request["HyperParameters"] == {}


def test_the_manifest_reference_lists_every_key() -> None:
    table = README.read_text().split("| manifest key |", 1)[1].split("\n\n", 1)[0]
    listed = set(re.findall(r"^\| `([a-z0-9_]+)`(?:, `([a-z0-9_]+)`)?", table, re.MULTILINE))
    keys = {key for pair in listed for key in pair if key}
    assert set(spec.MANIFEST_KEYS) <= keys, sorted(set(spec.MANIFEST_KEYS) - keys)


def test_the_state_machine_snippet_trains_and_ends_with_the_job(stack: LocalStack, tmp_path: Path) -> None:
    [text] = of("Submit from your own state machine", "json")
    definition = text.replace("${SubmitFunctionArn}", stack.outputs["SubmitFunctionArn"])
    archive = archive_directory(EXAMPLES / "sklearn-iris", tmp_path / "iris.tar")
    staged_path = tmp_path / staging.OUTPUT_NAME
    with archive.open("rb") as src, staged_path.open("wb") as dst:
        staged = staging.stage_archive(src, dst, filename=archive.name)
    key = f"code/iris/{staged.digest}/{staging.OUTPUT_NAME}"
    boto3.client("s3").upload_file(str(staged_path), stack.outputs["ArtifactBucketName"], key)
    sfn = boto3.client("stepfunctions")
    machine = sfn.create_state_machine(
        name="readme-train", definition=definition, roleArn=f"arn:aws:iam::{stack_account(stack)}:role/readme"
    )["stateMachineArn"]

    arn = sfn.start_execution(
        stateMachineArn=machine, input=json.dumps({"code_uri": f"s3://{stack.outputs['ArtifactBucketName']}/{key}"})
    )["executionArn"]

    execution = wait_for_end(sfn, arn, timeout=300)
    assert execution["status"] == "SUCCEEDED", execution
    output = json.loads(execution["output"])
    assert output["status"] == "Completed" and output["job_name"].startswith("iris-")


def stack_account(stack: LocalStack) -> str:
    return stack.outputs["SubmitFunctionArn"].split(":")[4]


def wait_for_end(sfn: Any, arn: str, *, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        execution: dict[str, Any] = sfn.describe_execution(executionArn=arn)
        if execution["status"] != "RUNNING" or time.monotonic() > deadline:
            return execution
        time.sleep(0.2)  # polling the execution: the job trains on another thread


# ----------------------------------------------------------------------------------- `sagepush local up`, for real


@pytest.fixture
def local_up(tmp_path: Path) -> Iterator[str]:
    """`sagepush local up` as README runs it, in its own process; yields the endpoint it printed."""
    [text] = [block for block in of("Run everything locally") if "local up" in block]
    [line] = commands(text)
    process = subprocess.Popen(
        ["bash", "-c", f"exec {line}"],
        cwd=tmp_path,
        env=environment(PYTHONUNBUFFERED="1", SAGEPUSH_LOCAL_PORT="0"),  # 4599 may be taken by someone's own
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # blocks until the stack is up (or the process ends)
        match = re.search(r"at (http://127\.0\.0\.1:\d+)", first)
        assert match, f"`{line}` printed {first!r}"
        # The functions log to stdout: keep reading it so the process never blocks on a full pipe.
        threading.Thread(target=process.stdout.read, daemon=True).start()
        yield match.group(1)
    finally:
        process.terminate()  # Ctrl-C's path: SIGTERM stops the stack cleanly
        assert process.wait(timeout=180) == 0


def test_pushing_to_local_up_works_as_written(local_up: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    [text] = [block for block in of("Run everything locally") if "push --local" in block]
    isolate(monkeypatch, tmp_path)
    project = tmp_path / "iris-local"
    shutil.copytree(EXAMPLES / "sklearn-iris", project)
    commit_all(project, "iris")
    env = {k: v for k, v in environment().items() if not k.startswith("AWS_")}  # --local needs no AWS_* variable

    output = run_script(text, cwd=project, env=env)

    assert "Completed (Completed)" in output
    assert re.search(r"^iris-local-\S+\s.*Completed", output, re.MULTILINE), output  # status --local lists the job
