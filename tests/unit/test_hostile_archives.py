"""Hostile archives: each case of tests/hostile/corpus.py is refused naming the member and the rule, or sanitised.

Whatever the upload, staging writes nothing outside its own temporary directory (an audit hook watches every
file-system write while it runs), raises nothing but InputError subclasses, and stays within its limits: the
heavy cases run with lowered limits here and at the default limits in a subprocess whose peak RSS is measured.
"""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import sys
import tarfile
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from typer.testing import CliRunner

from sagepush.errors import InputError
from sagepush.staging import DEFAULT_LIMITS, Limits, StagingError, stage_archive
from sagepush_cli.main import EXIT_INPUT, app
from tests.hostile.corpus import BASE, CASES, Accepted, Case, Refused
from tests.unit.archives import file, tar_bytes, zip_bytes

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parents[2]
LIGHT = [c for c in CASES if not c.heavy]
HEAVY = [c for c in CASES if c.heavy]
LOWERED = Limits(max_members=1_000, max_total_bytes=64 << 20, max_member_bytes=32 << 20)
PEAK_RSS_BUDGET = 64 << 20  # the staging memory budget README's benchmark measures against
_WRITE_EVENTS = frozenset(
    {"os.mkdir", "os.symlink", "os.link", "os.rename", "os.chmod", "os.chown", "os.truncate", "os.utime"}
)


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("hostile-corpus")
    return {case.id: case.build(directory) for case in CASES}


# ------------------------------------------------------------------------------------------- the write guard


class _WriteGuard:
    """Record every file-system write this process makes while armed that lands outside `allowed`."""

    def __init__(self) -> None:
        self.allowed: Path | None = None
        self.escapes: list[str] = []
        self._lock = threading.Lock()
        sys.addaudithook(self._hook)  # cannot be removed: it does nothing while disarmed

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        allowed = self.allowed
        if allowed is None:
            return
        if event == "open":
            path, mode, flags = args
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                mode is None and isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
            )
            if not writes:
                return
        elif event not in _WRITE_EVENTS:
            return
        else:
            path = args[0]
        if isinstance(path, int) or path is None:
            return  # an already-open descriptor: its opening was checked
        resolved = Path(os.fsdecode(path)).resolve()
        if not resolved.is_relative_to(allowed):
            with self._lock:
                self.escapes.append(f"{event} {resolved}")


_GUARD = _WriteGuard()


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A working directory and a temporary directory for staging; fails the test on any write outside them."""
    root = tmp_path / "sandbox"
    (root / "cwd").mkdir(parents=True)
    (root / "tmp").mkdir()
    monkeypatch.chdir(root / "cwd")
    monkeypatch.setattr(tempfile, "tempdir", str(root / "tmp"))
    _GUARD.escapes.clear()
    _GUARD.allowed = root.resolve()
    try:
        yield root
    finally:
        _GUARD.allowed = None
    assert _GUARD.escapes == [], "staging wrote outside its work directory"
    assert list((root / "tmp").iterdir()) == [], "staging left temporary files behind"
    assert list((root / "cwd").iterdir()) == [], "staging wrote into the working directory"


# ----------------------------------------------------------------------------------------------------- stage


def _stage(path: Path, case: Case, limits: Limits = DEFAULT_LIMITS) -> tuple[Any, bytes]:
    out = io.BytesIO()
    with path.open("rb") as src:
        staged = stage_archive(src, out, filename=case.filename, limits=limits)
    return staged, out.getvalue()


def _check_sanitised(output: bytes, expect: Accepted) -> None:
    with tarfile.open(fileobj=io.BytesIO(output), mode="r:gz") as archive:
        members = archive.getmembers()
    for info in members:
        assert info.isreg() or info.isdir(), f"{info.name} is neither a file nor a directory"
        assert info.mode in ((0o644, 0o755) if info.isreg() else (0o755,)), f"{info.name} has mode {oct(info.mode)}"
        assert (info.uid, info.gid, info.uname, info.gname, info.mtime) == (0, 0, "", "", 0)
        assert not info.name.startswith("/") and ".." not in info.name.split("/")
    modes = {info.name: info.mode for info in members}
    for name, mode in expect.modes.items():
        assert modes[name] == mode, f"{name}: {oct(modes[name])}, expected {oct(mode)}"


@pytest.mark.timeout(20)
@pytest.mark.parametrize("case", LIGHT, ids=[c.id for c in LIGHT])
def test_each_hostile_upload_is_refused_naming_member_and_rule_or_sanitised(
    case: Case, corpus: dict[str, Path], sandbox: Path
) -> None:
    expect = case.expect
    if isinstance(expect, Refused):
        with pytest.raises(InputError) as caught:
            _stage(corpus[case.id], case)
        error = caught.value
        assert (getattr(error, "rule", "spec"), error.where) == (expect.rule, expect.where), str(error)
        assert str(error) == f"{error.where}: {error.message}"
        assert "\n" not in str(error), "the error must be one line"
        return
    staged, output = _stage(corpus[case.id], case)
    assert sorted(staged.members) == sorted(expect.members)
    assert staged.dropped == expect.dropped
    _check_sanitised(output, expect)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("case", HEAVY, ids=[c.id for c in HEAVY])
def test_heavy_uploads_stop_at_lowered_limits(case: Case, corpus: dict[str, Path], sandbox: Path) -> None:
    with pytest.raises(StagingError) as caught:
        _stage(corpus[case.id], case, LOWERED)
    assert caught.value.rule == "limit", str(caught.value)
    assert caught.value.where.startswith(("data/zeros-", "m/", case.filename))


_MEASURE = """
import io, json, sys
from sagepush.staging import StagingError, stage_archive
path, filename = sys.argv[1:]
try:
    with open(path, "rb") as src:
        stage_archive(src, io.BytesIO(), filename=filename)
    outcome = {"rule": None, "where": None}
