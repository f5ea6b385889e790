"""Upload → staged code → execution → CreateTrainingJob, on the moto server with the real template."""

from __future__ import annotations

import io
import json
import tarfile
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from sagepush_cli import follow
from tests.integration.conftest import load_event
from tests.integration.test_status import finished, wait_for

if TYPE_CHECKING:
    from sagepush_cli.local.stack import LocalStack

TRAIN = b"print('training')\n"
MANIFEST = b'framework = "pytorch"\nframework_version = "2.5"\npy_version = "py311"\nentry_point = "train.py"\nmax_run = "2h"\n'


def tar_gz(files: dict[str, bytes], *, mtime: int = 1_700_000_000) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), mtime
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def upload(stack: LocalStack, s3: Any, key: str, body: bytes, **metadata: str) -> None:
    s3.put_object(Bucket=stack.outputs["IngestBucketName"], Key=key, Body=body, Metadata=metadata)
    stack.drain()


def staged_objects(stack: LocalStack, s3: Any) -> list[str]:
    listed = s3.list_objects_v2(Bucket=stack.outputs["ArtifactBucketName"], Prefix="code/")
    return [item["Key"] for item in listed.get("Contents", [])]


def executions(stack: LocalStack, sfn: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = sfn.list_executions(stateMachineArn=stack.outputs["TrainingStateMachineArn"])[
        "executions"
    ]
    return found


@pytest.mark.usefixtures("instant_jobs")  # the job is not trained: its PyTorch image's packages are gigabytes
def test_upload_is_staged_with_its_members_and_starts_one_execution(stack: LocalStack, s3: Any, sfn: Any) -> None:
    body = tar_gz({"train.py": TRAIN, "sagepush.toml": MANIFEST, ".git/HEAD": b"ref", "pkg/__pycache__/x.pyc": b"0"})
    upload(stack, s3, "incoming/mnist/main.tar.gz", body, **{"sagepush-commit": "9fceb02"})

    [key] = staged_objects(stack, s3)
    assert key.startswith("code/mnist/") and key.endswith("/sourcedir.tar.gz")
    staged = s3.get_object(Bucket=stack.outputs["ArtifactBucketName"], Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(staged)) as archive:
        assert sorted(archive.getnames()) == ["sagepush.toml", "train.py"]
    [execution] = executions(stack, sfn)
    digest = key.split("/")[2]
    assert execution["name"].startswith(f"mnist-{digest[:8]}-")
    document = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])
    assert document["source"]["commit"] == "9fceb02"
    assert document["spec"]["framework"] == "pytorch"


@pytest.mark.usefixtures("instant_jobs")  # the job is not trained: its PyTorch image's packages are gigabytes
@pytest.mark.usefixtures("instant_jobs")  # the job is not trained: its PyTorch image's packages are gigabytes
def test_source_dir_and_dependencies_are_staged_as_the_sdk_stages_them(
    stack: LocalStack, s3: Any, sfn: Any, sagemaker: Any
) -> None:
    manifest = MANIFEST + b'source_dir = "src"\ndependencies = ["lib/common", "tools/utils.py"]\n'
    files = {
        "sagepush.toml": manifest,
        "src/train.py": TRAIN,
        "src/requirements.txt": b"pandas\n",
        "lib/common/__init__.py": b"",
        "tools/utils.py": b"",
        "notebooks/explore.ipynb": b"{}",
    }
    upload(stack, s3, "incoming/mnist/main.tar.gz", tar_gz(files))

    [key] = staged_objects(stack, s3)
    staged = s3.get_object(Bucket=stack.outputs["ArtifactBucketName"], Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(staged)) as archive:
        names = sorted(info.name for info in archive.getmembers() if info.isfile())
    assert names == ["common/__init__.py", "requirements.txt", "sagepush.toml", "train.py", "utils.py"]
    [execution] = executions(stack, sfn)
    [job] = wait_for(lambda: sagemaker.list_training_jobs()["TrainingJobSummaries"], "the training job")
    described = sagemaker.describe_training_job(TrainingJobName=job["TrainingJobName"])
    assert described["HyperParameters"]["sagemaker_program"] == '"train.py"'
    assert job["TrainingJobName"] == execution["name"]


