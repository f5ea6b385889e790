"""repack: a job's model.tar.gz and its staged code joined into one model archive, the code under code/, streamed."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from sagepush import repack
from sagepush.archive import StagingError

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "artifacts"
MODEL = f"s3://{BUCKET}/output/iris-0123abcd-456789/output/model.tar.gz"
CODE = f"s3://{BUCKET}/code/iris/3f5c/sourcedir.tar.gz"
REPACKED = f"s3://{BUCKET}/output/iris-0123abcd-456789/output/model-repacked.tar.gz"


def tar_gz(members: list[tuple[str, bytes | None]], *, links: dict[str, str] | None = None) -> bytes:
    """A tar.gz of `members` (None: a directory) and symbolic `links` (name -> target), in order."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return out.getvalue()


@pytest.fixture
def s3() -> Iterator[Any]:
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s")
        client.create_bucket(Bucket=BUCKET)
        yield client


def _put(s3: Any, uri: str, data: bytes) -> None:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    s3.put_object(Bucket=bucket, Key=key, Body=data)


def _read(s3: Any, uri: str) -> tuple[bytes, dict[str, bytes | None]]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    members: dict[str, bytes | None] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for info in tar:
            extracted = tar.extractfile(info) if info.isfile() else None
            members[info.name] = extracted.read() if extracted else None
    return data, members


CODE_TREE: list[tuple[str, bytes | None]] = [
    ("serve.py", b"def model_fn(model_dir):\n    return 1\n"),
    ("requirements.txt", b"numpy\n"),
    ("lib/common/util.py", b"X = 1\n"),
]


def test_model_members_first_as_they_are_then_the_code_under_code(s3: Any) -> None:
    _put(s3, MODEL, tar_gz([("./", None), ("./model.pth", b"weights"), ("./extra/vocab.txt", b"a b")]))
    _put(s3, CODE, tar_gz(CODE_TREE))
    assert repack.repack(s3=s3, model_data_url=MODEL, code_uri=CODE) == REPACKED
    _, members = _read(s3, REPACKED)
    assert list(members) == [
        "model.pth",
        "extra/vocab.txt",
        "code",
        "code/serve.py",
        "code/requirements.txt",
        "code/lib/common/util.py",
    ]
    assert members["model.pth"] == b"weights"
    assert members["code/serve.py"] == CODE_TREE[0][1]
    assert members["code/lib/common/util.py"] == b"X = 1\n"


def test_the_code_replaces_the_models_own_code_files_and_keeps_the_rest(s3: Any) -> None:
    # As the SDK's repack extracts sourcedir.tar.gz over the model's code/: same name replaced, others kept.
    _put(s3, MODEL, tar_gz([("model.pth", b"w"), ("code", None), ("code/serve.py", b"old"), ("code/keep.py", b"k")]))
    _put(s3, CODE, tar_gz(CODE_TREE))
    repack.repack(s3=s3, model_data_url=MODEL, code_uri=CODE)
    _, members = _read(s3, REPACKED)
    assert members["code/serve.py"] == CODE_TREE[0][1]
    assert members["code/keep.py"] == b"k"
    assert list(members).count("code") == 1
    assert list(members).count("code/serve.py") == 1


def test_the_same_inputs_give_the_same_bytes(s3: Any) -> None:
    _put(s3, MODEL, tar_gz([("model.pth", os.urandom(3 << 20)), ("config.json", b"{}")]))
    _put(s3, CODE, tar_gz(CODE_TREE))
    first, _ = _read(s3, repack.repack(s3=s3, model_data_url=MODEL, code_uri=CODE))
    second, _ = _read(s3, repack.repack(s3=s3, model_data_url=MODEL, code_uri=CODE))
    assert first == second


@pytest.mark.parametrize(
    ("members", "links", "where", "rule"),
    [
        ([("model.pth", b"w")], {"weights.bin": "/etc/passwd"}, "weights.bin", "type"),
        ([("/abs/model.pth", b"w")], None, "/abs/model.pth", "path"),
        ([("../escape.pth", b"w")], None, "../escape.pth", "path"),
        ([("sub/../../escape.pth", b"w")], None, "sub/../../escape.pth", "path"),
        ([("code", b"a file")], None, "code", "path"),
    ],
    ids=["symlink", "absolute", "dotdot", "nested-dotdot", "code-is-a-file"],
)
def test_a_hostile_model_member_is_refused_by_name_and_nothing_is_written(
    s3: Any, members: list[tuple[str, bytes | None]], links: dict[str, str] | None, where: str, rule: str
) -> None:
    _put(s3, MODEL, tar_gz(members, links=links))
    _put(s3, CODE, tar_gz(CODE_TREE))
    with pytest.raises(StagingError) as caught:
        repack.repack(s3=s3, model_data_url=MODEL, code_uri=CODE)
    assert (caught.value.where, caught.value.rule) == (where, rule), str(caught.value)
    assert MODEL in caught.value.message
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="output/")["Contents"]
    assert [o["Key"] for o in listed] == [MODEL.split("/", 3)[3]]


