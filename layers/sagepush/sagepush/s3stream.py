"""Streaming into S3: what a producer writes becomes one object, uploaded while it is being written, never on disk.

The producer runs in its own thread and writes into a bounded pipe; boto3's transfer manager reads the other end
and sends it as one PutObject (small output) or as a multipart upload whose parts go out while later ones are still
being produced. A failure at either end stops the other: a producer error aborts the upload (a multipart upload is
aborted, a single PutObject is never sent), so no truncated object ever appears under the key.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import TYPE_CHECKING, Any, Final, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from mypy_boto3_s3 import S3Client

T = TypeVar("T")

PART_BYTES: Final = 8 * 1024 * 1024
"""Size of each multipart part; output below it goes up as one PutObject."""
BUFFER_BYTES: Final = 16 * 1024 * 1024
"""Output the producer may run ahead of the upload."""
_CONCURRENCY: Final = 4  # parts read and not yet sent: memory stays under this x PART_BYTES + BUFFER_BYTES


class ProducerFailed(Exception):
    """Raised into the transfer manager's read when the producer failed, so it aborts instead of completing."""


class _Stopped(Exception):
    """Raised into whichever end of a pipe is still working once the other has failed."""


class Pipe:
    """A bounded byte pipe from one writing thread to one reading thread, which either side can break.

    `write` blocks while `capacity` bytes wait unread; `read(n)` blocks until it has `n` bytes or the writer closed
    the pipe, as a file's read does, which is what the transfer manager expects of a non-seekable stream.
    """

    def __init__(self, capacity: int) -> None:
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._capacity = capacity
        self._changed = threading.Condition()
        self._closed = False
        self._error: BaseException | None = None
        self._abandoned = False
        self._reader_gone: Callable[[], bool] = lambda: False

    # ----------------------------------------------------------------- writer
    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Queue `data` for the reader, waiting while the pipe is full; raise if the reader has gone."""
        if not data:
            return 0
        with self._changed:
            self._changed.wait_for(lambda: self._buffered < self._capacity or self._abandoned)
            if self._abandoned:
                raise _Stopped("the upload stopped reading")
            self._chunks.append(bytes(data))
            self._buffered += len(data)
            self._changed.notify_all()
        return len(data)

    def close(self, error: BaseException | None = None) -> None:
        """End the stream: cleanly, or with `error`, which the reader then raises instead of seeing the end."""
        with self._changed:
            self._closed = True
            self._error = error
            self._changed.notify_all()

    # ----------------------------------------------------------------- reader
    def read(self, size: int = -1, /) -> bytes:
        """Return `size` bytes (all that is left when `size` < 0), fewer only at the end of a cleanly closed stream."""
        pieces: list[bytes] = []
        got = 0
        with self._changed:
            while size < 0 or got < size:
                self._changed.wait_for(lambda: self._chunks or self._closed)
                if self._error is not None:
                    raise ProducerFailed("the output could not be produced") from self._error
                if self._reader_gone():
                    raise _Stopped("the upload failed; nothing more is read")
                if not self._chunks:
                    break
                chunk = self._chunks.popleft()
                wanted = len(chunk) if size < 0 else min(len(chunk), size - got)
                if wanted < len(chunk):
                    self._chunks.appendleft(chunk[wanted:])
                    chunk = chunk[:wanted]
                pieces.append(chunk)
                got += wanted
                self._buffered -= wanted
                self._changed.notify_all()
        return b"".join(pieces)

    def stop_reading_when(self, gone: Callable[[], bool]) -> None:
        """Make `read` raise once `gone()` is true: the reader's own work failed and reading on would be wasted."""
        self._reader_gone = gone

    def abandon(self) -> None:
        """Stop reading: a writer waiting on, or later calling, `write` raises."""
        with self._changed:
            self._abandoned = True
            self._changed.notify_all()


def upload_stream(
    produce: Callable[[Pipe], T],
    *,
    s3: S3Client,
    bucket: str,
    key: str,
    extra_args: Mapping[str, Any] | None = None,
) -> T:
    """Upload to `s3://bucket/key` what `produce` writes to the pipe it is given, while it writes it; return what
    `produce` returned.

    `produce` runs in its own thread. If it fails, its own exception is raised here and nothing is stored; if the
    upload fails, `produce` is stopped at its next write and the upload's error is raised.
    """
    from s3transfer.manager import TransferConfig, TransferManager

    pipe = Pipe(BUFFER_BYTES)
    failure: list[BaseException] = []
    produced: list[T] = []

    def run() -> None:
        try:
            produced.append(produce(pipe))
        except BaseException as exc:
            failure.append(exc)
            pipe.close(exc)
        else:
            pipe.close()

    producer = threading.Thread(target=run, name="sagepush-produce", daemon=True)
    producer.start()
    config = TransferConfig(
        multipart_threshold=PART_BYTES,
        multipart_chunksize=PART_BYTES,
        max_request_concurrency=_CONCURRENCY,
        max_in_memory_upload_chunks=_CONCURRENCY,
    )
    try:
        with TransferManager(s3, config) as manager:
            future = manager.upload(pipe, bucket, key, extra_args=dict(extra_args or {}))  # type: ignore[arg-type]
            # The transfer manager reads a stream to its end even after a part failed: stop it at once instead.
            pipe.stop_reading_when(future.done)
            future.result()
    except BaseException:
        pipe.abandon()
        producer.join()
        if failure and not isinstance(failure[0], _Stopped):
            raise failure[0] from None
        raise
    producer.join()
    return produced[0]
