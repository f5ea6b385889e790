"""A persisting local stack (`local up`) comes back with what it had when it stopped, or starts empty and says why."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from sagepush_cli.local import cache, state

if TYPE_CHECKING:
    from collections.abc import Callable

ROOT = Path(__file__).resolve().parents[2]
STACK = "sagepush-local"

# Each run is its own process, as each `local up` is: moto's backends are process-wide, and the session's stack
# (tests/integration/conftest.py) must neither see this state nor lose its own.
RUN = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    import boto3
    from moto.sagemaker.models import sagemaker_backends
    from sagepush_cli.local import demo, stack as stack_module
    from sagepush_cli.local.stack import ACCOUNT_ID, LocalStack
    from sagepush_cli.local.trainer import LocalTrainer

    LocalTrainer.start = lambda self, job, **_: None  # jobs stay as moto makes them: Completed at once
    stack_module._EXECUTIONS_GRACE_SECONDS = 0.5  # the push's execution waits for a job end that never comes
    mode, parameters = sys.argv[1], json.loads(sys.argv[2])
    stack = LocalStack(persist=True, fresh=mode == "fresh", prune_after=None, parameters=parameters).start()
    try:
        s3, sagemaker, dynamodb = boto3.client("s3"), boto3.client("sagemaker"), boto3.client("dynamodb")
        sqs, logs, sfn = boto3.client("sqs"), boto3.client("logs"), boto3.client("stepfunctions")
        bucket = stack.outputs["ArtifactBucketName"]
        if mode == "fill":
            s3.put_object(Bucket=bucket, Key="data/iris/rows.csv", Body=b"1,2\\n")
            pushed = demo.push(stack, Path("examples/sklearn-iris"))
            demo.wait_for_job(stack, pushed, time.monotonic())
            sagemaker.create_training_job(
                TrainingJobName="iris-running",
                AlgorithmSpecification={"TrainingImage": "sklearn:1.2-1", "TrainingInputMode": "File"},
                RoleArn="arn:aws:iam::123456789012:role/sagemaker",
                OutputDataConfig={"S3OutputPath": f"s3://{bucket}/output/"},
                ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
                StoppingCondition={"MaxRuntimeInSeconds": 60},
            )
            sagemaker_backends[ACCOUNT_ID][stack.region].training_jobs["iris-running"].training_job_status = "InProgress"
            queue = sqs.create_queue(QueueName="kept")["QueueUrl"]
            sqs.send_message(QueueUrl=queue, MessageBody="hello")
            logs.create_log_group(logGroupName="kept")
            logs.create_log_stream(logGroupName="kept", logStreamName="stream")
            logs.put_log_events(
                logGroupName="kept",
                logStreamName="stream",
                logEvents=[{"timestamp": int(time.time() * 1000), "message": "a line"}],
            )
        objects = {
            item["Key"]: s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode(errors="replace")
            for item in s3.list_objects_v2(Bucket=bucket).get("Contents", [])
            if item["Key"].startswith("data/")
        }
        jobs = {
            summary["TrainingJobName"]: sagemaker.describe_training_job(TrainingJobName=summary["TrainingJobName"])
            for summary in sagemaker.list_training_jobs()["TrainingJobSummaries"]
        }
        ledger = dynamodb.scan(TableName=stack.resources["LedgerTable"])["Items"]
        machine = stack.resources["TrainingStateMachine"]
        executions = [
            sfn.describe_execution(executionArn=e["executionArn"])
            for e in sfn.list_executions(stateMachineArn=machine)["executions"]
        ]
        queues = sqs.list_queues().get("QueueUrls", [])
        messages = [  # received in a later run only: a received message stays invisible for a while
            m["Body"] for url in queues if url.endswith("/kept") and mode != "fill"
            for m in sqs.receive_message(QueueUrl=url).get("Messages", [])
        ]
        log_lines = [
            e["message"] for g in logs.describe_log_groups(logGroupNamePrefix="kept")["logGroups"]
            for e in logs.get_log_events(logGroupName="kept", logStreamName="stream")["events"]
        ]
        seen = {
            "bucket": bucket,
            "objects": objects,
            "jobs": {
                name: [job["TrainingJobStatus"], job["SecondaryStatus"], job["SecondaryStatusTransitions"][-1]]
                for name, job in jobs.items()
            },
            "ledger": sorted(item["job_name"]["S"] for item in ledger),
            "executions": [[e["name"], e["status"], e.get("error")] for e in executions],
            "messages": messages,
            "log_lines": log_lines,
        }
    finally:
        stack.stop()
    notes = {"start": stack.state_note, "stop": stack.saved_note}
    print(json.dumps({"seen": seen, **{k: v and [v.text, v.warning] for k, v in notes.items()}}, default=str))
    """
)


