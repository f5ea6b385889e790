"""The local stack's saved state: moto's backends written to a file when `local up` stops, read back when it starts.

`home()/state/<stack>.state` holds, in order:
- a line naming the format (`FORMAT`);
- a JSON line: the stamp (moto's version, Python's, and a digest of the deployment: the translated template with its
  state machines inlined, the stack's parameters, name and region), when the state was saved, and what it holds;
- every moto backend in use, pickled as one graph (the CloudFormation stack refers to the very bucket S3 holds);
- the SHA-256 of everything before it: a truncated or damaged file is refused before anything is unpickled.
It is written to a temporary file, then renamed over the old one: a reader finds the old state or the new, whole.
A state is restored whole or not at all, and only under the stamp it was saved with; otherwise the stack starts empty.

The file is this user's own, in their cache, written by this code: unpickling it trusts nothing another user controls.
"""

from __future__ import annotations

import collections
import hashlib
import importlib
import json
import os
import pickle  # nosec B403
import sys
import threading
import weakref
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, BinaryIO

from sagepush_cli.local.cache import home

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

FORMAT = "sagepush-local-state 1"
"""The first line of a state file. Bump it when the local stack deploys or wires what it restores differently."""
_DIGEST_BYTES = 32
_HEADER_LIMIT = 1 << 20
_LOCK = type(threading.Lock())
_RLOCK = type(threading.RLock())
SAVE_ERRORS = (OSError, pickle.PicklingError, TypeError, AttributeError, LookupError, RecursionError)
"""What `save` raises when it cannot save: the file's errors, and pickle's for an object it cannot save
(`TypeError: cannot pickle '...' object`, `AttributeError: Can't pickle local object ...`)."""


def state_file(stack_name: str) -> Path:
    """Where the stack named `stack_name` keeps its state between runs."""
    return home() / "state" / f"{stack_name}.state"


def deployment_stamp(
    *, translated: Mapping[str, Any], parameters: Mapping[str, str], stack_name: str, region: str
) -> dict[str, str]:
    """What a saved state must have been saved under to be restored: moto's and Python's versions, the deployment."""
    import moto

    deployment = {"template": translated, "parameters": dict(parameters), "stack": stack_name, "region": region}
    digest = hashlib.sha256(json.dumps(deployment, sort_keys=True, default=str).encode()).hexdigest()
    return {"moto": moto.__version__, "python": f"{sys.version_info[0]}.{sys.version_info[1]}", "deployment": digest}


@dataclass(frozen=True)
class Note:
    """One line for the person running the stack about its saved state; `warning` when state was lost or refused."""

    text: str
    warning: bool = False


@dataclass(frozen=True)
class Summary:
    """What a state holds, as counted when it was saved."""

    training_jobs: int = 0
    objects: int = 0
    ledger_items: int = 0
    executions: int = 0

    def text(self) -> str:
        """`3 training jobs, 12 objects, 1 ledger item, 3 executions`."""
        return ", ".join(
            f"{count} {name.replace('_', ' ').removesuffix('s') if count == 1 else name.replace('_', ' ')}"
            for name, count in asdict(self).items()
        )


@dataclass(frozen=True)
class Saved:
    """When a state was saved and what it holds."""

    at: datetime
    summary: Summary

    def when(self) -> str:
        """The time it was saved, in this machine's time zone: `2025-06-01 18:04`."""
        return _when(self.at)


@dataclass(frozen=True)
class Loaded:
    """A saved state, read whole and checked, ready to `apply`."""

    saved: Saved
    backends: dict[str, tuple[dict[str, Any], dict[str, Any]]]
    """Each backend's "module:name" -> (its accounts, the BackendDict's own attributes)."""


@dataclass(frozen=True)
class NotRestored:
    """Why no state was restored; `damaged` when the file is unreadable (worth a warning, not a note)."""

    reason: str
    damaged: bool = False


