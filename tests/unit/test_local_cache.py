"""The local stack's cache: pruning by last use, never what is in use, and tests that never touch the user's cache."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sagepush.spec import SpecError
from sagepush_cli.local import cache
from sagepush_cli.local.environments import Environments
from sagepush_cli.local.trainer import home
from sagepush_cli.main import app
from tests.conftest import CacheWriteGuard, users_caches

ROOT = Path(__file__).resolve().parents[2]
DAY = 86400.0
NOW = time.time()


def write(path: Path, size: int = 10) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    return path


def age(path: Path, days: float) -> Path:
    """Make `path` and everything in it last modified `days` ago (children first: writing them touches the parent)."""
    stamp = NOW - days * DAY
    for inner in sorted(path.rglob("*"), key=lambda p: len(p.parts), reverse=True) if path.is_dir() else []:
        os.utime(inner, (stamp, stamp), follow_symlinks=False)
    os.utime(path, (stamp, stamp), follow_symlinks=False)
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "local"


def job(root: Path, name: str, days: float, size: int = 100) -> Path:
    directory = root / "jobs" / name
    write(directory / "training.log", size)
    write(directory / "model" / "model.joblib", size)
    return age(directory, days)


def env(root: Path, name: str, days: float) -> Path:
    directory = root / "envs" / name
    write(directory / "lib" / "site.py", 50)
    write(directory / ".ready", 2)
    return age(directory, days)


def staged(root: Path, key: str, days: float, size: int = 1000) -> Path:
    return age(write(root / "staged-code" / "sagepush-local" / key, size), days)


# ---------------------------------------------------------------------- pruning by age
def test_prune_removes_each_kind_unused_for_longer_than_the_age_and_keeps_the_rest(root: Path) -> None:
    old_job, new_job = job(root, "iris-old", 20), job(root, "iris-new", 1)
    old_env, new_env = env(root, "aaaa", 30), env(root, "bbbb", 2)
    half_built = env(root, ".cccc.1234abcd", 15)
    old_code = staged(root, "code/iris/1111/sourcedir.tar.gz", 15)
    new_code = staged(root, "code/iris/2222/sourcedir.tar.gz", 3)
    endpoint = age(write(root / "endpoint"), 40)

    pruned = cache.prune(root, older_than=14 * DAY, now=NOW)

    assert sorted((e.kind, e.path) for e in pruned.removed) == sorted(
        [
            ("job", old_job),
            ("environment", old_env),
            ("environment", half_built),
            ("staged code", old_code),
        ]
    )
    assert pruned.bytes_freed == 200 + 52 + 52 + 1000
    assert not any(path.exists() for path in (old_job, old_env, half_built, old_code))
    assert all(path.exists() for path in (new_job, new_env, new_code, endpoint))
    assert not old_code.parent.exists() and new_code.parent.is_dir()  # emptied folders go too
    assert pruned.in_use == [] and pruned.failed == []


def test_an_entry_written_to_recently_is_kept_however_old_the_rest_of_it(root: Path) -> None:
    directory = job(root, "iris-long", 30)
    write(directory / "output" / "data" / "last.csv")  # a run still writing into an old job directory

    assert cache.prune(root, older_than=14 * DAY, now=NOW).removed == []
    assert directory.is_dir()


def test_a_dry_run_reports_what_it_would_remove_and_removes_nothing(root: Path) -> None:
    old_job = job(root, "iris-old", 20)

    pruned = cache.prune(root, older_than=14 * DAY, dry_run=True, now=NOW)

    assert [e.path for e in pruned.removed] == [old_job] and pruned.bytes_freed == 200
    assert old_job.is_dir()


def test_a_file_hard_linked_from_elsewhere_is_not_counted_as_freed(root: Path, tmp_path: Path) -> None:
    directory = root / "envs" / "dddd"
    write(tmp_path / "uv-cache" / "numpy.so", 5000)
    directory.mkdir(parents=True)
    os.link(tmp_path / "uv-cache" / "numpy.so", directory / "numpy.so")
    write(directory / ".ready", 2)
    age(directory, 20)

    pruned = cache.prune(root, older_than=14 * DAY, now=NOW)

    assert [e.path for e in pruned.removed] == [directory] and pruned.bytes_freed == 2
    assert (tmp_path / "uv-cache" / "numpy.so").is_file()


def test_a_missing_cache_prunes_nothing(root: Path) -> None:
    pruned = cache.prune(root, older_than=0, now=NOW)

    assert pruned.removed == [] and pruned.bytes_freed == 0


# ---------------------------------------------------------------------- never what is in use
def test_an_entry_held_in_this_process_is_kept_and_reported(root: Path) -> None:
    old_job, old_code = job(root, "iris-running", 20), staged(root, "code/iris/1111/sourcedir.tar.gz", 20)

    with cache.in_use(old_job), cache.in_use(old_code):
        pruned = cache.prune(root, older_than=0, now=NOW)

    assert pruned.removed == [] and sorted(pruned.in_use) == sorted([old_job, old_code])
    assert old_job.is_dir() and old_code.is_file()


def test_an_entry_held_by_another_process_is_kept(root: Path) -> None:
    old_env = env(root, "aaaa", 20)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from sagepush_cli.local import cache\n"
            "with cache.in_use(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)",
            str(old_env),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        pruned = cache.prune(root, older_than=0, now=NOW)
    finally:
        holder.kill()
        holder.wait()

    assert pruned.in_use == [old_env] and old_env.is_dir()
    assert [e.path for e in cache.prune(root, older_than=14 * DAY, now=NOW).removed] == [old_env]


def test_a_job_environment_is_held_while_used_and_its_use_resets_its_age(root: Path) -> None:
    # Given: an environment built a month ago.
    built = env(root, "a1b2c3d4", 30)
    (built / ".ready").write_text(json.dumps({"notice": ""}))
    age(built, 30)
    environments = Environments(root)

    class Sink:
        def write(self, line: str) -> None:
            pass

    def build(folder: Path) -> dict[str, Any]:
        raise AssertionError("a built environment is not built again")

    # When: a job uses it.
    with contextlib.ExitStack() as holds:
        found, _ready = environments._cached("a1b2c3d4", build, Sink(), holds, what="test")
        during = cache.prune(root, older_than=0, now=time.time() + 1)

    # Then: a prune during the run leaves it, and afterwards it is as old as its last use.
    assert found == built
    assert during.in_use == [built]
    assert cache.prune(root, older_than=14 * DAY).removed == []
    assert built.is_dir()


def test_in_use_refuses_a_path_that_is_not_there(root: Path) -> None:
    with pytest.raises(FileNotFoundError), cache.in_use(root / "jobs" / "gone"):
        pass


# ---------------------------------------------------------------------- the age setting
@pytest.mark.parametrize(
    ("value", "seconds"),
    [("14d", 14 * DAY), ("12h", 43200.0), ("1d12h", 1.5 * DAY), ("90m", 5400.0), ("600", 600.0), ("never", None)],
)
def test_the_prune_age_setting_takes_durations_or_never(
    monkeypatch: pytest.MonkeyPatch, value: str, seconds: float | None
) -> None:
    monkeypatch.setenv(cache.PRUNE_AFTER_ENV, value)

    assert cache.configured_prune_after() == seconds


def test_the_prune_age_defaults_to_fourteen_days_and_a_bad_one_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(cache.PRUNE_AFTER_ENV, raising=False)
    assert cache.configured_prune_after() == 14 * DAY

    monkeypatch.setenv(cache.PRUNE_AFTER_ENV, "two weeks")
    with pytest.raises(SpecError, match=cache.PRUNE_AFTER_ENV):
        cache.configured_prune_after()


# ---------------------------------------------------------------------- sagepush local prune
@pytest.fixture
def cli_root(monkeypatch: pytest.MonkeyPatch, root: Path) -> Path:
    monkeypatch.setenv(cache.HOME_ENV, str(root))
    monkeypatch.delenv(cache.PRUNE_AFTER_ENV, raising=False)
    return root


def test_local_prune_prints_what_it_removed_and_the_bytes_freed(cli_root: Path) -> None:
    old_job, new_job = job(cli_root, "iris-old", 8, size=1024 * 1024), job(cli_root, "iris-new", 1)

    dry = CliRunner().invoke(app, ["local", "prune", "--older-than", "7d", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "jobs/iris-old" in dry.output and "would free 2.0 MiB" in dry.output and old_job.is_dir()

    done = CliRunner().invoke(app, ["local", "prune", "--older-than", "7d"])
    assert done.exit_code == 0, done.output
    assert "jobs/iris-old" in done.output and "freed 2.0 MiB" in done.output
    assert not old_job.exists() and new_job.is_dir()


def test_local_prune_json_lists_removed_and_in_use(cli_root: Path) -> None:
    old_job, held = job(cli_root, "iris-old", 20), env(cli_root, "aaaa", 20)

    with cache.in_use(held):
        result = CliRunner().invoke(app, ["local", "prune", "--json"])

    document = json.loads(result.output)
    assert result.exit_code == 0
    assert [(e["kind"], e["path"], e["bytes"]) for e in document["removed"]] == [("job", str(old_job), 200)]
    assert document["in_use"] == [str(held)] and document["bytes_freed"] == 200 and not document["dry_run"]


def test_local_prune_refuses_a_bad_age_with_exit_2(cli_root: Path) -> None:
    result = CliRunner().invoke(app, ["local", "prune", "--older-than", "a while"])

    assert result.exit_code == 2 and "--older-than" in result.output


# ---------------------------------------------------------------------- tests never touch the user's cache
def session_root() -> Path:
    return Path(os.environ["XDG_CACHE_HOME"])


def test_the_session_caches_under_its_own_temporary_directory() -> None:
    root = session_root()
    assert root.name.startswith("sagepush-tests-cache-") and root.is_dir()
    assert home().is_relative_to(root) and cache.home().is_relative_to(root)
    assert not any(root.is_relative_to(path) or path.is_relative_to(root) for path in users_caches_before())


def test_a_process_a_test_starts_caches_under_the_session_directory_too() -> None:
    script = textwrap.dedent(
        """
        import json, os
        from sagepush_cli.local import cache
        print(json.dumps([str(cache.home()), os.environ["XDG_CACHE_HOME"]]))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr[-2000:]

    for path in json.loads(done.stdout):
        assert Path(path).is_relative_to(session_root())


