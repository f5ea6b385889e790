"""Measure on one local stack (moto server on 127.0.0.1, the real template): print per-run times as JSON.

`python -m bench.stack_worker ARCHIVE RUNS EVENTS UPLOADS`. In one fresh process, because moto's backends are
process-wide:
- S3 → S3 staging: `stage_object` of ARCHIVE from one bucket to another, against a transfer-manager download and
  upload of the same object, interleaved, RUNS times each;
- status: EVENTS distinct "Training" state changes of submitted jobs through the loaded StatusFunction (warm: its
  clients exist), timed to the alert's publish and to the handler's end, each against the bare DynamoDB UpdateItem +
  SNS Publish it must make (the handler's own requests, replayed with a plain client for a twin submitted job);
- upload → CreateTrainingJob: UPLOADS pushes of a small project to the ingest bucket, each timed from PutObject to the
  moment the stack's SageMaker receives CreateTrainingJob (the job itself is not run).
"""

from __future__ import annotations

import copy
import io
import json
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

_EVENTS = Path(__file__).resolve().parents[1] / "events"
_MANIFEST = b'framework = "pytorch"\nframework_version = "2.5"\npy_version = "py311"\nentry_point = "train.py"\n'
_WAIT_SECONDS = 60


def main() -> None:
    archive, runs, events, uploads = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    answer, sys.stdout = sys.stdout, sys.stderr  # the handlers' Powertools loggers write to stdout
    from sagepush_cli.local.stack import LocalStack
    from sagepush_cli.local.trainer import LocalTrainer

    created = _CreateTrainingJobs()
    LocalTrainer.start = lambda trainer, job, **_: created.record(job)  # type: ignore[method-assign]
    with LocalStack() as stack:
        result = {
            "s3": _s3_staging(archive, runs),
            "status": _status(stack, events),
            "upload": _upload_to_job(stack, created, uploads),
        }
    json.dump(result, answer)