def save(path: Path, *, stamp: Mapping[str, str], summary: Summary) -> Saved:
    """Write every moto backend in use to `path`, atomically; return what was saved.

    Raises:
        SAVE_ERRORS: the file could not be written (the previous one is left as it was), or a backend holds
            something that cannot be saved.
    """
    saved_at = datetime.now(UTC)
    header = {"stamp": dict(stamp), "saved_at": saved_at.isoformat(), "summary": asdict(summary)}
    backends = {where: (dict(backend), _attributes(backend)) for where, backend in _in_use().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with partial.open("wb") as file:
            out = _Hashing(file)
            out.write(f"{FORMAT}\n{json.dumps(header)}\n".encode())
            _Pickler(out, protocol=pickle.HIGHEST_PROTOCOL).dump(backends)
            file.write(out.digest.digest())
            file.flush()
            os.fsync(file.fileno())
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return Saved(at=saved_at, summary=summary)


def load(path: Path, *, stamp: Mapping[str, str]) -> Loaded | NotRestored:
    """Read the state at `path` whole, if it was saved under `stamp` and is intact; else say why not.

    Nothing in moto changes here: `apply` does that, with what this returns.
    """
    try:
        size = path.stat().st_size
        file = path.open("rb")
    except FileNotFoundError:
        return NotRestored("no state saved yet")
    except OSError as exc:
        return NotRestored(f"{path} cannot be read ({exc.strerror or exc})", damaged=True)
    with file:
        try:
            header = _header(file)
        except ValueError as exc:
            return NotRestored(f"{path} is not a state file sagepush can read ({exc})", damaged=True)
        saved_at = datetime.fromisoformat(header["saved_at"])
        differs = _difference(header["stamp"], stamp)
        if differs:
            return NotRestored(f"the state saved {_when(saved_at)} is not restored: {differs}")
        start = file.tell()
        if not _intact(file, size):
            return NotRestored(f"{path} is damaged or truncated (its checksum does not match)", damaged=True)
        file.seek(start)
        try:
            # The checksum matched: this is a file `save` wrote (see the module docstring).
            backends = pickle.load(file)  # nosec B301
            _check_shape(backends)
            for where in backends:
                _live(where)  # moto still keeps these backends where it did
        # A state that passes its checksum and still does not load (a class moto moved): any error means "not this".
        except Exception as exc:
            return NotRestored(f"{path} cannot be loaded ({type(exc).__name__}: {exc})", damaged=True)
    saved = Saved(at=saved_at, summary=Summary(**header["summary"]))
    return Loaded(saved=saved, backends=backends)


def apply(loaded: Loaded) -> None:
    """Put the loaded backends in place of moto's (which hold nothing yet: the stack has just reset them)."""
    from moto.core.base_backend import BackendDict, backend_lock

    targets = {where: _live(where) for where in loaded.backends}
    with backend_lock:
        for where, (accounts, attributes) in loaded.backends.items():
            live = targets[where]
            dict.clear(live)
            dict.update(live, accounts)
            live.__dict__.update({name: value for name, value in attributes.items() if name != "_id"})
            if live not in BackendDict._instances:  # type: ignore[misc]  # what moto's reset empties
                BackendDict._instances.append(live)  # type: ignore[misc]


def _when(moment: datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")


def _header(file: BinaryIO) -> dict[str, Any]:
    first = file.readline(len(FORMAT) + 1).decode(errors="replace").rstrip("\n")
    if first != FORMAT:
        raise ValueError(f"it starts {first[:40]!r}, not {FORMAT!r}")
    try:
        header: dict[str, Any] = json.loads(file.readline(_HEADER_LIMIT))
        datetime.fromisoformat(header["saved_at"])
        Summary(**header["summary"])
        if not isinstance(header["stamp"], dict):
            raise TypeError("its stamp is not a mapping")
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"its header is damaged: {type(exc).__name__}: {exc}") from exc
    return header


def _difference(saved: Mapping[str, str], current: Mapping[str, str]) -> str | None:
    """What differs between a state's stamp and this stack's, in words; None when nothing does."""
    for name, what in (("moto", "moto"), ("python", "Python")):
        if saved.get(name) != current[name]:
            return f"it was saved with {what} {saved.get(name)}, this is {what} {current[name]}"
    if saved.get("deployment") != current["deployment"]:
        return "template.yaml, its state machines or the stack's parameters changed since"
    return None


def _intact(file: BinaryIO, size: int) -> bool:
    """Whether the file's last 32 bytes are the SHA-256 of the rest."""
    if size < _DIGEST_BYTES:
        return False
    file.seek(0)
    digest, remaining = hashlib.sha256(), size - _DIGEST_BYTES
    while remaining:
        chunk = file.read(min(remaining, 1 << 20))
        if not chunk:
            return False
        digest.update(chunk)
        remaining -= len(chunk)
    return file.read(_DIGEST_BYTES) == digest.digest()


def _in_use() -> dict[str, Any]:
    """Every moto backend holding state in this process, by where moto keeps it ("module:name")."""
    from moto.core.base_backend import BackendDict

    return {_where(backends): backends for backends in list(BackendDict._instances)}  # type: ignore[misc]


def _where(backends: Any) -> str:
    modules = [sys.modules[type(backends).__module__], sys.modules[backends.backend.__module__]]
    modules += [module for name, module in list(sys.modules.items()) if name.startswith("moto.") and module]
    for module in modules:
        for name, value in vars(module).items():
            if value is backends:
                return f"{module.__name__}:{name}"
    raise LookupError(f"cannot tell where moto keeps its {backends.service_name} backends")


def _live(where: str) -> Any:
    from moto.core.base_backend import BackendDict

    module, _, name = where.partition(":")
    backends = getattr(importlib.import_module(module), name)
    if not isinstance(backends, BackendDict):
        raise TypeError(f"{where} is not a moto BackendDict")
    return backends


def _check_shape(backends: Any) -> None:
    """Raise TypeError unless `backends` has the form `save` writes."""
    if not isinstance(backends, dict) or not all(
        isinstance(where, str)
        and isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(v, dict) for v in value)
        for where, value in backends.items()
    ):
        raise TypeError("it does not hold moto's backends")


