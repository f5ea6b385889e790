"""Run a template function's handler in this process, with the environment its deployment gives it."""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping
    from types import ModuleType

    from sagepush_cli.template import FunctionSource

_ENVIRONMENT_LOCK = threading.RLock()


@dataclass
class LambdaContext:
    """The context object Lambda passes a handler, with the attributes Powertools reads."""

    function_name: str
    memory_limit_in_mb: int = 512
    timeout_seconds: int = 60
    function_version: str = "$LATEST"
    invoked_function_arn: str = ""
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = ""
    _started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self._started)) * 1000))


@contextmanager
def environment(variables: Mapping[str, str]) -> Iterator[None]:
    """Apply `variables` to os.environ for the duration of the block (one block at a time, process-wide)."""
    with _ENVIRONMENT_LOCK:
        saved = {name: os.environ.get(name) for name in variables}
        os.environ.update(variables)
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


@dataclass
class LoadedFunction:
    """A handler imported under its deployment's environment, ready to invoke."""

    source: FunctionSource
    name: str
    arn: str
    environment: Mapping[str, str]
    memory_mb: int
    timeout_seconds: int
    module: ModuleType

    @property
    def handler(self) -> Callable[[Any, Any], Any]:
        handler: Callable[[Any, Any], Any] = getattr(self.module, self.source.function_name)
        return handler

    def invoke(self, event: Any) -> Any:
        """Call the handler with `event` and a fresh context; exceptions propagate as Lambda would report them."""
        context = LambdaContext(
            function_name=self.name,
            memory_limit_in_mb=self.memory_mb,
            timeout_seconds=self.timeout_seconds,
            invoked_function_arn=self.arn,
            log_group_name=f"/aws/lambda/{self.name}",
        )
        try:
            return self.handler(event, context)
        finally:
            self._discard_metrics()

    def _discard_metrics(self) -> None:
        """Drop the invocation's metrics: they are disabled here (POWERTOOLS_METRICS_DISABLED), and Powertools then
        keeps every value and, once one metric holds 100, prints the set into whatever this process's stdout is."""
        metrics = getattr(self.module, "metrics", None)
        clear = getattr(metrics, "clear_metrics", None)
        if callable(clear):
            clear()


def load_function(
    source: FunctionSource,
    *,
    name: str,
    arn: str,
    variables: Mapping[str, str],
    memory_mb: int = 512,
    timeout_seconds: int = 60,
) -> LoadedFunction:
    """Import `source`'s handler module with `variables` plus what the Lambda runtime sets itself.

    Settings are parsed at import, so a bad variable fails here by name, as it would during Lambda's init.
    """
    runtime = {
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }
    if "AWS_DEFAULT_REGION" in os.environ and "AWS_REGION" not in os.environ:
        runtime["AWS_REGION"] = os.environ["AWS_DEFAULT_REGION"]
    merged = {**runtime, **variables}
    module_name = f"sagepush_function_{source.logical_id}_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(module_name, source.module_file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {source.module_file}")
    module = importlib.util.module_from_spec(spec)
    with environment(merged):
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return LoadedFunction(
        source=source,
        name=name,
        arn=arn,
        environment=merged,
        memory_mb=memory_mb,
        timeout_seconds=timeout_seconds,
        module=module,
    )
