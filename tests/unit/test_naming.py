from __future__ import annotations

import pytest

from sagepush.naming import JOB_NAME_PATTERN, NamingError, UploadIdentity, job_name, project_from_key

DIGEST = "3f5c0f2a9b1d4e6f" * 4


def test_job_name_joins_project_code_digest_and_upload_id() -> None:
    assert job_name("iris", DIGEST, "abcdef0123") == "iris-3f5c0f2a-abcdef"


def test_long_project_is_cut_so_the_name_fits_sagemaker() -> None:
    name = job_name("a" * 40 + "-" + "b" * 40, DIGEST, "abcdef")
    assert len(name) == 63
    assert JOB_NAME_PATTERN.fullmatch(name)
    assert name.endswith("-3f5c0f2a-abcdef")


def test_project_cut_at_a_hyphen_does_not_leave_a_double_hyphen_tail() -> None:
    name = job_name("x" * 46 + "-yyyy", DIGEST, "abcdef")
    assert not name.split("-3f5c0f2a")[0].endswith("-")


@pytest.mark.parametrize(
    ("one", "other", "same"),
    [
        pytest.param(
            UploadIdentity("b", "k", version_id="v1"),
            UploadIdentity("b", "k", version_id="v1"),
            True,
            id="same-version",
        ),
        pytest.param(
            UploadIdentity("b", "k", version_id="v1"),
            UploadIdentity("b", "k", version_id="v2"),
            False,
            id="new-version",
        ),
        pytest.param(
            UploadIdentity("b", "k", version_id="null", etag="e", sequencer="s1"),
            UploadIdentity("b", "k", version_id="null", etag="e", sequencer="s2"),
            False,
            id="unversioned-new-sequencer",
        ),
        pytest.param(
            UploadIdentity("b", "k", etag="e", event_time="t1"),
            UploadIdentity("b", "k", etag="e", event_time="t2"),
            False,
            id="etag-and-time",
        ),
        pytest.param(
            UploadIdentity("b", "k", version_id="v1"), UploadIdentity("b", "k2", version_id="v1"), False, id="other-key"
        ),
    ],
)
def test_upload_id_is_stable_for_one_upload_and_new_for_another(
    one: UploadIdentity, other: UploadIdentity, same: bool
) -> None:
    assert (one.upload_id() == other.upload_id()) is same


@pytest.mark.parametrize(
    ("key", "project"),
    [("incoming/iris/main.tar.gz", "iris"), ("incoming/my-model-2/x/y.zip", "my-model-2")],
)
def test_project_comes_from_the_ingest_key(key: str, project: str) -> None:
    assert project_from_key(key) == project


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("uploads/iris/main.tar.gz", "outside 'incoming/'"),
        ("incoming/iris", "does not name a file"),
        ("incoming/iris/", "does not name a file"),
        ("incoming/Iris/main.tar.gz", "is not a project name"),
        ("incoming/-iris/main.tar.gz", "is not a project name"),
    ],
)
def test_bad_keys_are_refused_naming_the_key(key: str, message: str) -> None:
    with pytest.raises(NamingError, match=message) as caught:
        project_from_key(key)
    assert caught.value.where == "detail.object.key"
