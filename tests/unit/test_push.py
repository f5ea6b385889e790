"""`sagepush push` on this machine: --set into the manifest, git archives, dirty trees and secrets refused."""

from __future__ import annotations

import datetime as dt
import subprocess
import tarfile
import tomllib
from typing import TYPE_CHECKING, Any, cast

import boto3
import pytest
from botocore.stub import ANY, Stubber
from typer.testing import CliRunner

from sagepush.staging import StagingError
from sagepush_cli import push as pushing
from sagepush_cli.main import EXIT_INPUT, app
from sagepush_cli.push import PushError

if TYPE_CHECKING:
    import io
    from pathlib import Path

MANIFEST = 'framework = "pytorch"\nframework_version = "2.5"\npy_version = "py311"\nentry_point = "train.py"\n\n[hyperparameters]\nlr = 0.1\n'
COMMITTER = ("-c", "user.name=Ada Lovelace", "-c", "user.email=ada@example.com", "-c", "commit.gpgsign=false")


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *COMMITTER, *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.fixture(autouse=True)
def _isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the user's own git configuration (hooks, signing, templates) must not reach these repositories
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "mnist"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "remote", "add", "origin", "https://ci:s3cr3t-token@github.com/acme/mnist.git")
    write(
        root,
        {
            "train.py": "print('training')\n",
            "sagepush.toml": MANIFEST,
            "pkg/model.py": "W = 1\n",
            "notebooks/scratch.ipynb": "{}\n",
            ".gitattributes": "notebooks export-ignore\n",
            ".gitignore": "*.log\n",
        },
    )
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "first")
    return root


def members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {m.name: cast("io.BufferedReader", tar.extractfile(m)).read() for m in tar if m.isreg()}


def archive_of(path: Path, *, worktree: bool = False, settings: tuple[str, ...] = ()) -> dict[str, bytes]:
    source = pushing.inspect_source(path, worktree=worktree)
    target = path.parent / "out.tar.gz"
    return members(pushing.write_archive(source, target, pushing.parse_settings(settings)))


# ------------------------------------------------------------------------------------------------------ --set


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        pytest.param("epochs=5", {"epochs": 5}, id="integer"),
        pytest.param("lr=0.001", {"lr": 0.001}, id="float"),
        pytest.param("use_spot_instances=true", {"use_spot_instances": True}, id="boolean"),
        pytest.param("entry_point=train.py", {"entry_point": "train.py"}, id="bare-word-is-a-string"),
        pytest.param("max_run=2h", {"max_run": "2h"}, id="duration-is-a-string"),
        pytest.param('framework_version="2.5"', {"framework_version": "2.5"}, id="quoted-string"),
        pytest.param("subnets=['a', 'b']", {"subnets": ["a", "b"]}, id="array"),
        pytest.param("hyperparameters.epochs=5", {"hyperparameters": {"epochs": 5}}, id="dotted-key"),
        pytest.param('tags."team.name"=ml', {"tags": {"team.name": "ml"}}, id="quoted-key-part"),
        pytest.param("environment={ A = '1' }", {"environment": {"A": "1"}}, id="inline-table"),
        pytest.param("note=a=b", {"note": "a=b"}, id="value-keeps-later-equals"),
    ],
)
def test_set_reads_toml_values_and_falls_back_to_strings(setting: str, expected: dict[str, Any]) -> None:
    assert pushing.settings_table(pushing.parse_settings([setting])) == expected


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        pytest.param(["epochs"], "is not key=value", id="no-equals"),
        pytest.param(["=5"], "is not key=value", id="no-key"),
        pytest.param(["a..b=1"], "is not a TOML key", id="bad-key"),
        pytest.param(["lr=1", "lr.x=2"], "`lr` is 1, not a table", id="inside-a-value"),
    ],
)
def test_bad_set_is_refused_naming_the_option(settings: list[str], message: str) -> None:
    with pytest.raises(PushError, match=message) as raised:
        pushing.parse_settings(settings)
    assert raised.value.where == "--set"


