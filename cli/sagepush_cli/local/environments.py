"""The Python a local training job runs in: the framework image's packages, then the job's requirements.txt.

Three layers, each a virtualenv, so nothing a job does reaches a cache:
- the **base** (cached under envs/, keyed by its Python and packages): what the framework image installs for the
  job's framework and version (framework-packages.json, read from the containers' published requirements), at the
  versions the image pins where they install on this Python, the nearest installable otherwise, and what it leaves
  unpinned as of the day its framework version was set; built with uv, with the `sagemaker-training` toolkit this
  CLI runs (PyTorch's own toolkit too, which the image runs as its entrypoint) and pip. The Python is the image's (or
  `py_version`'s) when uv or pyenv has it here, else this one; every difference from the image is said in one line of
  the job's log.
- the **requirements** layer (cached, keyed by its base and requirements.txt): requirements.txt installed by pip, as
  the toolkit does on SageMaker (pip's resolver and its tolerance of unreachable `-f` lines), in a venv that sees the
  base through a .pth file: pip installs beside the base, never into it ("Not uninstalling … outside environment").
- the **job** venv (in the job directory, thrown away with it): sees the requirements layer and the base the same
  way, so the toolkit's own `pip install -r requirements.txt` finds every requirement satisfied, and anything a
  script installs at run time stays with that job.
pip runs with no configuration file and none of this machine's PIP_* variables: a job gets what SageMaker's pip
would, not this machine's constraints or find-links.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sagepush.images import framework_environment, framework_of_repository
from sagepush_cli.local.cache import in_use, touch

if TYPE_CHECKING:
    from collections.abc import Sequence

ENV_FORMAT = 2
"""Bumped when what a cached environment holds changes meaning: environments of another format are not reused."""
HOST_PYTHON = f"{sys.version_info[0]}.{sys.version_info[1]}"
OLDEST_PYTHON = (3, 7)
"""The oldest Python the toolkit runs on (it calls subprocess.run(capture_output=)): an older image's gives way."""
TOOLKIT_FLOOR = "sagemaker-training>=4.7"
"""The toolkits the local trainer reads, for an image Python other than this one: the toolkit running here (pinned
on this Python) may not install there."""
BUILD_TIMEOUT_SECONDS = 1800
_POLL_SECONDS = 0.2
_REASON_LINES = 12

