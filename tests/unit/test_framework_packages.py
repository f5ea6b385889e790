"""Framework images' Python packages: the generated data's coverage and pins, its reader, and its generator."""

from __future__ import annotations

import dataclasses
import datetime
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from sagepush import images
from sagepush.images import (
    DATA_FILE,
    PACKAGES_FILE,
    FrameworkEnvironment,
    ImageError,
    framework_environment,
    training_image_uri,
)

if TYPE_CHECKING:
    from types import ModuleType

GENERATOR = Path(__file__).resolve().parents[2] / "scripts" / "generate_framework_packages.py"
DATA: dict[str, Any] = json.loads(PACKAGES_FILE.read_text(encoding="utf-8"))
CONFIGS: dict[str, Any] = json.loads(DATA_FILE.read_text(encoding="utf-8"))["configs"]
FRAMEWORKS = ("sklearn", "xgboost", "pytorch", "tensorflow")
# Versions images.json lists whose image no Dockerfile of the three repositories builds.
GAPS = {
    "sklearn": set(),
    # `xgboost:1` is the built-in algorithm's own image (XGBoost 0.72), not the framework container.
    "xgboost": {"1"},
    # The `sagemaker-pytorch` images, built in aws/sagemaker-pytorch-container before the DLCs took over.
    "pytorch": {"0.4.0", "1.0.0", "1.1.0"},
    # The `sagemaker-tensorflow` and `sagemaker-tensorflow-scriptmode` images of aws/sagemaker-tensorflow-container;
    # no revision of deep-learning-containers pins TensorFlow 2.0.0 (its 2.0 directory starts at 2.0.1).
    "tensorflow": {"1.4.1", "1.5.0", "1.6.0", "1.7.0", "1.8.0", "1.9.0", "1.10.0", "1.11.0", "2.0.0"},
}
# The distributions an image version names the version of.
OWN_PACKAGES = {
    "sklearn": {"scikit-learn"},
    "xgboost": {"xgboost"},
    "pytorch": {"torch"},
    "tensorflow": {"tensorflow", "tensorflow-cpu"},
}
ENTRIES = [
    pytest.param(framework, version, entry, id=f"{framework}-{version}")
    for framework, versions in DATA["frameworks"].items()
    for version, entry in versions.items()
]


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_framework_packages", GENERATOR)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- the data


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_covers_every_version_images_json_lists_but_the_known_gaps(framework: str) -> None:
    listed = set(CONFIGS[framework]["versions"])
    covered = set(DATA["frameworks"].get(framework, {}))
    assert covered <= listed
    assert listed - covered == GAPS[framework]
    assert set(DATA["missing"].get(framework, [])) == GAPS[framework]


def test_covers_the_newest_pytorch_and_tensorflow_images() -> None:
    for framework in ("pytorch", "tensorflow"):
        newest = sorted(CONFIGS[framework]["versions"], key=Version)[-8:]
        assert set(newest) <= set(DATA["frameworks"][framework])


@pytest.mark.parametrize(("framework", "version", "entry"), ENTRIES)
def test_each_image_pins_its_framework_at_the_version_its_name_gives(
    framework: str, version: str, entry: dict[str, Any]
) -> None:
    # sklearn 1.2-1 and xgboost 1.7-1 name a major.minor (the container build follows the dash); pytorch and
    # tensorflow versions name the release itself.
    named = Version(version.split("-")[0]).release
    pins = [
        Requirement(r) for r in entry["packages"] if canonicalize_name(Requirement(r).name) in OWN_PACKAGES[framework]
    ]
    releases = [Version(s.version).release for r in pins for s in r.specifier if s.operator == "=="]
    assert any(release[: len(named)] + (0,) * (len(named) - len(release)) == named for release in releases), pins


@pytest.mark.parametrize(
    ("framework", "version", "pin"),
    [
        ("sklearn", "1.2-1", "scikit-learn==1.2.1"),
        ("sklearn", "1.0-1", "scikit-learn==1.0.2"),
        ("sklearn", "1.4-2-py312", "scikit-learn==1.4.2"),
        ("sklearn", "1.9-0", "scikit-learn==1.9.0"),
        ("xgboost", "1.7-1", "xgboost==1.7."),
        ("xgboost", "3.0-5", "xgboost==3.0.5"),
        ("pytorch", "2.1.0", "torch==2.1.0"),
        ("pytorch", "2.5.1", "torch==2.5.1"),
        ("tensorflow", "2.14.1", "tensorflow-cpu==2.14.1"),
    ],
)
def test_known_pins(framework: str, version: str, pin: str) -> None:
    packages = DATA["frameworks"][framework][version]["packages"]
    assert any(p == pin or (pin.endswith(".") and p.startswith(pin)) for p in packages), packages


