"""A local endpoint's model, served for real: unpacked, in its framework's environment, behind the inference toolkit.

What a SageMaker framework container does when an endpoint starts, done on this machine for one production variant:
- the model: the variant's model (CreateModel's PrimaryContainer, or the model package it names, whose
  InferenceSpecification.Containers[0] is the container) gives the image, ModelDataUrl and Environment;
- model.tar.gz unpacked into the model dir (the container's /opt/ml/model), the code at SAGEMAKER_SUBMIT_DIRECTORY
  (sourcedir.tar.gz) into its code/ folder, as the SDK's repacked models carry it; a repacked model
  (SAGEMAKER_SUBMIT_DIRECTORY /opt/ml/model/code) brings its code/ in model.tar.gz;
- the environment: the framework image's packages as a training job on the same framework gets them
  (local/environments.py; an inference repository such as pytorch-inference stands for its training twin), the
  code's requirements.txt and the `sagemaker-inference` toolkit;
- a worker process (local/serving_worker.py) that imports SAGEMAKER_PROGRAM and loads the model at start, then answers
  each request through the toolkit's chain (model_fn, input_fn, predict_fn, output_fn, the framework container's
  defaults where the script has none).
A model that does not load fails the start with the container's error; a request the chain fails, or a worker that
dies or overruns the invocation timeout, is a ModelError naming the failure, and the next request starts a new worker.
See https://docs.aws.amazon.com/sagemaker/latest/dg/adapt-inference-container.html
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import tarfile
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sagepush.images import framework_of_repository
from sagepush_cli.local.environments import BuildError, Environments, Image
from sagepush_cli.local.serving_worker import read_frame, write_frame

if TYPE_CHECKING:
    from collections.abc import Mapping

INFERENCE_TOOLKIT = "sagemaker-inference==1.10.1"
"""The inference toolkit the framework containers serve through, installed beside the image's packages."""
WORKER = Path(__file__).with_name("serving_worker.py")
STARTUP_TIMEOUT_SECONDS = 600.0
"""How long a model may take to load (the toolkit's SAGEMAKER_STARTUP_TIMEOUT default)."""
INVOCATION_TIMEOUT_SECONDS = 60.0
"""How long one request may take: SageMaker's InvokeEndpoint waits 60 seconds for a real-time endpoint."""
FAILURE_REASON_LIMIT = 1024
DEFAULT_PROGRAM = "inference.py"
MODEL_CODE_DIR = "/opt/ml/model/code"
"""SAGEMAKER_SUBMIT_DIRECTORY of a repacked model: the code is the model archive's code/."""
_STOP_SECONDS = 5.0
_POLL_SECONDS = 0.2
_LOG_TAIL = 40


class ServingError(Exception):
    """The model could not be served; `reason` becomes the endpoint's FailureReason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ModelError(Exception):
    """The model's container failed one request: what it answered (status, message), or that it died."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class ServerStopped(Exception):
    """The server was stopped (its endpoint moved to another) before it took the request."""


@dataclass(frozen=True)
class Container:
    """What one production variant runs: the inference image, the model data and the container's variables."""

    image: str
    model_data_url: str | None
    environment: dict[str, str]

    @property
    def framework(self) -> str | None:
        return Image.of(training_image(self.image)).framework


@dataclass(frozen=True)
class Answer:
    """The container's answer to one request."""

    body: bytes
    content_type: str


def training_image(uri: str) -> str:
    """The training image whose environment serves `uri`: the URI itself where its repository is a training one
    (sagemaker-scikit-learn, sagemaker-xgboost), its `-training` twin for an inference repository (pytorch-inference
    → pytorch-training)."""
    prefix, _, rest = uri.rpartition("/")
    repository, colon, tag = rest.partition(":")
    if framework_of_repository(repository) is None and repository.endswith("-inference"):
        twin = repository.removesuffix("-inference") + "-training"
        if framework_of_repository(twin) is not None:
            return f"{prefix}/{twin}{colon}{tag}" if prefix else f"{twin}{colon}{tag}"
    return uri


