"""`sagepush init`: a commented sagepush.toml for a project, its framework read from its requirements, and a CI
workflow that pushes every commit on main through GitHub's OIDC role."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from sagepush.errors import InputError

MANIFEST: Final = "sagepush.toml"
WORKFLOW: Final = Path(".github/workflows/sagepush.yml")

# Requirement name → (framework, the SDK's version argument style). First match wins, so the more specific
# frameworks (transformers runs on a PyTorch image) come before the general ones.
_FRAMEWORKS: Final = (
    ("transformers", "huggingface"),
    ("torch", "pytorch"),
    ("tensorflow", "tensorflow"),
    ("xgboost", "xgboost"),
    ("scikit-learn", "sklearn"),
    ("sklearn", "sklearn"),
)
# Frameworks whose training images are GPU-only.
_GPU_ONLY: Final = {"huggingface": "ml.g5.xlarge"}
_ENTRY_POINTS: Final = ("train.py", "main.py", "training.py")
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^]]*\])?\s*(?:==\s*([0-9][^\s;,]*))?")


class InitError(InputError):
    """`sagepush init` cannot write what it was asked to."""


@dataclass(frozen=True, slots=True)
class Plan:
    """What `sagepush init` writes for one project."""

    project: str
    framework: str
    framework_version: str
    versions: dict[str, str]  # py_version, and pytorch_version for huggingface: the newest the images offer
    instance_type: str
    entry_point: str
    detected_from: str | None  # the file the framework was read from, None when defaulted


def requirements_of(directory: Path) -> tuple[list[tuple[str, str | None]], str | None]:
    """Return the project's requirements as (normalised name, pinned version or None), and the file they came from."""
    requirements = directory / "requirements.txt"
    if requirements.is_file():
        lines = requirements.read_text(encoding="utf-8", errors="replace").splitlines()
        return [_parse(line) for line in lines if _parse(line)[0]], requirements.name
    pyproject = directory / "pyproject.toml"
    if pyproject.is_file():
        try:
            document = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise InitError(str(pyproject), f"is not valid TOML ({exc})") from exc
        dependencies = document.get("project", {}).get("dependencies", [])
        return [_parse(str(item)) for item in dependencies if _parse(str(item))[0]], pyproject.name
    return [], None


def _parse(line: str) -> tuple[str, str | None]:
    match = _REQUIREMENT.match(line.split("#", 1)[0])
    if not match:
        return "", None
    return match.group(1).lower().replace("_", "-"), match.group(2)


def plan(directory: Path, *, project: str, framework: str | None = None) -> Plan:
    """Decide the manifest for `directory`: the framework from its requirements (or `framework`), the newest image
    version that fits a pinned requirement, and the entry point.

    Raises:
        InitError: the framework is unknown, or no entry point can be found.
    """
    from sagepush import images

    requirements, source = requirements_of(directory)
    pins = dict(requirements)
    chosen, package = framework, None
    if chosen is None:
        for name, candidate in _FRAMEWORKS:
            if name in pins:
                chosen, package = candidate, name
                break
    if chosen is None:
        chosen, source = "pytorch", None
    if chosen not in images.FRAMEWORKS:
        raise InitError("--framework", f"{chosen!r} is not one of {', '.join(images.FRAMEWORKS)}")
    version = images.manifest_version(chosen, pins.get(package) if package else None)
    return Plan(
        project=project,
        framework=chosen,
        framework_version=version,
        versions=images.newest_defaults(chosen, version),
        instance_type=_GPU_ONLY.get(chosen, "ml.m5.large"),
        entry_point=_entry_point(directory),
        detected_from=source if package else None,
    )


def _entry_point(directory: Path) -> str:
    for name in _ENTRY_POINTS:
        if (directory / name).is_file():
            return name
    scripts = sorted(p.name for p in directory.glob("*.py") if p.is_file())
    if len(scripts) == 1:
        return scripts[0]
    raise InitError(
        str(directory),
        "has no train.py, main.py or training.py"
        + (f" and several scripts ({', '.join(scripts)})" if scripts else "")
        + ": write one, or pass --entry-point",
    )