# uv's banner and progress lines, which say nothing about why an environment did not build.
_UV_PROGRESS = re.compile(
    r"^\s*(Using (Python|CPython) .* (environment|interpreter) at|Resolved |Prepared |Installed |"
    r"Uninstalled |Audited |Built |Downloading |Downloaded |Creating virtual environment|[+~-] \S)"
)
_ERROR_STARTS = ("error:", "\N{MULTIPLICATION SIGN}", "ERROR:")  # uv plain, uv's diagnostics, pip
TRAINING_MODULES = {"pytorch": ("sagemaker-pytorch-training", "sagemaker_pytorch_container.training:main")}
"""The frameworks whose training toolkit is on PyPI: installed in the base and run as the image runs it (its
torch_distributed, MPI and data-parallel launchers with it)."""
_OWN_LIBRARY = re.compile(r"sagemaker-[a-z]+-container")  # built into its image, published on no package index
_EXACT = re.compile(r"[A-Za-z0-9._-]+==[A-Za-z0-9.+!-]+")  # one version: not `==1.*`, not a range
_CERTIFICATES = ("PIP_CERT", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE")
_TAG = re.compile(r"^(?P<version>.+?)(-(cpu|gpu)(-(?P<py>py\d+))?.*)?$")


class Sink(Protocol):
    def write(self, line: str) -> None: ...


class BuildError(Exception):
    """The job's environment did not build; `reason` becomes its FailureReason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BuildStopped(Exception):
    """The job was stopped while its environment was being built."""


@dataclass(frozen=True)
class Image:
    """The framework, version and Python a training image stands for, read from its URI."""

    framework: str | None
    version: str | None
    py_version: str | None

    @classmethod
    def of(cls, uri: str | None) -> Image:
        """`…/sagemaker-scikit-learn:1.2-1-cpu-py3` → sklearn 1.2-1 py3; anything else → all None."""
        repository, _, tag = (uri or "").rpartition("/")[2].partition(":")
        framework = framework_of_repository(repository)
        match = _TAG.match(tag) if framework else None
        if framework is None or match is None:
            return cls(None, None, None)
        return cls(framework, match["version"], match["py"])

    def describe(self) -> str:
        return f"the {self.framework} {self.version} image" if self.framework else "an image sagepush has no data on"


@dataclass(frozen=True)
class Plan:
    """What a job's base environment is asked to hold."""

    image: Image
    python: Path
    python_version: str  # "3.11"
    wanted_python: str | None  # the image's, when known
    pins: tuple[str, ...]  # the image's packages, as it pins them
    toolkit: str
    python_note: str = "not found here"  # why python_version is not wanted_python, when it is not
    date: str | None = None  # the day the image's framework version was set: what it leaves unpinned resolves as then
    own_libraries: tuple[str, ...] = ()  # the image's own library (sagemaker-xgboost-container): on no index
    framework_toolkit: str | None = None  # the framework's training toolkit, as the image requires it
    key: str = field(init=False)

    def __post_init__(self) -> None:
        # The interpreter's path too: a venv links to it, and another build of the same version is another base.
        document = json.dumps(
            [
                ENV_FORMAT,
                str(self.python),
                self.python_version,
                sorted(self.pins),
                self.toolkit,
                self.date,
                self.framework_toolkit,
            ]
        )
        object.__setattr__(self, "key", hashlib.sha256(document.encode()).hexdigest()[:16])


def toolkit_requirement() -> str:
    """The toolkit the local trainer drives, pinned as installed here: its behaviour is what the trainer reads."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"sagemaker-training=={version('sagemaker-training')}"
    except PackageNotFoundError:
        return "sagemaker-training"


def plan(image_uri: str | None, *, on_host: bool = False) -> Plan:
    """The base environment for a job on `image_uri`: its framework image's packages and Python, as far as here;
    `on_host` keeps this Python (the image's packages did not install on the image's)."""
    image = Image.of(image_uri)
    data = framework_environment(image.framework, image.version) if image.framework and image.version else None
    wanted = _python_of(image.py_version) or (data.python if data else None)
    too_old = wanted is not None and _release(wanted) < OLDEST_PYTHON
    found = find_python(wanted) if wanted and not on_host and not too_old else None
    python = found or Path(sys.executable)
    version = wanted if found and wanted else HOST_PYTHON
    return Plan(
        image=image,
        python=python,
        python_version=version,
        wanted_python=wanted,
        pins=tuple(data.packages) if data else (),
        # The toolkit running here, pinned, where it installs: on another Python, any the trainer reads.
        toolkit=toolkit_requirement() if version == HOST_PYTHON else TOOLKIT_FLOOR,
        python_note=(
            "older than the toolkit runs on"
            if too_old
            else "its packages do not install on it here"
            if on_host
            else "not found here"
        ),
        date=data.date if data else None,
        own_libraries=tuple(sorted({_name(t) for t in data.toolkit if _OWN_LIBRARY.fullmatch(_name(t))}))
        if data
        else (),
        framework_toolkit=_framework_toolkit(image.framework, data.toolkit if data else ()),
    )


def _framework_toolkit(framework: str | None, toolkit: Sequence[str]) -> str | None:
    """The framework's training toolkit the image runs (`SAGEMAKER_TRAINING_MODULE`), as the image requires it."""
    if framework not in TRAINING_MODULES:
        return None
    package = TRAINING_MODULES[framework][0]
    return next((t for t in toolkit if _canonical(_name(t)) == package), package)


def training_variables(chosen: Plan) -> dict[str, str]:
    """What the image's environment says about its entrypoint: the framework toolkit's module, where there is one."""
    if chosen.framework_toolkit is None or chosen.image.framework is None:
        return {}
    return {"SAGEMAKER_TRAINING_MODULE": TRAINING_MODULES[chosen.image.framework][1]}


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def _python_of(py_version: str | None) -> str | None:
    """ "py310" → "3.10"; "py3" (no minor) → None."""
    digits = (py_version or "").removeprefix("py")
    return f"{digits[0]}.{digits[1:]}" if len(digits) > 1 and digits.isdigit() else None


def find_python(version: str) -> Path | None:
    """An interpreter of `version` on this machine: this one, or one uv finds (never downloaded), pyenv's included.

    pyenv's shims answer only for the versions pyenv has selected and make uv give up; its versions' own bin folders
    are searched instead.
    """
    if version == HOST_PYTHON:
        return Path(sys.executable)
    try:
        uv = uv_binary()
    except BuildError:
        return None
    folders = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and not p.rstrip("/").endswith("shims")]
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    with contextlib.suppress(OSError):
        folders += [str(d / "bin") for d in sorted(pyenv.iterdir()) if d.name.startswith(f"{version}.")]
    environment = {**os.environ, "PATH": os.pathsep.join(folders), "UV_PYTHON_DOWNLOADS": "never"}
    environment.pop("VIRTUAL_ENV", None)
    found = subprocess.run(
        [uv, "python", "find", "--no-project", version],
        capture_output=True,
        text=True,
        env=environment,
        check=False,
        timeout=60,
    )
    path = found.stdout.strip()
    return Path(path) if found.returncode == 0 and path else None


