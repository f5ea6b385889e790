"""The local stack's DynamoDB item locks: the requests on one item run one at a time, as on DynamoDB, not at once.

DynamoDB applies the requests on one item one at a time, so of two conditional writes racing for one item exactly one
can see the item as the condition wants it. moto's server runs each request on its own thread with no lock, so two
`attribute_not_exists(claim)` UpdateItems on one item can both pass their condition and both write: under the local
stack, three concurrent deliveries of one state-change event then claimed and sent its alert two or three times.

`serialise_item_requests` wraps moto's DynamoDB request handlers so that every request on an item runs alone:
- PutItem, UpdateItem, DeleteItem and GetItem hold their item for the whole request (its condition, its write and
  the answer it returns), BatchWriteItem, BatchGetItem and TransactGetItems every item they name;
- TransactWriteItems, Query and Scan hold their whole tables: moto rolls a cancelled transaction back by restoring
  copies of its tables taken when it began, and iterates a table while it queries it.
Requests on different items still run side by side, as on DynamoDB. A request that names no table or key moto knows
runs unlocked, and moto answers it with its own error.
"""

from __future__ import annotations

import contextlib
import json
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

Name = tuple[str, str | None]
"""What a request holds: (table, the item's key as canonical JSON), or (table, None) for the whole table."""


class ItemLocks:
    """Re-entrant locks on items and tables: an item conflicts with itself and with its table held whole."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._held: dict[Name, tuple[int, int]] = {}  # name -> (owning thread, depth)
        self._waiting = 0

    @contextlib.contextmanager
    def hold(self, names: Iterable[Name]) -> Iterator[None]:
        """Hold every one of `names` at once (all or none, so two requests never deadlock), until the block ends."""
        me = threading.get_ident()
        wanted = set(names)
        with self._changed:
            if not all(self._free(name, me) for name in wanted):
                self._waiting += 1
                self._changed.notify_all()
                self._changed.wait_for(lambda: all(self._free(name, me) for name in wanted))
                self._waiting -= 1
            for name in wanted:
                self._held[name] = (me, self._held.get(name, (me, 0))[1] + 1)
        try:
            yield
        finally:
            with self._changed:
                for name in wanted:
                    owner, depth = self._held[name]
                    if depth == 1:
                        del self._held[name]
                    else:
                        self._held[name] = (owner, depth - 1)
                self._changed.notify_all()

    def until_waiting(self, count: int, timeout: float) -> bool:
        """Wait until `count` requests wait for a name another one holds; False if they do not within `timeout`."""
        with self._changed:
            return self._changed.wait_for(lambda: self._waiting >= count, timeout)

    def _free(self, name: Name, me: int) -> bool:
        table, key = name
        return not any(
            owner != me and held_table == table and (key is None or held_key is None or held_key == key)
            for (held_table, held_key), (owner, _) in self._held.items()
        )


LOCKS = ItemLocks()
"""The locks every stack in this process shares (moto's handlers are process-wide)."""
_install_lock = threading.Lock()
_originals: dict[str, Callable[..., Any]] = {}  # moto's handlers, while at least one stack uses the locks
_users = 0


def serialise_item_requests() -> Callable[[], None]:
    """Make moto's DynamoDB run the requests on one item one at a time, as DynamoDB does; call the result to undo.

    moto's handlers are process-wide, so the first stack started in a process installs the locks and the last one
    stopped removes them. Each replaced handler keeps moto's own as `moto_original`.
    """
    global _users
    from moto.dynamodb.responses import DynamoHandler

    with _install_lock:
        if _users == 0:
            for name, names_of in _NAMES_OF.items():
                _originals[name] = getattr(DynamoHandler, name)
                setattr(DynamoHandler, name, _serialised(_originals[name], names_of))
        _users += 1
    undone = threading.Event()

    def undo() -> None:
        global _users
        with _install_lock:
            if undone.is_set():
                return
            undone.set()
            _users -= 1
            if _users == 0:
                for name, original in _originals.items():
                    setattr(DynamoHandler, name, original)
                _originals.clear()

    return undo


def _serialised(original: Callable[[Any], Any], names_of: Callable[[Any, dict[str, Any]], list[Name]]) -> Any:
    def handler(response: Any) -> Any:
        try:
            names = names_of(response.dynamodb_backend, response.body)
        except (LookupError, TypeError, AttributeError, ValueError):
            names = []  # a malformed request or an unknown table: moto refuses it with the error DynamoDB gives
        if not names:
            return original(response)
        with LOCKS.hold(names):
            return original(response)

    handler.moto_original = original  # type: ignore[attr-defined]
    handler.__name__ = original.__name__
    return handler


# ---------------------------------------------------------------------- what each request holds
def _table(backend: Any, table_name: str) -> Any:
    from moto.dynamodb.exceptions import ResourceNotFoundException

    try:
        return backend.get_table(table_name)  # by name or ARN
    except ResourceNotFoundException:
        return None


def _item(backend: Any, table_name: str, attributes: dict[str, Any]) -> list[Name]:
    """The item with these key attributes (a whole item's attributes will do) in `table_name`, if the table exists."""
    table = _table(backend, table_name)
    if table is None:
        return []
    key_names = [name for name in (table.hash_key_attr, table.range_key_attr) if name]
    key = {name: attributes[name] for name in key_names}
    return [(table.name, json.dumps(key, sort_keys=True))]


def _whole(backend: Any, table_name: str) -> list[Name]:
    table = _table(backend, table_name)
    return [] if table is None else [(table.name, None)]


def _put_item(backend: Any, body: dict[str, Any]) -> list[Name]:
    return _item(backend, body["TableName"], body["Item"])


def _keyed_item(backend: Any, body: dict[str, Any]) -> list[Name]:
    return _item(backend, body["TableName"], body["Key"])


def _batch_write(backend: Any, body: dict[str, Any]) -> list[Name]:
    names = []
    for table_name, requests in body["RequestItems"].items():
        for request in requests:
            if "PutRequest" in request:
                names += _item(backend, table_name, request["PutRequest"]["Item"])
            elif "DeleteRequest" in request:
                names += _item(backend, table_name, request["DeleteRequest"]["Key"])
    return names


def _batch_get(backend: Any, body: dict[str, Any]) -> list[Name]:
    return [
        name
        for table_name, request in body["RequestItems"].items()
        for key in request["Keys"]
        for name in _item(backend, table_name, key)
    ]


def _transact_get(backend: Any, body: dict[str, Any]) -> list[Name]:
    return [name for entry in body["TransactItems"] for name in _keyed_item(backend, entry["Get"])]


def _transact_write(backend: Any, body: dict[str, Any]) -> list[Name]:
    return [
        name for entry in body["TransactItems"] for op in entry.values() for name in _whole(backend, op["TableName"])
    ]


def _table_read(backend: Any, body: dict[str, Any]) -> list[Name]:
    return _whole(backend, body["TableName"])


_NAMES_OF: dict[str, Callable[[Any, dict[str, Any]], list[Name]]] = {
    "put_item": _put_item,
    "update_item": _keyed_item,
    "delete_item": _keyed_item,
    "get_item": _keyed_item,
    "batch_write_item": _batch_write,
    "batch_get_item": _batch_get,
    "transact_get_items": _transact_get,
    "transact_write_items": _transact_write,
    "query": _table_read,
    "scan": _table_read,
}