def test_a_missing_dependency_is_refused_naming_the_field_and_path_with_nothing_staged(
    stack: LocalStack, s3: Any, sfn: Any
) -> None:
    key = "incoming/mnist/main.tar.gz"
    manifest = MANIFEST + b'dependencies = ["lib/comon"]\n'
    upload(stack, s3, key, tar_gz({"train.py": TRAIN, "sagepush.toml": manifest, "lib/common/__init__.py": b""}))

    assert executions(stack, sfn) == [] and staged_objects(stack, s3) == []
    with pytest.raises(follow.UploadRefusedError) as refused:
        follow.job_of_upload(s3, bucket=stack.outputs["IngestBucketName"], key=key, version_id=None, timeout=0)
    assert "sagepush.toml: dependencies: 'lib/comon' is not a file or folder of the project" in str(refused.value)


@pytest.mark.usefixtures("instant_jobs")  # the job is not trained: its PyTorch image's packages are gigabytes
def test_staged_digest_is_stable_and_same_code_is_reused_by_a_new_job(stack: LocalStack, s3: Any, sfn: Any) -> None:
    files = {"train.py": TRAIN, "sagepush.toml": MANIFEST}
    upload(stack, s3, "incoming/mnist/a.tar.gz", tar_gz(files, mtime=1))
    upload(stack, s3, "incoming/mnist/b.tar.gz", tar_gz(dict(reversed(files.items())), mtime=2))

    assert len(staged_objects(stack, s3)) == 1
    names = sorted(e["name"] for e in executions(stack, sfn))
    assert len(names) == 2 and names[0].rsplit("-", 1)[0] == names[1].rsplit("-", 1)[0]


@pytest.mark.usefixtures("instant_jobs")  # the job is not trained: its PyTorch image's packages are gigabytes
def test_redelivered_event_changes_nothing(stack: LocalStack, s3: Any, sfn: Any) -> None:
    upload(stack, s3, "incoming/mnist/main.tar.gz", tar_gz({"train.py": TRAIN, "sagepush.toml": MANIFEST}))
    head = s3.head_object(Bucket=stack.outputs["IngestBucketName"], Key="incoming/mnist/main.tar.gz")
    event = load_event("stage-object-created")
    event["detail"]["bucket"]["name"] = stack.outputs["IngestBucketName"]
    event["detail"]["object"].update(
        key="incoming/mnist/main.tar.gz",
        size=head["ContentLength"],
        etag=head["ETag"].strip('"'),
        **{"version-id": head["VersionId"]},
    )
    first = stack.invoke("StageFunction", event)
    again = stack.invoke("StageFunction", event)

    assert first["job_name"] == again["job_name"]
    assert again["already_started"] and again["code_reused"]
    assert len(executions(stack, sfn)) == 1


@pytest.mark.usefixtures("instant_jobs")  # the job is not trained: its PyTorch image's packages are gigabytes
def test_form_encoded_key_falls_back_to_the_raw_key(stack: LocalStack, s3: Any, sfn: Any) -> None:
    key = "incoming/mnist/v1+final.tar.gz"  # a literal '+', which form-decoding would turn into a space
    s3.put_object(
        Bucket=stack.outputs["IngestBucketName"], Key=key, Body=tar_gz({"train.py": TRAIN, "sagepush.toml": MANIFEST})
    )
    stack.drain()
    event = load_event("stage-object-created")
    event["detail"]["bucket"]["name"] = stack.outputs["IngestBucketName"]
    event["detail"]["object"].update(key=key, size=100)
    del event["detail"]["object"]["version-id"]

    result = stack.invoke("StageFunction", event)
    assert result["project"] == "mnist"