def test_set_is_written_into_the_manifest_keeping_the_rest(repo: Path) -> None:
    files = archive_of(repo, settings=("hyperparameters.epochs=5", "instance_type=ml.g5.xlarge"))

    manifest = tomllib.loads(files["sagepush.toml"].decode())
    assert manifest["hyperparameters"] == {"lr": 0.1, "epochs": 5}
    assert manifest["instance_type"] == "ml.g5.xlarge"
    assert manifest["framework_version"] == "2.5"
    assert list(files).count("sagepush.toml") == 1


def test_set_makes_a_matrix_like_any_other_field_and_its_jobs_are_checked_before_the_upload(repo: Path) -> None:
    from sagepush import staging
    from sagepush_cli import project as projects

    files = archive_of(
        repo,
        settings=("strategy.matrix.hyperparameters.lr=[0.1, 0.01]", "strategy.matrix.instance_type=['ml.m5.large']"),
    )

    manifest = tomllib.loads(files["sagepush.toml"].decode())
    assert manifest["strategy"] == {
        "matrix": {"hyperparameters": {"lr": [0.1, 0.01]}, "instance_type": ["ml.m5.large"]}
    }
    target = repo.parent / "staged.tar.gz"
    with (repo.parent / "out.tar.gz").open("rb") as src, target.open("wb") as dst:
        staged = staging.stage_archive(src, dst, filename="out.tar.gz")
    requests = projects.render_staged_jobs(staged, project="mnist", region="us-east-1")
    assert [r["HyperParameters"]["lr"] for r in requests] == ["0.1", "0.01"]


@pytest.mark.parametrize(
    ("files", "written", "table"),
    [
        pytest.param({}, "sagepush.toml", (), id="no-manifest-makes-one"),
        pytest.param({"sagepush.toml": "[tool.sagepush]\nx = 1\n"}, "sagepush.toml", ("tool", "sagepush"), id="tool"),
        pytest.param(
            {"pyproject.toml": "[project]\nname = 'p'\n[tool.sagepush]\nx = 1\n"},
            "pyproject.toml",
            ("tool", "sagepush"),
            id="pyproject",
        ),
        pytest.param({"pyproject.toml": "[project]\nname = 'p'\n"}, "sagepush.toml", (), id="pyproject-without-table"),
        pytest.param(
            {"sagepush.toml": "x = 1\n", "pyproject.toml": "[tool.sagepush]\ny = 2\n"},
            "sagepush.toml",
            (),
            id="sagepush-toml-first",
        ),
    ],
)
def test_set_goes_into_the_manifest_staging_reads(files: dict[str, str], written: str, table: tuple[str, ...]) -> None:
    name, text = pushing.manifest_with_settings(
        lambda n: files[n].encode() if n in files else None, pushing.parse_settings(["epochs=3"])
    )

    document = tomllib.loads(text.decode())
    assert name == written
    for part in table:
        document = document[part]
    assert document["epochs"] == 3


def test_set_refuses_a_manifest_that_is_not_toml() -> None:
    with pytest.raises(PushError, match="is not valid TOML") as raised:
        pushing.manifest_with_settings(lambda n: b"x = = 1" if n == "sagepush.toml" else None, [(("a",), 1)])
    assert raised.value.where == "sagepush.toml"


COMMENTED = """\
# Iris on SageMaker: the manifest sagepush reads.
framework = "sklearn"        # the container
framework_version = "1.2-1"

# What the job runs.
entry_point = "train.py"
environment = { A = "1" }

[hyperparameters]
# trees in the forest
n_estimators = 100  # more is slower
max_depth = 4

[tags]
team = "ml"
"""


def set_in(files: dict[str, str], *settings: str) -> tuple[str, str]:
    """The manifest file `--set settings` rewrites among `files`, and its new text."""
    read = lambda name: files[name].encode() if name in files else None  # noqa: E731
    name, text = pushing.manifest_with_settings(read, pushing.parse_settings(settings))
    return name, text.decode()


