"""LocalStack.drain: it waits as long as asynchronous invocations keep finishing, and names a stuck one."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

import pytest

from sagepush_cli.local.stack import LocalStack

if TYPE_CHECKING:
    from collections.abc import Callable

NO_PROGRESS_SECONDS = 2.0
WORK_SECONDS = 0.5  # how long each simulated invocation works: six in a row outlast the no-progress timeout


def stack_with(*work: Callable[[], object]) -> LocalStack:
    """A stack that is not started: only its asynchronous-invocation pool, one thread, with `work` queued on it."""
    stack = LocalStack(prune_after=None)
    stack._async = ThreadPoolExecutor(1, thread_name_prefix="lambda-async")
    for item in work:
        future: Future[None] = stack._async.submit(item)  # type: ignore[arg-type]  # the pool holds Future[None]
        stack._pending.add(future)
        future.add_done_callback(stack._forget)
    return stack


def test_a_long_queue_that_keeps_finishing_is_drained_whatever_its_total_time() -> None:
    finished: list[int] = []

    def work(n: int) -> Callable[[], None]:
        def invocation() -> None:
            time.sleep(WORK_SECONDS)
            finished.append(n)

        return invocation

    stack = stack_with(*(work(n) for n in range(6)))

    stack.drain(timeout=NO_PROGRESS_SECONDS)

    assert finished == list(range(6))  # 3 s of work behind a 2 s no-progress timeout


def test_an_invocation_that_never_finishes_raises_with_the_threads_stacks() -> None:
    gate = threading.Event()
    stack = stack_with(gate.wait)
    try:
        with pytest.raises(TimeoutError) as caught:
            stack.drain(timeout=NO_PROGRESS_SECONDS)
    finally:
        gate.set()
        stack._async.shutdown(wait=True)

    assert "1 asynchronous invocation(s) pending, none finished in 2 s" in str(caught.value)
    assert "thread lambda-async_0:" in str(caught.value) and "in wait" in str(caught.value)