@pytest.mark.usefixtures("instant_jobs")  # the job is not trained: its PyTorch image's packages are gigabytes
def test_submit_creates_the_training_job_with_the_expected_request(stack: LocalStack, sagemaker: Any) -> None:
    event = load_event("submit")
    event["code_uri"] = f"s3://{stack.outputs['ArtifactBucketName']}/code/iris/{event['code_digest']}/sourcedir.tar.gz"
    result = stack.invoke("SubmitFunction", event)

    job = sagemaker.describe_training_job(TrainingJobName=result["job_name"])
    assert job["AlgorithmSpecification"]["TrainingImage"].endswith("/sagemaker-scikit-learn:1.2-1-cpu-py3")
    assert job["HyperParameters"]["sagemaker_submit_directory"] == json.dumps(event["code_uri"])
    assert job["HyperParameters"]["sagemaker_program"] == '"train.py"'
    assert job["HyperParameters"]["n_estimators"] == "50"
    assert job["ResourceConfig"]["InstanceType"] == "ml.m5.large"
    assert job["StoppingCondition"]["MaxRuntimeInSeconds"] == 1800
    assert job["RoleArn"] == stack.outputs["SageMakerRoleArn"]
    tags = {t["Key"]: t["Value"] for t in sagemaker.list_tags(ResourceArn=result["job_arn"])["Tags"]}
    assert tags["sagepush:project"] == "iris" and tags["sagepush:commit"] == event["source"]["commit"]


@pytest.mark.usefixtures("instant_jobs")  # the job is not trained: its PyTorch image's packages are gigabytes
def test_submitting_the_same_task_twice_attaches_to_the_first_job(stack: LocalStack, sagemaker: Any) -> None:
    event = load_event("submit")
    first = stack.invoke("SubmitFunction", event)
    second = stack.invoke("SubmitFunction", event)

    assert (first["attached"], second["attached"]) == (False, True)
    assert second["job_arn"] == first["job_arn"]
    assert len(sagemaker.list_training_jobs()["TrainingJobSummaries"]) == 1


def upload_tags(stack: LocalStack, s3: Any, key: str) -> dict[str, str]:
    tag_set = s3.get_object_tagging(Bucket=stack.outputs["IngestBucketName"], Key=key)["TagSet"]
    return {tag["Key"]: tag["Value"] for tag in tag_set}


@pytest.mark.usefixtures("instant_jobs")  # the job is not trained: its PyTorch image's packages are gigabytes
def test_upload_is_tagged_with_the_job_it_became_keeping_its_own_tags(stack: LocalStack, s3: Any, sfn: Any) -> None:
    key = "incoming/mnist/main.tar.gz"
    s3.put_object(
        Bucket=stack.outputs["IngestBucketName"],
        Key=key,
        Body=tar_gz({"train.py": TRAIN, "sagepush.toml": MANIFEST}),
        Tagging="team=vision",
    )
    stack.drain()

    [execution] = executions(stack, sfn)
    assert upload_tags(stack, s3, key) == {"sagepush-job": execution["name"], "team": "vision"}


def test_refused_upload_is_tagged_with_the_reason_and_starts_nothing(stack: LocalStack, s3: Any, sfn: Any) -> None:
    key = "incoming/mnist/main.tar.gz"
    bad = MANIFEST.replace(b'max_run = "2h"', b'max_run = "forever"')
    s3.put_object(
        Bucket=stack.outputs["IngestBucketName"], Key=key, Body=tar_gz({"train.py": TRAIN, "sagepush.toml": bad})
    )
    stack.drain()

    assert executions(stack, sfn) == []
    reason = upload_tags(stack, s3, key)["sagepush-refused"]
    assert "max_run" in reason and "sagepush.toml" in reason
    # `sagepush status` lists it among the project's jobs, with the exact reason.
    from sagepush.ledger import REFUSED, DynamoDBLedger

    [listed] = DynamoDBLedger(stack.resources["LedgerTable"], dynamodb=boto3.client("dynamodb")).project_jobs(
        "mnist", limit=5
    )
    assert listed.job_name.startswith("refused-mnist-") and listed.status == REFUSED
    assert listed.failure_reason is not None and '"forever"' in listed.failure_reason


