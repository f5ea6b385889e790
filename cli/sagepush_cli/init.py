"""`sagepush init`: a commented sagepush.toml for a project, its framework read from its requirements, and a CI
workflow that pushes every commit on main through GitHub's OIDC role."""

from __future__ import annotations

import ast
import json
import re
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import unquote, urlsplit

from sagepush.errors import InputError, shorten

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

MANIFEST: Final = "sagepush.toml"
WORKFLOW: Final = Path(".github/workflows/sagepush.yml")
SOURCE_OPTION: Final = "--cli-source"
COMMIT_OPTION: Final = "--cli-commit"

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


# The workflow's job holds the AWS push role, so the CLI it runs must be exactly the code chosen here: a git
# repository at a full commit id (a branch or tag can be moved, a short id can collide), never a name on an index
# (sagepush is not published: whoever registered the name would run code with the role). Only characters that need
# no quoting in YAML or the shell, and no credentials: the URL is written into a committed file.
_SOURCE_URL = re.compile(r"https://[A-Za-z0-9.-]+(?::[0-9]{1,5})?/[A-Za-z0-9._~/-]+")
_COMMIT = re.compile(r"[0-9a-f]{40}")
_SUBDIRECTORY = re.compile(r"[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*")
# GitHub Actions the workflow uses, each pinned to the full commit its release tag names (GitHub's security
# hardening guide: a tag can be moved to other code, a commit cannot).
_ACTIONS: Final = {
    "checkout": "actions/checkout@11d5960a326750d5838078e36cf38b85af677262 # v4.4.0",
    "credentials": "aws-actions/configure-aws-credentials@7474bc4690e29a8392af63c5b98e7449536d5c3a # v4.3.1",
    "uv": "astral-sh/setup-uv@d0cc045d04ccac9d8b7881df0226f9e82c39688e # v6.8.0",
}


@dataclass(frozen=True, slots=True)
class CliSource:
    """Where the workflow installs the sagepush CLI from: a git repository over https, at one full commit."""

    url: str
    commit: str
    subdirectory: str | None = None  # where the package's pyproject.toml is, when not at the repository's root

    @property
    def requirement(self) -> str:
        """The pinned requirement `uvx --from` takes: git+URL@COMMIT."""
        suffix = f"#subdirectory={self.subdirectory}" if self.subdirectory else ""
        return f"git+{self.url}@{self.commit}{suffix}"


def installed_origin() -> dict[str, Any] | None:
    """Return the installed sagepush's PEP 610 `direct_url.json`: None when it has none (installed from an index)."""
    try:
        text = metadata.distribution("sagepush").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    if not text:
        return None
    try:
        origin = json.loads(text)
    except json.JSONDecodeError:
        return None
    return origin if isinstance(origin, dict) else None


def cli_source(url: str | None, commit: str | None, *, origin: Mapping[str, Any] | None) -> CliSource:
    """Decide where the workflow installs the CLI from: `url` and `commit` (--cli-source, --cli-commit), each
    defaulting to the git repository and commit `origin` (the installed sagepush's direct_url.json) records.

    Raises:
        InitError: either cannot be determined, the URL is not https without credentials, or the commit is not a
            full 40-hex commit id.
    """
    detected = _git_origin(origin)
    chosen_url = url.removeprefix("git+") if url is not None else detected.url if detected else None
    chosen_commit = commit.strip().lower() if commit is not None else detected.commit if detected else None
    if chosen_url is None:
        raise InitError(
            SOURCE_OPTION,
            "the workflow installs the sagepush CLI from a git repository at a pinned commit, and this sagepush "
            f"was {_installed_from(origin)}, not from git: pass {SOURCE_OPTION} https://github.com/<owner>/<repo> "
            f"and {COMMIT_OPTION} <its full 40-hex commit>",
        )
    if chosen_commit is None:
        raise InitError(
            COMMIT_OPTION,
            f"is needed with {SOURCE_OPTION} (this sagepush was {_installed_from(origin)}): pass the full 40-hex "
            "commit the workflow installs",
        )
    if not _SOURCE_URL.fullmatch(chosen_url):
        where = SOURCE_OPTION if url is not None else f"{SOURCE_OPTION} (from the installed sagepush)"
        raise InitError(
            where,
            f"{shorten(chosen_url)} is not an https URL of a git repository without credentials, query or "
            "revision (https://github.com/<owner>/<repo>)",
        )
    if not _COMMIT.fullmatch(chosen_commit):
        raise InitError(
            COMMIT_OPTION,
            f"{shorten(chosen_commit)} is not a full 40-hex commit id (a branch, tag or short id can move or collide)",
        )
    subdirectory = detected.subdirectory if detected is not None and url is None else None
    if subdirectory is not None and (not _SUBDIRECTORY.fullmatch(subdirectory) or ".." in subdirectory.split("/")):
        raise InitError(
            f"{SOURCE_OPTION} (from the installed sagepush)",
            f"subdirectory {shorten(subdirectory)} is not a plain relative path: pass {SOURCE_OPTION} and "
            f"{COMMIT_OPTION}",
        )
    return CliSource(url=chosen_url, commit=chosen_commit, subdirectory=subdirectory)


