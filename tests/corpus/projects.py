"""The corpus's projects (corpus.toml) and how one is laid out for a push: upstream files as upstream has them, plus
what tests/corpus/<name>/ holds (its sagepush.toml).

`python -m tests.corpus.projects fetch` fills the cache with every upstream file (see upstream.py for the sources);
`python -m tests.corpus.projects lay NAME DIR` lays one project out in DIR/NAME and its channel data in DIR/data, to
push it by hand: `sagepush local data put DIR/data --project NAME`, then `sagepush push DIR/NAME --local --wait` with
`--set channels.<channel>=…` naming the uploaded data.
"""

from __future__ import annotations

import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.corpus import upstream

CORPUS = Path(__file__).resolve().parent
MANIFEST = "sagepush.toml"
PLACEHOLDER_BUCKET = "sagepush-artifacts"
"""The bucket the corpus manifests' channels name; the test puts the local stack's artifact bucket in its place."""


@dataclass(frozen=True)
class Project:
    """One project of the corpus."""

    name: str
    repository: str  # owner/name
    commit: str
    license: str
    root: str
    files: dict[str, upstream.UpstreamFile]  # path in the project -> the upstream file
    data: str
    written: dict[str, str] = field(default_factory=dict)  # path in the project -> text the upstream test writes
    model: tuple[str, ...] = ()
    log: str | None = None
    slow: bool = False
    fails: str | None = None  # a project that cannot run here: its FailureReason holds this, its log says why
    own: tuple[Path, ...] = field(default=())  # tests/corpus/<name>/*: the manifest and anything else of ours

    @property
    def manifest(self) -> dict[str, Any]:
        return tomllib.loads((CORPUS / self.name / MANIFEST).read_text())


def load() -> list[Project]:
    """Every project of corpus.toml, in its order."""
    document = tomllib.loads((CORPUS / "corpus.toml").read_text())
    repositories = document["repositories"]
    projects = []
    for name, entry in document["projects"].items():
        origin = repositories[entry["repository"]]
        root = entry["root"].strip("/")
        files = {
            path: upstream.UpstreamFile(origin["repository"], origin["commit"], f"{root}/{path}", sha256)
            for path, sha256 in entry["files"].items()
        }
        own = tuple(sorted(p for p in (CORPUS / name).rglob("*") if p.is_file() and "__pycache__" not in p.parts))
        projects.append(
            Project(
                name=name,
                repository=origin["repository"],
                commit=origin["commit"],
                license=origin["license"],
                root=root,
                files=files,
                data=entry["data"],
                written=dict(entry.get("write", {})),
                model=tuple(entry.get("model", ())),
                log=entry.get("log"),
                slow=bool(entry.get("slow", False)),
                fails=entry.get("fails"),
                own=own,
            )
        )
    return projects


def upstream_data() -> dict[str, upstream.UpstreamFile]:
    """The upstream data files the generators read, by name."""
    document = tomllib.loads((CORPUS / "corpus.toml").read_text())
    repositories = document["repositories"]
    return {
        name: upstream.UpstreamFile(
            repositories[entry["repository"]]["repository"],
            repositories[entry["repository"]]["commit"],
            entry["path"],
            entry["sha256"],
        )
        for name, entry in document["upstream_data"].items()
    }


def read_data(name: str) -> bytes:
    """An upstream data file's bytes (upstream.read: cache, git, GitHub)."""
    return upstream.read(upstream_data()[name])


def lay_out(project: Project, destination: Path) -> Path:
    """Write the project into `destination` (created): upstream files byte for byte, then the files the upstream test
    writes and ours (the manifest); return it.

    Raises:
        upstream.UnavailableError: an upstream file could not be had.
    """
    contents = {path: upstream.read(file) for path, file in project.files.items()}  # all of them, before writing
    for path, data in contents.items():
        target = destination / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    base = CORPUS / project.name
    ours = {own.relative_to(base).as_posix(): own.read_bytes() for own in project.own}
    ours.update({path: text.encode() for path, text in project.written.items()})
    for path, data in ours.items():
        target = destination / path
        if target.exists():
            raise ValueError(f"{project.name}: {path} would replace an upstream file")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return destination


def main(argv: list[str]) -> int:
    from tests.corpus import data

    if argv[:1] == ["fetch"] and len(argv) == 1:
        files = [f for p in load() for f in p.files.values()] + list(upstream_data().values())
        for file in files:
            print(f"{len(upstream.read(file)):>9}  {file}")
        print(f"{len(files)} files in {upstream.cache_dir()}")
        return 0
    if argv[:1] == ["lay"] and len(argv) == 3:
        project = next((p for p in load() if p.name == argv[1]), None)
        if project is None:
            print(f"no project {argv[1]!r} in corpus.toml", file=sys.stderr)
            return 2
        root = lay_out(project, Path(argv[2]) / project.name)
        channels = Path(argv[2]) / "data"
        for key, body in data.make(project.data).items():
            target = channels / key
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(body)
        print(f"{root}: the project; {channels}: its channel data, for s3://<ArtifactBucket>/data/{project.name}/")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