@pytest.mark.parametrize(
    "name",
    ["v1+final.tar.gz", "100%.tar.gz", "ab%41.tar.gz", "with space.tar.gz", "a%2Bb+c.tar.gz"],
    ids=["plus", "lone-percent", "percent-escape", "space", "plus-and-escape"],
)
@pytest.mark.usefixtures("instant_jobs")  # the job is not trained: its PyTorch image's packages are gigabytes
def test_odd_keys_in_the_versioned_bucket_are_staged_once_and_tagged(
    stack: LocalStack, s3: Any, sfn: Any, name: str
) -> None:
    # A versioned bucket answers the decoded key with a VersionId by NoSuchVersion (not NoSuchKey): the raw key must
    # still be tried, or the upload ends in the dead-letter queue with no word to anyone.
    key = f"incoming/mnist/{name}"
    upload(stack, s3, key, tar_gz({"train.py": TRAIN, "sagepush.toml": MANIFEST}))

    [execution] = executions(stack, sfn)
    assert upload_tags(stack, s3, key) == {"sagepush-job": execution["name"]}
    assert dead_letter_count(stack) == 0


@pytest.mark.usefixtures("instant_jobs")  # the job is not trained: its PyTorch image's packages are gigabytes
def test_an_upload_deleted_before_it_was_staged_is_refused_visibly(stack: LocalStack, s3: Any, sfn: Any) -> None:
    event = load_event("stage-object-created")
    event["detail"]["bucket"]["name"] = stack.outputs["IngestBucketName"]
    event["detail"]["object"].update(key="incoming/mnist/gone+soon.tar.gz", size=100)

    result = stack.invoke("StageFunction", event)

    assert result["refused"] and "gone+soon.tar.gz" in result["problem"]
    assert executions(stack, sfn) == []
    assert dead_letter_count(stack) == 1


def dead_letter_count(stack: LocalStack) -> int:
    sqs = boto3.client("sqs")
    url = stack.outputs["StageDeadLetterQueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def test_a_manifest_beyond_the_policy_is_refused_with_nothing_staged(stack: LocalStack, s3: Any, sfn: Any) -> None:
    from tests.integration.test_status import Alerts

    alerts = Alerts(stack)
    key = "incoming/mnist/main.tar.gz"
    greedy = MANIFEST + b'instance_count = 64\nchannels = { train = "s3://another-team/private/" }\n'
    upload(stack, s3, key, tar_gz({"train.py": TRAIN, "sagepush.toml": greedy}))

    assert executions(stack, sfn) == [] and staged_objects(stack, s3) == []
    reason = upload_tags(stack, s3, key)["sagepush-refused"]
    assert "instance_count" in reason and "channels.train" in reason
    [alert] = alerts.received()
    assert alert["kind"] == "upload-refused" and "instance_count" in alert["failure_reason"]
    assert dead_letter_count(stack) == 1
    # The pusher (`push --wait`) reads the reason back from the upload's tags exactly as the alert gives it.
    with pytest.raises(follow.UploadRefusedError) as refused:
        follow.job_of_upload(s3, bucket=stack.outputs["IngestBucketName"], key=key, version_id=None, timeout=0)
    assert str(refused.value).endswith(f" was refused: {alert['failure_reason']}")


def own_image_manifest(stack: LocalStack) -> bytes:
    """A job that runs its image's own entrypoint, inside the local deployment's policy."""
    data = f"s3://{stack.outputs['ArtifactBucketName']}/data/kmeans/train.csv"
    return f"""image_uri = "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-trainer:2024.11"
instance_type = "ml.m5.large"
volume_size = 10
max_run = 3600

[hyperparameters]
k = 10

[channels.training]
s3_data = "{data}"
content_type = "text/csv"
""".encode()


@pytest.mark.parametrize("key", ["incoming/kmeans/sagepush.toml", "incoming/kmeans/main.tar.gz"])
def test_a_job_running_its_images_entrypoint_stages_nothing_and_sends_plain_hyperparameters(
    stack: LocalStack, s3: Any, sfn: Any, sagemaker: Any, key: str
) -> None:
    manifest = own_image_manifest(stack)
    upload(stack, s3, key, manifest if key.endswith(".toml") else tar_gz({"sagepush.toml": manifest}))

    assert staged_objects(stack, s3) == []
    [execution] = executions(stack, sfn)
    assert json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])["code_uri"] == ""
    ended = wait_for(finished(sfn, execution["executionArn"]), "the execution to end")
    assert (ended["status"], ended["error"]) == ("FAILED", "sagepush.TrainingFailed")
    job = sagemaker.describe_training_job(TrainingJobName=execution["name"])
    assert job["HyperParameters"] == {"k": "10"}
    assert job["AlgorithmSpecification"]["TrainingImage"].endswith("/my-trainer:2024.11")
    # No container runtime here: the local stack says so at once instead of failing somewhere obscure.
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("ClientError: the local stack runs scripts, not images")