def uv_binary() -> str:
    """The uv binary: the one running this process (`uv run` sets $UV), the one `make` installed, or the one on
    PATH."""
    installed = Path(__file__).resolve().parents[3] / ".local" / "uv" / "bin" / "uv"
    candidates = [os.environ.get("UV"), str(installed) if installed.is_file() else None, shutil.which("uv")]
    found = next((c for c in candidates if c), None)
    if not found:
        raise BuildError(
            "ClientError: the local trainer builds job environments with uv, which is not on PATH "
            "(`make dev` installs it into .local/uv; or `pip install uv`)"
        )
    return found


def site_packages(env: Path) -> Path:
    """The site-packages folder of a POSIX virtualenv."""
    [found] = (env / "lib").glob("python3*/site-packages")
    return found


@dataclass(frozen=True)
class JobPython:
    """A job's python and the variables its image's environment sets."""

    python: Path
    variables: dict[str, str]


class Environments:
    """Builds and caches the base and requirements environments under `root`/envs, one build per key at a time."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def job_python(
        self,
        image_uri: str | None,
        code: Path,
        venv: Path,
        sink: Sink,
        holds: contextlib.ExitStack,
        stop: threading.Event,
    ) -> JobPython:
        """Return the python of a new job venv at `venv` over the job's base and requirements layers, building the
        layers on first use, and the variables the image sets; `holds` keeps the layers in use (safe from pruning)
        until the run ends.

        Raises:
            BuildError: a layer did not build (the reason names the installer's error).
            BuildStopped: `stop` was set during a build.
        """
        chosen = plan(image_uri)
        unusable = self.root / "envs" / f"{chosen.key}.unusable"
        if chosen.python_version != HOST_PYTHON and unusable.is_file():
            chosen = plan(image_uri, on_host=True)
        try:
            base = self._base(chosen, sink, holds, stop)
        except BuildError:
            if chosen.python_version == HOST_PYTHON:
                raise
            # Remembered, so later jobs on this image go straight to this Python (pruned by age like the rest).
            unusable.write_text(json.dumps({"python": str(chosen.python), "pins": list(chosen.pins)}))
            sink.write(f"sagepush local: the image's packages do not install on Python {chosen.python_version} here")
            chosen = plan(image_uri, on_host=True)
            base = self._base(chosen, sink, holds, stop)
        requirements = code / "requirements.txt"
        text = requirements.read_text() if requirements.is_file() else ""
        layers = [base]
        if text.strip():
            layers.insert(0, self._requirements(base, chosen, text, code, sink, holds, stop))
        uv = uv_binary()
        _run([uv, "venv", "--quiet", "--python", str(chosen.python), str(venv)], sink, stop)
        _see(venv, layers)
        _expose_scripts(venv, layers)
        return JobPython(venv / "bin" / "python", training_variables(chosen))

    # ------------------------------------------------------------------ the layers
    def _base(self, chosen: Plan, sink: Sink, holds: contextlib.ExitStack, stop: threading.Event) -> Path:
        def build(building: Path) -> dict[str, Any]:
            uv = uv_binary()
            _run([uv, "venv", "--quiet", "--relocatable", "--python", str(chosen.python), str(building)], sink, stop)
            installed = _install_pins(uv, building, chosen, sink, stop)
            return {"installed": installed, "notice": notice(chosen, installed)}

        final, ready = self._cached(chosen.key, build, sink, holds, what=_base_summary(chosen))
        if ready.get("notice"):
            sink.write(f"sagepush local: {ready['notice']}")
        return final

    def _requirements(
        self,
        base: Path,
        chosen: Plan,
        text: str,
        code: Path,
        sink: Sink,
        holds: contextlib.ExitStack,
        stop: threading.Event,
    ) -> Path:
        key = hashlib.sha256(json.dumps([ENV_FORMAT, base.name, text.strip()]).encode()).hexdigest()[:16]

        def build(building: Path) -> dict[str, Any]:
            uv = uv_binary()
            _run([uv, "venv", "--quiet", "--relocatable", "--python", str(chosen.python), str(building)], sink, stop)
            _see(building, [base])
            python = building / "bin" / "python"
            # As the toolkit on SageMaker: pip, from the code directory, on the job's own requirements.txt.
            _run(
                [str(python), "-m", "pip", "install", "--no-input", "-r", "requirements.txt"],
                sink,
                stop,
                cwd=code,
                env=pip_environment(),
            )
            return {"requirements": text}

        final, _ready = self._cached(f"r-{key}", build, sink, holds, what="requirements.txt, with pip")
        return final

    def _cached(
        self,
        key: str,
        build: Any,
        sink: Sink,
        holds: contextlib.ExitStack,
        *,
        what: str,
    ) -> tuple[Path, dict[str, Any]]:
        """The ready environment `key`, built by `build(folder)` under a temporary name first when missing."""
        envs = self.root / "envs"
        final = envs / key
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            ready = hold_ready(final, holds)
            if ready is not None:
                sink.write(f"sagepush local: using the cached environment {final} ({what})")
                return final, ready
            sink.write(f"sagepush local: building the environment {final} ({what})")
            building = envs / f".{key}.{uuid.uuid4().hex[:8]}"
            building.mkdir(parents=True)
            # Held from the start (pruning must not take a half-built env), and still held once renamed to `final`.
            holds.enter_context(in_use(building))
            try:
                document = build(building)
                (building / ".ready").write_text(json.dumps(document))
                # A venv names its own folder in its scripts and pyvenv.cfg: the layers above find it by this path.
                _relocate(building, final)
                try:
                    building.rename(final)
                except OSError:  # another process built the same env first: use theirs
                    ready = hold_ready(final, holds)
                    if ready is None:
                        raise
                    return final, ready
            finally:
                if building.exists():
                    shutil.rmtree(building, ignore_errors=True)
            return final, document


def _base_summary(chosen: Plan) -> str:
    framework = [chosen.framework_toolkit] if chosen.framework_toolkit else []
    packages = ", ".join([*chosen.pins, chosen.toolkit, *framework, "pip"])
    dated = f"; the rest as of {chosen.date}" if chosen.date else ""
    return f"Python {chosen.python_version}; {chosen.image.describe()}: {packages}{dated}"


def _install_pins(uv: str, env: Path, chosen: Plan, sink: Sink, stop: threading.Event) -> dict[str, str]:
    """Install the image's packages: as pinned; failing that, each exact pin at the nearest version that installs
    here (the lowest at or above it, wheels only) and the rest at their newest beside those; failing that, all at
    their newest. Return name → version installed."""
    python = str(env / "bin" / "python")
    install = [uv, "pip", "install", "--python", python]
    pins = [_from_an_index(pin) for pin in chosen.pins]
    exact = [pin for pin in pins if _EXACT.fullmatch(pin)]
    others = [pin for pin in pins if pin not in exact]
    wheels_only = [arg for pin in exact for arg in ("--only-binary", _name(pin))]
    dated = as_of(chosen)
    framework = [chosen.framework_toolkit] if chosen.framework_toolkit else []

    def as_pinned() -> None:
        _run([*install, *dated, chosen.toolkit, *framework, "pip", *pins, *wheels_only], sink, stop)

    def nearest() -> None:
        # Only the exact pins resolve to their lowest: a bare or bounded requirement would get its oldest release.
        nearest_pins = [pin.replace("==", ">=", 1) for pin in exact]
        lowest = ["--resolution", "lowest-direct"]
        _run([*install, *dated, *lowest, chosen.toolkit, *nearest_pins, *wheels_only], sink, stop)
        frozen = env / ".sagepush-frozen.txt"
        listed = _list(uv, python)
        frozen.write_text("".join(f"{name}=={version}\n" for name, version in listed.items()))
        try:
            _run([*install, *dated, "--constraint", str(frozen), "pip", *framework, *others], sink, stop)
        finally:
            frozen.unlink()

    def newest() -> None:
        _run([*install, chosen.toolkit, *framework, "pip", *(_name(pin) for pin in chosen.pins)], sink, stop)

    steps = [(as_pinned, ""), (nearest, "the nearest versions that install"), (newest, "their newest versions")]
    for index, (step, _) in enumerate(steps if chosen.pins else steps[:1]):
        try:
            step()
            break
        except BuildError:
            if not chosen.pins or index == len(steps) - 1:
                raise
            sink.write(
                f"sagepush local: the image's packages do not install as pinned here: trying {steps[index + 1][1]}"
            )
    return _list(uv, python)


def as_of(chosen: Plan) -> list[str]:
    """uv's arguments that resolve what the image leaves unpinned (and what its pins pull in) as of the image's date:
    the numpy beside torch 2.0.1 is one of mid-2023, not today's. Exempt: every package the image names (its pins
    say which release) and the toolkit with what it needs at least (its lower bounds postdate older images)."""
    if chosen.date is None:
        return []
    day = datetime.date.fromisoformat(chosen.date) + datetime.timedelta(days=1)
    exempt = {_canonical(_name(pin)) for pin in chosen.pins} | {_canonical(_name(chosen.toolkit))}
    if chosen.framework_toolkit:
        exempt.add(_canonical(_name(chosen.framework_toolkit)))
    if chosen.toolkit.startswith("sagemaker-training=="):
        exempt |= {_canonical(_name(need)) for need in _toolkit_lower_bounds()}
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    arguments = ["--exclude-newer", f"{day.isoformat()}T00:00:00Z"]
    for name in sorted(exempt):
        arguments += ["--exclude-newer-package", f"{name}={now}"]
    return arguments


def _toolkit_lower_bounds() -> list[str]:
    """The toolkit's requirements that set a lowest version (`protobuf>=5.28.1`), as installed here."""
    from importlib.metadata import PackageNotFoundError, requires

    try:
        needs = requires("sagemaker-training") or []
    except PackageNotFoundError:
        return []
    return [need for need in needs if ">=" in need and "extra ==" not in need]