def run(home: Path, mode: str, parameters: dict[str, str] | None = None) -> dict[str, Any]:
    """Start and stop a persisting stack whose local home is `home`; what it saw and said."""
    done = subprocess.run(
        [sys.executable, "-c", RUN, mode, json.dumps(parameters or {})],
        cwd=ROOT,
        env={**os.environ, cache.HOME_ENV: str(home)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    document: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return document


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A state saved by a stack that had data, a pushed job, a running job, an execution, a message, a log line."""
    home = tmp_path_factory.mktemp("filled")
    return home, run(home, "fill")


def home_with(filled: tuple[Path, dict[str, Any]], tmp_path: Path) -> Path:
    """A local home holding a copy of the filled stack's saved state."""
    home = tmp_path / "local"
    (home / "state").mkdir(parents=True)
    shutil.copy(state_file(filled[0]), state_file(home))
    return home


def state_file(home: Path) -> Path:
    return home / "state" / f"{STACK}.state"


def test_a_restarted_stack_has_what_it_had_when_it_stopped(filled: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    before = filled[1]
    pushed = next(name for name in before["seen"]["jobs"] if name.startswith("sklearn-iris-"))
    assert before["start"] == ["starting empty: no state saved yet", False]
    assert before["stop"][0].startswith("saved the stack's state (2 training jobs, 3 objects, 1 ledger item, 1 ")
    assert not before["stop"][1]

    after = run(home_with(filled, tmp_path), "read")

    assert after["start"][0].startswith("restored the state saved ")
    assert after["start"][0].endswith(": 2 training jobs, 3 objects, 1 ledger item, 1 execution (--fresh starts empty)")
    seen = after["seen"]
    assert seen["bucket"] == before["seen"]["bucket"]  # the channel `local data put` printed still holds
    assert seen["objects"] == {"data/iris/rows.csv": "1,2\n"}
    assert seen["ledger"] == [pushed]
    assert seen["jobs"][pushed][:2] == ["Completed", "Completed"]
    # A job running when the stack stopped comes back Stopped, as StopTrainingJob would leave it.
    assert seen["jobs"]["iris-running"][:2] == ["Stopped", "Stopped"]
    assert seen["jobs"]["iris-running"][2]["StatusMessage"] == "The local stack stopped while the job ran"
    # So does its execution, which waited for a job that never ends (the trainer does not run jobs here).
    assert seen["executions"] == [[pushed, "ABORTED", "sagepush.LocalStackStopped"]]
    assert seen["messages"] == ["hello"]
    assert seen["log_lines"] == ["a line"]


def test_fresh_starts_empty_and_says_so(filled: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    after = run(home_with(filled, tmp_path), "fresh")

    assert after["start"] == ["starting empty (--fresh): the saved state is replaced when it stops", False]
    seen = after["seen"]
    assert seen["bucket"] != filled[1]["seen"]["bucket"]
    assert (seen["objects"], seen["jobs"], seen["ledger"], seen["executions"]) == ({}, {}, [], [])
    assert (seen["messages"], seen["log_lines"]) == ([], [])


def _other_moto(path: Path) -> None:
    first, header, rest = path.read_bytes().split(b"\n", 2)
    document = json.loads(header)
    document["stamp"]["moto"] = "0.0.1"
    path.write_bytes(b"\n".join([first, json.dumps(document).encode(), rest]))


@pytest.mark.parametrize(
    ("change", "parameters", "reason"),
    [
        (None, {"DefaultMaxRun": "7200"}, "template.yaml, its state machines or the stack's parameters changed since"),
        (_other_moto, {}, "it was saved with moto 0.0.1, this is moto "),
    ],
    ids=["parameters", "moto"],
)
def test_a_state_saved_under_another_deployment_starts_empty_and_says_why(
    filled: tuple[Path, dict[str, Any]],
    tmp_path: Path,
    change: Callable[[Path], None] | None,
    parameters: dict[str, str],
    reason: str,
) -> None:
    home = home_with(filled, tmp_path)
    if change is not None:
        change(state_file(home))

    after = run(home, "read", parameters)

    note, warning = after["start"]
    assert note.startswith("starting empty: the state saved ") and reason in note.partition(" is not restored: ")[2]
    assert not warning
    assert after["seen"]["objects"] == {} and after["seen"]["jobs"] == {}


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _unloadable(path: Path) -> None:
    """Intact (its checksum matches) but holding backends moto does not have."""
    first, header, _ = path.read_bytes().split(b"\n", 2)
    body = first + b"\n" + header + b"\n" + pickle.dumps({"moto.nowhere:backends": ({}, {})})
    path.write_bytes(body + hashlib.sha256(body).digest())


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_truncate, "is damaged or truncated (its checksum does not match)"),
        (_flip_a_byte, "is damaged or truncated (its checksum does not match)"),
        (lambda path: path.write_bytes(b""), "is not a state file sagepush can read (it starts '', not "),
        (lambda path: path.write_text("{}\n"), "is not a state file sagepush can read (it starts '{}', not "),
        (_unloadable, "cannot be loaded (ModuleNotFoundError: No module named 'moto.nowhere')"),
    ],
    ids=["truncated", "flipped-byte", "empty", "not-a-state-file", "unloadable"],
)
def test_a_damaged_state_file_starts_empty_with_one_warning(
    filled: tuple[Path, dict[str, Any]], tmp_path: Path, damage: Callable[[Path], None], reason: str
) -> None:
    home = home_with(filled, tmp_path)
    damage(state_file(home))

    after = run(home, "read")

    note, warning = after["start"]
    assert warning and "\n" not in note
    assert note.startswith(f"starting empty: {state_file(home)} {reason}"), note
    seen = after["seen"]
    assert (seen["objects"], seen["jobs"], seen["ledger"], seen["executions"]) == ({}, {}, [], [])
    # Stopping saves this run's (empty) state over the damaged one.
    assert after["stop"][1] is False and state_file(home).read_bytes().startswith(state.FORMAT.encode())