def test_the_guard_records_every_kind_of_write_under_a_protected_directory(tmp_path: Path) -> None:
    protected, elsewhere = tmp_path / "users-cache", tmp_path / "session-cache"
    protected.mkdir()
    elsewhere.mkdir()

    with CacheWriteGuard([protected]) as guard:
        write(elsewhere / "fine.json")
        (protected / "models.json").write_text("{}")
        os.close(os.open(protected / "raw", os.O_WRONLY | os.O_CREAT))
        (protected / "local").mkdir()
        (protected / "models.json").replace(protected / "moved.json")
        (protected / "moved.json").read_text()  # reading is no write

    assert [event for event, _ in guard.writes] == ["open", "open", "os.mkdir", "os.rename", "os.rename"]
    assert all(Path(path).is_relative_to(protected) for _, path in guard.writes)


def users_caches_before() -> list[Path]:
    """The user's sagepush caches, from the environment the session started with."""
    from tests import conftest

    saved = {k: v for k, v in conftest._session["saved"].items() if v is not None}
    return users_caches({k: v for k, v in saved.items() if k != "UV_CACHE_DIR"})


def test_the_session_guard_watches_the_users_cache() -> None:
    from tests import conftest

    guard: Any = conftest._session["guard"]
    assert guard in CacheWriteGuard._active
    assert {str(path.absolute()) for path in users_caches_before()} <= set(guard.prefixes)