def _attributes(backends: Any) -> dict[str, Any]:
    """The BackendDict's own attributes (S3 keeps which account holds each bucket there)."""
    return {name: value for name, value in vars(backends).items() if name != "_id"}


class _Hashing:
    """A binary file that hashes what is written to it."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.file.write(data)


class _Pickler(pickle.Pickler):
    """Pickles moto's objects, with what holds a thread's state made afresh: nothing runs across a restart.

    A lock comes back released, a condition with nobody waiting (on the same lock as before, so a queue's conditions
    still share its mutex), an event set or not as it was. Besides, moto keeps a KMS key's private key as a
    `cryptography` object (saved as PEM), Lambda's functions by ARN in a WeakValueDictionary and its aliases in a
    defaultdict whose factory is a lambda (saved as the builtin type the lambda makes).
    """

    def reducer_override(self, obj: Any) -> Any:
        kind = type(obj)
        if kind is _LOCK:
            return threading.Lock, ()
        if kind is _RLOCK:
            return threading.RLock, ()
        if kind is threading.Condition:
            return threading.Condition, (obj._lock,)
        if kind is threading.Event:
            return _event, (obj.is_set(),)
        if kind is weakref.WeakValueDictionary:
            return weakref.WeakValueDictionary, (dict(obj),)
        if kind is collections.defaultdict and getattr(obj.default_factory, "__name__", "") == "<lambda>":
            return _defaultdict, (_factory_type(obj.default_factory), dict(obj))
        if kind.__module__.startswith("cryptography.") and hasattr(obj, "private_bytes"):
            from cryptography.hazmat.primitives import serialization

            pem = obj.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            return _private_key, (pem,)
        return NotImplemented


def _event(is_set: bool) -> threading.Event:
    event = threading.Event()
    if is_set:
        event.set()
    return event


def _private_key(pem: bytes) -> Any:
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_private_key(pem, password=None)


def _defaultdict(factory: Callable[[], Any], items: dict[Any, Any]) -> collections.defaultdict[Any, Any]:
    return collections.defaultdict(factory, items)


def _factory_type(factory: Callable[[], Any]) -> type:
    """The builtin type an unpicklable defaultdict factory (`lambda: {}`) makes, to stand for it."""
    made = factory()
    if type(made) in (dict, list, set, int, float, str) and made == type(made)():
        return type(made)
    raise pickle.PicklingError(f"cannot save a defaultdict whose factory makes {made!r}")
