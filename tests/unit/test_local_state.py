"""The local stack's saved state: what moto's backends hold for threads is saved afresh, and the summary reads well."""

from __future__ import annotations

import collections
import io
import pickle
import queue
import threading
import weakref
from typing import Any

import pytest

from sagepush_cli.local import state


class Function:
    """Stands for moto's LambdaFunction: held strongly in one mapping, weakly in another."""


def round_trip(value: Any) -> Any:
    buffer = io.BytesIO()
    state._Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    return pickle.loads(buffer.getvalue())


def test_locks_come_back_released_and_a_queue_s_conditions_still_share_its_mutex() -> None:
    held, waiting = threading.Lock(), queue.Queue[str]()
    held.acquire()
    waiting.put("message")

    restored = round_trip({"lock": held, "rlock": threading.RLock(), "queue": waiting})

    assert restored["lock"].acquire(blocking=False)
    assert restored["rlock"].acquire(blocking=False)
    assert restored["queue"].not_empty._lock is restored["queue"].mutex
    assert restored["queue"].get_nowait() == "message"


def test_events_keep_whether_they_were_set() -> None:
    done = threading.Event()
    done.set()

    restored = round_trip([done, threading.Event()])

    assert [event.is_set() for event in restored] == [True, False]


def test_a_weak_mapping_and_a_lambda_made_defaultdict_are_saved_with_their_items() -> None:
    function = Function()
    arns: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary({"arn:f": function})
    aliases: collections.defaultdict[str, dict[str, str]] = collections.defaultdict(lambda: {}, {"f": {"live": "1"}})

    functions, restored_arns, restored_aliases = round_trip([{"f": function}, arns, aliases])

    assert restored_arns["arn:f"] is functions["f"]
    assert restored_aliases == {"f": {"live": "1"}} and restored_aliases["g"] == {}


def test_a_defaultdict_whose_lambda_makes_something_else_is_refused() -> None:
    with pytest.raises(pickle.PicklingError, match=r"makes \[1\]"):
        round_trip(collections.defaultdict(lambda: [1]))


def test_a_private_key_is_saved_as_pem() -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    assert round_trip(key).private_numbers() == key.private_numbers()


@pytest.mark.parametrize(
    ("summary", "text"),
    [
        (state.Summary(), "0 training jobs, 0 objects, 0 ledger items, 0 executions"),
        (state.Summary(1, 1, 1, 1), "1 training job, 1 object, 1 ledger item, 1 execution"),
        (state.Summary(3, 12, 5, 4), "3 training jobs, 12 objects, 5 ledger items, 4 executions"),
    ],
    ids=["none", "one-each", "several"],
)
def test_a_summary_reads_as_counts(summary: state.Summary, text: str) -> None:
    assert summary.text() == text
