"""Staging: reproducible output, dropped debris, refusals naming the member and the rule, bounded memory."""

from __future__ import annotations

import gzip
import io
import tarfile
import tracemalloc
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from sagepush.errors import InputError
from sagepush.spec import SpecError
from sagepush.staging import DEFAULT_LIMITS, Limits, StagedCode, StagingError, stage_archive, stage_object
from tests.unit.archives import (
    Member,
    big_tar_gz,
    file,
    folder,
    link,
    listing_digest,
    tar_bytes,
    zeros_tar_gz,
    zip_bytes,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

MANIFEST = b'[tool.sagepush]\nentry_point = "train.py"\nframework = "pytorch"\n'
TREE = [
    file("train.py", b"import pkg.model\nprint('training')\n", 0o755),
    file("pkg/__init__.py"),
    file("pkg/model.py", b"WEIGHTS = 3\n" * 50),
    file("sagepush.toml", MANIFEST),
    file("data/notes.md", "# données\n".encode()),
]
EXPECTED_MEMBERS = ("data/", "data/notes.md", "pkg/", "pkg/__init__.py", "pkg/model.py", "sagepush.toml", "train.py")


def stage(data: bytes, filename: str, limits: Limits = DEFAULT_LIMITS) -> tuple[StagedCode, bytes]:
    out = io.BytesIO()
    staged = stage_archive(io.BytesIO(data), out, filename=filename, limits=limits)
    return staged, out.getvalue()


def refused(data: bytes, filename: str, limits: Limits = DEFAULT_LIMITS) -> StagingError:
    out = io.BytesIO()
    with pytest.raises(StagingError) as caught:
        stage_archive(io.BytesIO(data), out, filename=filename, limits=limits)
    assert out.getvalue() == b"", "nothing may be written before every rule has passed"
    return caught.value


def read_output(output: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(output), mode="r:gz") as archive:
        return {m.name + ("/" if m.isdir() else ""): m for m in archive.getmembers()}


# ------------------------------------------------------------------------------------------------ reproducibility

SAME_TREE: dict[str, Callable[[], tuple[bytes, str]]] = {
    "tar.gz-pax": lambda: (tar_bytes(TREE), "code.tar.gz"),
    "tgz-gnu-other-owner-mtime-reversed": lambda: (
        tar_bytes(
            reversed([*TREE, folder("pkg"), folder("data")]),
            fmt=tarfile.GNU_FORMAT,
            mtime=1,
            owner=("bob", 501),
        ),
        "code.tgz",
    ),
    "tar-ustar-with-dot-slash": lambda: (
        tar_bytes([folder("."), *(Member("./" + m.name, m.data, m.mode) for m in TREE)], gz=False),
        "code.tar",
    ),
    "zip": lambda: (zip_bytes(TREE), "code.zip"),
    "zip-reversed-other-date": lambda: (zip_bytes(reversed(TREE), date=(1999, 1, 1, 0, 0, 0)), "CODE.ZIP"),
    "git-archive-prefix": lambda: (
        tar_bytes([folder("proj-1a2b3c"), *(Member("proj-1a2b3c/" + m.name, m.data, m.mode) for m in TREE)]),
        "proj.tar.gz",
    ),
}


def test_the_same_tree_stages_to_the_same_bytes_whatever_the_container() -> None:
    outputs = {name: stage(*build()) for name, build in SAME_TREE.items()}
    digests = {name: staged.digest for name, (staged, _) in outputs.items()}
    assert len(set(digests.values())) == 1, digests
    for staged, output in outputs.values():
        assert staged.digest == listing_digest(output)
        assert staged.size == len(output)
        assert staged.members == EXPECTED_MEMBERS


def test_staging_twice_gives_identical_bytes() -> None:
    data = tar_bytes(TREE)
    assert stage(data, "a.tar.gz")[1] == stage(data, "b.tar.gz")[1]


def test_different_content_gives_a_different_digest() -> None:
    changed = [*TREE[:-1], file("data/notes.md", b"other\n")]
    assert stage(tar_bytes(TREE), "a.tar.gz")[0].digest != stage(tar_bytes(changed), "a.tar.gz")[0].digest


def test_output_is_a_canonical_ustar_in_a_fixed_gzip_header() -> None:
    _, output = stage(tar_bytes(TREE), "code.tar.gz")
    assert output[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    members = read_output(output)
    assert tuple(members) == EXPECTED_MEMBERS
    for info in members.values():
        assert (info.mtime, info.uid, info.gid, info.uname, info.gname) == (0, 0, 0, "", "")
        assert info.pax_headers == {}
    assert members["train.py"].mode == 0o755
    assert members["pkg/model.py"].mode == 0o644
    assert members["pkg/"].mode == 0o755
    with tarfile.open(fileobj=io.BytesIO(output)) as archive:
        assert archive.extractfile("pkg/model.py").read() == b"WEIGHTS = 3\n" * 50  # type: ignore[union-attr]
        assert archive.extractfile("data/notes.md").read() == "# données\n".encode()  # type: ignore[union-attr]
    assert gzip.decompress(output)[-1024:] == bytes(1024)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [(0o600, 0o644), (0o744, 0o755), (0o4755, 0o755), (0o2711, 0o755), (0o1777, 0o755), (0o444, 0o644)],
    ids=oct,
)
def test_file_modes_are_normalised(mode: int, expected: int) -> None:
    _, output = stage(tar_bytes([file("run.sh", b"#!/bin/sh\n", mode)]), "code.tar.gz")
    assert read_output(output)["run.sh"].mode == expected


def test_long_and_unicode_names_round_trip() -> None:
    deep = "/".join(["segment-" + "x" * 40] * 3) + "/module.py"  # > 100 bytes: split into ustar prefix + name
    deeper = "/".join(["d" * 200] * 4) + "/m.py"  # > 256 bytes: needs a PAX path record
    names = [deep, deeper, "modèle/😀.py"]
    _, output = stage(tar_bytes([file(n, n.encode()) for n in names]), "code.tar.gz")
    with tarfile.open(fileobj=io.BytesIO(output)) as archive:
        for name in names:
            assert archive.extractfile(name).read() == name.encode()  # type: ignore[union-attr]


def test_a_single_top_level_directory_is_stripped_and_its_manifest_found() -> None:
    members = [Member("repo-abc/" + m.name, m.data, m.mode) for m in TREE]
    staged, _ = stage(tar_bytes(members, pax_headers={"comment": "abc123"}), "repo.tar.gz")
    assert staged.stripped_prefix == "repo-abc"
    assert staged.members == EXPECTED_MEMBERS
    assert staged.manifest is not None and staged.manifest.source == "sagepush.toml"
    assert staged.manifest.table["entry_point"] == "train.py"
    assert staged.entry_point_exists("train.py") and staged.entry_point_exists("./pkg/model.py")
    assert not staged.entry_point_exists("pkg") and not staged.entry_point_exists("missing.py")


def test_the_top_level_directory_stays_when_a_file_sits_at_the_root() -> None:
    staged, _ = stage(tar_bytes([file("src/train.py", b"x"), file("README.md")]), "code.tar.gz")
    assert staged.stripped_prefix is None
    assert staged.members == ("README.md", "src/", "src/train.py")
    assert staged.manifest is None


def test_manifest_from_pyproject() -> None:
    pyproject = b'[project]\nname = "x"\n[tool.sagepush]\nentry_point = "train.py"\n'
    staged, _ = stage(zip_bytes([file("train.py"), file("pyproject.toml", pyproject)]), "code.zip")
    assert staged.manifest is not None and staged.manifest.source == "pyproject.toml"


def test_a_bad_manifest_is_a_spec_error() -> None:
    with pytest.raises(SpecError):
        stage(tar_bytes([file("train.py"), file("sagepush.toml", b"entry_point = ")]), "code.tar.gz")


# ---------------------------------------------------------------------------------------------------- dropped


def test_vcs_and_cache_debris_is_dropped_and_reported() -> None:
    debris = [
        folder(".git"),
        file(".git/HEAD", b"ref: refs/heads/main\n"),
        file(".git/objects/ab/cdef", b"\x78\x9c"),
        link(".git/hooks/pre-commit", "/usr/bin/true"),  # inside a dropped directory: dropped, not refused
        file("pkg/__pycache__/model.cpython-311.pyc", b"\0"),
        file("legacy.pyc", b"\0"),
        file(".DS_Store", b"\0"),
        file("pkg/.DS_Store", b"\0"),
        file("__MACOSX/pkg/._model.py", b"\0"),
        file("vendor/lib/.git", b"gitdir: ../../.git/modules/lib\n"),
        file("vendor/lib/lib.py", b"\n"),
    ]
    staged, output = stage(tar_bytes([*TREE, *debris]), "code.tar.gz")
    assert staged.members == (*EXPECTED_MEMBERS, "vendor/", "vendor/lib/", "vendor/lib/lib.py")
    assert staged.dropped == (
        ".DS_Store",
        ".git/",
        "__MACOSX/",
        "legacy.pyc",
        "pkg/.DS_Store",
        "pkg/__pycache__/",
        "vendor/lib/.git",
    )
    assert tuple(read_output(output)) == staged.members


def test_debris_around_a_top_level_directory_does_not_stop_the_strip() -> None:
    members = [Member("proj/" + m.name, m.data, m.mode) for m in TREE]
    staged, _ = stage(zip_bytes([*members, file("__MACOSX/proj/._train.py", b"\0"), file(".DS_Store")]), "p.zip")
    assert staged.stripped_prefix == "proj"
    assert staged.members == EXPECTED_MEMBERS
    assert staged.dropped == (".DS_Store", "__MACOSX/")


def test_sagepushignore_applies_even_when_it_comes_last() -> None:
    ignore = b"# local artefacts\ncheckpoints/\n*.ckpt\n!keep.ckpt\n/scratch.py\n"
    members = [
        *TREE,
        file("checkpoints/epoch1.pt", b"w" * 1000),
        file("best.ckpt", b"c"),
        file("keep.ckpt", b"k"),
        file("scratch.py", b"s"),
        file("pkg/scratch.py", b"kept: the pattern is anchored"),
        link("checkpoints/latest", "epoch1.pt"),  # a link the ignore file drops is not refused
        file(".sagepushignore", ignore),
    ]
    for data, filename in ((tar_bytes(members), "a.tar.gz"), (zip_bytes(members), "a.zip")):
        staged, _ = stage(data, filename)
        assert staged.dropped == ("best.ckpt", "checkpoints/epoch1.pt", "checkpoints/latest", "scratch.py")
        assert "keep.ckpt" in staged.members and "pkg/scratch.py" in staged.members
        assert ".sagepushignore" in staged.members


def test_an_archive_with_only_debris_is_refused() -> None:
    error = refused(tar_bytes([file(".git/HEAD"), file("a.pyc")]), "code.tar.gz")
    assert (error.rule, error.where) == ("empty", "code.tar.gz")
    assert ".git/" in error.message


# --------------------------------------------------------------------------------------------------- refusals

# (id, archive bytes, file name, rule, member named in the error)
REFUSALS: list[tuple[str, Callable[[], bytes], str, str, str]] = [
    ("symlink", lambda: tar_bytes([*TREE, link("data/latest", "notes.md")]), "a.tar.gz", "type", "data/latest"),
    ("symlink-zip", lambda: zip_bytes([*TREE, link("up", "../../etc")]), "a.zip", "type", "up"),
    ("hardlink", lambda: tar_bytes([*TREE, link("copy.py", "train.py", "hardlink")]), "a.tar.gz", "type", "copy.py"),
    ("device", lambda: tar_bytes([*TREE, Member("dev/null", kind="chr")]), "a.tar.gz", "type", "dev/null"),
    ("fifo", lambda: tar_bytes([*TREE, Member("pipe", kind="fifo")]), "a.tar.gz", "type", "pipe"),
    ("fifo-zip", lambda: zip_bytes([*TREE, Member("pipe", kind="fifo")]), "a.zip", "type", "pipe"),
    ("absolute", lambda: tar_bytes([*TREE, file("/etc/cron.d/x")]), "a.tar.gz", "path", "/etc/cron.d/x"),
    ("dotdot", lambda: tar_bytes([*TREE, file("pkg/../../evil.py")]), "a.tar.gz", "path", "pkg/../../evil.py"),
    ("dotdot-zip", lambda: zip_bytes([*TREE, file("../evil.py")]), "a.zip", "path", "../evil.py"),
    ("backslash", lambda: zip_bytes([*TREE, file("pkg\\win.py")]), "a.zip", "path", "pkg\\win.py"),
    ("drive", lambda: zip_bytes([*TREE, file("C:/evil.py")]), "a.zip", "path", "C:/evil.py"),
    ("control-char", lambda: tar_bytes([*TREE, file("bad\nname.py")]), "a.tar.gz", "name", "bad\\nname.py"),
    ("duplicate", lambda: tar_bytes([*TREE, file("./train.py")]), "a.tar.gz", "duplicate", "./train.py"),
    ("duplicate-zip", lambda: zip_bytes([*TREE, file("pkg//model.py")]), "a.zip", "duplicate", "pkg//model.py"),
    (
        "nfc-nfd-twins",
        lambda: tar_bytes([file("caf\u00e9.py"), file("cafe\u0301.py")]),
        "a.tar.gz",
        "duplicate",
        "cafe\u0301.py",
    ),
    ("file-and-dir", lambda: tar_bytes([file("pkg"), file("pkg/a.py")]), "a.tar.gz", "duplicate", "pkg/a.py"),
    ("file-then-dir", lambda: tar_bytes([file("pkg"), folder("pkg")]), "a.tar.gz", "duplicate", "pkg/"),
    ("long-component", lambda: tar_bytes([*TREE, file("x" * 300 + ".py")]), "a.tar.gz", "name", "x" * 199 + "…"),
    (
        "not-utf8",
        lambda: tar_bytes([*TREE, file("caf\u00e9.py")], fmt=tarfile.GNU_FORMAT, encoding="latin-1"),
        "a.tar.gz",
        "name",
        "b'caf\\xe9.py'",
    ),
    ("empty-tar", lambda: tar_bytes([]), "a.tar.gz", "empty", "a.tar.gz"),
    ("empty-zip", lambda: zip_bytes([]), "a.zip", "empty", "a.zip"),
    ("zero-bytes", lambda: b"", "a.tar.gz", "empty", "a.tar.gz"),
    ("only-dirs", lambda: tar_bytes([folder("a"), folder("a/b")]), "a.tar.gz", "empty", "a.tar.gz"),
    ("text-named-tar.gz", lambda: b"<html>not found</html>" * 30, "a.tar.gz", "format", "a.tar.gz"),
    ("zip-named-tar.gz", lambda: zip_bytes(TREE), "a.tar.gz", "format", "a.tar.gz"),
    ("tar.gz-named-zip", lambda: tar_bytes(TREE), "a.zip", "format", "a.zip"),
    ("tar.gz-named-tar", lambda: tar_bytes(TREE), "a.tar", "format", "a.tar"),
    ("gzip-not-tar", lambda: gzip.compress(b"just text\n" * 100), "a.tar.gz", "format", "a.tar.gz"),
    ("unknown-suffix", lambda: tar_bytes(TREE), "a.rar", "format", "a.rar"),
    ("truncated-gzip", lambda: tar_bytes(TREE)[:-30], "a.tar.gz", "corrupt", "a.tar.gz"),
    ("corrupt-gzip-crc", lambda: tar_bytes(TREE)[:-8] + bytes(8), "a.tar.gz", "corrupt", "a.tar.gz"),
    ("truncated-tar", lambda: tar_bytes(TREE, gz=False)[:1500], "a.tar", "corrupt", "a.tar"),
    ("bad-tar-checksum", lambda: _flip(tar_bytes(TREE, gz=False), 3 * 512 + 10), "a.tar", "corrupt", "a.tar"),
    ("truncated-zip", lambda: zip_bytes(TREE)[:200], "a.zip", "corrupt", "a.zip"),
    ("encrypted-zip", lambda: _encrypted_zip(), "a.zip", "encrypted", "secret.py"),
]


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x55]) + data[at + 1 :]


