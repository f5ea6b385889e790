"""Secrets found by content: each gitleaks-style rule refuses the member, names it and the kind, never the value.

The secrets below are built when the tests run, from a seeded generator: this file holds no token a scanner (ours,
gitleaks, GitHub's push protection) would stop, so the repository itself stays clean.
"""

from __future__ import annotations

import io
import json
import random
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from sagepush.staging import StagedCode, StagingError, stage_archive
from tests.unit.archives import file, tar_bytes, zip_bytes

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.unit.archives import Member

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MANIFEST = b'[tool.sagepush]\nentry_point = "train.py"\nframework = "pytorch"\n'
TREE = [file("train.py", b"print('training')\n"), file("sagepush.toml", MANIFEST)]

_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ALNUM = _UPPER + _UPPER.lower() + "0123456789"
_DIGITS = "0123456789"


def fake(*parts: str | tuple[str, int], seed: int = 18) -> str:
    """Join literal parts and (alphabet, length) runs drawn from a seeded generator: a secret-shaped string."""
    rng = random.Random(seed)
    return "".join(p if isinstance(p, str) else "".join(rng.choice(p[0]) for _ in range(p[1])) for p in parts)


BEGIN, END = "-----" + "BEGIN", "-----" + "END"


def private_key() -> str:
    body = "\n".join(fake((_ALNUM + "+/", 64), seed=i) for i in range(6))
    return f"{BEGIN} RSA PRIVATE KEY-----\n{body}\n{END} RSA PRIVATE KEY-----"


# kind named in the refusal -> (the key it is assigned to, the secret)
KINDS: dict[str, tuple[str, str]] = {
    "an AWS access key ID": ("aws_access_key_id", fake("AK", "IA", (_UPPER + "234567", 16))),
    "an AWS access key ID (session)": ("key_id", fake("AS", "IA", (_UPPER + "234567", 16))),
    "an AWS secret access key": ("aws_secret_access_key", fake((_ALNUM + "+/", 40))),
    "an AWS secret access key (upper case)": ("AWS_SECRET_ACCESS_KEY", fake((_ALNUM + "+/", 40))),
    "a private key": ("key", private_key()),
    "a GitHub token (ghp)": ("token", fake("gh", "p_", (_ALNUM, 36))),
    "a GitHub token (gho)": ("token", fake("gh", "o_", (_ALNUM, 36))),
    "a GitHub token (ghu)": ("token", fake("gh", "u_", (_ALNUM, 36))),
    "a GitHub token (ghs)": ("token", fake("gh", "s_", (_ALNUM, 36))),
    "a GitHub token (ghr)": ("token", fake("gh", "r_", (_ALNUM, 36))),
    "a GitHub token (fine-grained)": ("token", fake("github", "_pat_", (_ALNUM + "_", 82))),
    "a Slack token (bot)": ("slack", fake("xo", "xb-", (_DIGITS, 12), "-", (_DIGITS, 13), (_ALNUM, 24))),
    "a Slack token (user)": (
        "slack",
        fake("xo", "xp-", (_DIGITS, 12), "-", (_DIGITS, 12), "-", (_DIGITS, 12), "-", (_ALNUM, 32)),
    ),
    "a Google API key": ("api_key", fake("AI", "za", (_ALNUM + "-_", 35))),
    "a Stripe live key": ("stripe", fake("sk", "_live_", (_ALNUM, 24))),
    "a Stripe live key (restricted)": ("stripe", fake("rk", "_live_", (_ALNUM, 24))),
    "an OpenAI API key": ("openai", fake("sk-", (_ALNUM, 20), "T3Blbk", "FJ", (_ALNUM, 20))),
    "an OpenAI API key (project)": (
        "openai",
        fake("sk-proj-", (_ALNUM + "_-", 74), "T3Blbk", "FJ", (_ALNUM + "_-", 74)),
    ),
    "a Hugging Face token": ("hf_token", fake("h", "f_", (_UPPER + _UPPER.lower(), 34))),
}


def as_python(key: str, value: str) -> str:
    quote = '"""' if "\n" in value else '"'
    return f"import os\n\n{key} = {quote}{value}{quote}\n"


def as_ini(key: str, value: str) -> str:
    return f"[default]\nregion = us-east-1\n{key} = {value.replace(chr(10), chr(10) + '    ')}\n"