@pytest.mark.parametrize(("framework", "version", "entry"), ENTRIES)
def test_requirements_are_canonical_pep508_sorted_and_apart(
    framework: str, version: str, entry: dict[str, Any]
) -> None:
    for field in ("packages", "toolkit"):
        requirements = [Requirement(text) for text in entry[field]]
        names = [r.name for r in requirements]
        assert names == [canonicalize_name(n) for n in names]
        assert names == sorted(names)
        assert len(set(names)) == len(names)
        assert not {"pip", "setuptools", "wheel", "cmake", "typing"} & set(names)
    toolkit = {Requirement(t).name for t in entry["toolkit"]}
    assert not toolkit & {Requirement(p).name for p in entry["packages"]}
    assert all(n.startswith("sagemaker-") or n in ("multi-model-server", "model-archiver") for n in toolkit)


@pytest.mark.parametrize(("framework", "version", "entry"), ENTRIES)
def test_python_is_a_minor_version_agreeing_with_images_json(
    framework: str, version: str, entry: dict[str, Any]
) -> None:
    assert re.fullmatch(r"3\.\d+", entry["python"])
    py_versions = CONFIGS[framework]["versions"][version].get("py_versions", [])
    if len(py_versions) == 1 and py_versions[0] != "py3":
        assert entry["python"] == f"3.{py_versions[0].removeprefix('py3')}"


@pytest.mark.parametrize(("framework", "version", "entry"), ENTRIES)
def test_each_image_is_dated_by_when_its_framework_version_was_set(
    framework: str, version: str, entry: dict[str, Any]
) -> None:
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", entry["date"])
    date = datetime.date.fromisoformat(entry["date"])
    # No commit of the repositories read is older than 2018.
    assert datetime.date(2018, 1, 1) <= date <= datetime.datetime.now(datetime.UTC).date()


def test_the_file_is_written_as_the_generator_writes_it(generator: ModuleType) -> None:
    text = PACKAGES_FILE.read_text(encoding="utf-8")
    assert generator.render(json.loads(text)) == text
    assert DATA["format"] == generator.FORMAT
    assert set(DATA["source"]) <= set(generator.REPOSITORIES)
    assert all(re.fullmatch(r"[0-9a-f]{40}", c) for commits in DATA["source"].values() for c in commits.values())


# ---------------------------------------------------------------- the reader


@pytest.mark.parametrize(
    ("framework", "asked", "full"),
    [
        ("pytorch", "2.1", "2.1.0"),
        ("pytorch", "2.5", "2.5.1"),
        ("pytorch", "", images._table()["latest"]["pytorch"]),  # an empty version is the latest, 2.10.0 today
        ("tensorflow", "2.14", "2.14.1"),
        ("sklearn", "1.2-1", "1.2-1"),
        ("xgboost", "1.7-1", "1.7-1"),
    ],
)
def test_reader_resolves_versions_as_the_image_lookup_does(framework: str, asked: str, full: str) -> None:
    found = framework_environment(framework, asked)
    entry = DATA["frameworks"][framework][full]
    assert found == FrameworkEnvironment(
        python=entry["python"],
        packages=tuple(entry["packages"]),
        toolkit=tuple(entry["toolkit"]),
        source=entry["from"],
        date=entry["date"],
    )


@pytest.mark.parametrize("framework", ["pytorch", "tensorflow"])
def test_every_alias_reads_its_full_version(framework: str) -> None:
    aliases: dict[str, str] = CONFIGS[framework]["version_aliases"]
    for alias, full in aliases.items():
        assert framework_environment(framework, alias) == framework_environment(framework, full), alias


@pytest.mark.parametrize(
    ("framework", "version"),
    [
        ("pytorch", "9.9"),  # no such image
        ("pytorch", "1.0"),  # an image the repositories do not build
        ("xgboost", "latest"),  # the built-in algorithm's image
        ("huggingface", "4.56"),
        ("mxnet", "1.9"),
    ],
)
def test_reader_answers_none_where_the_data_has_nothing(framework: str, version: str) -> None:
    assert framework_environment(framework, version) is None