except StagingError as exc:
    outcome = {"rule": exc.rule, "where": exc.where}
# VmHWM belongs to this process's memory map; ru_maxrss would include the forking pytest process's before exec
status = open("/proc/self/status").read()
outcome["peak_rss"] = int(status.split("VmHWM:")[1].split()[0]) * 1024
print(json.dumps(outcome))
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", HEAVY, ids=[c.id for c in HEAVY])
def test_heavy_uploads_stop_at_the_default_limits_in_bounded_memory(
    case: Case, corpus: dict[str, Path], tmp_path: Path
) -> None:
    # A fresh process, so the peak RSS is this upload's alone.
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(corpus[case.id]), case.filename],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(ROOT)},
        timeout=50,
    )
    outcome = json.loads(done.stdout)
    assert isinstance(case.expect, Refused)
    assert (outcome["rule"], outcome["where"]) == (case.expect.rule, case.expect.where)
    assert outcome["peak_rss"] < PEAK_RSS_BUDGET, f"peak RSS {outcome['peak_rss'] >> 20} MiB"
    assert list(tmp_path.iterdir()) == [], "staging left temporary files behind"


# ------------------------------------------------------------------------------------------------ mutations

_SEEDS = range(120)


def _mutate(data: bytes, seed: int) -> bytes:
    rng = random.Random(seed)
    buffer = bytearray(data)
    action = seed % 4
    if action == 0:  # flip a few bytes anywhere, headers included
        for _ in range(rng.randint(1, 8)):
            buffer[rng.randrange(len(buffer))] ^= 1 << rng.randrange(8)
    elif action == 1:  # truncate
        del buffer[rng.randrange(1, len(buffer)) :]
    elif action == 2:  # overwrite a run with random bytes
        at = rng.randrange(len(buffer))
        buffer[at : at + 32] = rng.randbytes(32)
    else:  # duplicate a slice in place
        at, size = rng.randrange(len(buffer)), rng.randint(1, 600)
        buffer[at:at] = buffer[at : at + size]
    return bytes(buffer)


_ORIGINALS = {
    "tar.gz": tar_bytes([*BASE, file("pkg/model.py", b"W = 1\n" * 300)]),
    "tar": tar_bytes([*BASE, file("pkg/model.py", b"W = 1\n" * 300)], gz=False)[:4096],
    "zip": zip_bytes([*BASE, file("pkg/model.py", b"W = 1\n" * 300)]),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("suffix", list(_ORIGINALS))
def test_mutated_archives_are_staged_or_refused_never_crash(suffix: str, sandbox: Path) -> None:
    for seed in _SEEDS:
        data = _mutate(_ORIGINALS[suffix], seed)
        try:
            stage_archive(io.BytesIO(data), io.BytesIO(), filename=f"code.{suffix}", limits=LOWERED)
        except InputError as exc:
            assert "\n" not in str(exc), f"seed {seed}: {exc!r}"


# ------------------------------------------------------------------------------------------------------ CLI

CLI_CASES = [c for c in LIGHT if isinstance(c.expect, Refused)][::3]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", CLI_CASES, ids=[c.id for c in CLI_CASES])
def test_sagepush_stage_refuses_with_exit_2_one_line_and_no_output_file(
    case: Case, corpus: dict[str, Path], tmp_path: Path
) -> None:
    output = tmp_path / "out" / "sourcedir.tar.gz"
    output.parent.mkdir()
    result = CliRunner().invoke(app, ["stage", str(corpus[case.id]), "-o", str(output)])
    assert result.exit_code == EXIT_INPUT, result.output
    assert isinstance(case.expect, Refused)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert case.expect.where in lines[0]
    assert list(output.parent.iterdir()) == [], "a refused upload must leave no file behind"


def test_sagepush_stage_leaves_no_partial_output_when_interrupted(
    corpus: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sagepush import staging

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(staging, "stage_archive", interrupted)
    output = tmp_path / "out" / "sourcedir.tar.gz"
    output.parent.mkdir()
    result = CliRunner().invoke(app, ["stage", str(corpus["dotenv-template-is-fine"]), "-o", str(output)])
    assert result.exit_code != 0
    assert list(output.parent.iterdir()) == []