def _git_origin(origin: Mapping[str, Any] | None) -> CliSource | None:
    """The git URL, commit and subdirectory a PEP 610 record names (not yet checked), None for no git install."""
    if not origin or not isinstance(vcs := origin.get("vcs_info"), dict) or vcs.get("vcs") != "git":
        return None
    url, commit, subdirectory = origin.get("url"), vcs.get("commit_id"), origin.get("subdirectory")
    if not isinstance(url, str) or not isinstance(commit, str):
        return None
    return CliSource(url=url, commit=commit.lower(), subdirectory=str(subdirectory) if subdirectory else None)


def _installed_from(origin: Mapping[str, Any] | None) -> str:
    if not origin:
        return "installed from a package index or by hand"
    url = str(origin.get("url", ""))
    if isinstance(origin.get("dir_info"), dict):
        kind = "an editable checkout" if origin["dir_info"].get("editable") else "a directory"
        where = unquote(urlsplit(url).path) if url.startswith("file:") else shorten(url)
        return f"installed from {kind} ({where})"
    if isinstance(vcs := origin.get("vcs_info"), dict):
        return f"installed from {vcs.get('vcs', 'a version control system')}"
    return "installed from an archive"


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
    vocabulary: str = "v2"  # "v3" when the project uses the SDK's ModelTrainer: the manifest then uses its names


def requirements_of(directory: Path) -> tuple[list[tuple[str, str | None]], str | None]:
    """Return the project's requirements as (normalised name, pinned version or None), and the file they came from."""
    lines, source = requirement_lines(directory)
    return [_parse(line) for line in lines if _parse(line)[0]], source


def requirement_lines(directory: Path) -> tuple[list[str], str | None]:
    """The project's requirement lines (requirements.txt, else pyproject.toml's dependencies) and their file."""
    requirements = directory / "requirements.txt"
    if requirements.is_file():
        return requirements.read_text(encoding="utf-8", errors="replace").splitlines(), requirements.name
    pyproject = directory / "pyproject.toml"
    if pyproject.is_file():
        try:
            document = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise InitError(str(pyproject), f"is not valid TOML ({exc})") from exc
        return [str(item) for item in document.get("project", {}).get("dependencies", [])], pyproject.name
    return [], None


def _parse(line: str) -> tuple[str, str | None]:
    match = _REQUIREMENT.match(line.split("#", 1)[0])
    if not match:
        return "", None
    return match.group(1).lower().replace("_", "-"), match.group(2)


