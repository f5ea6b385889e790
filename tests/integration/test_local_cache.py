"""A starting local stack prunes the cache entries nobody used lately, and never one in use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from sagepush_cli.local import cache
from tests.unit.test_local_cache import env, job, staged

ROOT = Path(__file__).resolve().parents[2]

# Its own process: moto's backends are process-wide, and this run's stack must not reset the session's.
START = textwrap.dedent(
    """
    import json
    from sagepush_cli.local.stack import LocalStack

    with LocalStack() as stack:
        print(json.dumps([str(entry.path) for entry in stack.pruned.removed]))
    """
)


def test_a_starting_stack_prunes_entries_unused_for_the_configured_age_but_none_in_use(tmp_path: Path) -> None:
    root = tmp_path / "local"
    old_job, recent_job = job(root, "iris-old", 8), job(root, "iris-recent", 6)
    old_env, held_env = env(root, "aaaa", 30), env(root, "bbbb", 30)
    old_code = staged(root, "code/iris/1111/sourcedir.tar.gz", 8)
    environment = {**os.environ, cache.HOME_ENV: str(root), cache.PRUNE_AFTER_ENV: "7d"}

    with cache.in_use(held_env):  # a job of another stack is using it
        done = subprocess.run(
            [sys.executable, "-c", START], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300
        )

    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(json.loads(done.stdout.strip().splitlines()[-1])) == sorted(map(str, [old_job, old_env, old_code]))
    assert recent_job.is_dir() and held_env.is_dir()
    assert not old_job.exists() and not old_env.exists() and not old_code.exists()


KEEP = textwrap.dedent(
    """
    import json
    import boto3
    from sagepush_cli.local.stack import LocalStack
    from sagepush_cli.local.trainer import LocalTrainer

    LocalTrainer.start = lambda self, job, **_: None  # the job need not run: only that it names its code
    with LocalStack(keep_staged_code=True, prune_after=None) as stack:
        bucket = stack.outputs["ArtifactBucketName"]
        (stack._staged_code_store() / "code/iris/pruned/sourcedir.tar.gz").unlink()  # by another process's prune
        boto3.client("sagemaker").create_training_job(
            TrainingJobName="iris-ran",
            AlgorithmSpecification={"TrainingImage": "sklearn:1.2-1", "TrainingInputMode": "File"},
            RoleArn="arn:aws:iam::123456789012:role/sagemaker",
            HyperParameters={"sagemaker_submit_directory": json.dumps(f"s3://{bucket}/code/iris/ran/sourcedir.tar.gz")},
            OutputDataConfig={"S3OutputPath": f"s3://{bucket}/output/"},
            ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
            StoppingCondition={"MaxRuntimeInSeconds": 60},
        )
    """
)


def test_kept_staged_code_ages_from_its_last_run_by_a_job_and_a_pruned_one_is_not_kept_again(tmp_path: Path) -> None:
    root = tmp_path / "local"
    ran, idle, pruned = (
        staged(root, f"code/iris/{name}/sourcedir.tar.gz", 10).relative_to(root / "staged-code" / "sagepush-local")
        for name in ("ran", "idle", "pruned")
    )
    store = root / "staged-code" / "sagepush-local"
    environment = {**os.environ, cache.HOME_ENV: str(root)}

    done = subprocess.run(
        [sys.executable, "-c", KEEP], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300
    )

    assert done.returncode == 0, done.stderr[-2000:]
    pruned_after = cache.prune(root, older_than=7 * 86400, dry_run=True)
    assert [entry.path for entry in pruned_after.removed] == [store / idle]
    assert (store / ran).is_file() and not (store / pruned).exists()