class _CreateTrainingJobs:
    """Stands in for the local trainer: notes when each CreateTrainingJob arrives instead of running the job."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self._changed = threading.Condition()

    def record(self, job: Any) -> None:
        with self._changed:
            self.arrived[job.training_job_name] = time.perf_counter()
            self._changed.notify_all()

    def wait(self, count: int) -> float:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.arrived) >= count, timeout=_WAIT_SECONDS):
                raise TimeoutError(f"CreateTrainingJob number {count} never arrived")
            return max(self.arrived.values())


def _s3_staging(archive: Path, runs: int) -> dict[str, list[float]]:
    import boto3
    from boto3.s3.transfer import TransferConfig

    from sagepush.staging import stage_object

    s3 = boto3.client("s3")
    for bucket in ("bench-uploads", "bench-staged"):
        s3.create_bucket(Bucket=bucket)
    s3.upload_file(str(archive), "bench-uploads", "incoming/bench/project.tar.gz")
    config = TransferConfig()
    subject, reference = [], []
    with tempfile.TemporaryDirectory(prefix="sagepush-bench-s3-") as work:
        copy_path = Path(work) / "copy.tar.gz"
        for i in range(runs + 1):  # the first round warms connections and imports
            start = time.perf_counter()
            with copy_path.open("wb") as out:
                s3.download_fileobj("bench-uploads", "incoming/bench/project.tar.gz", out, Config=config)
            s3.upload_file(str(copy_path), "bench-staged", f"copy/{i}/project.tar.gz", Config=config)
            copied = time.perf_counter() - start
            start = time.perf_counter()
            staged = stage_object(
                bucket="bench-uploads",
                key="incoming/bench/project.tar.gz",
                version_id=None,
                dest_bucket="bench-staged",
                dest_prefix=f"code/{i}",  # a new prefix each time, so the object is written, never reused
                s3=s3,
            )
            staging = time.perf_counter() - start
            assert not staged.reused
            if i:
                subject.append(staging)
                reference.append(copied)
    return {"subject": subject, "reference": reference, "bytes": [archive.stat().st_size]}


def _status(stack: Any, events: int) -> dict[str, list[float]]:
    """Time EVENTS "Training" state changes of submitted jobs through StatusFunction, each against a replay of the
    UpdateItem that records the state and the Publish it makes, sent with a plain client for a twin submitted job.

    "subject": from the invocation to the handler's Publish returning (event → alert published); "handler": the
    whole invocation (the alert also marked sent); "reference": the replayed UpdateItem + Publish.
    """
    import boto3

    from sagepush.ledger import DynamoDBLedger, Submission

    template = json.loads((_EVENTS / "status-training.json").read_text())
    function = stack.function("StatusFunction")
    table = stack.resources["LedgerTable"]
    dynamodb, sns = boto3.client("dynamodb"), boto3.client("sns")
    names = [f"iris-{i:08x}-bench" for i in range(events + 1)]
    submit = DynamoDBLedger(table, dynamodb=dynamodb)
    for name in names:  # as SubmitFunction records each job before creating it; the twin is the reference's item
        for job_name in (name, f"bare-{name}"):
            submission = Submission(
                job_name=job_name,
                project="iris",
                code_uri=f"s3://bench-artifacts/code/iris/{job_name}/sourcedir.tar.gz",
                code_digest="3f5c0f2a9b1d",
                source={"commit": "9fceb02d0ae598e95dc970b74767f19372d61af8", "branch": "main", "repo": "acme/iris"},
                task_token=f"bench-token-{job_name}",
            )
            submit.record_submission(submission, now_ms=time.time_ns() // 1_000_000)
    calls = _HandlerCalls()
    subject, handler, reference = [], [], []
    for i, name in enumerate(names):  # the first event creates the handler's clients: not warm
        event = copy.deepcopy(template)
        event["detail"]["TrainingJobName"] = name
        event["detail"]["TrainingJobArn"] = event["detail"]["TrainingJobArn"].rsplit("/", 1)[0] + f"/{name}"
        event["resources"] = [event["detail"]["TrainingJobArn"]]
        calls.clear()
        start = time.perf_counter()
        outcome = function.invoke(event)
        handled = time.perf_counter() - start
        assert outcome["alert"] == "published", outcome
        published = calls.published_at - start
        record, publish = calls.record_and_publish()
        start = time.perf_counter()
        dynamodb.update_item(**{**record, "Key": {"job_name": {"S": f"bare-{name}"}}})
        sns.publish(**publish)
        bare = time.perf_counter() - start
        if i:
            subject.append(published)
            handler.append(handled)
            reference.append(bare)
    return {"subject": subject, "handler": handler, "reference": reference}


class _HandlerCalls:
    """Notes what StatusFunction sends through its clients (sagepush.aws's process-wide ones): the parameters of
    each UpdateItem and Publish, and when its Publish returned."""

    def __init__(self) -> None:
        from sagepush import aws

        self.updates: list[dict[str, Any]] = []
        self.publishes: list[dict[str, Any]] = []
        self.published_at = 0.0
        aws.client("dynamodb").meta.events.register("provide-client-params.dynamodb.UpdateItem", self._update)
        sns = aws.client("sns")
        sns.meta.events.register("provide-client-params.sns.Publish", self._publish)
        sns.meta.events.register("after-call.sns.Publish", self._published)

    def clear(self) -> None:
        self.updates.clear()
        self.publishes.clear()
        self.published_at = 0.0

    def record_and_publish(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The UpdateItem that recorded the state (the invocation's first) and the Publish, as the handler sent them."""
        assert self.updates and len(self.publishes) == 1 and self.published_at, (self.updates, self.publishes)
        return self.updates[0], self.publishes[0]

    def _update(self, params: dict[str, Any], **_: Any) -> None:
        self.updates.append(dict(params))

    def _publish(self, params: dict[str, Any], **_: Any) -> None:
        self.publishes.append(dict(params))

    def _published(self, **_: Any) -> None:
        self.published_at = time.perf_counter()


def _upload_to_job(stack: Any, created: _CreateTrainingJobs, uploads: int) -> dict[str, list[float]]:
    import boto3

    s3 = boto3.client("s3")
    bucket = stack.outputs["IngestBucketName"]
    times = []
    for i in range(uploads + 1):  # the first push loads the handlers and creates their clients: not warm
        body = _project(f"print('training {i}')\n".encode())
        start = time.perf_counter()
        s3.put_object(Bucket=bucket, Key=f"incoming/bench/push-{i}.tar.gz", Body=body)
        arrived = created.wait(i + 1)
        stack.drain()
        if i:
            times.append(arrived - start)
    return {"subject": times}


def _project(train: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in (("train.py", train), ("sagepush.toml", _MANIFEST)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


if __name__ == "__main__":
    main()