def test_reader_refuses_what_the_image_lookup_refuses() -> None:
    with pytest.raises(ImageError) as raised:
        training_image_uri("pytorch", "9.9", region="us-east-1", instance_type="ml.m5.xlarge", py_version="py310")
    assert raised.value.where == "framework_version"
    assert framework_environment("pytorch", "9.9") is None


def test_reader_gives_a_frozen_value_from_a_cached_load() -> None:
    found = framework_environment("sklearn", "1.2-1")
    assert found is not None
    assert found.python == "3.9"
    assert "scikit-learn==1.2.1" in found.packages
    assert "sagemaker-training==4.8.0" in found.toolkit
    assert found.source.startswith("aws/sagemaker-scikit-learn-container@1.2-1: ")
    assert found.date is not None
    # The day scikit-learn 1.2.1 went in: after it came out, before scikit-learn 1.3, whatever maintenance came since.
    assert datetime.date(2023, 1, 1) <= datetime.date.fromisoformat(found.date) < datetime.date(2023, 6, 30)
    with pytest.raises(dataclasses.FrozenInstanceError):
        found.python = "3.12"  # type: ignore[misc]
    assert images._packages() is images._packages()


# ---------------------------------------------------------------- the generator's parsing


def test_instructions_join_continuations_and_drop_comments(generator: ModuleType) -> None:
    text = "FROM x AS base\n# a comment\nRUN a \\\n    # inside\n\n    && b\narg Y=1\n"
    assert generator.instructions(text) == [("FROM", "x AS base"), ("RUN", "a  && b"), ("ARG", "Y=1")]


def test_shell_commands_split_at_operators_and_drop_redirections(generator: ModuleType) -> None:
    script = "pip install a 2>/dev/null && cd /x; echo 'a && b' | tee log || (true)"
    assert generator.shell_commands(script) == [
        ["pip", "install", "a"],
        ["cd", "/x"],
        ["echo", "a && b"],
        ["tee", "log"],
        ["true"],
    ]


def test_expand_substitutes_known_variables_and_defaults(generator: ModuleType) -> None:
    assert generator.expand("${A}-$B-${C:-c}-${D}-$HOME", {"A": "a", "B": "b"}) == "a-b-c-${D}-$HOME"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("pytorch=2.1.0", ("torch", "torch==2.1.0")),
        ("python=3.10.12", ("python", "3.10.12")),
        ("accelerate=0.22.0", ("accelerate", "accelerate==0.22.0")),
        ("conda-forge::numpy>=1.2", ("numpy", "numpy>=1.2")),
        ("numpy=1.2*", ("numpy", "numpy==1.2.*")),
        ("scipy 1.8.0", ("scipy", "scipy==1.8.0")),
        ("mkl<2024.1.0", None),
        ("libcurl", None),
        ("cpuonly", None),
    ],
)
def test_conda_specs(generator: ModuleType, spec: str, expected: tuple[str, str] | None) -> None:
    assert generator.conda_requirement(spec) == expected


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("https://x/cpu/torch-2.5.1%2Bcpu-cp311-cp311-linux_x86_64.whl", "torch==2.5.1"),
        ("https://x/tensorflow_cpu-2.14.1-cp310-cp310-linux_x86_64.whl", "tensorflow-cpu==2.14.1"),
        ("/sagemaker_xgboost_container-2.0-py2.py3-none-any.whl", "sagemaker-xgboost-container==2.0"),
        ("sagemaker_tensorflow_training-20.4.1.tar.gz", "sagemaker-tensorflow-training==20.4.1"),
        ("dist/*.whl", None),
        ("requirements.txt", None),
    ],
)
def test_wheel_and_sdist_names(generator: ModuleType, location: str, expected: str | None) -> None:
    assert generator.wheel_requirement(location) == expected


def test_named_globs_and_repositories(generator: ModuleType) -> None:
    assert generator.glob_requirement("sagemaker_tensorflow_container*.tar.gz") == "sagemaker-tensorflow-container"
    assert generator.glob_requirement("dist/*.whl") is None
    assert (
        generator.vcs_requirement("git+https://github.com/awslabs/sagemaker-debugger.git@1.0.29")
        == "smdebug @ git+https://github.com/awslabs/sagemaker-debugger.git@1.0.29"
    )
    assert generator.vcs_requirement("git+https://github.com/someone/else.git") is None