def manifest_text(chosen: Plan) -> str:
    """Return a commented sagepush.toml for `chosen`."""
    detected = f"read from {chosen.detected_from}" if chosen.detected_from else "a default: no framework found"
    py = "".join(f'{key} = "{value}"\n' for key, value in sorted(chosen.versions.items()))
    return f"""\
# sagepush: what a push of this project trains. The keys are the SageMaker Python SDK's estimator arguments;
# README.md's manifest reference lists each one and the CreateTrainingJob field it sets.

framework = "{chosen.framework}"  # {detected}
framework_version = "{chosen.framework_version}"
{py}entry_point = "{chosen.entry_point}"

# The training instance: ml.m5.large is the smallest CPU one; ml.g5.xlarge a small GPU one.
instance_type = "{chosen.instance_type}"
# The job is stopped (SIGTERM, then SIGKILL) after this long: 90m, 2h, 1h30m or seconds.
max_run = "1h"

# Passed to the entry point as --name value arguments and in SM_HPS.
# hyperparameters = {{ epochs = 10, lr = 0.001 }}

# Data channels: each is downloaded to /opt/ml/input/data/<name>/ and named by SM_CHANNEL_<NAME>.
# channels = {{ train = "s3://my-bucket/datasets/train/" }}

# Metrics SageMaker reads from the job's log lines; they appear in alerts and in `sagepush status`.
# metric_definitions = [{{ Name = "validation:loss", Regex = "val_loss=([0-9.]+)" }}]
"""


def workflow_text(project: str | None = None) -> str:
    """Return the GitHub Actions workflow that pushes every commit on main and follows its job.

    `project` fixes the project name; None leaves the `SAGEPUSH_PROJECT` repository variable to name it.
    """
    name = project or "${{ vars.SAGEPUSH_PROJECT }}"
    return f"""\
# Train on SageMaker on every push to main: `sagepush push --wait` uploads the commit and follows its training
# job, and the step fails unless the job completes.
#
# Credentials come from GitHub's OIDC provider: deploy the sagepush stack with GitHubRepository=<owner>/<repo>
# and GitHubProject=<project>, then set these repository variables (Settings → Secrets and variables → Actions):
#   SAGEPUSH_ROLE_ARN   the stack's GitHubPushRoleArn output
#   SAGEPUSH_BUCKET     the stack's IngestBucketName output
#   AWS_REGION          the stack's region
# The role may only write incoming/<project>/ and read what following the job needs.
name: sagepush

on:
  push:
    branches: [main]

permissions:
  id-token: write # to ask GitHub for the OIDC token the role trusts
  contents: read

concurrency:
  group: sagepush-${{{{ github.ref }}}}
  cancel-in-progress: false

jobs:
  train:
    runs-on: ubuntu-latest
    timeout-minutes: 360
    steps:
      - uses: actions/checkout@v4
      - uses: aws-actions/configure-aws-credentials@v4
        with:
          role-to-assume: ${{{{ vars.SAGEPUSH_ROLE_ARN }}}}
          aws-region: ${{{{ vars.AWS_REGION }}}}
      - uses: astral-sh/setup-uv@v6
      - name: Push this commit and follow its training job
        run: uvx sagepush push . --project "{name}" --bucket "${{{{ vars.SAGEPUSH_BUCKET }}}}" --wait
"""


def write(directory: Path, *, chosen: Plan, workflow_root: Path | None, force: bool = False) -> list[Path]:
    """Write sagepush.toml into `directory` and, with `workflow_root`, the workflow under it; return what was written.

    Raises:
        InitError: a file exists and `force` is not set (nothing is written then).
    """
    targets = {directory / MANIFEST: manifest_text(chosen)}
    if workflow_root is not None:
        targets[workflow_root / WORKFLOW] = workflow_text(chosen.project)
    if not force:
        for path in targets:
            if path.exists():
                raise InitError(str(path), "exists; nothing was written (--force replaces it)")
    for path, text in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return list(targets)
