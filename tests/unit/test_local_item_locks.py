"""The local stack's DynamoDB item locks: an item alone, a table whole, re-entrant, all-or-nothing."""

from __future__ import annotations

import threading

from sagepush_cli.local.dynamodb import ItemLocks, Name

WAIT = 0.2
A: Name = ("ledger", '{"job_name": {"S": "a"}}')
B: Name = ("ledger", '{"job_name": {"S": "b"}}')
LEDGER: Name = ("ledger", None)
OTHER: Name = ("other", None)


def waits(locks: ItemLocks, held: list[Name], wanted: list[Name]) -> bool:
    """Whether a thread asking for `wanted` waits while another thread holds `held`."""
    holding, release, got = threading.Event(), threading.Event(), threading.Event()

    def hold() -> None:
        with locks.hold(held):
            holding.set()
            release.wait(5)

    def ask() -> None:
        with locks.hold(wanted):
            got.set()

    holder, asker = threading.Thread(target=hold), threading.Thread(target=ask)
    holder.start()
    holding.wait(5)
    asker.start()
    waited = not got.wait(WAIT)
    release.set()
    for thread in (holder, asker):
        thread.join(5)
    assert got.is_set(), "the lock was never granted once released"
    return waited


def test_an_item_excludes_itself_and_its_table_whole_but_not_other_items_or_tables() -> None:
    locks = ItemLocks()

    assert waits(locks, [A], [A]) and waits(locks, [A], [LEDGER])
    assert not waits(locks, [A], [B]) and not waits(locks, [A], [OTHER])


def test_a_whole_table_excludes_each_of_its_items_and_not_another_tables() -> None:
    locks = ItemLocks()

    assert waits(locks, [LEDGER], [A]) and waits(locks, [LEDGER], [B, ("other", "x")])
    assert not waits(locks, [LEDGER], [("other", '{"job_name": {"S": "a"}}')])


def test_a_thread_takes_again_what_it_holds_and_releases_it_at_its_outermost_block() -> None:
    locks = ItemLocks()
    done = threading.Event()

    def nested() -> None:
        with locks.hold([LEDGER]), locks.hold([A]), locks.hold([A, B]):
            pass
        done.set()

    worker = threading.Thread(target=nested)
    worker.start()
    worker.join(5)

    assert done.is_set()
    assert not waits(locks, [], [LEDGER])