def _encrypted_zip() -> bytes:
    data = bytearray(zip_bytes([file("train.py"), file("secret.py", b"x")]))
    for signature, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = data.find(signature, data.find(b"secret.py") - 60 if signature == b"PK\x03\x04" else 0)
        while at >= 0:
            name_at = at + (30 if signature == b"PK\x03\x04" else 46)
            if data[name_at : name_at + 9] == b"secret.py":
                data[at + flag_offset] |= 0x1
            at = data.find(signature, at + 4)
    return bytes(data)


@pytest.mark.parametrize(
    ("build", "filename", "rule", "where"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_refusals_name_the_member_and_the_rule(
    build: Callable[[], bytes], filename: str, rule: str, where: str
) -> None:
    error = refused(build(), filename)
    assert (error.rule, error.where) == (rule, where), str(error)
    assert isinstance(error, InputError)
    assert str(error).startswith(f"{where}: ")
    assert "\n" not in error.message


def test_a_non_archive_named_tar_gz_says_what_it_found() -> None:
    error = refused(b"<html>not found</html>" * 30, "code.tar.gz")
    assert "named like a tar.gz archive but holds data starting with" in error.message
    assert "holds a zip archive" in refused(zip_bytes(TREE), "code.tgz").message


# ----------------------------------------------------------------------------------------------------- limits

LIMITS: list[tuple[str, Limits, Callable[[], bytes], str]] = [
    ("members", Limits(max_members=5), lambda: tar_bytes([*TREE, file("extra.py")]), "extra.py"),
    ("members-zip-precheck", Limits(max_members=5), lambda: zip_bytes([*TREE, file("extra.py")]), "code"),
    ("member-bytes", Limits(max_member_bytes=100), lambda: tar_bytes(TREE), "pkg/model.py"),
    ("member-bytes-zip", Limits(max_member_bytes=100), lambda: zip_bytes(TREE), "pkg/model.py"),
    ("total-bytes", Limits(max_total_bytes=600), lambda: tar_bytes(TREE), "pkg/model.py"),
    ("name-length", Limits(max_name_length=10), lambda: tar_bytes(TREE), "pkg/__init__.py"),
    ("manifest-size", Limits(max_manifest_bytes=10), lambda: tar_bytes(TREE), "sagepush.toml"),
]


@pytest.mark.parametrize(("limits", "build", "where"), [r[1:] for r in LIMITS], ids=[r[0] for r in LIMITS])
def test_limits_are_enforced(limits: Limits, build: Callable[[], bytes], where: str) -> None:
    data = build()
    filename = "code.zip" if data.startswith(b"PK") else "code.tar.gz"
    error = refused(data, filename, limits)
    assert error.rule in ("limit", "name")
    assert error.where == (filename if where == "code" else where)


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_members"):
        Limits(max_members=0)


def test_a_bomb_is_stopped_as_soon_as_the_total_is_crossed(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.tar.gz"
    zeros_tar_gz(bomb, "zeros.bin", 2 << 30)  # 2 GiB expanded from about 7 MiB
    with bomb.open("rb") as src:
        with pytest.raises(StagingError) as caught:
            stage_archive(src, io.BytesIO(), filename="bomb.tar.gz", limits=Limits(max_total_bytes=8 << 20))
        read = src.tell()
    assert (caught.value.rule, caught.value.where) == ("limit", "zeros.bin")
    # 8 MiB expand from the archive's first 30 KiB: reading stops a chunk or two later, far from its end.
    assert read <= 3 << 20 < bomb.stat().st_size // 2


def test_a_bomb_is_stopped_by_its_ratio(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.tar.gz"
    zeros_tar_gz(bomb, "zeros.bin", 64 << 20)
    with bomb.open("rb") as src, pytest.raises(StagingError) as caught:
        stage_archive(src, io.BytesIO(), filename="bomb.tar.gz", limits=Limits(max_ratio=10))
    assert (caught.value.rule, caught.value.where) == ("bomb", "zeros.bin")
    assert "10:1" in caught.value.message


def test_a_stream_of_pax_headers_counts_against_the_limits() -> None:
    members = [Member(f"{i:03d}-" + "n" * 240, b"") for i in range(40)]
    error = refused(tar_bytes(members, gz=False), "code.tar", Limits(max_total_bytes=10_000, max_name_length=4096))
    assert error.rule == "limit"


# ---------------------------------------------------------------------------------------------------- secrets

SECRETS: list[tuple[str, bytes]] = [
    (".env", b"TOKEN=abc\n"),
    ("config/.env.production", b"TOKEN=abc\n"),
    ("keys/id_rsa", b"-----BEGIN OPENSSH PRIVATE KEY-----\n"),
    ("id_ed25519", b"-----BEGIN OPENSSH PRIVATE KEY-----\n"),
    ("home/.aws/credentials", b"[default]\n"),
    ("deploy/credentials", b"[default]\naws_access_key_id = AKIAABCDEFGHIJKLMNOP\n"),
    ("tls/server.pem", b"-----BEGIN RSA PRIVATE KEY-----\nMIIE\n"),
    ("tls/server.key", b"-----BEGIN PRIVATE KEY-----\nMIIE\n"),
    (".netrc", b"machine example.com login me password pw\n"),
    (".pypirc", b"[pypi]\npassword = pypi-abc\n"),
]


@pytest.mark.parametrize(("name", "data"), SECRETS, ids=[s[0] for s in SECRETS])
def test_likely_secrets_stop_the_upload(name: str, data: bytes) -> None:
    error = refused(tar_bytes([*TREE, file(name, data)]), "code.tar.gz")
    assert (error.rule, error.where) == ("secret", name)
    assert "allow_secrets in sagepush.toml" in error.message
    assert data.decode() not in error.message


def test_secrets_named_in_allow_secrets_are_kept() -> None:
    manifest = MANIFEST + b'allow_secrets = ["tests/fixtures/.env", "./tls/test.key"]\n'
    members = [
        *TREE[:3],
        file("sagepush.toml", manifest),
        file("tests/fixtures/.env", b"A=1\n"),
        file("tls/test.key", b"-----BEGIN PRIVATE KEY-----\n"),
    ]
    staged, _ = stage(tar_bytes(members), "code.tar.gz")
    assert {"tests/fixtures/.env", "tls/test.key"} <= staged.files
    error = refused(tar_bytes([*members, file("other/.env", b"B=2\n")]), "code.tar.gz")
    assert error.where == "other/.env"


def test_a_bad_allow_secrets_value_is_refused() -> None:
    members = [*TREE[:3], file("sagepush.toml", MANIFEST + b'allow_secrets = ".env"\n')]
    assert refused(tar_bytes(members), "code.tar.gz").where == "sagepush.toml: allow_secrets"


def test_harmless_look_alikes_pass() -> None:
    members = [
        *TREE,
        file(".env.example", b"TOKEN=\n"),
        file("tls/ca.pem", b"-----BEGIN CERTIFICATE-----\nMIIB\n"),
        file("docs/credentials", b"how to get credentials\n"),
        file("environment.py", b""),
    ]
    staged, _ = stage(tar_bytes(members), "code.tar.gz")
    assert {".env.example", "tls/ca.pem", "docs/credentials"} <= staged.files


def test_a_secret_dropped_by_sagepushignore_is_not_refused() -> None:
    staged, _ = stage(tar_bytes([*TREE, file(".env", b"A=1\n"), file(".sagepushignore", b".env\n")]), "a.tar.gz")
    assert ".env" in staged.dropped


# ----------------------------------------------------------------------------------------------- single script

SCRIPT = b"""# /// script
# requires-python = ">=3.11"
# dependencies = ["torch>=2.3", "numpy", "accelerate==0.30"]
# [tool.sagepush]
# framework = "pytorch"
# ///
print("training")
"""


def test_a_script_with_dependencies_gets_a_requirements_file_in_their_order() -> None:
    staged, output = stage(SCRIPT, "train.py")
    assert staged.members == ("requirements.txt", "train.py")
    assert staged.manifest is not None and staged.manifest.source == "train.py"
    assert staged.manifest.table["framework"] == "pytorch"
    with tarfile.open(fileobj=io.BytesIO(output)) as archive:
        assert archive.extractfile("requirements.txt").read() == b"torch>=2.3\nnumpy\naccelerate==0.30\n"  # type: ignore[union-attr]
        assert archive.extractfile("train.py").read() == SCRIPT  # type: ignore[union-attr]
        assert archive.getmember("train.py").mode == 0o644
    assert staged.entry_point_exists("train.py")


def test_a_plain_script_is_staged_alone() -> None:
    staged, _ = stage(b"print('hi')\n", "incoming/proj/fit.py")
    assert (staged.members, staged.dropped) == (("fit.py",), ())
    assert staged.manifest is None or not staged.manifest.requirements


def test_the_same_script_stages_to_the_same_digest() -> None:
    assert stage(SCRIPT, "train.py")[0].digest == stage(SCRIPT, "train.py")[0].digest


def test_an_empty_script_is_refused() -> None:
    assert refused(b"", "train.py").rule == "empty"


# --------------------------------------------------------------------------------------------- streaming, memory


class _Unseekable(io.RawIOBase):
    """A forward-only stream that hands out small reads, like an HTTP body."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._data.read(min(len(buffer), 7000))
        buffer[: len(chunk)] = chunk
        return len(chunk)


@pytest.mark.parametrize("maker", [tar_bytes, zip_bytes], ids=["tar.gz", "zip"])
def test_an_unseekable_source_is_staged_the_same(maker: Callable[[list[Member]], bytes]) -> None:
    data = maker(TREE)
    filename = "code.zip" if maker is zip_bytes else "code.tar.gz"
    out = io.BytesIO()
    staged = stage_archive(_Unseekable(data), out, filename=filename)
    assert staged.digest == stage(data, filename)[0].digest


def test_memory_stays_bounded_for_a_large_archive(tmp_path: Path) -> None:
    archive = tmp_path / "big.tar.gz"
    big_tar_gz(archive, files=12, file_size=4 << 20 | 123)  # about 50 MB in, deflate cannot shrink it
    size = archive.stat().st_size
    assert size > 48 << 20
    tracemalloc.start()
    try:
        with archive.open("rb") as src, (tmp_path / "out.tar.gz").open("wb") as dst:
            staged = stage_archive(src, dst, filename="big.tar.gz")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(staged.members) == 12  # blobs/ stripped as the single top-level directory
    assert peak < 12 << 20, f"peak {peak} bytes for a {size}-byte archive"


# ---------------------------------------------------------------------------------------------------- stage_object


def _s3() -> Any:
    return boto3.client("s3", region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s")


def _get_object_response(data: bytes) -> dict[str, Any]:
    return {
        "Body": StreamingBody(io.BytesIO(data), len(data)),
        "ContentLength": len(data),
        "Metadata": {"sagepush-commit": "0a1b2c", "sagepush-branch": "main", "other": "ignored"},
    }


@pytest.mark.parametrize("exists", [False, True], ids=["uploaded", "reused"])
def test_stage_object_uploads_content_addressed_code_once(exists: bool) -> None:
    data = tar_bytes(TREE)
    digest = stage(data, "code.tar.gz")[0].digest
    key = f"code/proj/{digest}/sourcedir.tar.gz"
    s3 = _s3()
    with Stubber(s3) as stubber:
        stubber.add_response(
            "get_object",
            _get_object_response(data),
            {"Bucket": "ingest", "Key": "incoming/proj/code.tar.gz", "VersionId": "v1"},
        )
        if exists:
            stubber.add_response("head_object", {"ContentLength": 10}, {"Bucket": "artifacts", "Key": key})
        else:
            stubber.add_client_error("head_object", "404", http_status_code=404)
            stubber.add_response("put_object", {}, None)
        staged = stage_object(
            bucket="ingest",
            key="incoming/proj/code.tar.gz",
            version_id="v1",
            dest_bucket="artifacts",
            dest_prefix="code/proj/",
            s3=s3,
        )
        stubber.assert_no_pending_responses()
    assert staged.uri == f"s3://artifacts/{key}"
    assert (staged.digest, staged.reused) == (digest, exists)
    assert staged.metadata == {"sagepush-commit": "0a1b2c", "sagepush-branch": "main"}
    assert staged.manifest is not None and staged.manifest.source == "sagepush.toml"


def test_stage_object_refuses_an_oversized_upload_before_reading_it() -> None:
    s3 = _s3()
    with Stubber(s3) as stubber:
        stubber.add_response("get_object", _get_object_response(tar_bytes(TREE)), None)
        with pytest.raises(StagingError) as caught:
            stage_object(
                bucket="b", key="incoming/p/x.zip", version_id=None, dest_bucket="d", dest_prefix="code",
                limits=Limits(max_total_bytes=10), s3=s3,
            )  # fmt: skip
    assert (caught.value.where, caught.value.rule) == ("x.zip", "limit")
