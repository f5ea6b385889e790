"""Unit tests run the core alone: no sockets, no AWS."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest
from pytest_socket import disable_socket, enable_socket

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # A local stack started earlier in the same run points every client at its server (AWS_ENDPOINT_URL*); a unit
    # test's clients are stubbed or moto's in-process ones (mock_aws), which must see AWS's own endpoints.
    for name in [name for name in os.environ if name.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(name)
    disable_socket(allow_unix_socket=True)
    yield
    enable_socket()