def test_a_later_install_keeps_a_pin_it_is_satisfied_with_unless_it_upgrades(generator: ModuleType) -> None:
    image = generator.Image(read=lambda path: None)
    image.install("numpy==1.24.1", upgrade=False)
    image.install("numpy>=1.20", upgrade=False)
    assert str(image.installed["numpy"]) == "numpy==1.24.1"
    image.install("numpy==2.1.0", upgrade=False)
    assert str(image.installed["numpy"]) == "numpy==2.1.0"
    image.install("numpy", upgrade=True)
    assert str(image.installed["numpy"]) == "numpy"
    image.install("torch==2.5.1+cpu", upgrade=False)
    assert str(image.installed["torch"]) == "torch==2.5.1"
    image.uninstall(["-y", "Torch"])
    assert "torch" not in image.installed


# ---------------------------------------------------------------- the generator on fake repositories

SKLEARN_BASE = """\
ARG PYTHON_VERSION=3.9
FROM ubuntu:20.04
ARG PYTHON_VERSION
ARG SKLEARN=1.2.1
RUN apt-get update && apt-get install -y python3-dev cmake \\
    # a comment inside the instruction

 && conda install -c conda-forge python=${PYTHON_VERSION} pyarrow=14.0.1 mkl \\
 && python3 -m pip install --upgrade pip
RUN python3 -m pip install --no-cache -I scikit-learn==${SKLEARN} numpy==1.24.1
"""
SKLEARN_FINAL = """\
FROM sklearn-base:1.2-1
COPY requirements.txt /requirements.txt
RUN python -m pip install -r /requirements.txt && rm /requirements.txt
COPY dist/sagemaker_sklearn_container-2.0-py3-none-any.whl /toolkit-1.0-py3-none-any.whl
RUN pip install --no-cache /toolkit-1.0-py3-none-any.whl 2>/dev/null
"""
SKLEARN_REQUIREMENTS = """\
numpy>=1.20  # the base's pin satisfies it: kept
pandas==1.5.3
scikit-learn
sagemaker-training==4.8.0
six==1.15.0
setuptools
"""
PYTORCH = """\
ARG PYTHON_VERSION=3.10.12
ARG PYTORCH_VERSION={torch}
FROM ubuntu:20.04 AS common
ARG PYTHON_VERSION
RUN mamba install -y -c conda-forge python=$PYTHON_VERSION "cryptography>=42" typing
FROM common AS ec2
RUN pip install ec2-only==1.0
FROM common AS sagemaker
ARG PYTORCH_VERSION
ARG TORCH_URL=https://example.com/cpu/torch-${{PYTORCH_VERSION}}%2Bcpu-cp310-cp310-linux_x86_64.whl
RUN pip install --no-cache-dir -U ${{TORCH_URL}} torchvision \\
 && pip install --no-cache-dir "sagemaker>=2,<3" sagemaker-pytorch-training \\
 && pip uninstall -y typing
"""
CORE_PACKAGES = '{"torchvision": {"version_specifier": "==0.16.0"}, "torchdata": {"version_specifier": "==0.7.0"}}'
XGBOOST = """\
ARG PYTHON_VERSION=3.12
FROM amazonlinux:2023 AS builder
ARG PYTHON_VERSION
COPY docker/xgboost/pyproject.toml docker/xgboost/uv.lock /tmp/build/
WORKDIR /tmp/build
RUN --mount=type=cache,target=/root/.cache/uv uv sync --frozen --no-dev --no-install-project
FROM amazonlinux:2023 AS xgboost-sagemaker
COPY --from=builder /opt/venv /opt/venv
RUN pip install --no-cache-dir git+https://github.com/awslabs/sagemaker-debugger.git@v1.0.32
"""
XGBOOST_PYPROJECT = """\
[project]
name = "xgboost-dlc"
version = "3.2.0"
dependencies = ["xgboost==3.2.0", "dask[dataframe]>=2026", "numpy", "sagemaker-containers==2.8.6.post2"]

[tool.uv]
override-dependencies = ["numpy<2.2"]
"""
XGBOOST_LOCK = "".join(
    f'[[package]]\nname = "{name}"\nversion = "{version}"\n\n'
    for name, version in [
        ("dask", "2026.1.1"),
        ("numpy", "2.1.0"),
        ("sagemaker-containers", "2.8.6.post2"),
        ("xgboost", "3.2.0"),
        ("xgboost-dlc", "3.2.0"),
    ]
)
TRAINING = "pytorch/training/docker/2.1/py3"