def as_yaml(key: str, value: str) -> str:
    if "\n" in value:
        return f"region: us-east-1\n{key}: |\n  {value.replace(chr(10), chr(10) + '  ')}\n"
    return f"region: us-east-1\n{key}: '{value}'\n"


def as_notebook(key: str, value: str) -> str:
    cell = {"cell_type": "code", "metadata": {}, "outputs": [], "source": as_python(key, value).splitlines(True)}
    return json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}, indent=1)


FORMATS: dict[str, tuple[str, Callable[[str, str], str]]] = {
    "py": ("app/settings.py", as_python),
    "ini": ("conf/config.ini", as_ini),
    "yaml": ("conf/config.yaml", as_yaml),
    "ipynb": ("notebooks/explore.ipynb", as_notebook),
}
CASES = [(kind, fmt) for kind in KINDS for fmt in FORMATS]


def stage(data: bytes, filename: str) -> StagedCode:
    return stage_archive(io.BytesIO(data), io.BytesIO(), filename=filename)


def refused(data: bytes, filename: str) -> StagingError:
    out = io.BytesIO()
    with pytest.raises(StagingError) as caught:
        stage_archive(io.BytesIO(data), out, filename=filename)
    assert out.getvalue() == b"", "nothing may be written before every rule has passed"
    return caught.value


def with_member(member: Member, *, zipped: bool = False) -> tuple[bytes, str]:
    if zipped:
        return zip_bytes([*TREE, member]), "code.zip"
    return tar_bytes([*TREE, member]), "code.tar.gz"


def assert_refused_without_the_value(error: StagingError, where: str, kind: str, value: str) -> None:
    assert (error.rule, error.where) == ("secret", where)
    assert kind.partition(" (")[0] in error.message
    assert value not in error.message
    for line in value.splitlines():
        assert line[4:20] not in error.message  # no recognisable piece of it either


# ------------------------------------------------------------------------------------------------------ each rule


@pytest.mark.parametrize(("kind", "fmt"), CASES, ids=[f"{k}-{f}" for k, f in CASES])
def test_a_secret_in_a_file_is_refused_naming_the_member_and_the_kind_never_the_value(kind: str, fmt: str) -> None:
    key, value = KINDS[kind]
    path, render = FORMATS[fmt]
    error = refused(*with_member(file(path, render(key, value).encode())))
    assert_refused_without_the_value(error, path, kind, value)
    assert "allow_secrets in sagepush.toml" in error.message


@pytest.mark.parametrize("kind", ["an AWS access key ID", "a private key", "a GitHub token (ghp)"])
def test_a_secret_in_a_zip_member_is_refused(kind: str) -> None:
    key, value = KINDS[kind]
    error = refused(*with_member(file("settings.py", as_python(key, value).encode()), zipped=True))
    assert_refused_without_the_value(error, "settings.py", kind, value)


def test_the_refusal_gives_the_line_and_names_the_path_under_a_stripped_prefix() -> None:
    _, value = KINDS["an AWS secret access key"]
    text = "# settings\n\nREGION = 'eu-west-1'\naws_secret_access_key = '" + value + "'\n"
    members = [file(f"proj/{m.name}", m.data) for m in TREE] + [file("proj/cfg/settings.py", text.encode())]
    error = refused(tar_bytes(members), "code.tar.gz")
    assert error.where == "cfg/settings.py"
    assert "(an AWS secret access key on line 4)" in error.message


# ------------------------------------------------------------------------------------------------ what is allowed


def test_the_aws_documentation_keys_are_not_secrets() -> None:
    # AWS's example credentials (docs.aws.amazon.com); gitleaks allows them with its EXAMPLE rule
    text = b"[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"
    staged = stage(*with_member(file("config.ini", text)))
    assert "config.ini" in staged.files


LOOK_ALIKES = {
    "placeholder-github-token": "token = 'ghp_" + "x" * 36 + "'\n",
    "short-aws-secret": 'aws_secret_access_key = "testing"\n',
    "aws-secret-from-the-environment": "aws_secret_access_key = os.environ['AWS_SECRET_ACCESS_KEY']\n",
    "stripe-test-key": "stripe = '" + fake("sk", "_test_", (_ALNUM, 24)) + "'\n",
    "key-id-inside-a-longer-word": "x = 'Z" + KINDS["an AWS access key ID"][1] + "'\n",
    "private-key-header-named-in-code": f'if b"{BEGIN} OPENSSH PRIVATE KEY-----\\n" in data:\n    refuse()\n',
    "private-key-header-in-prose": f"A {BEGIN} PRIVATE KEY----- line starts the key and here are many more words\n",
    "private-key-placeholder": f"{BEGIN} RSA PRIVATE KEY-----\n...\n{END} RSA PRIVATE KEY-----\n",
    "certificate": f"{BEGIN} CERTIFICATE-----\n" + fake((_ALNUM, 64)) + f"\n{END} CERTIFICATE-----\n",
}


