"""Streaming output into S3 on the moto server: what arrives is what was written, and a failure leaves nothing."""

from __future__ import annotations

import gzip
import io
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError

from sagepush import s3stream, staging
from sagepush.s3stream import PART_BYTES, Pipe, upload_stream
from tests.unit.archives import listing_digest

if TYPE_CHECKING:
    from collections.abc import Callable

    from sagepush_cli.local.stack import LocalStack

BUCKET = "stream-target"
_BOUND = 60  # seconds a thread may take before the test calls it stuck


@pytest.fixture
def bucket(s3: Any) -> str:
    s3.create_bucket(Bucket=BUCKET)
    return BUCKET


def _writer(data: bytes, *, piece: int = 300_007, fail_after: int | None = None) -> Callable[[Pipe], None]:
    def produce(pipe: Pipe) -> None:
        for start in range(0, len(data), piece):
            if fail_after is not None and start >= fail_after:
                raise OSError("the spool ended early")
            pipe.write(data[start : start + piece])

    return produce


def _bounded(call: Callable[[], Any]) -> Any:
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(call).result(timeout=_BOUND)


@pytest.mark.parametrize(
    "size", [0, 1000, PART_BYTES - 1, 2 * PART_BYTES + 12_345], ids=["empty", "small", "one-part", "three-parts"]
)
def test_what_is_written_is_what_arrives(s3: Any, bucket: str, size: int) -> None:
    data = random.Random(size).randbytes(size)
    upload_stream(_writer(data), s3=s3, bucket=bucket, key="out.bin", extra_args={"ContentType": "application/gzip"})
    got = s3.get_object(Bucket=bucket, Key="out.bin")
    assert got["Body"].read() == data
    assert got["ContentType"] == "application/gzip"
    parts = got["ETag"].strip('"').partition("-")[2]
    assert parts == ("3" if size > 2 * PART_BYTES else "")  # large output goes up in parts, small in one PutObject


@pytest.mark.parametrize("fail_after", [1000, 2 * PART_BYTES], ids=["before-the-first-part", "after-two-parts"])
def test_a_failed_producer_leaves_no_object_and_no_open_upload(s3: Any, bucket: str, fail_after: int) -> None:
    data = random.Random(7).randbytes(3 * PART_BYTES)
    with pytest.raises(OSError, match="spool ended early"):
        _bounded(lambda: upload_stream(_writer(data, fail_after=fail_after), s3=s3, bucket=bucket, key="out.bin"))
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)


def test_a_failed_upload_stops_the_producer(s3: Any, stack: LocalStack) -> None:
    produced = threading.Event()

    def endless(pipe: Pipe) -> None:
        block = bytes(PART_BYTES)
        while True:
            pipe.write(block)
            produced.set()

    with pytest.raises(ClientError, match="NoSuchBucket"):
        _bounded(lambda: upload_stream(endless, s3=s3, bucket="no-such-bucket", key="out.bin"))
    assert produced.is_set()


def test_staged_code_is_keyed_by_its_listing_digest_and_reused_without_an_upload(s3: Any, bucket: str) -> None:
    project = io.BytesIO()
    with gzip.GzipFile(fileobj=project, mode="wb", mtime=0) as gz:
        gz.write(_tar({"train.py": b"print('hi')\n", "data/big.bin": random.Random(3).randbytes(3 * PART_BYTES)}))
    s3.put_object(Bucket=bucket, Key="incoming/p/code.tar.gz", Body=project.getvalue())
    staged = staging.stage_object(
        bucket=bucket, key="incoming/p/code.tar.gz", version_id=None, dest_bucket=bucket, dest_prefix="code/p", s3=s3
    )
    body = s3.get_object(Bucket=bucket, Key=f"code/p/{staged.digest}/sourcedir.tar.gz")["Body"].read()
    assert listing_digest(body) == staged.digest
    assert (staged.code.size, staged.reused) == (len(body), False)
    again = staging.stage_object(
        bucket=bucket, key="incoming/p/code.tar.gz", version_id=None, dest_bucket=bucket, dest_prefix="code/p", s3=s3
    )
    assert (again.uri, again.reused, again.code.size) == (staged.uri, True, len(body))


def _tar(files: dict[str, bytes]) -> bytes:
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_pipe_reads_are_whole_until_the_end() -> None:
    pipe = Pipe(capacity=1 << 20)
    pipe.write(b"abc")
    pipe.write(b"defgh")
    pipe.close()
    assert [pipe.read(4), pipe.read(4), pipe.read(4)] == [b"abcd", b"efgh", b""]


def test_pipe_raises_the_producers_error_instead_of_ending() -> None:
    pipe = Pipe(capacity=1 << 20)
    pipe.write(b"abc")
    pipe.close(OSError("disk gone"))
    with pytest.raises(s3stream.ProducerFailed) as caught:
        pipe.read()
    assert isinstance(caught.value.__cause__, OSError)


def test_the_producer_runs_ahead_of_the_upload_by_a_bounded_amount(s3: Any, bucket: str) -> None:
    produced, sent, ahead = [0], [0], [0]
    lock = threading.Lock()

    def producer(pipe: Pipe) -> None:
        block = random.Random(9).randbytes(1 << 20)
        for _ in range(24 * PART_BYTES // len(block)):
            pipe.write(block)
            with lock:
                produced[0] += len(block)
                ahead[0] = max(ahead[0], produced[0] - sent[0])

    def count_sent(**_: Any) -> None:
        with lock:
            sent[0] += PART_BYTES  # every part but the last is PART_BYTES; the output here is whole parts

    s3.meta.events.register("after-call.s3.UploadPart", count_sent)
    try:
        upload_stream(producer, s3=s3, bucket=bucket, key="big.bin")
    finally:
        s3.meta.events.unregister("after-call.s3.UploadPart", count_sent)
    assert s3.head_object(Bucket=bucket, Key="big.bin")["ContentLength"] == produced[0]
    # the pipe's buffer, the parts read and waiting or on the wire, and the part being read
    assert ahead[0] <= s3stream.BUFFER_BYTES + (s3stream._CONCURRENCY + 2) * PART_BYTES, ahead[0] / PART_BYTES
