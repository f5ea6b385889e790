"""Generate `sagepush/data/framework-packages.json`: the Python version and Python packages of each framework image.

Run it from the repository root (`make framework-packages`; `make images` runs it after the image table):

    uv run python scripts/generate_framework_packages.py [--sklearn-git DIR] [--xgboost-git DIR] [--dlc-git DIR]

The images are built from three repositories: aws/sagemaker-scikit-learn-container and aws/sagemaker-xgboost-container
(one branch per image version, `docker/<version>/{base,final}/Dockerfile.cpu` plus `requirements.txt`) and
aws/deep-learning-containers (branch `master`: `{pytorch,tensorflow}/training/docker/<major.minor>/py3/Dockerfile.cpu`,
one directory per minor version whose history holds each patch release; branch `main`: `docker/<framework>/...`, with
a `pyproject.toml` and `uv.lock`, where scikit-learn, XGBoost and the newest TensorFlow moved). Each option names a
local git directory (a bare clone, a mirror or a work tree) holding that repository's branches; without one (or its
environment variable SKLEARN_CONTAINER_GIT, XGBOOST_CONTAINER_GIT, DLC_GIT) the repository is cloned from GitHub into a
temporary directory (deep-learning-containers: `master` and `main` only) without file contents (`--filter=blob:none`):
git fetches the few hundred files read as they are read.

For every version `images.json` lists for sklearn, xgboost, pytorch and tensorflow, the generator reads the CPU image's
Dockerfiles, their SageMaker stage, the way `docker build` runs them (ARG and ENV substitution, stages, COPY, WORKDIR)
and replays their `pip install`, `uv pip install`, `uv sync` (the copied pyproject.toml's dependencies at the versions
its uv.lock holds), `conda` and `mamba` installs and uninstalls: a later install replaces an earlier one unless the
installed version already satisfies it, as pip does. It keeps Python distributions a training script could import,
never apt packages, conda's non-Python packages, pip, setuptools, wheel or build tools, and keeps the container's
SageMaker machinery (training and serving toolkits, the model server) apart as `toolkit`. An image is taken only when
it pins the framework's own package at the version its image version names (scikit-learn 1.2.x for sklearn 1.2-1,
torch 2.1.0 for pytorch 2.1.0); a version no revision of the candidate files matches is listed under `missing`.

Each entry holds `python` (major.minor), `packages` and `toolkit` (PEP 508 requirements sorted by name), `from`
(`owner/name@branch: files`, a commit in place of the branch when an earlier revision built the image) and `date`
(YYYY-MM-DD, UTC): the day the image's framework version was first set in its repository, as of which the packages it
leaves unpinned or only bounded resolve. That is the committer date of the oldest revision in the unbroken run of
revisions of those files, up to the one read, that pin the framework's package at the same version (torch==2.0.1
throughout): later maintenance edits of the files do not move it, an earlier pin of another version ends the run.
The output is deterministic for given repository states; `source` names the commit of each branch read. Exit status 3
means GitHub could not be reached (a clone, or a file a partial clone fetches), any other failure exits 1.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import posixpath
import re
import shlex
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "layers" / "sagepush" / "sagepush" / "data"
OUTPUT = DATA / "framework-packages.json"
IMAGES = DATA / "images.json"
FORMAT = 1
UNREACHABLE = 3

SKLEARN = "aws/sagemaker-scikit-learn-container"
XGBOOST = "aws/sagemaker-xgboost-container"
DLC = "aws/deep-learning-containers"
# Each repository's command-line option and environment variable.
REPOSITORIES = {
    SKLEARN: ("--sklearn-git", "SKLEARN_CONTAINER_GIT"),
    XGBOOST: ("--xgboost-git", "XGBOOST_CONTAINER_GIT"),
    DLC: ("--dlc-git", "DLC_GIT"),
}
GITHUB = "https://github.com"
# The branches read where not every one is (the containers' repositories keep one per image version).
CLONED_BRANCHES = {DLC: ("master", "main")}
FRAMEWORKS = ("sklearn", "xgboost", "pytorch", "tensorflow")
# The distribution(s) whose version an image version names.
FRAMEWORK_PACKAGES = {
    "sklearn": ("scikit-learn",),
    "xgboost": ("xgboost",),
    "pytorch": ("torch",),
    "tensorflow": ("tensorflow", "tensorflow-cpu"),
}
# The container's SageMaker machinery: training and serving toolkits, each container's own package, the model server.
TOOLKITS = frozenset(
    {
        "model-archiver",
        "multi-model-server",
        "sagemaker-containers",
        "sagemaker-inference",
        "sagemaker-pytorch-container",
        "sagemaker-pytorch-training",
        "sagemaker-sklearn-container",
        "sagemaker-tensorflow-container",
        "sagemaker-tensorflow-training",
        "sagemaker-training",
        "sagemaker-xgboost-container",
    }
)
# Installers, build tools, conda's own packages, native libraries shipped as wheels and backports of standard
# modules: nothing a training script imports.
EXCLUDED = frozenset(
    {
        "cmake",
        "conda-content-trust",
        "cython",
        "dataclasses",
        "enum34",
        "futures",
        "mkl",
        "mkl-include",
        "ninja",
        "pip",
        "pybind11",
        "setuptools",
        "typing",
        "uv",
        "wheel",
    }
)
# conda packages that are no Python distribution (besides `lib*`), and conda names PyPI spells otherwise.
CONDA_ONLY = frozenset(
    {
        "blas",
        "conda",
        "cpuonly",
        "cudatoolkit",
        "curl",
        "glog",
        "mamba",
        "mkl",
        "mkl-include",
        "mlio-py",
        "openssl",
        "tbb",
        "tbb-devel",
    }
)
CONDA_TO_PYPI = {
    "pytorch": "torch",
    "py-xgboost": "xgboost",
    "msgpack-python": "msgpack",
    "matplotlib-base": "matplotlib",
    "opencv": "opencv-python",
}
# `pip install git+URL` names no distribution: those of the repositories the images install from.
VCS_DISTRIBUTIONS = {"github.com/awslabs/sagemaker-debugger": "smdebug"}

# pip's and uv pip's options that take a value.
_PIP_VALUE_OPTIONS = frozenset(
    {"-r", "--requirement", "-c", "--constraint", "-e", "--editable", "-t", "--target", "--prefix", "--root", "--src"}
    | {"-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--trusted-host", "--index-strategy"}
    | {"--python", "-p", "--platform", "--python-version", "--implementation", "--abi", "--python-platform"}
    | {"--no-binary", "--only-binary", "-C", "--config-settings", "--global-option", "--install-option"}
    | {"--progress-bar", "--cache-dir", "--upgrade-strategy", "--root-user-action", "--log", "--report"}
    | {"--timeout", "--retries", "--extra", "--group", "--project", "--directory"}
)
_CONDA_VALUE_OPTIONS = frozenset({"-c", "--channel", "-n", "--name", "-p", "--prefix", "--solver", "--repodata-fn"})
_UPGRADE_OPTIONS = frozenset({"-U", "--upgrade", "-I", "--ignore-installed", "--force-reinstall", "--reinstall"})
_CONDA = frozenset({"conda", "mamba", "micromamba"})
_VARIABLE = re.compile(r"\$\{(\w+)(?:(:?-)([^}]*))?\}|\$(\w+)")
_PYTHON_IN_COMMAND = re.compile(r"\bpython(3\.\d+)\b")
# The python3 an Ubuntu release installs, for images that take Python from apt.
UBUNTU_PYTHON = {"16.04": "3.5", "18.04": "3.6", "20.04": "3.8", "22.04": "3.10", "24.04": "3.12"}


class SourceMissingError(Exception):
    """A file a Dockerfile names is not in the repository at that revision."""


# ---------------------------------------------------------------- reading git


class Repository:
    """One repository's git directory, read with `git --git-dir` (no work tree needed)."""

    def __init__(self, name: str, git_dir: Path) -> None:
        self.name = name
        self.git_dir = git_dir / ".git" if (git_dir / ".git").is_dir() else git_dir
        self._texts: dict[tuple[str, str], str | None] = {}
        if self._git("rev-parse", "--git-dir").returncode != 0:
            sys.exit(f"{git_dir} is no git directory (of {name})")

    def _git(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = ["git", f"--git-dir={self.git_dir}", *args]
        done = subprocess.run(command, capture_output=True, check=False)
        # Files read are text; a binary one (a .deb a COPY names) is only checked for existence.
        stdout, stderr = (out.decode("utf-8", errors="replace") for out in (done.stdout, done.stderr))
        return subprocess.CompletedProcess(done.args, done.returncode, stdout, stderr)

    def commit(self, branch: str) -> str | None:
        """Return the commit a branch points at (a local branch, else origin's), or None."""
        for ref in (f"refs/heads/{branch}", f"refs/remotes/origin/{branch}"):
            done = self._git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
            if done.returncode == 0:
                return done.stdout.strip()
        return None

    def text(self, commit: str, path: str) -> str | None:
        """Return a file's text at a commit, or None when it has no such file.

        A file the commit has but git cannot read (a blob a partial clone fails to fetch) stops the run: the data would
        lack an image without saying why.
        """
        path = posixpath.normpath(path).lstrip("/")
        key = (commit, path)
        if key not in self._texts:
            listed = self._git("ls-tree", commit, "--", path).stdout.split()  # mode, type, object, path
            if path.startswith("..") or listed[1:2] != ["blob"]:
                self._texts[key] = None
            else:
                done = self._git("cat-file", "blob", listed[2])
                if done.returncode != 0:
                    print(f"cannot read {path} at {commit} of {self.name}: {done.stderr.strip()}", file=sys.stderr)
                    sys.exit(UNREACHABLE)
                self._texts[key] = done.stdout
        return self._texts[key]

    def history(self, commit: str, paths: tuple[str, ...]) -> list[str]:
        """Return the commits before `commit` that changed one of `paths`, newest first."""
        done = self._git("log", "--full-history", "--format=%H", commit, "--", *paths)
        if done.returncode != 0:
            sys.exit(f"git log failed in {self.git_dir}: {done.stderr.strip()}")
        return [line for line in done.stdout.split() if line != commit]

    def date(self, commit: str, paths: tuple[str, ...]) -> str | None:
        """Return the committer date (YYYY-MM-DD, UTC) of the newest commit up to `commit` (itself included) that
        changed one of `paths`, None when none did (no such files)."""
        done = self._git("log", "-1", "--format=%ct", commit, "--", *paths)
        if done.returncode != 0:
            sys.exit(f"git log failed in {self.git_dir}: {done.stderr.strip()}")
        return commit_date(done.stdout.strip()) if done.stdout.strip() else None


def commit_date(timestamp: str) -> str:
    """Return the UTC date (YYYY-MM-DD) of a commit's Unix timestamp (git's `%ct`)."""
    return datetime.datetime.fromtimestamp(int(timestamp), tz=datetime.UTC).date().isoformat()


def clone(name: str, into: Path) -> Path:
    """Clone `name` from GitHub: the branches read, with their history but no file contents (fetched when read)."""
    target = into / name.replace("/", "+")
    print(f"cloning {GITHUB}/{name}", file=sys.stderr)
    first, *others = CLONED_BRANCHES.get(name, ("",))
    only = ["--single-branch", "--branch", first] if first else []
    _reach(
        name, ["git", "clone", "--quiet", "--bare", "--filter=blob:none", *only, f"{GITHUB}/{name}.git", str(target)]
    )
    for branch in others:
        _reach(
            name,
            ["git", f"--git-dir={target}", "fetch", "--quiet", "origin", f"+refs/heads/{branch}:refs/heads/{branch}"],
        )
    return target


def _reach(name: str, command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"cannot fetch {name}: {done.stderr.strip()}", file=sys.stderr)
        sys.exit(UNREACHABLE)


# ---------------------------------------------------------------- Dockerfiles


@dataclass
class Stage:
    name: str | None
    base: str
    instructions: list[tuple[str, str]]


def instructions(text: str) -> list[tuple[str, str]]:
    """Return a Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined, comments dropped."""
    found: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):  # also inside a continued instruction, as Docker reads it
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        keyword, _, arguments = pending.strip().partition(" ")
        found.append((keyword.upper(), arguments.strip()))
        pending = ""
    if pending.strip():
        keyword, _, arguments = pending.strip().partition(" ")
        found.append((keyword.upper(), arguments.strip()))
    return found


