"""`sagepush local up` in its own process, and the commands that find it with nothing exported: `--local`,
`local alerts`, `local data put`; what it keeps from one run to the next."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest

from sagepush_cli.local import running
from tests.e2e.conftest import EXAMPLES
from tests.gitrepo import commit_all, isolate

if TYPE_CHECKING:
    from collections.abc import Iterator

SAGEPUSH = str(Path(sys.executable).parent / "sagepush")
TIMEOUT = 600


def environment() -> dict[str, str]:
    """This process's environment without AWS_* (the commands must find the stack themselves) or pytest's."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTEST"))}


def sagepush(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SAGEPUSH, *args], cwd=cwd, env=environment(), capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


@contextmanager
def local_up_running(cwd: Path, *options: str) -> Iterator[tuple[running.Running, str]]:
    """`sagepush local up --port 0` in its own process until the block ends; what it announced, and its line about
    the saved state."""
    process = subprocess.Popen(
        [SAGEPUSH, "local", "up", "--port", "0", *options],
        cwd=cwd,
        env={**environment(), "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()  # blocks until the stack is up (or the process ends)
        assert re.match(r"sagepush local stack at http://127\.0\.0\.1:\d+ ", banner), banner
        note = process.stdout.readline().strip()
        threading.Thread(target=process.stdout.read, daemon=True).start()  # never block it on a full pipe
        found = running.find()
        assert found is not None and found.pid == process.pid and banner.split()[4] == found.endpoint
        yield found, note
    finally:
        process.terminate()  # Ctrl-C's path: SIGTERM stops the stack cleanly
        assert process.wait(timeout=180) == 0
    assert running.find() is None, "the stopped stack is still announced"


@pytest.fixture
def local_up(tmp_path: Path) -> Iterator[running.Running]:
    """A `sagepush local up` that starts empty (`--fresh`), whatever an earlier test left saved, until the test ends."""
    with local_up_running(tmp_path, "--fresh") as (found, _note):
        yield found


def test_local_commands_find_the_stack_and_follow_its_alerts(
    local_up: running.Running, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolate(monkeypatch, tmp_path)
    project = tmp_path / "iris-up"
    shutil.copytree(EXAMPLES / "sklearn-iris", project)
    commit_all(project, "iris")
    # Given: someone following the alerts in another terminal (subscribed once it says so).
    alerts = subprocess.Popen(
        [SAGEPUSH, "local", "alerts", "--limit", "2"],
        cwd=tmp_path,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert alerts.stderr is not None
    assert alerts.stderr.readline().startswith(f"following the alerts of sagepush-local at {local_up.endpoint}")

    # When: training data goes in and the project is pushed, all with --local and nothing exported.
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "rows.csv").write_text("1,2\n")
    put = sagepush("local", "data", "put", str(tmp_path / "data"), "--project", "iris-up", cwd=tmp_path)
    pushed = sagepush("push", str(project), "--local", "--wait", "--poll-seconds", "0.2", cwd=tmp_path)

    # Then: the data is where the printed channel says, the job completed, and the alerts arrived one line each.
    assert put.returncode == 0, put.stderr
    uri = re.search(r'train = "(s3://[^"]+)"', put.stdout)
    assert uri, put.stdout
    bucket, _, prefix = uri.group(1).removeprefix("s3://").partition("/")
    s3 = boto3.client(
        "s3",
        endpoint_url=local_up.endpoint,
        region_name=local_up.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    assert s3.get_object(Bucket=bucket, Key=f"{prefix}rows.csv")["Body"].read() == b"1,2\n"
    assert prefix == "data/iris-up/"
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    job = next(line.removeprefix("job ") for line in pushed.stdout.splitlines() if line.startswith("job "))
    out, _ = alerts.communicate(timeout=TIMEOUT)
    assert alerts.returncode == 0
    lines = out.splitlines()
    assert len(lines) == 2 and all(job in line for line in lines), out
    assert lines[0].split()[2] == "Starting"
    status = sagepush("status", job, "--local", "--json", cwd=tmp_path)
    assert status.returncode == 0 and json.loads(status.stdout)["status"] == "Completed", status.stderr


def test_a_taken_port_is_one_line_and_no_stack_is_named_when_none_runs(
    local_up: running.Running, tmp_path: Path
) -> None:
    port = local_up.endpoint.rsplit(":", 1)[1]

    second = sagepush("local", "up", "--port", port, cwd=tmp_path)

    assert second.returncode == 2
    assert second.stderr.strip().splitlines() == [
        f"error: --port: port {port} on 127.0.0.1 is in use (Address already in use): another `sagepush local up`? "
        "(--port 0 picks a free port)"
    ]
    assert running.find() == local_up, "the refused start must not replace the running stack's announcement"


def test_local_without_a_running_stack_says_how_to_start_one(tmp_path: Path) -> None:
    assert running.find() is None

    result = sagepush("status", "--local", cwd=tmp_path)

    assert result.returncode == 2
    assert result.stderr.strip() == "error: --local: no local stack is running (start one with `sagepush local up`)"


def test_a_restarted_stack_has_its_job_data_and_logs_and_fresh_starts_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    isolate(monkeypatch, tmp_path)
    project = tmp_path / "iris-kept"
    shutil.copytree(EXAMPLES / "sklearn-iris", project)
    commit_all(project, "iris")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "rows.csv").write_text("1,2\n")

    # Given: a job trained and data put on a stack that was then stopped (SIGTERM, as Ctrl-C).
    with local_up_running(tmp_path, "--fresh") as (_found, note):
        assert note == "starting empty (--fresh): the saved state is replaced when it stops"
        put = sagepush("local", "data", "put", str(tmp_path / "data"), "--project", "iris-kept", cwd=tmp_path)
        pushed = sagepush("push", str(project), "--local", "--wait", "--poll-seconds", "0.2", cwd=tmp_path)
        assert put.returncode == 0 and pushed.returncode == 0, put.stderr + pushed.stdout + pushed.stderr
    job = next(line.removeprefix("job ") for line in pushed.stdout.splitlines() if line.startswith("job "))
    uri = re.search(r'train = "s3://([^/"]+)/([^"]+)"', put.stdout)
    assert uri, put.stdout

    # When: it starts again. Then: the job, its log and the data are there.
    with local_up_running(tmp_path) as (found, note):
        assert re.fullmatch(
            r"restored the state saved [-\d: ]+: 1 training job, \d+ objects, 1 ledger item, 1 execution "
            r"\(--fresh starts empty\)",
            note,
        ), note
        status = sagepush("status", job, "--local", "--json", cwd=tmp_path)
        logs = sagepush("logs", job, "--local", cwd=tmp_path)
        s3 = boto3.client(
            "s3",
            endpoint_url=found.endpoint,
            region_name=found.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        data = s3.get_object(Bucket=uri.group(1), Key=f"{uri.group(2)}rows.csv")["Body"].read()
    assert status.returncode == 0 and json.loads(status.stdout)["status"] == "Completed", status.stderr
    assert logs.returncode == 0 and logs.stdout.strip(), logs.stderr
    assert data == b"1,2\n"

    # And: --fresh starts without any of it.
    with local_up_running(tmp_path, "--fresh"):
        status = sagepush("status", job, "--local", "--json", cwd=tmp_path)
    assert status.returncode == 2 and "no job named" in status.stderr, status.stdout + status.stderr