def variant_containers(backend: Any, config_name: str) -> list[tuple[str, Container]]:
    """Each production variant of endpoint config `config_name` and its container, from moto's SageMaker backend.

    Raises:
        ServingError: the config, a model or a model package is missing, or a model has no container.
    """
    config = backend.endpoint_configs.get(config_name)
    if config is None:
        raise ServingError(f"Could not find endpoint configuration {config_name!r}.")
    return [
        (variant["VariantName"], model_container(backend, variant["ModelName"]))
        for variant in config.production_variants
    ]


def model_container(backend: Any, model_name: str) -> Container:
    """The container model `model_name` runs: its PrimaryContainer (or first container), a model package resolved to
    the package's first inference container, the model's own Environment over the package's."""
    model = backend._models.get(model_name)
    if model is None:
        raise ServingError(f"Could not find model {model_name!r}.")
    definition = model.primary_container or (model.containers[0] if model.containers else None)
    if not definition:
        raise ServingError(f"The model {model_name} has no container.")
    return container_of(definition, packages=backend)


def container_of(definition: Mapping[str, Any], *, packages: Any = None) -> Container:
    """A ContainerDefinition as the container it runs; `packages` (moto's backend) resolves a ModelPackageName."""
    environment = dict(definition.get("Environment") or {})
    package_name = definition.get("ModelPackageName")
    if package_name:
        try:
            package = packages.describe_model_package(package_name)
        except Exception as exc:
            raise ServingError(f"Could not find model package {package_name!r}.") from exc
        containers = (package.inference_specification or {}).get("Containers") or []
        if not containers:
            raise ServingError(f"The model package {package_name} has no inference container.")
        first = containers[0]
        return Container(
            image=first.get("Image", ""),
            model_data_url=first.get("ModelDataUrl"),
            environment={**(first.get("Environment") or {}), **environment},
        )
    image = definition.get("Image")
    if not image:
        raise ServingError("The model's container names no Image.")
    return Container(image=image, model_data_url=definition.get("ModelDataUrl"), environment=environment)


def s3_location(uri: str, where: str) -> tuple[str, str]:
    """`s3://bucket/key` → (bucket, key).

    Raises:
        ServingError: not an s3:// URI; `where` names the field.
    """
    if not uri.startswith("s3://"):
        raise ServingError(f"{where} {uri!r} is not an s3:// URI")
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def requirements_text(code: Path) -> str:
    """The requirements the serving environment installs: the inference toolkit, then the code's requirements.txt."""
    own = code / "requirements.txt"
    text = own.read_text() if own.is_file() else ""
    return f"{INFERENCE_TOOLKIT}\n{text}"


def failed_check(variant: str, error: str) -> str:
    """The FailureReason of a variant whose model did not load, with the container's error."""
    reason = f"The primary container for production variant {variant} did not pass the ping health check: {error}"
    return reason[:FAILURE_REASON_LIMIT]


