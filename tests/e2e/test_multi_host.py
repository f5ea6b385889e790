"""instance_count > 1 on the local stack: that many hosts at once, each told who it is, data sharded among them."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import boto3

from sagepush_cli.local import demo
from tests.e2e.test_demo import ended, model_files

if TYPE_CHECKING:
    from pathlib import Path

    from sagepush_cli.local.stack import LocalStack

PROJECT = "cluster"
TRAIN = """\
import json, os, pathlib, sys

host = os.environ["SM_CURRENT_HOST"]
hosts = json.loads(os.environ["SM_HOSTS"])
shard = sorted(p.name for p in pathlib.Path(os.environ["SM_CHANNEL_TRAIN"]).iterdir())
everyone = sorted(p.name for p in pathlib.Path(os.environ["SM_CHANNEL_ALL"]).iterdir())
model = pathlib.Path(os.environ["SM_MODEL_DIR"])
(model / f"{host}.json").write_text(json.dumps({"hosts": hosts, "shard": shard, "all": everyone}))
(model / "leader.txt").write_text(host)
if os.environ.get("SM_HP_FAIL_ON") == host:
    sys.exit(f"host {host} cannot go on")
if os.environ.get("SM_HP_FAIL_ON"):
    pathlib.Path("/nonexistent-never").exists() or __import__("signal").pause()  # waits until it is stopped
"""


def project(tmp_path: Path, stack: LocalStack, *, fail_on: str | None = None) -> Path:
    bucket = stack.outputs["ArtifactBucketName"]
    s3 = boto3.client("s3")
    for index in range(4):
        s3.put_object(Bucket=bucket, Key=f"data/{PROJECT}/train/part-{index}.csv", Body=b"1,2\n")
    root = tmp_path / PROJECT
    root.mkdir()
    (root / "train.py").write_text(TRAIN)
    hyperparameters = f'hyperparameters = {{ fail_on = "{fail_on}" }}\n' if fail_on else ""
    (root / "sagepush.toml").write_text(
        'framework = "xgboost"\nframework_version = "1.7-1"\nentry_point = "train.py"\ninstance_count = 2\n'
        'max_run = "10m"\n' + hyperparameters + "[channels]\n"
        f'train = {{ s3_uri = "s3://{bucket}/data/{PROJECT}/train/", distribution = "ShardedByS3Key" }}\n'
        f'all = "s3://{bucket}/data/{PROJECT}/train/"\n'
    )
    return root


def test_two_instances_run_as_two_hosts_that_know_each_other_with_the_data_sharded(
    stack: LocalStack, tmp_path: Path
) -> None:
    result = demo.run(stack, project(tmp_path, stack), project=PROJECT)

    job = ended(result)
    assert job.status == "Completed", job.failure_reason
    files = model_files(job.model_uri or "")
    seen = {name: json.loads(files[f"{name}.json"]) for name in ("127.0.0.1", "127.0.0.2")}
    assert all(view["hosts"] == ["127.0.0.1", "127.0.0.2"] for view in seen.values())
    shards = [view["shard"] for view in seen.values()]
    assert sorted(shards[0] + shards[1]) == [f"part-{i}.csv" for i in range(4)]  # each object on one host only
    assert len(shards[0]) == len(shards[1]) == 2
    assert all(len(view["all"]) == 4 for view in seen.values())  # a fully replicated channel: every object each
    assert files["leader.txt"] == b"127.0.0.1"  # the first host's file where both wrote the same path


def test_one_host_failing_fails_the_job_naming_it_and_stops_the_other(stack: LocalStack, tmp_path: Path) -> None:
    result = demo.run(stack, project(tmp_path, stack, fail_on="127.0.0.2"), project=PROJECT)

    job = ended(result)
    assert job.status == "Failed"
    assert "host 127.0.0.2 cannot go on" in (job.failure_reason or "")
    assert "(host algo-2)" in (job.failure_reason or "")