def test_set_keeps_the_manifests_comments_and_layout() -> None:
    _, text = set_in(
        {"sagepush.toml": COMMENTED},
        "hyperparameters.n_estimators=80",
        "hyperparameters.lr=0.1",
        "instance_type=ml.m5.large",
        "environment.B=2",
        "output.kms.key=k",
    )

    assert text == (
        "# Iris on SageMaker: the manifest sagepush reads.\n"
        'framework = "sklearn"        # the container\n'
        'framework_version = "1.2-1"\n'
        "\n"
        "# What the job runs.\n"
        'entry_point = "train.py"\n'
        'environment = { A = "1", B = 2}\n'  # an inline table stays inline
        'instance_type = "ml.m5.large"\n'  # a new value goes before the first [table]
        "\n"
        "[hyperparameters]\n"
        "# trees in the forest\n"
        "n_estimators = 80  # more is slower\n"  # changed in place, its comment kept
        "max_depth = 4\n"
        "lr = 0.1\n"
        "\n"
        "[tags]\n"
        'team = "ml"\n'
        "\n"
        "[output.kms]\n"
        'key = "k"\n'
    )


def test_set_in_pyproject_changes_only_the_sagepush_table() -> None:
    pyproject = (
        '[project]\nname = "iris"  # the distribution\n\n'
        "# sagepush reads this table\n[tool.sagepush]\nentry_point = 'train.py'  # literal string kept\n\n"
        "[tool.ruff]\nline-length = 120\n"
    )

    name, text = set_in({"pyproject.toml": pyproject}, "hyperparameters.epochs=3", "entry_point=main.py")

    assert name == "pyproject.toml"
    assert text == (
        '[project]\nname = "iris"  # the distribution\n\n'
        '# sagepush reads this table\n[tool.sagepush]\nentry_point = "main.py"  # literal string kept\n\n'
        "[tool.sagepush.hyperparameters]\nepochs = 3\n"
        "[tool.ruff]\nline-length = 120\n"
    )


@pytest.mark.parametrize(
    ("manifest", "setting", "expected"),
    [
        pytest.param("[a]\nx = 1\n\n[b]\ny = 2\n", "b=5", {"a": {"x": 1}, "b": 5}, id="table-becomes-a-value"),
        pytest.param("[a]\nx = 1\n", "a={ z = 1 }", {"a": {"z": 1}}, id="table-becomes-an-inline-table"),
        pytest.param("e = { A = { B = 1 } }\n", "e.A.C=2", {"e": {"A": {"B": 1, "C": 2}}}, id="inside-inline-tables"),
        pytest.param("a.b = 1\n", "a.c=2", {"a": {"b": 1, "c": 2}}, id="dotted-keys"),
        pytest.param("", 'tags."team.name"=ml', {"tags": {"team.name": "ml"}}, id="quoted-key-part"),
    ],
)
def test_set_means_the_same_whatever_the_manifests_shape(manifest: str, setting: str, expected: dict[str, Any]) -> None:
    _, text = set_in({"sagepush.toml": manifest}, setting)

    assert tomllib.loads(text) == expected


def test_set_values_of_every_toml_type_read_back_the_same() -> None:
    settings = {
        "name": r'"quote \" backslash \\ tab \t del \u007f é"',  # a TOML basic string, escapes and all
        "literal": "'C:\\data\\train'",  # a literal string: backslashes are kept
        "n": "3",
        "f": "1e20",
        "nan": "nan",
        "flag": "false",
        "when": "2024-01-02T03:04:05Z",
        "metric_definitions": "[{ Name = 'val:loss', Regex = 'val_loss=([0-9.]+)' }]",
        "empty": "{}",
        "hyperparameters": "{ lr = 0.1, layers = [64, 32] }",
    }

    _, text = set_in({}, *(f"{key}={value}" for key, value in settings.items()))

    read = tomllib.loads(text)
    assert read["name"] == 'quote " backslash \\ tab \t del \x7f é'
    assert read["literal"] == "C:\\data\\train"
    assert (read["n"], read["f"], read["flag"]) == (3, 1e20, False)
    assert read["nan"] != read["nan"]
    assert read["when"] == dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert read["metric_definitions"] == [{"Name": "val:loss", "Regex": "val_loss=([0-9.]+)"}]
    assert read["empty"] == {}
    assert read["hyperparameters"] == {"lr": 0.1, "layers": [64, 32]}