def _git(repo: Path, *args: str, date: str | None = None) -> str:
    environment = {
        **os.environ,
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        **({"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date} if date else {}),
    }
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, env=environment, check=True)
    return done.stdout.strip()


def _commit(repo: Path, branch: str, files: dict[str, str], date: str = "2024-01-02T12:00:00+00:00") -> str:
    """Commit `files` as the whole tree of `branch` (created as an orphan when new) on `date`; return the commit."""
    if not (repo / ".git").is_dir():
        repo.mkdir(parents=True)
        _git(repo, "init", "--quiet")
    if _git(repo, "branch", "--list", branch):
        _git(repo, "checkout", "--quiet", branch)
    else:
        _git(repo, "checkout", "--quiet", "--orphan", branch)
    _git(repo, "rm", "-r", "--quiet", "--force", "--ignore-unmatch", ".")
    for path, text in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text, encoding="utf-8")
    _git(repo, "add", "--all")
    _git(repo, "commit", "--quiet", "--message", f"{branch}", date=date)
    return _git(repo, "rev-parse", "HEAD")


def test_generator_builds_the_document_from_the_repositories(generator: ModuleType, tmp_path: Path) -> None:
    # Given: a scikit-learn container branch, deep-learning-containers' `main` and a `master` whose newest revision
    # moved on to a torch images.json does not list. The scikit-learn branch first pinned scikit-learn 1.2.0, then
    # 1.2.1 (the day it dates from: in UTC, the day after the committer's own), then had a maintenance edit of its
    # requirements and a README change; `master` pinned torch 2.1.0 already before the revision read.
    sklearn_files = {
        "docker/1.2-1/base/Dockerfile.cpu": SKLEARN_BASE,
        "docker/1.2-1/final/Dockerfile.cpu": SKLEARN_FINAL,
        "requirements.txt": SKLEARN_REQUIREMENTS,
    }
    earlier = {**sklearn_files, "requirements.txt": SKLEARN_REQUIREMENTS.replace("six==1.15.0", "six==1.14.0")}
    first = {**earlier, "docker/1.2-1/base/Dockerfile.cpu": SKLEARN_BASE.replace("SKLEARN=1.2.1", "SKLEARN=1.2.0")}
    _commit(tmp_path / "sklearn", "1.2-1", first, date="2022-12-20T12:00:00+00:00")
    _commit(tmp_path / "sklearn", "1.2-1", earlier, date="2023-03-01T20:00:00-07:00")
    _commit(tmp_path / "sklearn", "1.2-1", sklearn_files, date="2024-10-25T12:00:00+00:00")
    sklearn = _commit(
        tmp_path / "sklearn", "1.2-1", {**sklearn_files, "README.md": "docs\n"}, date="2025-01-01T00:00:00+00:00"
    )
    dlc = tmp_path / "dlc"
    main = _commit(
        dlc,
        "main",
        {
            "docker/xgboost/Dockerfile": XGBOOST,
            "docker/xgboost/pyproject.toml": XGBOOST_PYPROJECT,
            "docker/xgboost/uv.lock": XGBOOST_LOCK,
        },
    )
    files = {f"{TRAINING}/Dockerfile.sagemaker.cpu.core_packages.json": CORE_PACKAGES}
    pytorch = {f"{TRAINING}/Dockerfile.cpu": PYTORCH.format(torch="2.1.0")}
    ec2 = PYTORCH.format(torch="2.1.0").replace("ec2-only==1.0", "ec2-only==0.9")  # a stage the image does not build
    _commit(dlc, "master", {f"{TRAINING}/Dockerfile.cpu": ec2}, date="2023-09-20T09:00:00+02:00")
    older = _commit(dlc, "master", {**files, **pytorch}, date="2023-10-05T09:00:00+02:00")
    newest = _commit(dlc, "master", {**files, f"{TRAINING}/Dockerfile.cpu": PYTORCH.format(torch="2.1.2")})
    _commit(tmp_path / "xgboost", "master", {"README.md": "moved\n"})
    repositories = {
        generator.SKLEARN: generator.Repository(generator.SKLEARN, tmp_path / "sklearn"),
        generator.XGBOOST: generator.Repository(generator.XGBOOST, tmp_path / "xgboost"),
        generator.DLC: generator.Repository(generator.DLC, dlc),
    }
    configs = {
        "sklearn": {"versions": {"1.2-1": {"py_versions": ["py3"]}}},
        "xgboost": {"versions": {"1": {}, "3.2-0": {}}},
        "pytorch": {"versions": {"2.1.0": {"py_versions": ["py310"]}}},
        "tensorflow": {"versions": {}},
    }

    document = generator.build(repositories, configs)

    assert document == {
        "format": 1,
        "source": {
            generator.SKLEARN: {"1.2-1": sklearn},
            generator.DLC: {"main": main, "master": newest},
        },
        "frameworks": {
            "sklearn": {
                "1.2-1": {
                    "python": "3.9",
                    "packages": [
                        "numpy==1.24.1",
                        "pandas==1.5.3",
                        "pyarrow==14.0.1",
                        "scikit-learn==1.2.1",
                        "six==1.15.0",
                    ],
                    "toolkit": ["sagemaker-sklearn-container==2.0", "sagemaker-training==4.8.0"],
                    "from": f"{generator.SKLEARN}@1.2-1: docker/1.2-1/base/Dockerfile.cpu"
                    " + docker/1.2-1/final/Dockerfile.cpu + requirements.txt",
                    "date": "2023-03-02",
                }
            },
            "xgboost": {
                "3.2-0": {
                    "python": "3.12",
                    "packages": [
                        "dask[dataframe]==2026.1.1",
                        "numpy==2.1.0",
                        "smdebug @ git+https://github.com/awslabs/sagemaker-debugger.git@v1.0.32",
                        "xgboost==3.2.0",
                    ],
                    "toolkit": ["sagemaker-containers==2.8.6.post2"],
                    "from": f"{generator.DLC}@main: docker/xgboost/Dockerfile + docker/xgboost/pyproject.toml"
                    " + docker/xgboost/uv.lock",
                    "date": "2024-01-02",
                }
            },
            "pytorch": {
                "2.1.0": {
                    "python": "3.10",
                    "packages": [
                        "cryptography>=42",
                        "sagemaker<3,>=2",
                        "torch==2.1.0",
                        "torchdata==0.7.0",
                        "torchvision==0.16.0",
                    ],
                    "toolkit": ["sagemaker-pytorch-training"],
                    "from": f"{generator.DLC}@{older[:12]}: {TRAINING}/Dockerfile.cpu"
                    f" + {TRAINING}/Dockerfile.sagemaker.cpu.core_packages.json",
                    "date": "2023-09-20",
                }
            },
        },
        "missing": {"xgboost": ["1"]},
    }


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [("1700000000", "2023-11-14"), ("1729816642", "2024-10-25"), ("1514764799", "2017-12-31")],
)
def test_commit_dates_are_utc_days(generator: ModuleType, timestamp: str, expected: str) -> None:
    assert generator.commit_date(timestamp) == expected


