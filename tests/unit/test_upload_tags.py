"""What StageFunction tags an upload with, and what `push --wait` reads back from the tags."""

from __future__ import annotations

import pytest

from sagepush.jobs import tag_value
from sagepush.starting import REFUSAL_PIECES, UPLOAD_REFUSED_TAG, refusal_of, refusal_tags

REASONS = [
    'sagepush.toml: max_run: \'forever\' is not a duration (e.g. "2h", "90m", 3600)',
    "sagepush.toml: unknown key 'instance_typ' (did you mean 'instance_type'?)",
    "code/train.py:3: looks like an AWS secret access key\nremove it, or list the file in .sagepushignore",
    "données/entraînement.csv: 名前 is not allowed; 🔥 [brackets] {braces} <angles> 100% & more",
]


@pytest.mark.parametrize("reason", REASONS, ids=["quotes", "did-you-mean", "newline", "unicode"])
def test_the_exact_reason_comes_back_from_the_tags(reason: str) -> None:
    tags = {name: tag_value(value) for name, value in refusal_tags(reason).items()}  # as tag_upload writes them

    assert refusal_of(tags) == reason
    assert len(tags) <= 1 + REFUSAL_PIECES and all(len(value) <= 256 for value in tags.values())
    assert all(tag_value(value) == value for value in tags.values()), "every value is a valid tag value as it is"


def test_a_reason_longer_than_the_pieces_hold_is_cut_and_says_so() -> None:
    reason = "é" * 5000

    tags = refusal_tags(reason)
    back = refusal_of(tags)

    assert back is not None and back.endswith("…") and reason.startswith(back[:-1])
    assert len(tags) == 1 + REFUSAL_PIECES and all(len(value) <= 256 for value in tags.values())


def test_tags_from_before_the_exact_reason_still_read_as_their_readable_reason() -> None:
    assert refusal_of({UPLOAD_REFUSED_TAG: "sagepush.toml: max_run: _forever_"}) == "sagepush.toml: max_run: _forever_"
    assert refusal_of({"sagepush-job": "iris-1"}) is None
    # A damaged piece falls back to the readable reason rather than failing.
    assert refusal_of({UPLOAD_REFUSED_TAG: "readable", f"{UPLOAD_REFUSED_TAG}-1": "!!"}) == "readable"