def test_set_refuses_to_write_a_manifest_that_would_mean_something_else(monkeypatch: pytest.MonkeyPatch) -> None:
    import tomlkit

    monkeypatch.setattr(tomlkit, "dumps", lambda document: "epochs = 4\n")

    with pytest.raises(PushError, match="cannot write the --set values into it") as raised:
        set_in({"sagepush.toml": "x = 1\n"}, "epochs=3")
    assert raised.value.where == "sagepush.toml"


# ------------------------------------------------------------------------------------------------- git sources


def test_commit_is_archived_with_git_archive_honouring_export_ignore(repo: Path) -> None:
    write(repo, {"untracked.py": "x = 1\n", "run.log": "noise\n"})

    files = archive_of(repo)

    assert sorted(files) == [".gitattributes", ".gitignore", "pkg/model.py", "sagepush.toml", "train.py"]
    assert files["train.py"] == b"print('training')\n"


def test_subdirectory_of_a_repository_is_archived_from_its_own_root(repo: Path) -> None:
    write(repo, {"pkg/sagepush.toml": "entry_point = 'model.py'\n"})
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "pkg manifest")

    source = pushing.inspect_source(repo / "pkg")

    assert source.git is not None and source.git.prefix == "pkg"
    assert sorted(archive_of(repo / "pkg")) == ["model.py", "sagepush.toml"]


def test_metadata_comes_from_git_without_remote_credentials(repo: Path) -> None:
    source = pushing.inspect_source(repo)
    commit = git(repo, "rev-parse", "HEAD")

    assert source.kind == "commit"
    assert source.metadata() == {
        "sagepush-commit": commit,
        "sagepush-branch": "main",
        "sagepush-repo": "https://github.com/acme/mnist.git",
        "sagepush-author": "Ada Lovelace <ada@example.com>",
    }
    key = pushing.upload_key("mnist", source, dt.datetime(2024, 1, 1, tzinfo=dt.UTC))
    assert key == f"incoming/mnist/{commit}.tar.gz"


def test_dirty_tree_is_refused_naming_the_changed_file(repo: Path) -> None:
    write(repo, {"train.py": "print('changed')\n"})

    with pytest.raises(PushError, match=r"uncommitted changes \(train.py\).*--worktree") as raised:
        pushing.inspect_source(repo)
    assert raised.value.where == str(repo)


def test_untracked_files_alone_do_not_make_the_tree_dirty(repo: Path) -> None:
    write(repo, {"notes.txt": "later\n"})

    source = pushing.inspect_source(repo)

    assert source.kind == "commit"
    assert source.git is not None and source.git.untracked == ("notes.txt",)


def test_worktree_carries_changes_and_untracked_files_but_not_ignored_ones(repo: Path) -> None:
    write(repo, {"train.py": "print('changed')\n", "extra.py": "x = 1\n", "run.log": "noise\n"})
    (repo / "pkg" / "model.py").unlink()

    source = pushing.inspect_source(repo, worktree=True)
    files = archive_of(repo, worktree=True)

    assert sorted(files) == [".gitattributes", ".gitignore", "extra.py", "sagepush.toml", "train.py"]
    assert files["train.py"] == b"print('changed')\n"
    assert source.metadata()["sagepush-commit"].endswith("-dirty")
    key = pushing.upload_key("mnist", source, dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC))
    assert key == "incoming/mnist/20240506T070809Z.tar.gz"


def test_plain_directory_is_archived_whole_without_git_metadata(tmp_path: Path) -> None:
    project = tmp_path / "iris"
    write(project, {"train.py": "print(1)\n", "data/a.csv": "1,2\n", ".git/HEAD": "ref"})

    source = pushing.inspect_source(project)

    assert source.kind == "directory" and source.metadata() == {}
    assert sorted(archive_of(project)) == ["data/a.csv", "train.py"]