def test_a_hard_link_in_the_model_is_refused(s3: Any) -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        info = tarfile.TarInfo("model.pth")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"w"))
        link = tarfile.TarInfo("again.pth")
        link.type = tarfile.LNKTYPE
        link.linkname = "model.pth"
        tar.addfile(link)
    _put(s3, MODEL, out.getvalue())
    _put(s3, CODE, tar_gz(CODE_TREE))
    with pytest.raises(StagingError, match="hard link") as caught:
        repack.repack(s3=s3, model_data_url=MODEL, code_uri=CODE)
    assert caught.value.where == "again.pth"


def test_the_repacked_address_sits_next_to_the_model() -> None:
    assert repack.repacked_uri(MODEL) == REPACKED
    with pytest.raises(StagingError):
        repack.repacked_uri("/local/model.tar.gz")


@pytest.mark.parametrize(
    ("framework", "version", "repacked"),
    [
        ("pytorch", "2.5", True),
        ("pytorch", "1.13.1", True),
        ("pytorch", "1.1.0", False),  # before the MMS images the SDK uploaded the code, as for sklearn
        ("huggingface", "4.49.0", True),
        ("tensorflow", "2.16", True),
        ("sklearn", "1.2-1", False),
        ("xgboost", "1.7-1", False),
        (None, None, False),
    ],
)
def test_which_frameworks_are_repacked(framework: str | None, version: str | None, repacked: bool) -> None:
    assert repack.repacked_by_the_sdk(framework, version) is repacked


# ------------------------------------------------------------------------------------------------ bounded memory

MODEL_BYTES = 384 << 20
RSS_GROWTH_BUDGET = 128 << 20  # s3stream's parts and buffer (48 MiB), the deflate workers' chunks, the reader's

_MEASURE = """
import io, json, sys, tarfile
import boto3
from isal import igzip
from moto import mock_aws
from sagepush import repack

size = int(sys.argv[1])

def vm(field):
    return int(open("/proc/self/status").read().split(field + ":")[1].split()[0]) * 1024

with mock_aws():
    s3 = boto3.client("s3", region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s")
    s3.create_bucket(Bucket="artifacts")
    # The model's members streamed into a compressed object: a few hundred MiB expanded, small stored.
    model = io.BytesIO()
    with igzip.GzipFile(fileobj=model, mode="wb", compresslevel=1) as gz, tarfile.open(fileobj=gz, mode="w|") as tar:
        for name, part in (("model.pth", size - (1 << 20)), ("optimizer.pt", 1 << 20)):
            info = tarfile.TarInfo(name)
            info.size = part
            with open("/dev/zero", "rb") as zeros:
                tar.addfile(info, zeros)
    s3.put_object(Bucket="artifacts", Key="output/j/output/model.tar.gz", Body=model.getvalue())
    code = io.BytesIO()
    with tarfile.open(fileobj=code, mode="w:gz") as tar:
        info = tarfile.TarInfo("serve.py")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"#\\n"))
    s3.put_object(Bucket="artifacts", Key="code/p/d/sourcedir.tar.gz", Body=code.getvalue())
    del model, code
    before = vm("VmRSS")
    uri = repack.repack(
        s3=s3, model_data_url="s3://artifacts/output/j/output/model.tar.gz", code_uri="s3://artifacts/code/p/d/sourcedir.tar.gz"
    )
    peak = vm("VmHWM")
    names, expanded = [], 0
    body = s3.get_object(Bucket="artifacts", Key=uri.split("/", 3)[3])["Body"]
    with tarfile.open(fileobj=body, mode="r|gz") as tar:
        for info in tar:
            names.append(info.name)
            expanded += info.size
print(json.dumps({"before": before, "peak": peak, "names": names, "expanded": expanded}))
"""


@pytest.mark.timeout(120)
def test_a_large_model_is_repacked_in_bounded_memory(tmp_path: Path) -> None:
    # A fresh process, so its peak RSS is this repack's (and the setup's, which stays below the baseline taken).
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(MODEL_BYTES)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(ROOT)},
        timeout=110,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout)
    assert outcome["names"] == ["model.pth", "optimizer.pt", "code", "code/serve.py"]
    assert outcome["expanded"] == MODEL_BYTES + 2
    growth = outcome["peak"] - outcome["before"]
    assert growth < RSS_GROWTH_BUDGET, f"RSS grew {growth >> 20} MiB repacking a {MODEL_BYTES >> 20} MiB model"
