"""Faults injected at the HTTP boundary of a real botocore client: the request never reaches moto, or its answer is lost.

A fault is a `before-send` handler on one client's event system (botocore emits it just before the HTTP request goes
out; a handler that returns a response replaces the round trip). So the product code runs unchanged, botocore parses
the error as it would AWS's, and its own retry policy sees it exactly as it would see AWS's.

`EmulatedWaits` records the waits that botocore's retry backoff and the emulated Step Functions retrier ask for and
returns at once: a test then asserts the backoff instead of sitting through it.
"""

from __future__ import annotations

import json
import threading
import time
import types
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from botocore.exceptions import ReadTimeoutError
from botocore.httpsession import URLLib3Session

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import pytest
    from botocore.awsrequest import AWSPreparedRequest


class _Body:
    """The `raw` of an AWSResponse: botocore reads it through `stream()`."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


def error_response(client: Any, code: str, *, status: int, message: str = "injected fault") -> AWSResponse:
    """Return the error response AWS sends for `code`, in the client's protocol (JSON, query XML or REST XML)."""
    request_id = str(uuid.uuid4())
    protocol = client.meta.service_model.protocol
    if protocol == "json":
        version = client.meta.service_model.metadata.get("jsonVersion", "1.1")
        headers = {"Content-Type": f"application/x-amz-json-{version}", "x-amzn-RequestId": request_id}
        body = json.dumps({"__type": code, "message": message}).encode()
    elif protocol == "query":
        headers = {"Content-Type": "text/xml", "x-amzn-RequestId": request_id}
        kind = "Receiver" if status >= 500 else "Sender"
        body = (
            f"<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        ).encode()
    elif protocol == "rest-xml":
        headers = {"Content-Type": "application/xml", "x-amz-request-id": request_id}
        text = f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{request_id}</RequestId></Error>"
        body = text.encode()
    else:
        raise ValueError(f"no error shape for the {protocol} protocol")
    return AWSResponse("http://127.0.0.1/injected", status, HTTPHeaders.from_dict(headers), _Body(body))


@dataclass
class Injection:
    """One armed fault: which requests it hit and which it let through."""

    operation: str
    times: int
    hits: list[bytes] = field(default_factory=list)
    passed: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, body: bytes, when: Callable[[bytes], bool] | None) -> bool:
        """Return True when this request is to fail (counting it), False when it goes through."""
        with self._lock:
            if len(self.hits) < self.times and (when is None or when(body)):
                self.hits.append(body)
                return True
            self.passed += 1
            return False


@contextmanager
def refused(
    client: Any,
    operation: str,
    code: str,
    *,
    status: int = 400,
    times: int = 1,
    when: Callable[[bytes], bool] | None = None,
) -> Iterator[Injection]:
    """Answer the next `times` `operation` requests of `client` (those `when` selects) with AWS's `code` error.

    The refused requests never reach the server. `operation` is the API name (`CreateTrainingJob`), or `*` for all.
    """
    injection = Injection(operation, times)

    def handler(request: AWSPreparedRequest, **_: Any) -> AWSResponse | None:
        if injection.take(_body(request), when):
            return error_response(client, code, status=status)
        return None

    with _registered(client, operation, handler):
        yield injection


@contextmanager
def answer_lost(client: Any, operation: str, *, times: int = 1) -> Iterator[Injection]:
    """Deliver the next `times` `operation` requests to the server, then lose the answer (a read timeout).

    This is a crash between the call and its result: the server has done the work, the caller cannot know it.
    """
    injection = Injection(operation, times)
    session = URLLib3Session()

    def handler(request: AWSPreparedRequest, **_: Any) -> AWSResponse | None:
        if not injection.take(_body(request), None):
            return None
        session.send(request)
        raise ReadTimeoutError(endpoint_url=request.url)

    with _registered(client, operation, handler):
        yield injection


@contextmanager
def dies_after(client: Any, operation: str, error_type: str, *, times: int = 1) -> Iterator[Injection]:
    """Let the next `times` `operation` calls of `client` succeed, then kill the invocation that made them.

    The invocation ends with an exception whose class name is `error_type`, which is what the local stack (and
    Lambda) reports as the function's error type, so `Sandbox.Timedout` is a function killed at its timeout right
    after the call did its work.
    """
    injection = Injection(operation, times)
    died = type(error_type, (Exception,), {})

    def handler(http_response: Any, **_: Any) -> None:
        if http_response.status_code < 300 and injection.take(b"", None):
            raise died(f"{operation} succeeded, then the invocation died ({error_type})")

    service = client.meta.service_model.service_id.hyphenize()
    event = f"after-call.{service}.{operation}"
    client.meta.events.register_first(event, handler)
    try:
        yield injection
    finally:
        client.meta.events.unregister(event, handler)


@contextmanager
def _registered(client: Any, operation: str, handler: Callable[..., Any]) -> Iterator[None]:
    service = client.meta.service_model.service_id.hyphenize()
    event = f"before-send.{service}" if operation == "*" else f"before-send.{service}.{operation}"
    client.meta.events.register_first(event, handler)
    try:
        yield
    finally:
        client.meta.events.unregister(event, handler)


def _body(request: AWSPreparedRequest) -> bytes:
    body = request.body
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode()
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    return b""


class EmulatedWaits:
    """Record the waits botocore's retries and the emulated Step Functions retrier ask for, without waiting."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import botocore.endpoint
        from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

        self.botocore: list[float] = []
        self.state_machine: list[float] = []
        monkeypatch.setattr(botocore.endpoint, "time", _recording_time(self.botocore))
        monkeypatch.setattr(retrier_decl, "time", _recording_time(self.state_machine))


def _recording_time(waits: list[float]) -> types.SimpleNamespace:
    """A stand-in for the `time` module whose `sleep` records its argument; everything else is the real clock."""
    return types.SimpleNamespace(sleep=waits.append, time=time.time, monotonic=time.monotonic)
