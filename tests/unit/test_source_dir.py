"""`source_dir` and `dependencies` mean what they mean to the SageMaker Python SDK: source_dir's contents are the staged
code's root, each dependency sits beside them under its name, and the entry point is relative to source_dir. Every
path is checked wherever staging runs (`sagepush stage`, `render`, `push`, StageFunction), naming the field."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, cast

import pytest
from typer.testing import CliRunner

from sagepush import jobs, request, spec, strategy
from sagepush.spec import SpecError
from sagepush.staging import StagedCode, stage_archive
from sagepush_cli import push as pushing
from sagepush_cli.main import app
from tests.unit.archives import file, tar_bytes
from tests.unit.test_push import StubbedSession

if TYPE_CHECKING:
    from pathlib import Path

    import boto3

SCRIPT = """framework = "sklearn"
framework_version = "1.2-1"
py_version = "py3"
instance_type = "ml.m5.large"
"""
PROJECT = {
    "src/train.py": b"import common, utils, model.net\n",
    "src/model/__init__.py": b"",
    "src/model/net.py": b"LAYERS = 3\n",
    "src/requirements.txt": b"pandas\n",
    "lib/common/__init__.py": b"SHARED = 1\n",
    "lib/common/io.py": b"def read(): ...\n",
    "tools/utils.py": b"def helper(): ...\n",
    "notebooks/explore.ipynb": b"{}\n",
    "requirements.txt": b"torch\n",
}
SDK_SHAPED = 'entry_point = "train.py"\nsource_dir = "src"\ndependencies = ["lib/common", "tools/utils.py"]\n'


def stage(files: dict[str, bytes], manifest: str) -> StagedCode:
    members = [file(name, data) for name, data in files.items()]
    members.append(file("sagepush.toml", (SCRIPT + manifest).encode()))
    return stage_archive(io.BytesIO(tar_bytes(members)), io.BytesIO(), filename="code.tar.gz")


def refusal(files: dict[str, bytes], manifest: str) -> SpecError:
    with pytest.raises(SpecError) as caught:
        stage(files, manifest)
    return caught.value


def resolved(manifest: str) -> spec.TrainingSpec:
    table = spec.find_manifest({"sagepush.toml": (SCRIPT + manifest).encode()})
    defaults = spec.Defaults(role="arn:aws:iam::123456789012:role/r", output_path="s3://sagepush-artifacts/output/p/")
    return spec.resolve_spec(table, defaults)


# ------------------------------------------------------------------------------------------------------ the layout


def test_source_dirs_contents_are_the_root_with_each_dependency_beside_them_by_its_name() -> None:
    staged = stage(PROJECT, SDK_SHAPED)

    assert staged.files == {
        "train.py",
        "model/__init__.py",
        "model/net.py",
        "requirements.txt",  # src/requirements.txt: the one the framework container installs, as with the SDK
        "common/__init__.py",
        "common/io.py",
        "utils.py",
        "sagepush.toml",  # the manifest stays, beside the code: the job's record and part of the digest
    }
    assert "common/" in staged.members and "model/" in staged.members
    the_spec = resolved(SDK_SHAPED)
    assert request.program(the_spec) == "train.py"  # relative to source_dir, as the SDK's sagemaker_program
    jobs.check_entry_point(the_spec, staged.files)


def test_without_source_dir_the_whole_project_is_staged_and_dependencies_are_added_at_the_root() -> None:
    staged = stage(PROJECT, 'entry_point = "src/train.py"\ndependencies = ["lib/common", "tools/utils.py"]\n')

    assert {"src/train.py", "lib/common/io.py", "common/io.py", "utils.py", "tools/utils.py"} <= staged.files
    assert staged.files >= set(PROJECT)  # requirements.txt at the root included


def test_a_nested_entry_point_is_relative_to_source_dir() -> None:
    manifest = 'entry_point = "model/net.py"\nsource_dir = "src"\n'
    staged = stage(PROJECT, manifest)

    assert request.program(resolved(manifest)) == "model/net.py"
    jobs.check_entry_point(resolved(manifest), staged.files)
    assert not any(name.startswith(("lib/", "tools/", "notebooks/")) for name in staged.members)


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        ('entry_point = "train.py"\nsource_dir = "./src/"\n', "src"),
        ('entry_point = "src/train.py"\nsource_dir = "."\n', None),
        ('entry_point = "train.py"\n[source_code]\nsource_dir = "src"\n', "src"),
    ],
    ids=["dot-slash", "the-root", "v3-spelling"],
)
def test_source_dir_is_read_in_either_spelling_and_normalised(manifest: str, expected: str | None) -> None:
    layout = spec.code_layout(spec.find_manifest({"sagepush.toml": (SCRIPT + manifest).encode()}))
    assert layout.source_dir == expected
    stage(PROJECT, manifest)  # and it stages


def test_a_dependency_already_at_its_place_is_staged_once() -> None:
    files = {"train.py": b"", "utils.py": b"X = 1\n", "src/helpers/x.py": b""}
    staged = stage(files, 'entry_point = "train.py"\ndependencies = ["utils.py"]\n')
    assert staged.members.count("utils.py") == 1
    staged = stage(
        {"src/train.py": b"", "src/pkg/a.py": b""},
        'entry_point = "train.py"\nsource_dir = "src"\ndependencies = ["src/pkg"]\n',
    )
    assert staged.files == {"train.py", "pkg/a.py", "sagepush.toml"}


def test_the_layout_changes_the_code_digest() -> None:
    flat = stage(PROJECT, 'entry_point = "src/train.py"\n')
    shaped = stage(PROJECT, SDK_SHAPED)
    assert flat.digest != shaped.digest


# ------------------------------------------------------------------------------------------------------ the errors


@pytest.mark.parametrize(
    ("manifest", "where", "problem"),
    [
        (
            'dependencies = ["lib/comon"]\n',
            "sagepush.toml: dependencies",
            "'lib/comon' is not a file or folder of the project; did you mean 'lib/common'",
        ),
        ('dependencies = ["../shared"]\n', "sagepush.toml: dependencies", '"../shared" is outside the project'),
        ('dependencies = ["/opt/lib"]\n', "sagepush.toml: dependencies", '"/opt/lib" is outside the project'),
        ('dependencies = ["s3://bucket/lib"]\n', "sagepush.toml: dependencies", "is outside the project"),
        (
            'dependencies = ["extra/model"]\n',
            "sagepush.toml: dependencies",
            "'extra/model' would be staged at the code's root as 'model', a name source_dir 'src' already holds",
        ),
        (
            'dependencies = ["requirements.txt"]\n',
            "sagepush.toml: dependencies",
            "as 'requirements.txt', a name source_dir 'src' already holds",
        ),
        (
            'dependencies = ["lib/common", "other/common"]\n',
            "sagepush.toml: dependencies",
            "'lib/common' and 'other/common' would both be staged at the code's root as 'common'",
        ),
        ('dependencies = "lib/common"\n', "sagepush.toml: dependencies", "must be a list of paths"),
        ('dependencies = ["lib/common", 3]\n', "sagepush.toml: dependencies[1]", "must be a string, found an integer"),
        ('dependencies = { path = "lib" }\n', "sagepush.toml: dependencies", "must be a list of paths"),
        ('dependencies = ["."]\n', "sagepush.toml: dependencies", "is the project root itself"),
        ('dependencies = ["lib/common", "./lib/common/"]\n', "sagepush.toml: dependencies", "is listed twice"),
        ('dependencies = ["notebooks/cache"]\n', "sagepush.toml: dependencies", "is not a file or folder"),
    ],
    ids=[
        "missing",
        "outside",
        "absolute",
        "s3-uri",
        "clashes-with-source-dir",
        "clashes-with-a-file-in-source-dir",
        "clashes-with-another-dependency",
        "a-string",
        "not-a-string",
        "a-table",
        "the-root",
        "twice",
        "missing-no-hint",
    ],
)
def test_a_wrong_dependency_is_refused_naming_the_field_and_the_path(manifest: str, where: str, problem: str) -> None:
    files = {**PROJECT, "other/common/__init__.py": b"", "extra/model/__init__.py": b""}
    error = refusal(files, 'entry_point = "train.py"\nsource_dir = "src"\n' + manifest)
    assert error.where == where
    assert problem in error.message


@pytest.mark.parametrize(
    ("manifest", "where", "problem"),
    [
        ('source_dir = "scripts"\n', "sagepush.toml: source_dir", "'scripts' is not a directory of the code"),
        ('source_dir = "tools/utils.py"\n', "sagepush.toml: source_dir", "'tools/utils.py' is a file"),
        ('source_dir = "../elsewhere"\n', "sagepush.toml: source_dir", "must be a path relative to the upload's root"),
        ('[source_code]\nsource_dir = "srcs"\n', "sagepush.toml: source_code.source_dir", "did you mean 'src'"),
        (
            'source_dir = "src"\n[source_code]\nsource_dir = "src"\n',
            "sagepush.toml: source_code.source_dir",
            "sets the same field as `source_dir`",
        ),
    ],
    ids=["missing", "a-file", "outside", "v3-missing", "both-spellings"],
)
def test_a_wrong_source_dir_is_refused_naming_the_field(manifest: str, where: str, problem: str) -> None:
    error = refusal(PROJECT, 'entry_point = "train.py"\n' + manifest)
    assert (error.where, problem in error.message) == (where, True), error.message


def test_a_source_dir_holding_a_file_named_like_the_manifest_is_refused() -> None:
    error = refusal({**PROJECT, "src/sagepush.toml": b""}, 'entry_point = "train.py"\nsource_dir = "src"\n')
    assert error.where == "sagepush.toml: source_dir"
    assert "holds sagepush.toml, the name the manifest" in error.message


def test_a_dependency_left_out_by_the_ignore_file_says_so() -> None:
    files = {**PROJECT, ".sagepushignore": b"lib/\n"}
    error = refusal(files, 'entry_point = "train.py"\nsource_dir = "src"\ndependencies = ["lib/common"]\n')
    assert error.where == "sagepush.toml: dependencies" and "it is left out: .sagepushignore" in error.message


def test_an_entry_point_outside_source_dir_is_refused_naming_source_dir() -> None:
    manifest = 'entry_point = "src/train.py"\nsource_dir = "src"\n'
    staged = stage(PROJECT, manifest)
    with pytest.raises(SpecError) as caught:
        jobs.check_entry_point(resolved(manifest), staged.files)
    assert caught.value.where == "sagepush.toml: entry_point"
    assert "'src/train.py' is not in the staged code (source_dir 'src': the entry point is relative to it)" in str(
        caught.value
    )
    assert "train.py" in caught.value.message


def test_dependencies_need_a_script() -> None:
    image = 'image_uri = "123456789012.dkr.ecr.us-east-1.amazonaws.com/own:1"\ndependencies = ["lib"]\n'
    defaults = spec.Defaults(
        role="arn:aws:iam::123456789012:role/r",
        instance_type="ml.m5.large",
        output_path="s3://sagepush-artifacts/output/p/",
    )
    with pytest.raises(SpecError) as caught:
        spec.resolve_spec(spec.find_manifest({"sagepush.toml": image.encode()}), defaults)
    assert caught.value.where == "sagepush.toml: dependencies" and "applies only to a script" in caught.value.message


@pytest.mark.parametrize(
    "matrix",
    ['source_dir = ["src", "."]', 'dependencies = [["lib/common"], []]', 'source_code = { source_dir = ["src"] }'],
    ids=["source-dir", "dependencies", "v3-source-dir"],
)
def test_a_matrix_cannot_vary_what_is_staged(matrix: str) -> None:
    table = spec.find_manifest({"sagepush.toml": f"{SCRIPT}[strategy.matrix]\n{matrix}\n".encode()})
    with pytest.raises(SpecError) as caught:
        strategy.of_manifest(table, max_jobs=4)
    assert "decides what is staged" in caught.value.message


def test_dependencies_round_trip_through_the_execution_document() -> None:
    the_spec = resolved(SDK_SHAPED)
    table = spec.spec_to_manifest(the_spec)
    assert table["dependencies"] == ["lib/common", "tools/utils.py"] and table["source_dir"] == "src"
    assert spec.resolve_spec(spec.Manifest(source="input", table=table), spec.Defaults()) == the_spec


# ---------------------------------------------------------------------------------- every command that stages


def project_dir(tmp_path: Path, manifest: str) -> Path:
    for name, data in PROJECT.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    (tmp_path / "sagepush.toml").write_text(SCRIPT + manifest)
    return tmp_path


MISSING = 'entry_point = "train.py"\nsource_dir = "src"\ndependencies = ["lib/comon"]\n'
MISSING_REASON = "sagepush.toml: dependencies: 'lib/comon' is not a file or folder of the project"


def test_render_refuses_a_missing_dependency_and_renders_the_sdk_program(tmp_path: Path) -> None:
    project = project_dir(tmp_path, MISSING)
    result = CliRunner().invoke(app, ["render", str(project), "--project", "demo", "--json"])
    assert result.exit_code == 2 and MISSING_REASON in " ".join(result.output.split())

    (project / "sagepush.toml").write_text(SCRIPT + SDK_SHAPED)
    result = CliRunner().invoke(app, ["render", str(project), "--project", "demo", "--json"])
    assert result.exit_code == 0, result.output
    assert '"sagemaker_program": "\\"train.py\\""' in result.output


def test_stage_refuses_a_missing_dependency_and_writes_nothing(tmp_path: Path) -> None:
    members = [file(name, data) for name, data in PROJECT.items()] + [
        file("sagepush.toml", (SCRIPT + MISSING).encode())
    ]
    archive = tmp_path / "code.tar.gz"
    archive.write_bytes(tar_bytes(members))
    output = tmp_path / "sourcedir.tar.gz"
    result = CliRunner().invoke(app, ["stage", str(archive), "-o", str(output), "--json"])
    assert result.exit_code == 2 and MISSING_REASON in " ".join(result.output.split())
    assert not output.exists() and not output.with_name(output.name + ".partial").exists()


def test_push_refuses_a_missing_dependency_before_anything_is_uploaded(tmp_path: Path) -> None:
    project = project_dir(tmp_path, MISSING)  # a plain directory: pushed as it is
    session = StubbedSession()  # no response queued: any AWS call would fail the test

    with session.stubber, pytest.raises(SpecError) as raised:
        pushing.push(project, session=cast("boto3.Session", session), project="demo", bucket="ingest")

    assert str(raised.value).startswith(MISSING_REASON)