def plan(directory: Path, *, project: str, framework: str | None = None, entry_point: str | None = None) -> Plan:
    """Decide the manifest for `directory`: the framework from its requirements (or, with none, from what the scripts
    import; or `framework`), the newest image version that fits a pinned requirement, and the entry point.

    Raises:
        InitError: the framework is unknown, the entry point given is not a file, or none can be found.
    """
    from sagepush import images

    script = _entry_point(directory, entry_point)
    requirements, source = requirements_of(directory)
    pins = dict(requirements)
    chosen, package = framework, None
    if chosen is None:
        chosen, package = _framework_in(pins)
    if chosen is None:  # no requirements, or none naming a framework: what the scripts import
        chosen, package = _framework_in(imports_of(directory, script))
        source = f"the imports of {script}"
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
        entry_point=script,
        detected_from=source if package else None,
        vocabulary=sdk_vocabulary(directory, script),
    )


_V3_IMPORTS: Final = ("sagemaker.train", "sagemaker.modules", "sagemaker.core")
# `sagemaker==3.1`, `sagemaker>=3`, `sagemaker~=3.2`, `sagemaker[all]>3.0`: the major version the project asks for.
_SDK_REQUIREMENT = re.compile(r"^\s*sagemaker\s*(?:\[[^]]*\])?\s*(?:==|>=|~=|>|===)\s*(\d+)", re.IGNORECASE)


def sdk_vocabulary(directory: Path, script: str) -> str:
    """Return "v3" when the project uses the SageMaker Python SDK v3 (it requires `sagemaker` 3 or later, or a script imports
    `sagemaker.train`, `sagemaker.modules` or `sagemaker.core`, where ModelTrainer lives), else "v2"."""
    lines, _ = requirement_lines(directory)
    majors = [int(m.group(1)) for line in lines if (m := _SDK_REQUIREMENT.match(line.split("#", 1)[0]))]
    if majors:
        return "v3" if majors[0] >= 3 else "v2"
    modules = _imported_modules(directory, script)
    return "v3" if any(m == v3 or m.startswith(f"{v3}.") for m in modules for v3 in _V3_IMPORTS) else "v2"


def _framework_in(packages: Iterable[str]) -> tuple[str | None, str | None]:
    """The framework the first of `_FRAMEWORKS` found in `packages` names, and that package; (None, None) if none."""
    present = set(packages)
    return next(((framework, name) for name, framework in _FRAMEWORKS if name in present), (None, None))


def imports_of(directory: Path, script: str) -> list[str]:
    """The top-level packages `script` and the other scripts beside it import, as requirement names (`sklearn` is
    scikit-learn's import name and `_FRAMEWORKS` knows both); a script that does not parse imports nothing."""
    tops = (module.partition(".")[0] for module in _imported_modules(directory, script))
    return list(dict.fromkeys(name.lower().replace("_", "-") for name in tops))