@pytest.mark.parametrize("text", LOOK_ALIKES.values(), ids=LOOK_ALIKES.keys())
def test_look_alikes_are_not_refused(text: str) -> None:
    assert "notes.py" in stage(*with_member(file("notes.py", text.encode()))).files


def test_a_file_named_in_allow_secrets_is_kept() -> None:
    _, value = KINDS["a private key"]
    manifest = MANIFEST + b'allow_secrets = ["tests/fixtures/key.py"]\n'
    members = [
        TREE[0],
        file("sagepush.toml", manifest),
        file("tests/fixtures/key.py", as_python("KEY", value).encode()),
    ]
    assert "tests/fixtures/key.py" in stage(tar_bytes(members), "code.tar.gz").files


def test_a_file_holding_a_secret_dropped_by_sagepushignore_is_not_refused() -> None:
    _, value = KINDS["a Hugging Face token"]
    members = [*TREE, file("local.py", as_python("HF", value).encode()), file(".sagepushignore", b"local.py\n")]
    assert "local.py" in stage(tar_bytes(members), "code.tar.gz").dropped


def test_a_binary_member_holding_the_bytes_is_not_refused() -> None:
    # a NUL in the first 8 KiB marks a binary (weights, images): its bytes are not read as text
    _, value = KINDS["an AWS access key ID"]
    blob = bytes(range(256)) * 4 + f" {value} ".encode() + private_key().encode()
    assert "model/weights.bin" in stage(*with_member(file("model/weights.bin", blob))).files


def test_only_the_first_mebibyte_of_a_text_file_is_scanned() -> None:
    # the documented bound: past 1 MiB a text member is data, not code, and is not read for secrets
    _, value = KINDS["an AWS access key ID"]
    padding = b"id,label\n" + b"0,cat\n" * ((1 << 20) // 6)
    assert "data.csv" in stage(*with_member(file("data.csv", padding + f"{value}\n".encode()))).files
    error = refused(*with_member(file("data.csv", f"{value}\n".encode() + padding)))
    assert error.where == "data.csv"


# --------------------------------------------------------------------------------------------------- single script


class Trickle:
    """A stream that hands out a few bytes per read, as a slow network body may."""

    def __init__(self, data: bytes, step: int = 7) -> None:
        self._data, self._step, self._at = data, step, 0

    def read(self, size: int = -1, /) -> bytes:
        piece = self._data[self._at : self._at + min(self._step, size if size >= 0 else self._step)]
        self._at += len(piece)
        return piece


def test_a_single_script_holding_a_key_is_refused() -> None:
    _, value = KINDS["a GitHub token (ghp)"]
    script = f"import os\nTOKEN = '{value}'\nprint('training')\n".encode()
    with pytest.raises(StagingError) as caught:
        stage_archive(Trickle(script), io.BytesIO(), filename="train.py")
    assert_refused_without_the_value(caught.value, "train.py", "a GitHub token", value)
    assert "script block" in caught.value.message and ".sagepushignore" not in caught.value.message


def test_a_single_script_can_allow_itself_in_its_script_block() -> None:
    _, value = KINDS["a GitHub token (ghp)"]
    script = (f"# /// script\n# [tool.sagepush]\n# allow_secrets = [\"train.py\"]\n# ///\nTOKEN = '{value}'\n").encode()
    assert stage(script, "train.py").files == {"train.py"}


# ------------------------------------------------------------------------------------------------ no false alarms


def _tar_directory(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted(directory.rglob("*")):
            archive.add(path, arcname=str(path.relative_to(directory)), recursive=False)
    return buffer.getvalue()


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir()))
def test_the_example_projects_stage_without_a_secret_refusal(example: str) -> None:
    directory = EXAMPLES / example
    scripts = list(directory.glob("*.py"))
    if example == "single-script":
        assert stage(scripts[0].read_bytes(), scripts[0].name).files
    else:
        assert stage(_tar_directory(directory), f"{example}.tar.gz").files