class _Log:
    """A server's log: the environment build's and the worker's output, the last lines kept for failure reasons."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, line: str) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.write(line.rstrip("\n") + "\n")
                self._file.flush()

    def tail(self, count: int = _LOG_TAIL) -> list[str]:
        with contextlib.suppress(OSError), self.path.open(encoding="utf-8", errors="replace") as lines:
            return list(deque((line.rstrip("\n") for line in lines), maxlen=count))
        return []

    def close(self) -> None:
        with self._lock:
            self._file.close()


class _Deadline:
    """A pipe read with a deadline: `read(n)` returns what is there (b"" at its end), TimeoutError past the deadline."""

    def __init__(self, descriptor: int, deadline: float, cancel: threading.Event | None = None) -> None:
        self.descriptor = descriptor
        self.deadline = deadline
        self.cancel = cancel

    def read(self, count: int) -> bytes:
        while True:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0 or (self.cancel is not None and self.cancel.is_set()):
                raise TimeoutError
            ready, _, _ = select.select([self.descriptor], [], [], min(remaining, _POLL_SECONDS))
            if ready:
                return os.read(self.descriptor, count)


@dataclass
class ModelServer:
    """One production variant's model, served by a worker process in its framework's environment."""

    name: str
    variant: str
    container: Container
    root: Path
    environments: Environments
    endpoint_url: str
    region: str
    directory: Path = field(init=False)
    log: _Log | None = None
    _process: subprocess.Popen[bytes] | None = None
    _python: Path | None = None
    _variables: dict[str, str] = field(default_factory=dict)
    _holds: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopped: bool = False

    def __post_init__(self) -> None:
        self.directory = self.root / "endpoints" / f"{self.name}-{uuid.uuid4().hex[:8]}"

    @property
    def model_dir(self) -> Path:
        return self.directory / "model"

    def start(self, s3: Any, cancel: threading.Event) -> None:
        """Unpack the model and its code, build the environment and load the model in a worker.

        Raises:
            ServingError: any of it failed; the reason names the step and the container's error.
            BuildStopped: `cancel` was set during the environment build.
        """
        self.model_dir.mkdir(parents=True)
        self.log = _Log(self.directory / "server.log")
        self._holds.enter_context(contextlib.closing(self.log))
        self._unpack(s3)
        code = self.model_dir / "code"
        install = self.directory / "install"
        if code.is_dir():
            shutil.copytree(code, install)
        else:
            install.mkdir()
        (install / "requirements.txt").write_text(requirements_text(code))
        try:
            built = self.environments.job_python(
                training_image(self.container.image), install, self.directory / ".python", self.log, self._holds, cancel
            )
        except BuildError as exc:
            raise ServingError(failed_check(self.variant, exc.reason)) from exc
        self._python = built.python
        self._variables = self._environment(built.python)
        with self._lock:
            error = self._spawn(cancel)
        if error is not None:
            raise ServingError(failed_check(self.variant, error))

    def invoke(self, body: bytes, content_type: str | None, accept: str | None) -> Answer:
        """Answer one request through the worker, starting a new worker first when the last one died.

        Raises:
            ModelError: the container answered an error, died or overran the invocation timeout.
            ServerStopped: the server was stopped before it took the request.
        """
        with self._lock:
            if self._stopped:
                raise ServerStopped
            if self._process is None or self._process.poll() is not None:
                error = self._spawn(None)
                if error is not None:
                    raise ModelError(500, error)
            process = self._process
            assert process is not None and process.stdin is not None and process.stdout is not None
            try:
                write_frame(process.stdin, {"content_type": content_type, "accept": accept}, body)
                frame = read_frame(_Deadline(process.stdout.fileno(), time.monotonic() + INVOCATION_TIMEOUT_SECONDS))
            except TimeoutError:
                self._kill()
                raise ModelError(
                    0,
                    "Your invocation timed out while waiting for a response from container primary. Review the "
                    "latency metrics for each container in Amazon CloudWatch, resolve the issue, and try again.",
                ) from None
            except (BrokenPipeError, OSError):
                frame = None
            if frame is None:
                raise ModelError(500, self._death())
            header, answer = frame
            status = int(header.get("status") or 200)
            if status >= 400:
                raise ModelError(status, answer.decode("utf-8", errors="replace"))
            return Answer(answer, header.get("content_type") or "application/json")

    def stop(self) -> None:
        """Stop the worker (after the request it is answering), release the environment and remove the directory."""
        with self._lock:
            self._stopped = True
            process, self._process = self._process, None
        if process is not None:
            if process.stdin is not None:
                with contextlib.suppress(OSError):
                    process.stdin.close()  # the worker ends at the end of its requests
            try:
                process.wait(timeout=_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                _signal_group(process.pid, signal.SIGKILL)
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
        self._holds.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    # ------------------------------------------------------------------ the worker
    def _unpack(self, s3: Any) -> None:
        url = self.container.model_data_url
        if url:
            self._extract(s3, url, "ModelDataUrl", self.model_dir)
        submit = self.container.environment.get("SAGEMAKER_SUBMIT_DIRECTORY", "")
        if submit.startswith("s3://"):
            self._extract(s3, submit, "SAGEMAKER_SUBMIT_DIRECTORY", self.model_dir / "code")
        elif submit.rstrip("/") == MODEL_CODE_DIR:
            # A repacked model (PyTorch, HuggingFace, TensorFlow): the code came in the model archive's code/.
            program = self.container.environment.get("SAGEMAKER_PROGRAM", "")
            code = self.model_dir / "code"
            if not code.is_dir() or (program and not (code / program).is_file()):
                what = f"code/{program}" if program else "code/"
                raise ServingError(
                    f"SAGEMAKER_SUBMIT_DIRECTORY is {MODEL_CODE_DIR}, but the model {url} holds no {what}"
                )

    def _extract(self, s3: Any, uri: str, where: str, into: Path) -> None:
        bucket, key = s3_location(uri, where)
        archive = self.directory / f"{where}.tar.gz"
        try:
            s3.download_file(bucket, key, str(archive))
        except Exception as exc:
            raise ServingError(f"Could not download the {where} {uri}: {exc}") from exc
        try:
            with tarfile.open(archive, "r:*") as tar:
                tar.extractall(into, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise ServingError(f"The {where} {uri} is not a tar.gz archive: {exc}") from exc
        archive.unlink()

    def _environment(self, python: Path) -> dict[str, str]:
        """The container's variables: the platform's, then the model's Environment (which wins, as on SageMaker)."""
        # The container's /opt/ml/model is the model dir here: a repacked model's code is found in its code/.
        submit = self.container.environment.get("SAGEMAKER_SUBMIT_DIRECTORY", "").rstrip("/")
        local_code = {"SAGEMAKER_SUBMIT_DIRECTORY": str(self.model_dir / "code")} if submit == MODEL_CODE_DIR else {}
        inherited = {
            name: os.environ[name] for name in ("HOME", "LANG", "LC_ALL", "TMPDIR", "TZ") if name in os.environ
        }
        return {
            **inherited,
            "PATH": f"{python.parent}{os.pathsep}/usr/local/bin:/usr/bin:/bin",
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONPATH": str(self.model_dir / "code"),
            "SAGEMAKER_BASE_DIR": str(self.directory),
            "SAGEMAKER_PROGRAM": DEFAULT_PROGRAM,
            "SAGEPUSH_SERVING_FRAMEWORK": self.container.framework or "",
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            **self.container.environment,
            **local_code,
        }

    def _spawn(self, cancel: threading.Event | None) -> str | None:
        """Start a worker and wait until it loaded the model; the error when it did not (called under the lock)."""
        assert self._python is not None and self.log is not None
        self.log.write(f"sagepush local: starting the model server for {self.name} ({self.variant})")
        with (self.directory / "server.log").open("ab") as output:
            process = subprocess.Popen(
                [str(self._python), str(WORKER), str(self.model_dir)],
                cwd=self.model_dir,
                env=self._variables,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=output,
                start_new_session=True,
            )
        self._process = process
        assert process.stdout is not None
        try:
            frame = read_frame(_Deadline(process.stdout.fileno(), time.monotonic() + STARTUP_TIMEOUT_SECONDS, cancel))
        except TimeoutError:
            self._kill()
            if cancel is not None and cancel.is_set():
                return "the endpoint was deleted while its model was loading"
            return f"the model did not load within {STARTUP_TIMEOUT_SECONDS:.0f} seconds"
        if frame is None:
            return self._death()
        header, _ = frame
        if not header.get("ready"):
            self._kill()
            return str(header.get("error") or "the model did not load")
        return None

    def _death(self) -> str:
        """Why the worker is gone: its exit code and the last lines of its log."""
        process = self._process
        code = None
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = process.wait(timeout=_STOP_SECONDS)
        self._kill()
        lines = [line for line in (self.log.tail() if self.log else []) if not line.startswith("sagepush local:")]
        last = "\n".join(lines[-8:])
        return f"the model server exited (exit code {code})" + (f": {last}" if last else "")

    def _kill(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        _signal_group(process.pid, signal.SIGKILL)
        process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def _signal_group(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def stop_quietly(server: ModelServer | None) -> None:
    """Stop `server` if there is one (a deployment that failed or was replaced)."""
    if server is not None:
        server.stop()