def test_framework_pins_compare_as_versions(generator: ModuleType) -> None:
    def pins(framework: str, *requirements: str) -> tuple[tuple[str, Any], ...]:
        installed = {Requirement(r).name: Requirement(r) for r in requirements}
        return generator.framework_pins(framework, installed)  # type: ignore[no-any-return]

    assert pins("xgboost", "xgboost==1.0") == pins("xgboost", "xgboost==1.0.0", "numpy==2.0")
    assert pins("xgboost", "xgboost==1.0") != pins("xgboost", "xgboost==1.0.2")
    assert pins("pytorch", "torch>=2") == pins("pytorch") == ()
    assert pins("tensorflow", "tensorflow-cpu==2.14.1") != pins("tensorflow", "tensorflow==2.14.1")


def test_generator_dates_no_files_when_no_commit_touched_them(generator: ModuleType, tmp_path: Path) -> None:
    commit = _commit(tmp_path / "repo", "master", {"a.txt": "a\n"}, date="2020-02-29T23:30:00-01:00")
    repository = generator.Repository(generator.DLC, tmp_path / "repo")
    assert repository.date(commit, ("a.txt",)) == "2020-03-01"
    assert repository.date(commit, ("b.txt",)) is None


def test_generator_refuses_a_directory_that_is_no_repository(generator: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no git directory"):
        generator.Repository(generator.DLC, tmp_path)