def _list(uv: str, python: str) -> dict[str, str]:
    """Every distribution installed in the environment of `python`: canonical name → version."""
    listed = subprocess.run(
        [uv, "pip", "list", "--python", python, "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return {_canonical(item["name"]): item["version"] for item in json.loads(listed.stdout)}


def notice(chosen: Plan, installed: dict[str, str]) -> str:
    """One line naming every way the base differs from the image, or "" when it matches."""
    differences = []
    if chosen.wanted_python and chosen.wanted_python != chosen.python_version:
        differences.append(
            f"Python {chosen.python_version} (the image has {chosen.wanted_python}, {chosen.python_note})"
        )
    for pin in chosen.pins:
        name, at, url = pin.partition(" @ ")
        if at:
            differences.append(f"{name} {installed.get(_canonical(name), 'missing')} from PyPI (the image's is {url})")
            continue
        name, _, pinned = pin.partition("==")
        got = installed.get(_canonical(name))
        if pinned and got != pinned:
            differences.append(f"{name} {got or 'missing'} (the image pins {pinned})")
    differences += [f"{name} missing (the image's own library, on no package index)" for name in chosen.own_libraries]
    if chosen.image.framework is None:
        return (
            "no framework image data for this job's image: its environment holds the toolkit, pip and requirements.txt"
        )
    if not chosen.pins:
        return f"no package data for {chosen.image.describe()}: its environment holds the toolkit, pip and requirements.txt"
    return f"differs from {chosen.image.describe()}: " + "; ".join(differences) if differences else ""


def _from_an_index(requirement: str) -> str:
    """A requirement an index can answer: one the image installs from a URL (`smdebug @ git+https://…`) by its name."""
    return _name(requirement) if " @ " in requirement else requirement


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _see(venv: Path, layers: Sequence[Path]) -> None:
    """Make `venv` import from `layers`, first to last after its own packages, their .pth files processed."""
    lines = "; ".join(f"site.addsitedir({str(site_packages(layer))!r})" for layer in layers)
    (site_packages(venv) / "_sagepush_layers.pth").write_text(f"import site; {lines}\n")


def _expose_scripts(venv: Path, layers: Sequence[Path]) -> None:
    """Give `venv` the console scripts of its layers (torchrun, the toolkit's), running on the job's python: uv's
    relocatable scripts find their python beside themselves, pip's name it on their first line."""
    bin_folder = venv / "bin"
    for layer in layers:
        for script in sorted((layer / "bin").iterdir()):
            target = bin_folder / script.name
            skipped = script.name.startswith(("python", "activate")) or not script.is_file()
            if skipped or target.exists() or target.is_symlink():
                continue
            with contextlib.suppress(OSError, UnicodeDecodeError):
                first, newline, rest = script.read_text().partition("\n")
                if first.startswith("#!") and "python" in first:
                    first = f"#!{bin_folder / 'python'}"
                elif not (first == "#!/bin/sh" and "'python'" in rest.split("\n", 1)[0]):
                    continue  # not a Python console script
                target.write_text(first + newline + rest)
                target.chmod(0o755)


def _relocate(building: Path, final: Path) -> None:
    """Rewrite a venv built at `building` to live at `final`: pyvenv.cfg, the activation scripts, script shebangs and
    the layer .pth name the folder they were built in."""
    old, new = str(building), str(final)
    for path in [building / "pyvenv.cfg", *(building / "bin").iterdir(), *site_packages(building).glob("*.pth")]:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            if path.is_file() and not path.is_symlink():
                text = path.read_text()
                if old in text:
                    path.write_text(text.replace(old, new))


def hold_ready(env: Path, holds: contextlib.ExitStack) -> dict[str, Any] | None:
    """Hold a built env as in use and record the use (pruning goes by it); its ready document, or None when there is
    none, or a prune removed it while this waited."""
    marker = env / ".ready"
    if not marker.is_file():
        return None
    try:
        holds.enter_context(in_use(env))
        document: dict[str, Any] = json.loads(marker.read_text())
    except (FileNotFoundError, ValueError):
        return None
    touch(marker)
    return document


def pip_environment() -> dict[str, str]:
    """This process's environment without pip's configuration: no config file, no PIP_* variables but the
    certificates to trust."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k in _CERTIFICATES}
    environment.pop("VIRTUAL_ENV", None)
    environment.update(
        PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", PYTHONNOUSERSITE="1"
    )
    return environment


def _run(
    command: list[str],
    sink: Sink,
    stop: threading.Event,
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> None:
    """Run an installer, its output into the job's log; stop it when the job is stopped."""
    environment = env or {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    environment.pop("VIRTUAL_ENV", None)
    output: list[str] = []
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line.rstrip("\n"))
            sink.write(line.rstrip("\n"))

    reader = threading.Thread(target=pump, name="installer-output", daemon=True)
    reader.start()
    deadline = time.monotonic() + BUILD_TIMEOUT_SECONDS
    while process.poll() is None:
        if stop.wait(_POLL_SECONDS) or time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 9)
            process.wait()
            reader.join(timeout=5)
            if stop.is_set():
                raise BuildStopped
            raise BuildError(f"InstallRequirementsError: {' '.join(command[:3])} took over {BUILD_TIMEOUT_SECONDS}s")
    reader.join(timeout=5)
    if process.returncode != 0:
        raise BuildError(install_failure(output))


def install_failure(output: list[str]) -> str:
    """The FailureReason of a job environment that did not build: the installer's error and its causes (uv's or
    pip's), not uv's banner or progress lines (`Using Python … environment at`, `Resolved …`)."""
    start = next((i for i, line in enumerate(output) if line.lstrip().startswith(_ERROR_STARTS)), None)
    lines = output[start:] if start is not None else [line for line in output if not _UV_PROGRESS.match(line)]
    lines = [line for line in lines if line.strip()][:_REASON_LINES] or ["the environment build failed"]
    first = lines[0].lstrip()
    for prefix in _ERROR_STARTS:
        first = first.removeprefix(prefix)
    lines[0] = first.strip()
    return "InstallRequirementsError: " + "\n".join(lines)
