"""Local job environments built for real: requirements.txt installed by pip beside the cached base, never into it."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import socket
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

from sagepush_cli.local import environments
from sagepush_cli.local.environments import BuildError, BuildStopped, Environments, Image, Plan

HOST = f"{sys.version_info[0]}.{sys.version_info[1]}"


class Lines:
    """The job log an environment build writes to; `seen` fires on the first line containing `waiting_for`."""

    def __init__(self, waiting_for: str = "\0") -> None:
        self.lines: list[str] = []
        self.waiting_for = waiting_for
        self.seen = threading.Event()

    def write(self, line: str) -> None:
        self.lines.append(line)
        if self.waiting_for in line:
            self.seen.set()


def wheel(folder: Path, name: str, version: str, module: str) -> Path:
    """A pure-Python wheel of one module, as a build backend would write it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": module,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: sagepush-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in files.items():
            archive.writestr(member, text)
            digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
            record.append(f"{member},sha256={digest},{len(text.encode())}")
        archive.writestr(f"{info}/RECORD", "\n".join([*record, f"{info}/RECORD,,"]) + "\n")
    return path


def listing(folder: Path) -> list[tuple[str, int, int]]:
    return sorted(
        (str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file() and p.name != ".ready"
    )


@pytest.fixture
def bare(monkeypatch: pytest.MonkeyPatch) -> Plan:
    """Jobs on an image sagepush has no package data for: a base of the toolkit and pip, on this Python."""
    chosen = Plan(Image(None, None, None), Path(sys.executable), HOST, None, (), environments.toolkit_requirement())
    monkeypatch.setattr(environments, "plan", lambda _uri: chosen)
    return chosen


def build(root: Path, code: Path, venv: Path, sink: Lines, stop: threading.Event | None = None) -> Path:
    with contextlib.ExitStack() as holds:
        return Environments(root).job_python("image", code, venv, sink, holds, stop or threading.Event()).python


def test_requirements_are_installed_by_pip_beside_the_base_and_never_into_it(
    bare: Plan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given: code whose requirements.txt pins its own `six` (the base has the toolkit's) from a folder of wheels, on
    # a machine whose pip configuration would refuse it.
    code = tmp_path / "code"
    wheel(code / "wheels", "six", "99.0", "__version__ = '99.0'\n")
    (code / "requirements.txt").write_text("--no-index\n--find-links wheels\nsix==99.0\n")
    (tmp_path / "constraints.txt").write_text("six<2\n")
    monkeypatch.setenv("PIP_CONSTRAINT", str(tmp_path / "constraints.txt"))
    monkeypatch.setenv("PIP_NO_INDEX", "0")
    root = tmp_path / "local"
    build(root, tmp_path / "warm", tmp_path / "warm-venv", Lines())  # the base alone, built once
    [base] = [p for p in (root / "envs").iterdir() if not p.name.startswith(("r-", "."))]
    before = listing(base)

    # When: a job's environment is built, and a second job's with the same requirements.
    first = Lines()
    python = build(root, code, tmp_path / "job-1", first)
    again = Lines()
    second = build(root, code, tmp_path / "job-2", again)

    # Then: the job imports its own six and every other package from the base, which pip left as it was.
    run = [str(python), "-c", "import six, sagemaker_training, pip; print(six.__version__, six.__file__)"]
    version, where = subprocess.run(run, capture_output=True, text=True, check=True).stdout.split()
    assert version == "99.0" and "/envs/r-" in where
    base_python = base / "bin" / "python"
    base_six = subprocess.run(
        [str(base_python), "-c", "import six; print(six.__version__)"], capture_output=True, text=True
    )
    assert base_six.stdout.strip() != "99.0"
    assert listing(base) == before
    assert any(line.strip().startswith("Not uninstalling six") for line in first.lines)
    assert sum("using the cached environment" in line for line in again.lines) == 2
    assert (
        subprocess.run([str(second), "-c", "import six; assert six.__version__ == '99.0'"], check=False).returncode == 0
    )


def test_a_requirement_pip_cannot_find_fails_with_pip_s_error_naming_it(bare: Plan, tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "requirements.txt").write_text("--no-index\nsagepush-no-such-package==1.0\n")

    with pytest.raises(BuildError) as raised:
        build(tmp_path / "local", code, tmp_path / "job", Lines())

    assert raised.value.reason.startswith("InstallRequirementsError: ")
    assert "sagepush-no-such-package==1.0" in raised.value.reason.splitlines()[0]
    assert not list((tmp_path / "local" / "envs").glob("r-*"))  # nothing half-built is kept for the next job


def test_a_job_stopped_while_its_environment_builds_stops_the_installer(bare: Plan, tmp_path: Path) -> None:
    # Given: requirements from a package index that accepts connections and never answers.
    with socket.socket() as index:
        index.bind(("127.0.0.1", 0))
        index.listen()
        port = index.getsockname()[1]
        code = tmp_path / "code"
        code.mkdir()
        (code / "requirements.txt").write_text(f"--index-url http://127.0.0.1:{port}/simple\nsix==99.0\n")
        build(tmp_path / "local", tmp_path / "warm", tmp_path / "warm-venv", Lines())
        stop = threading.Event()
        sink = Lines(waiting_for="requirements.txt, with pip")

        def stop_once_pip_starts() -> None:
            if sink.seen.wait(60):
                stop.set()

        threading.Thread(target=stop_once_pip_starts, daemon=True).start()

        # When / Then: the stop ends the build with nothing kept.
        with pytest.raises(BuildStopped):
            build(tmp_path / "local", code, tmp_path / "job", sink, stop)
    assert not list((tmp_path / "local" / "envs").glob("*r-*"))


def test_an_image_python_its_packages_do_not_install_on_gives_way_to_this_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given: an image whose Python is another one and whose packages install on none (a pin no index has).
    image = Image("xgboost", "0.90-1", "py3")
    toolkit = environments.toolkit_requirement()
    theirs = Plan(image, Path(sys.executable), "3.6", "3.6", ("sagepush-no-such-package==1.0",), toolkit)
    ours = Plan(image, Path(sys.executable), HOST, "3.6", (), toolkit, python_note="its packages do not install on it")
    monkeypatch.setattr(environments, "plan", lambda _uri, on_host=False: ours if on_host else theirs)
    code = tmp_path / "code"
    code.mkdir()

    # When: two jobs run on it.
    first, second = Lines(), Lines()
    build(tmp_path / "local", code, tmp_path / "job-1", first)
    build(tmp_path / "local", code, tmp_path / "job-2", second)

    # Then: the first tries the image's Python, says why it gave way; the second goes straight to this one.
    assert "sagepush local: the image's packages do not install on Python 3.6 here" in first.lines
    assert not any("do not install on Python 3.6" in line for line in second.lines)
    assert not any("sagepush-no-such-package" in line for line in second.lines)