def stages(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Return the ARG defaults declared before the first FROM and the stages of a Dockerfile."""
    global_args: dict[str, str] = {}
    found: list[Stage] = []
    for keyword, arguments in instructions(text):
        if keyword == "FROM":
            words = [w for w in arguments.split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            found.append(Stage(name, words[0] if words else "", []))
        elif found:
            found[-1].instructions.append((keyword, arguments))
        elif keyword == "ARG":
            key, _, value = arguments.partition("=")
            global_args[key.strip()] = _unquote(value.strip())
    return global_args, found


def expand(text: str, variables: Mapping[str, str]) -> str:
    """Substitute `$NAME`, `${NAME}` and `${NAME:-default}`; names not known stay as written (shell variables)."""

    def substitute(match: re.Match[str]) -> str:
        name, operator, default = match[1] or match[4], match[2], match[3]
        value = variables.get(name)
        if value is not None and not (operator == ":-" and not value):
            return value
        return default if operator else match[0]

    return _VARIABLE.sub(substitute, text)


def shell_commands(script: str) -> list[list[str]]:
    """Split a RUN script into simple commands (words), at `&&`, `||`, `;`, `|` and parentheses; redirections dropped.

    Raises:
        ValueError: the script's quoting does not balance.
    """
    lexer = shlex.shlex(script, posix=True, punctuation_chars=";&|()<>")
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    skip_next = False
    for token in lexer:
        if skip_next:
            skip_next = False
        elif token and set(token) <= set(";&|()"):
            commands.append([])
        elif token and set(token) <= set("<>&"):
            if commands[-1] and commands[-1][-1].isdigit():
                commands[-1].pop()  # the descriptor of `2>/dev/null`
            skip_next = True
        else:
            commands[-1].append(token)
    return [command for command in commands if command]


def wheel_requirement(location: str) -> str | None:
    """Return `name==version` for a wheel or sdist file name or URL, None for anything else or a glob."""
    name = posixpath.basename(unquote(location.split("#")[0].split("?")[0]))
    if name.endswith(".whl"):
        parts = name[: -len(".whl")].split("-")
        if len(parts) < 3:
            return None
        distribution, version = parts[0], parts[1]
    else:
        match = re.fullmatch(r"(.+)-(\d[^-]*)\.(tar\.gz|zip)", name)
        if not match:
            return None
        distribution, version = match[1], match[2]
    if "*" in distribution or "*" in version:
        return None
    return f"{canonicalize_name(distribution)}=={version.split('+')[0]}"


def glob_requirement(location: str) -> str | None:
    """Return the bare name of a wheel or sdist a glob names (`name*.tar.gz`, `name-*.whl`), None when it names none."""
    name = posixpath.basename(location).split("*")[0].rstrip("-_")
    if "*" not in location or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.\-]{2,}", name):
        return None
    return str(canonicalize_name(name))


def vcs_requirement(location: str) -> str | None:
    """Return `name @ git+URL` for a repository whose distribution name is known, else None."""
    url = location.removeprefix("git+")
    host_path = re.sub(r"^[a-z]+://", "", url).split("@")[0].removesuffix(".git")
    for prefix, distribution in VCS_DISTRIBUTIONS.items():
        if host_path == prefix:
            return f"{distribution} @ git+{url}"
    return None


def conda_requirement(spec: str) -> tuple[str, str] | None:
    """Return (distribution, requirement) for a conda package spec, or None for conda's own or non-Python packages.

    The distribution is "python" for the interpreter, whose requirement is then its version.
    """
    match = re.fullmatch(r"(?:[\w.\-/:]+::)?([A-Za-z0-9_.\-]+)\s*(.*)", spec.strip())
    if not match:
        return None
    name, rest = match[1].lower(), match[2].strip()
    if rest.startswith("=") and not rest.startswith("=="):
        version = rest[1:].split("=")[0]
        rest = f"=={version}" if not version.endswith("*") or version.endswith(".*") else f"=={version[:-1]}.*"
    elif rest and rest[0].isdigit():
        rest = f"=={rest.split()[0]}"
    if name == "python":
        return name, rest.lstrip("=<>!~")
    if name in CONDA_ONLY or name.startswith("lib"):
        return None
    return CONDA_TO_PYPI.get(name, name), f"{CONDA_TO_PYPI.get(name, name)}{rest}"


def public(requirement: Requirement) -> Requirement:
    """Return a requirement whose exact pin of a local version (`==2.5.1+cpu`, a build of PyTorch's own index) pins
    the public version it builds, which PyPI serves."""
    version = pinned_version(requirement)
    if version is not None and "+" in version:
        requirement.specifier = SpecifierSet(f"=={version.split('+')[0]}")
    return requirement


def pinned_version(requirement: Requirement) -> str | None:
    """Return the version an exact `==` pin names, else None."""
    specifiers = list(requirement.specifier)
    if len(specifiers) == 1 and specifiers[0].operator in ("==", "===") and "*" not in specifiers[0].version:
        return specifiers[0].version
    return None


def requirement_text(requirement: Requirement) -> str:
    """Return a requirement as written in the data: canonical name, sorted extras, then specifier, URL and marker."""
    text = str(canonicalize_name(requirement.name))
    if requirement.extras:
        text += f"[{','.join(sorted(requirement.extras))}]"
    if requirement.url:
        text += f" @ {requirement.url}"
    else:
        text += ",".join(sorted(str(s) for s in requirement.specifier))
    if requirement.marker:
        text += f"{' ' if requirement.url else ''}; {requirement.marker}"
    return text


@dataclass
class Image:
    """The Python environment a replay of an image's Dockerfiles leaves: what pip and conda installed."""

    read: Callable[[str], str | None]
    build_args: Mapping[str, str] = field(default_factory=dict)
    installed: dict[str, Requirement] = field(default_factory=dict)
    conda_python: str | None = None
    variables: dict[str, str] = field(default_factory=dict)
    declared_python: list[str] = field(default_factory=list)
    run_texts: list[str] = field(default_factory=list)
    bases: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    _copies: dict[str, str] = field(default_factory=dict)
    _directory: str = ""

    # ------------------------------------------------ installing

    def install(self, text: str, *, upgrade: bool) -> None:
        """Record an install of `text`: it replaces what is installed unless that satisfies it and no upgrade is asked,
        as pip decides."""
        try:
            requirement = public(Requirement(text))
        except InvalidRequirement:
            self.notes.append(f"skipped {text!r}: not a requirement")
            return
        name = canonicalize_name(requirement.name)
        current = self.installed.get(name)
        version = pinned_version(current) if current is not None else None
        keeps = (
            not upgrade
            and version is not None
            and not requirement.url
            and requirement.specifier.contains(version, prereleases=True)
        )
        if not keeps:
            self.installed[name] = requirement

    def uninstall(self, names: list[str]) -> None:
        for name in names:
            if not name.startswith("-"):
                self.installed.pop(canonicalize_name(name), None)

    def read_file(self, path: str) -> str:
        """Return a file of the build context: the repository's root, else the directory of the Dockerfile read.

        Raises:
            SourceMissingError: neither has it.
        """
        for candidate in (path, posixpath.join(self._directory, path)):
            text = self.read(posixpath.normpath(candidate))
            if text is not None:
                if posixpath.normpath(candidate) not in self.files:
                    self.files.append(posixpath.normpath(candidate))
                return text
        raise SourceMissingError(path)

    # ------------------------------------------------ Dockerfiles

    def build(self, dockerfile: str) -> None:
        """Replay a Dockerfile's stage `sagemaker` (else its last stage) and the stages it builds on."""
        global_args, found = stages(self.read_file(dockerfile))
        if not found:
            return
        self._copies = {}
        by_name = {stage.name: stage for stage in found if stage.name}
        target = by_name.get("sagemaker") or found[-1]
        self.variables = {}
        for key, value in global_args.items():
            self._set(key, self.build_args.get(key, value))
        self._directory = posixpath.dirname(dockerfile)
        self._stage(target, by_name, set())

    def _set(self, key: str, value: str) -> None:
        self.variables[key] = value
        if key in ("PYTHON_VERSION", "PYTHON_SHORT_VERSION") and (minor := _minor(value)):
            self.declared_python.append(minor)

    def _stage(self, stage: Stage, by_name: Mapping[str, Stage], done: set[str]) -> None:
        if stage.name:
            done.add(stage.name)
        if stage.base in by_name and stage.base not in done:
            self._stage(by_name[stage.base], by_name, done)
        elif stage.base not in by_name:
            self.bases.append(expand(stage.base, self.variables))
        cwd = "/"
        for keyword, arguments in stage.instructions:
            if keyword == "ARG":
                self._arg(arguments)
            elif keyword == "ENV":
                for key, value in _env_pairs(expand(arguments, self.variables)).items():
                    self._set(key, value)
            elif keyword == "WORKDIR":
                cwd = posixpath.normpath(posixpath.join(cwd, expand(arguments, self.variables)))
            elif keyword in ("COPY", "ADD"):
                source_stage = self._copy(expand(arguments, self.variables), cwd)
                if source_stage is not None and source_stage in by_name and source_stage not in done:
                    self._stage(by_name[source_stage], by_name, done)
            elif keyword == "RUN":
                self._run(expand(arguments, self.variables), cwd)

    def _arg(self, arguments: str) -> None:
        key, sep, value = arguments.partition("=")
        key = key.strip()
        if key in self.build_args:
            self._set(key, self.build_args[key])
        elif sep:
            self._set(key, expand(_unquote(value.strip()), self.variables))

    def _copy(self, arguments: str, cwd: str) -> str | None:
        """Record where a COPY puts files of the build context; return the stage it copies from, if any."""
        words = json.loads(arguments) if arguments.startswith("[") else arguments.split()
        from_stage = next((w.split("=", 1)[1] for w in words if w.startswith("--from=")), None)
        words = [w for w in words if not w.startswith("--")]
        if from_stage is not None or len(words) < 2:
            return from_stage
        *sources, destination = words
        destination = posixpath.normpath(posixpath.join(cwd, destination)) + ("/" if destination.endswith("/") else "")
        for source in sources:
            if destination.endswith("/") or len(sources) > 1:
                target = posixpath.join(destination, posixpath.basename(source.rstrip("/")))
            else:
                target = destination
            self._copies[posixpath.normpath(target)] = posixpath.normpath(source)
        return None

    def context_path(self, path: str, cwd: str) -> str:
        """Return the build-context path of a file a command names, through the COPYs recorded so far."""
        absolute = posixpath.normpath(posixpath.join(cwd, path))
        if absolute in self._copies:
            return self._copies[absolute]
        for target, source in self._copies.items():
            if absolute.startswith(target + "/"):
                return posixpath.join(source, absolute[len(target) + 1 :])
        return path

    def _run(self, script: str, cwd: str) -> None:
        script = re.sub(r"^(--\S+\s+)+", "", script)
        self.run_texts.append(script)
        try:
            commands = shell_commands(script)
        except ValueError:
            self.notes.append(f"skipped a RUN whose quoting does not parse: {script[:80]!r}")
            return
        for argv in commands:
            cwd = self._command(argv, cwd)

    def _command(self, argv: list[str], cwd: str) -> str:
        """Replay one command; return the working directory after it."""
        while argv and (re.match(r"^\w+=", argv[0]) or argv[0] in ("sudo", "env", "exec", "time")):
            argv = argv[1:]
        if not argv:
            return cwd
        program = posixpath.basename(argv[0])
        if program in ("then", "else", "do") and "install" in argv:
            # Both branches of a shell conditional would be replayed; only Dockerfiles of images not taken use one.
            self.notes.append(f"skipped a conditional install: {' '.join(argv)[:80]!r}")
            return cwd
        if program == "cd" and len(argv) > 1:
            return posixpath.normpath(posixpath.join(cwd, argv[1]))
        if program in _CONDA and len(argv) > 1:
            self._conda(argv[1], argv[2:])
        elif program == "uv" and argv[1:2] == ["sync"]:
            self._uv_sync(argv[2:], cwd)
        else:
            pip = _pip_arguments(program, argv)
            if pip and pip[0] == "install":
                self._pip_install(pip[1:], cwd)
            elif pip and pip[0] == "uninstall":
                self.uninstall(pip[1:])
        return cwd

    # ------------------------------------------------ installers

    def _pip_install(self, arguments: list[str], cwd: str) -> None:
        upgrade = any(_is_upgrade(a) for a in arguments)
        files: list[str] = []
        targets: list[str] = []
        words = iter(arguments)
        for word in words:
            if word in ("-r", "--requirement"):
                files.append(next(words, ""))
            elif word in _PIP_VALUE_OPTIONS:
                next(words, None)
            elif not word.startswith("-"):
                targets.append(word)
        for file in files:
            for line in _requirement_lines(self.read_file(self.context_path(file, cwd))):
                self.install(line, upgrade=upgrade)
        for target in targets:
            text = self._pip_target(target, cwd)
            if text is not None:
                self.install(text, upgrade=upgrade)

    def _pip_target(self, target: str, cwd: str) -> str | None:
        """Return the requirement a pip argument names: a requirement, a wheel or sdist, a known repository."""
        if target.startswith("git+") or " @ git+" in target:
            found = vcs_requirement(target.split(" @ ")[-1])
            if found is None:
                self.notes.append(f"skipped {target!r}: a repository of unknown distribution")
            return found
        if target.endswith((".whl", ".tar.gz", ".zip")) or "://" in target:
            local = target if "://" in target else self.context_path(target, cwd)
            found = wheel_requirement(local) or wheel_requirement(target) or glob_requirement(target)
            if found is None and not posixpath.basename(target).startswith("*"):  # `dist/*.whl`: built in the image
                self.notes.append(f"skipped {target!r}: a file of unknown name or version")
            return found
        if target.startswith((".", "/")) or "/" in target.split(";")[0]:
            return None  # a project built in the image, whose name only its own metadata gives
        return target

    def _conda(self, verb: str, arguments: list[str]) -> None:
        if verb in ("remove", "uninstall"):
            self.uninstall([CONDA_TO_PYPI.get(a, a) for a in arguments])
            return
        if verb != "install":
            return
        upgrade = "--force-reinstall" in arguments
        words = iter(arguments)
        for word in words:
            if word in _CONDA_VALUE_OPTIONS or word == "--file":
                next(words, None)
            elif not word.startswith("-"):
                found = conda_requirement(word)
                if found is None:
                    continue
                if found[0] == "python":
                    self.conda_python = _minor(found[1]) or self.conda_python
                else:
                    self.install(found[1], upgrade=upgrade)

    def _uv_sync(self, arguments: list[str], cwd: str) -> None:
        """Install a copied project's dependencies (and the extras asked for) at the versions its uv.lock holds."""
        project, extras = cwd, []
        words = iter(arguments)
        for word in words:
            if word in ("--project", "--directory"):
                project = posixpath.join(cwd, next(words, ""))
            elif word == "--extra":
                extras.append(next(words, ""))
        pyproject = tomllib.loads(self.read_file(self.context_path(posixpath.join(project, "pyproject.toml"), "/")))
        lock = tomllib.loads(self.read_file(self.context_path(posixpath.join(project, "uv.lock"), "/")))
        locked: dict[str, set[str]] = {}
        for package in lock.get("package", []):
            locked.setdefault(canonicalize_name(package["name"]), set()).add(package["version"])
        overrides = {canonicalize_name(Requirement(r).name): r for r in _uv_overrides(pyproject)}
        dependencies = list(pyproject.get("project", {}).get("dependencies", []))
        for extra in extras:
            dependencies += pyproject.get("project", {}).get("optional-dependencies", {}).get(extra, [])
        for dependency in dependencies:
            requirement = Requirement(overrides.get(canonicalize_name(Requirement(dependency).name), dependency))
            versions = locked.get(canonicalize_name(requirement.name), set())
            if len(versions) == 1 and not requirement.url:
                requirement.specifier = SpecifierSet(f"=={next(iter(versions))}")
            self.install(str(requirement), upgrade=True)

    # ------------------------------------------------ results

    def apply_core_packages(self, text: str) -> None:
        """Apply the deep-learning-containers list of packages its tests check in the image, with their specifiers."""
        for name, entry in sorted(json.loads(text).items()):
            requirement = public(Requirement(f"{name}{entry.get('version_specifier', '')}"))
            current = self.installed.get(canonicalize_name(name))
            version = pinned_version(current) if current is not None else None
            if version is None or not requirement.specifier.contains(version, prereleases=True):
                self.installed[canonicalize_name(name)] = requirement

    def python(self) -> str | None:
        """Return the image's Python as major.minor: conda's, else the Dockerfiles' PYTHON_VERSION, else a pythonX.Y
        they run or install, else the python3 of the Ubuntu release they start from."""
        if self.conda_python:
            return self.conda_python
        if self.declared_python:
            return self.declared_python[-1]
        named: list[str] = [m for text in self.run_texts for m in _PYTHON_IN_COMMAND.findall(text)]
        if named:
            return named[-1]
        ubuntu = [str(m[1]) for base in self.bases if (m := re.match(r"ubuntu:(\d+\.\d+)", base))]
        return UBUNTU_PYTHON.get(ubuntu[-1]) if ubuntu else None

    def split(self) -> tuple[list[str], list[str]]:
        """Return the (packages, toolkit) requirement strings, sorted by name, without what no script imports."""
        packages: list[str] = []
        toolkit: list[str] = []
        for name, requirement in sorted(self.installed.items()):
            if name in EXCLUDED:
                continue
            (toolkit if name in TOOLKITS else packages).append(requirement_text(requirement))
        return packages, toolkit


def _pip_arguments(program: str, argv: list[str]) -> list[str] | None:
    """Return the arguments after `pip` in `pip ...`, `python -m pip ...` or `uv pip ...`, else None."""
    if re.fullmatch(r"pip(\d(\.\d+)?)?", program):
        return argv[1:]
    if re.fullmatch(r"python(\d(\.\d+)?)?", program) and argv[1:3] == ["-m", "pip"]:
        return argv[3:]
    if program == "uv" and argv[1:2] == ["pip"]:
        return argv[2:]
    return None


def _is_upgrade(word: str) -> bool:
    return word in _UPGRADE_OPTIONS or bool(re.fullmatch(r"-[a-zA-Z]*[UI][a-zA-Z]*", word))


def _requirement_lines(text: str) -> Iterator[str]:
    for raw in text.splitlines():
        line = re.sub(r"(^|\s)#.*", "", raw).strip()
        if line and not line.startswith("-"):
            yield line


def _uv_overrides(pyproject: Mapping[str, Any]) -> list[str]:
    overrides: list[str] = pyproject.get("tool", {}).get("uv", {}).get("override-dependencies", [])
    return overrides


def _env_pairs(arguments: str) -> dict[str, str]:
    words = shlex.split(arguments)
    if words and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    return dict(word.split("=", 1) for word in words if "=" in word)


def _unquote(value: str) -> str:
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'" else value


def _minor(version: str) -> str | None:
    match = re.match(r"(\d+)\.(\d+)", version)
    return f"{match[1]}.{match[2]}" if match else None


# ---------------------------------------------------------------- which files build which image


@dataclass(frozen=True)
class Candidate:
    """Files that may build an image version: Dockerfiles replayed in order, at a branch (or its history)."""

    repository: str
    branch: str
    dockerfiles: tuple[str, ...]
    core_packages: str | None = None
    build_args: Mapping[str, str] = field(default_factory=dict)
    history: bool = False


def candidates(framework: str, version: str) -> list[Candidate]:
    """Return where an image version may be built from, most likely first."""
    container = ("base/Dockerfile.cpu", "final/Dockerfile.cpu")
    minor = ".".join(version.split(".")[:2])
    if framework == "sklearn":
        return [
            Candidate(DLC, "main", (f"docker/sklearn/{version}/Dockerfile",)),
            *(
                Candidate(SKLEARN, branch, tuple(f"docker/{version}/{f}" for f in container))
                for branch in (version, f"v{version}", f"release-{version}", "master")
            ),
        ]
    if framework == "xgboost":
        return [
            Candidate(DLC, "main", (f"docker/xgboost/{version}/Dockerfile",)),
            Candidate(DLC, "main", ("docker/xgboost/Dockerfile",)),
            *(
                Candidate(XGBOOST, branch, tuple(f"docker/{version}/{f}" for f in container))
                for branch in (version, f"release-{version}", "master")
            ),
        ]
    # deep-learning-containers kept one directory per minor version from 1.7 on, one per full version before.
    if framework == "pytorch":
        training = "pytorch/training/docker"
        return [
            *_training(f"{training}/{minor}/py3", history=False),
            Candidate(DLC, "main", ("docker/pytorch/Dockerfile.cpu",), None, {"FRAMEWORK_SHORT_VERSION": minor}),
            *_training(f"{training}/{minor}/py3", history=True),
            *_training(f"{training}/{version}/py3", history=True),
        ]
    training = "tensorflow/training/docker"
    return [
        Candidate(DLC, "main", (f"docker/tensorflow/{minor}/Dockerfile.cpu",)),
        *_training(f"{training}/{minor}/py3", history=False),
        *_training(f"{training}/{minor}/py3", history=True),
        *_training(f"{training}/{version}/py3", history=True),
        *_training(f"{training}/{version}", history=True),
    ]


def _training(directory: str, *, history: bool) -> list[Candidate]:
    """The deep-learning-containers `master` layout: one Dockerfile with an ec2 and a sagemaker stage, or (older) a
    sagemaker Dockerfile built on the ec2 one or alone, with the list of core packages the image's tests check."""
    core = f"{directory}/Dockerfile.sagemaker.cpu.core_packages.json"
    return [
        Candidate(DLC, "master", tuple(f"{directory}/{name}" for name in names), core, history=history)
        for names in (
            ("Dockerfile.cpu",),
            ("Dockerfile.ec2.cpu", "Dockerfile.sagemaker.cpu"),
            ("Dockerfile.e3.cpu", "Dockerfile.sagemaker.cpu"),  # `ec2` was named `e3` until mid-2022
            ("Dockerfile.sagemaker.cpu",),
        )
    ]


def implied_release(framework: str, version: str) -> tuple[int, ...]:
    """Return the release of the framework's package an image version names: sklearn 1.2-1 is scikit-learn 1.2.x,
    xgboost 0.90-2 is xgboost 0.90.x, pytorch 2.1.0 is torch 2.1.0."""
    return Version(version.split("-")[0]).release


def matches(framework: str, version: str, installed: Mapping[str, Requirement]) -> bool:
    """Tell whether an image pins its framework's package at the release its version names."""
    wanted = implied_release(framework, version)
    return any(
        isinstance(pinned, Version) and _padded(pinned.release[: len(wanted)], len(wanted)) == wanted
        for _name, pinned in framework_pins(framework, installed)
    )


def _padded(release: tuple[int, ...], length: int) -> tuple[int, ...]:
    return release + (0,) * (length - len(release))


def framework_pins(framework: str, installed: Mapping[str, Requirement]) -> tuple[tuple[str, Version | str], ...]:
    """Return the exact pins of the framework's own package(s) an image installs, as (name, version): versions compare
    as versions (xgboost==1.0 pins what xgboost==1.0.0 does)."""
    pins: list[tuple[str, Version | str]] = []
    for name in FRAMEWORK_PACKAGES[framework]:
        requirement = installed.get(name)
        pinned = pinned_version(requirement) if requirement is not None else None
        if pinned is None:
            continue
        try:
            pins.append((name, Version(pinned)))
        except InvalidVersion:
            pins.append((name, pinned))
    return tuple(pins)


@dataclass
class Found:
    entry: dict[str, Any]
    repository: str
    branch: str
    commit: str


def replay(repository: Repository, commit: str, candidate: Candidate) -> Image | None:
    """Replay a candidate's Dockerfiles at a commit; None when one of its files is missing there."""
    image = Image(read=lambda path: repository.text(commit, path), build_args=candidate.build_args)
    try:
        for dockerfile in candidate.dockerfiles:
            image.build(dockerfile)
    except SourceMissingError:
        return None
    if candidate.core_packages and (core := repository.text(commit, candidate.core_packages)) is not None:
        image.apply_core_packages(core)
        image.files.append(candidate.core_packages)
    return image


def first_set(repository: Repository, commit: str, candidate: Candidate, framework: str, image: Image) -> str:
    """Return the day (YYYY-MM-DD, UTC) the framework version of `image`, the candidate replayed at `commit`, was first
    set.

    That is the committer date of the oldest revision in the unbroken run of revisions of the files the image was read
    from, newest first from `commit`, whose replay pins the framework's package(s) as the image does: a later
    maintenance edit does not move the date, an older revision pinning another version (or lacking the files) ends the
    run.
    """
    files = tuple(image.files)
    pins = framework_pins(framework, image.installed)
    oldest = commit
    for revision in repository.history(commit, files):
        older = replay(repository, revision, candidate)
        if older is None or framework_pins(framework, older.installed) != pins:
            break
        oldest = revision
    # `oldest` changed the files unless it is `commit` itself, a branch's tip that may not have: then the newest commit
    # that did (its files are the tip's) dates it.
    date = repository.date(oldest, files)
    if date is None:
        sys.exit(f"no commit of {repository.name} up to {commit} changed {' + '.join(files)}")
    return date


def find(framework: str, version: str, repositories: Mapping[str, Repository]) -> Found | None:
    """Return the data of the first candidate (or revision of it) that builds this image version."""
    for candidate in candidates(framework, version):
        repository = repositories[candidate.repository]
        tip = repository.commit(candidate.branch)
        if tip is None:
            continue
        revisions = [tip, *repository.history(tip, candidate.dockerfiles)] if candidate.history else [tip]
        for commit in revisions:
            image = replay(repository, commit, candidate)
            if image is None or not matches(framework, version, image.installed):
                continue
            for note in image.notes:
                print(f"{framework} {version}: {note}", file=sys.stderr)
            packages, toolkit = image.split()
            label = candidate.branch if commit == tip else commit[:12]
            entry = {
                "python": image.python(),
                "packages": packages,
                "toolkit": toolkit,
                "from": f"{candidate.repository}@{label}: {' + '.join(image.files)}",
                "date": first_set(repository, commit, candidate, framework, image),
            }
            return Found(entry, candidate.repository, candidate.branch, tip)
    return None


def images_python(config: Mapping[str, Any], version: str) -> str | None:
    """Return the Python version images.json names for a version when it names exactly one, as py310 (3.10)."""
    py_versions = config["versions"].get(version, {}).get("py_versions", [])
    match = re.fullmatch(r"py3(\d+)", py_versions[0]) if len(py_versions) == 1 else None
    return f"3.{match[1]}" if match else None


def build(repositories: Mapping[str, Repository], configs: Mapping[str, Any]) -> dict[str, Any]:
    """Return the document: every framework version images.json lists, its packages or its place under `missing`."""
    frameworks: dict[str, dict[str, Any]] = {}
    missing: dict[str, list[str]] = {}
    source: dict[str, dict[str, str]] = {}
    for framework in FRAMEWORKS:
        config = configs[framework]
        for version in config["versions"]:
            found = find(framework, version, repositories)
            if found is None:
                missing.setdefault(framework, []).append(version)
                continue
            expected = images_python(config, version)
            if found.entry["python"] is None:
                found.entry["python"] = expected
            elif expected is not None and expected != found.entry["python"]:
                print(
                    f"{framework} {version}: Python {found.entry['python']} (Dockerfiles), {expected} (images.json)",
                    file=sys.stderr,
                )
            frameworks.setdefault(framework, {})[version] = found.entry
            source.setdefault(found.repository, {})[found.branch] = found.commit
    return {"format": FORMAT, "source": source, "frameworks": frameworks, "missing": missing}


def render(document: Mapping[str, Any]) -> str:
    """Return the document as written: sorted keys, one entry per line where it helps a diff."""
    return json.dumps(document, indent=1, sort_keys=True, ensure_ascii=True) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, (option, variable) in REPOSITORIES.items():
        parser.add_argument(
            option, type=Path, default=os.environ.get(variable) or None, help=f"git directory of {name} (${variable})"
        )
    parser.add_argument("--output", type=Path, default=OUTPUT, help="where to write (default: the layer's data)")
    args = parser.parse_args()
    configs = json.loads(IMAGES.read_text(encoding="utf-8"))["configs"]
    with tempfile.TemporaryDirectory(prefix="framework-packages-") as scratch:
        repositories: dict[str, Repository] = {}
        for name, (option, _) in REPOSITORIES.items():
            given: Path | None = getattr(args, option.removeprefix("--").replace("-", "_"))
            repositories[name] = Repository(name, given if given is not None else clone(name, Path(scratch)))
        document = build(repositories, configs)
    text = render(document)
    args.output.write_text(text, encoding="utf-8")
    counts = ", ".join(f"{fw} {len(v)}" for fw, v in document["frameworks"].items())
    gaps = ", ".join(f"{fw} {' '.join(v)}" for fw, v in document["missing"].items())
    print(f"wrote {args.output} ({len(text.encode())} bytes): {counts}; missing: {gaps or 'none'}", file=sys.stderr)


if __name__ == "__main__":
    main()
