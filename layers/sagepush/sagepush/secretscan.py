"""Secret detection: whether a staged file looks like a credential, by its name or by the first bytes of its content.

Staging calls `by_content` on each regular file's first `SCAN_BYTES` as it spools it, and `by_name` on every member
(reading a head only for the few names that need one). Both return what was found, worded for the refusal ("an AWS
secret access key on line 3"), never the value.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    from collections.abc import Callable

_KiB: Final = 1024
_MiB: Final = 1024 * _KiB
_ENV_TEMPLATES: Final = frozenset({".env.example", ".env.sample", ".env.template", ".env.dist"})
_SSH_KEYS: Final = frozenset({"id_rsa", "id_dsa", "id_ecdsa", "id_ed25519"})
_CREDENTIAL_FILES: Final = frozenset({".netrc", "_netrc", ".pypirc", ".git-credentials", ".pgpass"})
_AWS_KEY = re.compile(rb"(?i:aws_access_key_id|aws_secret_access_key)|(?:AKIA|ASIA)[0-9A-Z]{16}")


def by_name(name: str, head: Callable[[], bytes]) -> str | None:
    """Say why `name` looks like a secret, or return None; `head` gives the first bytes when the name is not enough."""
    base = name.rpartition("/")[2]
    if base == ".env" or (base.startswith(".env.") and base not in _ENV_TEMPLATES):
        return "a dotenv file"
    if base in _SSH_KEYS:
        return "an SSH private key"
    if name == ".aws/credentials" or name.endswith("/.aws/credentials"):
        return "an AWS credentials file"
    if base in _CREDENTIAL_FILES:
        return f"a {base} credentials file"
    if base == "credentials" and _AWS_KEY.search(head()):
        return "a credentials file holding AWS keys"
    if base.endswith((".pem", ".key")) and b"PRIVATE KEY-----" in head():
        return "a private key"
    return None


# What the content scan reads, and how it stays cheap. Every regular file is scanned as it is spooled, whatever
# its name: its first SCAN_BYTES, unless a NUL byte in its first _BINARY_SNIFF bytes marks it as binary (weights,
# images, archives; UTF-16 text too). The bound keeps the cost proportional to the code, not to the data shipped
# with it: source, configuration and notebook files sit far below 1 MiB (the bench tree's largest is 32 KiB), and
# past it a text member is a data set (CSV, JSON lines, vocabularies), whose scan would cost ~2-3 ms per MiB of
# one core for little chance of a key. 1 MiB is also the chunk the readers hand over, so the scan reads the first chunk in place, without a copy.
#
# The rules follow gitleaks' default config (config/gitleaks.toml: aws-access-token, private-key, github-*,
# slack-*, gcp-api-key, stripe-access-token, openai-api-key, huggingface-access-token), with its entropy floors and
# its EXAMPLE allowlist for AWS's documentation keys. Python's `re` finds a pattern that starts with a literal at
# ~1.2 GB/s and one with a leading \b or a class, or a big alternation, 10-20x slower; so the scan is a few
# anchor passes that each start with one literal character followed by a short alternation (each ~1.1 GB/s on
# code, three in all), and everything else (the whole token, word boundaries, terminators, entropy, allowlists) is
# checked in Python around the rare anchor hits.
SCAN_BYTES: Final = _MiB
_BINARY_SNIFF: Final = 8 * _KiB
_WORD: Final = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_BASE64: Final = _WORD - {ord("_")} | frozenset(b"+/=")
# What may follow a token: gitleaks' (?:[\x60'"\s;]|\\[nr]|$), plus the escaped quotes of a string inside JSON,
# which gitleaks misses: a notebook's cell source holds `token = \"...\"`.
_TERMINATORS: Final = frozenset(b"`'\"; \t\r\n\f\v")
_ESCAPED_TERMINATORS: Final = frozenset({b"\\n", b"\\r", b"\\t", b'\\"', b"\\'"})


@dataclass(frozen=True, slots=True)
class _Token:
    """One kind of secret: its whole pattern, looked for from `reach` bytes before an anchor hit, and its checks."""

    kind: str  # how the refusal names it; never the value
    pattern: re.Pattern[bytes]  # group 1, when there is one, is the value the entropy and allowlist look at
    reach: int = 0  # how far before the anchor the token may start
    bounded: bool = False  # gitleaks' leading \b
    after: Literal["any", "word", "terminator", "base64"] = "any"  # what may follow: \b, gitleaks' end, not base64
    entropy: float = 0.0  # gitleaks' Shannon entropy floor, in bits per byte of the value
    allow: bytes | None = None  # a value containing this is documentation, not a secret (gitleaks' EXAMPLE)
    body: bool = False  # a private key needs a key body after its header

    def found_at(self, data: bytes, anchor: int) -> int | None:
        """Return where this token starts around the anchor hit at `anchor`, or None when there is none."""
        start = max(anchor - self.reach, 0)
        match = self.pattern.search(data, start, anchor + _TOKEN_SPAN)
        if match is None or match.start() > anchor:
            return None
        begin, end = match.span()
        value = match.group(match.lastindex or 0)
        if self.bounded and begin > 0 and data[begin - 1] in _WORD:
            return None
        if not _ends_well(data, end, self.after):
            return None
        if self.entropy and _entropy(value) < self.entropy:
            return None
        if self.allow is not None and self.allow in value:
            return None
        if self.body and not _has_key_body(data, end):
            return None
        return begin


_TOKEN_SPAN: Final = 512  # bytes after an anchor hit a token may reach (Slack's longest is about 180)


def _ends_well(data: bytes, end: int, after: str) -> bool:
    if end >= len(data) or after == "any":
        return True
    following = data[end]
    if after == "word":
        return following not in _WORD
    if after == "base64":
        return following not in _BASE64
    return following in _TERMINATORS or data[end : end + 2] in _ESCAPED_TERMINATORS


def _entropy(value: bytes) -> float:
    counts = [value.count(byte) for byte in set(value)]
    return -sum(c / len(value) * math.log2(c / len(value)) for c in counts)


# After a private key's header: PEM header lines (Proc-Type, DEK-Info, Version), then the key's base64 body, whose
# lines may be broken by real newlines, by JSON's escaped ones, or between the quoted pieces of a string or of a
# list of lines (a notebook's cell source). gitleaks asks for 64 characters of body; prose that merely names the
# header (docs, tests, this module) has words, not such lines.
_LINE_BREAK = rb"""(?:\\[nr]|[\s"',])*(?:\\n|\n)(?:\\[nr]|[\s"',])*"""
_KEY_BODY = re.compile(
    rb"(?:" + _LINE_BREAK + rb"|[A-Za-z-]+: [^\r\n\\]*)*"
    rb"([A-Za-z0-9+/=]+(?:" + _LINE_BREAK + rb"[A-Za-z0-9+/=]+)*)"
)
_NOT_BASE64 = re.compile(rb"\\[nr]|[^A-Za-z0-9+/=]")
_KEY_BODY_MIN: Final = 64
_KEY_BODY_WINDOW: Final = 4 * _KiB


def _has_key_body(data: bytes, end: int) -> bool:
    match = _KEY_BODY.match(data, end, end + _KEY_BODY_WINDOW)
    return match is not None and len(_NOT_BASE64.sub(b"", match.group(1))) >= _KEY_BODY_MIN


_AWS_ID: Final = _Token(
    "an AWS access key ID",
    re.compile(rb"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}"),
    bounded=True,
    after="word",
    entropy=3,
    allow=b"EXAMPLE",  # gitleaks: .+EXAMPLE$, as in AWS's documentation key AKIAIOSFODNN7EXAMPLE
)
# An assignment of a 40-character value; quotes may be JSON-escaped (notebooks). A credentials file or an
# `aws iam create-access-key` answer also holds the key ID, which the rule above finds.
_AWS_SECRET_VALUE = rb"""(?:\\?['"])?\]?[ \t]*(?:=>|:=|=|:|,)[ \t]*(?:\\?[`'"])?([A-Za-z0-9/+]{40})"""
_AWS_SECRET_KIND = "an AWS secret access key"
_AWS_SECRET_UPPER: Final = _Token(
    _AWS_SECRET_KIND,
    re.compile(rb"AWS_SECRET_ACCESS_KEY" + _AWS_SECRET_VALUE),
    after="base64",
    entropy=3,
    allow=b"EXAMPLE",  # AWS's documentation secret ends in EXAMPLEKEY
)
_AWS_SECRET_LOWER: Final = _Token(
    _AWS_SECRET_KIND,
    re.compile(rb"_secret_access_key" + _AWS_SECRET_VALUE),
    after="base64",
    entropy=3,
    allow=b"EXAMPLE",
)
_GCP_KEY: Final = _Token("a Google API key", re.compile(rb"AIza[\w-]{35}"), bounded=True, after="terminator", entropy=4)
_PRIVATE_KEY: Final = _Token(
    "a private key",
    re.compile(rb"-----BEGIN[ A-Z0-9_-]{0,100}PRIVATE KEY(?: BLOCK)?-----"),
    body=True,
)
_OPENAI_KEY: Final = _Token(
    "an OpenAI API key",
    re.compile(
        rb"sk-(?:(?:proj|svcacct|admin)-(?:[A-Za-z0-9_-]{74}|[A-Za-z0-9_-]{58})T3BlbkFJ"
        rb"(?:[A-Za-z0-9_-]{74}|[A-Za-z0-9_-]{58})|[a-zA-Z0-9]{20}T3BlbkFJ[a-zA-Z0-9]{20})"
    ),
    reach=len(b"sk"),
    bounded=True,
    after="terminator",
    entropy=3,
)
_GITHUB_KIND = "a GitHub token"
_GITHUB_TOKEN: Final = _Token(_GITHUB_KIND, re.compile(rb"gh[pousr]_[0-9a-zA-Z]{36}"), reach=len(b"ghp"), entropy=3)
_GITHUB_PAT: Final = _Token(_GITHUB_KIND, re.compile(rb"github_pat_\w{82}"), reach=len(b"github_pat"), entropy=3)
_HF_TOKEN: Final = _Token(
    "a Hugging Face token",
    re.compile(rb"hf_[a-zA-Z]{34}"),
    reach=len(b"hf"),
    bounded=True,
    after="terminator",
    entropy=2,
)
_STRIPE_KEY: Final = _Token(
    "a Stripe live key",
    re.compile(rb"[sr]k_live_[a-zA-Z0-9]{10,99}"),
    reach=2,
    bounded=True,
    after="terminator",
    entropy=2,
)
_SLACK_TOKEN: Final = _Token(
    "a Slack token",
    re.compile(
        rb"xox(?:b-[0-9]{10,13}-[0-9]{10,13}[a-zA-Z0-9-]*"  # bot
        rb"|b-[0-9]{8,14}-[a-zA-Z0-9]{18,26}"  # legacy bot
        rb"|[pe](?:-[0-9]{10,13}){3}-[a-zA-Z0-9-]{28,34}"  # user
        rb"|[ar]-(?:[0-9]-)?[0-9a-zA-Z]{8,48}"  # legacy workspace
        rb"|[os]-[0-9]+-[0-9]+-[0-9]+-[a-fA-F0-9]+"  # legacy
        rb"|e\.xox[bp]-[0-9]-[A-Za-z0-9]{163,166}"  # configuration access
        rb"|e-[0-9]-[A-Za-z0-9]{146})"  # configuration refresh
    ),
    reach=len(b"xoxe.xoxb"),
    entropy=2,
)

# Each anchor pattern starts with one literal character; the group that matched says which token to look for.
# Three passes cover every rule: 48 MiB of Python takes ~0.15 s of one core, where one pass per rule took ~0.48 s;
# inside staging, on text still in cache from its hashing, the bench tree's 48 MiB of text costs ~0.06 s.
_ANCHORS: Final[tuple[tuple[re.Pattern[bytes], tuple[_Token, ...]], ...]] = (
    (
        re.compile(rb"A(?:(KIA|SIA|BIA|CCA|3T)|(Iza)|(WS_SECRET_ACCESS_KEY))"),
        (_AWS_ID, _GCP_KEY, _AWS_SECRET_UPPER),
    ),
    (
        re.compile(rb"_(?:(?<=gh[pousr]_)()|(?<=github_pat_)()|(?<=hf_)()|(?<=[sr]k_)(live_)|(secret_access_key))"),
        (_GITHUB_TOKEN, _GITHUB_PAT, _HF_TOKEN, _STRIPE_KEY, _AWS_SECRET_LOWER),
    ),
    (
        re.compile(rb"-(?:(?<=xox[abeoprs]-)()|(----BEGIN)|(?<=sk-)())"),
        (_SLACK_TOKEN, _PRIVATE_KEY, _OPENAI_KEY),
    ),
)


def by_content(data: bytes) -> str | None:
    """Name the first kind of secret found in a file's leading bytes, with its line, or return None."""
    if data.find(b"\0", 0, _BINARY_SNIFF) >= 0:
        return None
    for anchor, tokens in _ANCHORS:
        for hit in anchor.finditer(data):
            token = tokens[(hit.lastindex or 1) - 1]
            start = token.found_at(data, hit.start())
            if start is not None:
                line = data.count(b"\n", 0, start) + 1
                return f"{token.kind} on line {line}"
    return None