def _imported_modules(directory: Path, script: str) -> list[str]:
    """The absolute module names `script` and the other scripts beside it import (`from a.b import c` gives a.b)."""
    found: list[str] = []
    paths = [directory / script, *sorted(p for p in directory.glob("*.py") if p.name != script)]
    for path in paths:
        try:
            tree = ast.parse(path.read_bytes(), filename=str(path))
        except (OSError, SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.append(node.module)
    return found


def _entry_point(directory: Path, given: str | None = None) -> str:
    if given is not None:
        if not (directory / given).is_file():
            raise InitError("--entry-point", f"{given!r} is not a file in {directory}")
        return given
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
    if chosen.vocabulary == "v3":
        job = f"""\
# sagepush: what a push of this project trains. The keys are the SageMaker Python SDK v3's ModelTrainer names (the
# v2 estimator names work too); README.md's manifest reference lists each one and the CreateTrainingJob field it sets.

framework = "{chosen.framework}"  # {detected}
framework_version = "{chosen.framework_version}"
{py}source_code = {{ entry_script = "{chosen.entry_point}" }}

# The training instance: ml.m5.large is the smallest CPU one; ml.g5.xlarge a small GPU one.
compute = {{ instance_type = "{chosen.instance_type}", instance_count = 1 }}
# The job is stopped (SIGTERM, then SIGKILL) after this many seconds.
stopping_condition = {{ max_runtime_in_seconds = 3600 }}
"""
    else:
        job = f"""\
# sagepush: what a push of this project trains. The keys are the SageMaker Python SDK's estimator arguments;
# README.md's manifest reference lists each one and the CreateTrainingJob field it sets.

framework = "{chosen.framework}"  # {detected}
framework_version = "{chosen.framework_version}"
{py}entry_point = "{chosen.entry_point}"

# The training instance: ml.m5.large is the smallest CPU one; ml.g5.xlarge a small GPU one.
instance_type = "{chosen.instance_type}"
# The job is stopped (SIGTERM, then SIGKILL) after this long: 90m, 2h, 1h30m or seconds.
max_run = "1h"
"""
    return (
        job
        + """
# Passed to the entry point as --name value arguments and in SM_HPS.
# hyperparameters = { epochs = 10, lr = 0.001 }

# Data channels: each is downloaded to /opt/ml/input/data/<name>/ and named by SM_CHANNEL_<NAME>.
# channels = { train = "s3://my-bucket/datasets/train/" }

# Metrics SageMaker reads from the job's log lines; they appear in alerts and in `sagepush status`.
# metric_definitions = [{ Name = "validation:loss", Regex = "val_loss=([0-9.]+)" }]
"""
    )


def workflow_text(source: CliSource, project: str | None = None) -> str:
    """Return the GitHub Actions workflow that installs the CLI from `source`, pushes every commit on main and
    follows its job.

    `project` fixes the project name; None leaves the `SAGEPUSH_PROJECT` repository variable to name it.
    """
    name = project or "${{ vars.SAGEPUSH_PROJECT }}"
    return f"""\
# Train on SageMaker on every push to main: `sagepush push --wait` uploads the commit and follows its training
# job, and the step fails unless the job completes.
#
{_workflow_preamble("")}
      - uses: {_ACTIONS["uv"]}
      - name: Push this commit and follow its training job
        run: >-
          uvx --from "{source.requirement}" sagepush push .
          --project "{name}" --bucket "${{{{ vars.SAGEPUSH_BUCKET }}}}" --wait
"""


def container_workflow_text(source: CliSource, project: str | None = None, context: str = ".") -> str:
    """Return the GitHub Actions workflow for a project that trains in its own image: build `context`'s Dockerfile,
    push it to the ECR repository the push role may write, then push the commit with the manifest's `image_uri`
    pinned to the digest just pushed, and follow its job."""
    name = project or "${{ vars.SAGEPUSH_PROJECT }}"
    variable = (
        "#   SAGEPUSH_IMAGE_REPOSITORY  the stack's GitHubImageRepositoryUri output (deploy it with\n"
        "#                              GitHubImageRepository=<an ECR repository of the stack's account and region>)\n"
    )
    return f"""\
# Train on SageMaker on every push to main, in this project's own image: build the Dockerfile, push the image to
# ECR, then `sagepush push --wait` uploads the commit with image_uri pinned to the image's digest and follows its
# training job; the step fails unless the job completes.
#
{_workflow_preamble(variable)}
      - name: Build the image and push it to ECR
        id: image
        env:
          REPOSITORY: ${{{{ vars.SAGEPUSH_IMAGE_REPOSITORY }}}}
        run: |
          aws ecr get-login-password | docker login --username AWS --password-stdin "${{REPOSITORY%%/*}}"
          docker build --tag "$REPOSITORY:$GITHUB_SHA" "{context}"
          docker push "$REPOSITORY:$GITHUB_SHA"
          echo "uri=$(docker inspect --format '{{{{index .RepoDigests 0}}}}' "$REPOSITORY:$GITHUB_SHA")" >> "$GITHUB_OUTPUT"
      - uses: {_ACTIONS["uv"]}
      - name: Push this commit, pinned to the image just built, and follow its training job
        run: >-
          uvx --from "{source.requirement}" sagepush push .
          --project "{name}" --bucket "${{{{ vars.SAGEPUSH_BUCKET }}}}"
          --set "image_uri=${{{{ steps.image.outputs.uri }}}}" --wait
"""


def _workflow_preamble(variables: str) -> str:
    """The part both workflows share: how the CLI is pinned, the OIDC role, the trigger, the checkout and the
    credentials; `variables` adds lines to the list of repository variables."""
    return f"""\
# The sagepush CLI is installed from a git repository at one full commit (the `uvx --from` line), never from a
# package name, branch or tag: this job holds the AWS push role. To change it, edit that line or run
# `sagepush init --force --cli-source URL --cli-commit COMMIT`.
#
# Credentials come from GitHub's OIDC provider: deploy the sagepush stack with GitHubRepository=<owner>/<repo>
# and GitHubProject=<project>, then set these repository variables (Settings → Secrets and variables → Actions):
#   SAGEPUSH_ROLE_ARN   the stack's GitHubPushRoleArn output
#   SAGEPUSH_BUCKET     the stack's IngestBucketName output
#   AWS_REGION          the stack's region
{variables}# The role may only write incoming/<project>/ and read what following the job needs.
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
      - uses: {_ACTIONS["checkout"]}
        with:
          persist-credentials: false # the push only reads the checkout: keep the token out of .git/config
      - uses: {_ACTIONS["credentials"]}
        with:
          role-to-assume: ${{{{ vars.SAGEPUSH_ROLE_ARN }}}}
          aws-region: ${{{{ vars.AWS_REGION }}}}"""


def write(
    directory: Path, *, manifest: str, workflow: str | None, workflow_root: Path | None, force: bool = False
) -> list[Path]:
    """Write `manifest` as sagepush.toml into `directory` and, when given, `workflow` under `workflow_root`; return
    what was written.

    Raises:
        InitError: a file exists and `force` is not set (nothing is written then).
    """
    targets = {directory / MANIFEST: manifest}
    if workflow is not None and workflow_root is not None:
        targets[workflow_root / WORKFLOW] = workflow
    if not force:
        for path in targets:
            if path.exists():
                raise InitError(str(path), "exists; nothing was written (--force replaces it)")
    for path, text in targets.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return list(targets)


# An ECR repository's URI, without a tag or digest: the image the workflow builds is pushed there.
_IMAGE_REPOSITORY = re.compile(
    r"(?P<account>\d{12})\.dkr\.ecr(-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?/[a-z0-9][a-z0-9._/-]{0,255}"
)


def image_repository(value: str, directory: Path) -> str:
    """Check `sagepush init --container`'s inputs: an ECR repository URI with no tag, and a Dockerfile to build.

    Raises:
        InitError: naming --image-repository or the missing Dockerfile.
    """
    if not _IMAGE_REPOSITORY.fullmatch(value):
        raise InitError(
            "--image-repository",
            f"{value!r} is not an ECR repository URI without a tag (ACCOUNT.dkr.ecr.REGION.amazonaws.com/NAME)",
        )
    if not (directory / "Dockerfile").is_file():
        raise InitError(str(directory / "Dockerfile"), "is missing: the workflow builds the project's image from it")
    return value


def container_manifest_text(repository: str) -> str:
    """Return a commented sagepush.toml for a project that trains in its own image, kept in `repository`."""
    return f"""\
# sagepush: what a push of this project trains: the image built from ./Dockerfile, which runs its own entrypoint
# (SageMaker starts it with `train`). The workflow pins image_uri to the digest it has just pushed (`--set`);
# README.md's manifest reference lists each key and the CreateTrainingJob field it sets.

image_uri = "{repository}:latest"

# The training instance: ml.m5.large is the smallest CPU one; ml.g5.xlarge a small GPU one.
instance_type = "ml.m5.large"
# The job is stopped (SIGTERM, then SIGKILL) after this long: 90m, 2h, 1h30m or seconds.
max_run = "1h"

# Sent to the image as /opt/ml/input/config/hyperparameters.json, each value a string.
# hyperparameters = {{ epochs = "10" }}

# Data channels: each is downloaded to /opt/ml/input/data/<name>/.
# channels = {{ train = "s3://my-bucket/datasets/train/" }}

# The pushed code as a channel too, for an image that runs a script from it (README: Bring your own container).
# code_channel = "code"
"""