# ---------------------------------------------------------------------------------------------- the whole push


def offline_session() -> boto3.Session:
    return boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")


class StubbedSession:
    """A session whose S3 client answers from a Stubber, so a push runs without a socket."""

    def __init__(self) -> None:
        self.s3 = offline_session().client("s3")
        self.stubber = Stubber(self.s3)
        self.region_name = "us-east-1"

    def client(self, service: str, **options: Any) -> Any:
        assert service == "s3"
        return self.s3


def test_secret_is_refused_before_anything_is_uploaded(repo: Path) -> None:
    write(repo, {"config/.env": "TOKEN=abc\n"})
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "oops")
    session = StubbedSession()  # no response queued: any AWS call would fail the test

    with session.stubber, pytest.raises(StagingError) as raised:
        pushing.push(repo, session=cast("boto3.Session", session), bucket="ingest")

    assert raised.value.rule == "secret"
    assert raised.value.where == "config/.env"


def test_push_uploads_the_archive_with_git_metadata(repo: Path) -> None:
    session = StubbedSession()
    commit = git(repo, "rev-parse", "HEAD")
    expected = {
        "Bucket": "ingest",
        "Key": f"incoming/mnist/{commit}.tar.gz",
        "Body": ANY,
        "ChecksumAlgorithm": ANY,
        "ContentType": "application/gzip",
        "Metadata": {
            "sagepush-commit": commit,
            "sagepush-branch": "main",
            "sagepush-repo": "https://github.com/acme/mnist.git",
            "sagepush-author": "Ada Lovelace <ada@example.com>",
        },
    }
    session.stubber.add_response("put_object", {"ETag": '"0"'}, expected)

    with session.stubber:
        pushed = pushing.push(
            repo, session=cast("boto3.Session", session), bucket="ingest", settings=["hyperparameters.epochs=2"]
        )

    session.stubber.assert_no_pending_responses()
    assert pushed.uri == f"s3://ingest/incoming/mnist/{commit}.tar.gz"
    assert pushed.job_name_prefix == f"mnist-{pushed.staged.digest[:8]}-"
    assert pushed.staged.manifest is not None
    assert pushed.staged.manifest.table["hyperparameters"] == {"lr": 0.1, "epochs": 2}


def test_missing_bucket_is_one_input_error(repo: Path) -> None:
    session = StubbedSession()
    session.stubber.add_client_error("put_object", "NoSuchBucket", "The specified bucket does not exist", 404)

    with session.stubber, pytest.raises(PushError, match="bucket 'gone' does not exist; nothing was uploaded"):
        pushing.push(repo, session=cast("boto3.Session", session), bucket="gone")


def test_no_bucket_and_no_stack_anywhere_is_an_input_error(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(PushError, match="no ingest bucket"):
        pushing.resolve_bucket(offline_session(), bucket=None, stack=None, samconfig=tmp_path / "samconfig.toml")


def test_samconfig_names_the_default_stack(tmp_path: Path) -> None:
    config = tmp_path / "samconfig.toml"
    config.write_text('version = 0.1\n[default.global.parameters]\nstack_name = "sagepush-dev"\n')

    assert pushing.samconfig_stack_name(config) == "sagepush-dev"
    assert pushing.samconfig_stack_name(tmp_path / "absent.toml") is None


def test_cli_reports_a_dirty_tree_in_one_line_with_exit_2(repo: Path) -> None:
    write(repo, {"train.py": "print('changed')\n"})

    result = CliRunner().invoke(app, ["push", str(repo), "--bucket", "ingest"])

    assert result.exit_code == EXIT_INPUT
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "uncommitted changes" in lines[0]
    assert "Traceback" not in result.stderr


def test_cli_rejects_bucket_and_stack_together(repo: Path) -> None:
    result = CliRunner().invoke(app, ["push", str(repo), "--bucket", "b", "--stack", "s"])

    assert result.exit_code == EXIT_INPUT
    assert "either --bucket or --stack" in result.stderr