def test_an_images_own_entrypoint_gets_the_staged_code_as_the_channel_it_names(
    stack: LocalStack, s3: Any, sfn: Any, sagemaker: Any
) -> None:
    # Top-level keys before the manifest's tables: TOML would read them as the last table's.
    entry = b'["sh", "-c", "tar -xzf /opt/ml/input/data/code/sourcedir.tar.gz -C /tmp && python /tmp/train.py"]'
    manifest = b'code_channel = "code"\ncontainer_entry_point = ' + entry + b"\n" + own_image_manifest(stack)
    upload(stack, s3, "incoming/kmeans/main.tar.gz", tar_gz({"sagepush.toml": manifest, "train.py": b"print(1)\n"}))

    [staged] = staged_objects(stack, s3)
    [execution] = executions(stack, sfn)
    code_uri = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])["code_uri"]
    assert code_uri == f"s3://{stack.outputs['ArtifactBucketName']}/{staged}"
    wait_for(finished(sfn, execution["executionArn"]), "the execution to end")
    job = sagemaker.describe_training_job(TrainingJobName=execution["name"])
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in job["InputDataConfig"]}
    assert channels["code"] == code_uri and channels["training"].endswith("/train.csv")
    assert job["AlgorithmSpecification"]["ContainerEntrypoint"][0] == "sh"
    assert job["HyperParameters"] == {"k": "10"}


def test_a_built_in_algorithm_is_refused_by_the_local_trainer_with_why(stack: LocalStack, s3: Any, sfn: Any) -> None:
    manifest = own_image_manifest(stack).replace(
        b'image_uri = "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-trainer:2024.11"', b'algorithm = "kmeans"'
    )
    upload(stack, s3, "incoming/kmeans/sagepush.toml", manifest)

    [execution] = executions(stack, sfn)
    wait_for(finished(sfn, execution["executionArn"]), "the execution to end")
    job = boto3.client("sagemaker").describe_training_job(TrainingJobName=execution["name"])
    assert job["AlgorithmSpecification"]["TrainingImage"].endswith("/kmeans:1")
    assert "the built-in algorithm kmeans runs on SageMaker only" in job["FailureReason"]


def test_an_algorithm_resource_job_is_created_by_name_and_refused_by_the_local_trainer(
    stack: LocalStack, s3: Any, sfn: Any
) -> None:
    manifest = own_image_manifest(stack).replace(
        b'image_uri = "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-trainer:2024.11"', b'algorithm_name = "my-algo"'
    )
    upload(stack, s3, "incoming/kmeans/sagepush.toml", manifest)

    [execution] = executions(stack, sfn)
    wait_for(finished(sfn, execution["executionArn"]), "the execution to end")
    job = boto3.client("sagemaker").describe_training_job(TrainingJobName=execution["name"])
    assert job["AlgorithmSpecification"]["AlgorithmName"] == "my-algo"
    assert "TrainingImage" not in job["AlgorithmSpecification"]
    assert job["FailureReason"].startswith("ClientError: the local stack runs scripts, not images: this job runs the")
