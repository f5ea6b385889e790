"""sagepush stages what the SageMaker Python SDK v2 stages for `entry_point`, `source_dir` and `dependencies`, and
names the same `sagemaker_program`.

The SDK runs in an isolated environment (`tests/reference/code_reference.py`): an SKLearn estimator's `fit()` tars
the code of a project tree as it would upload it. The same tree, with a sagepush.toml holding the same three
arguments, is staged and rendered by sagepush (`sagepush stage`'s and `render`'s code). Compared: every member of
sourcedir.tar.gz (each file's SHA-256, each folder) and `sagemaker_program`. With `source_dir`, sagepush's tar is the
SDK's plus the manifest at the root. Without one, sagepush stages the whole project, as the SDK does for
`source_dir="."` (the project root): the SDK without `source_dir` ships the entry point alone (by its file name) and
the dependencies, every one of them at the same place, with the same bytes, in sagepush's tar.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from typing import TYPE_CHECKING, Any

import pytest

from sagepush.spec import SpecError
from sagepush_cli import project as projects
from tests.reference.sdk import run_sdk_script

if TYPE_CHECKING:
    from pathlib import Path

MANIFEST = 'framework = "sklearn"\nframework_version = "1.2-1"\npy_version = "py3"\ninstance_type = "ml.m5.large"\n'
SOURCE = {
    "src/train.py": "import common, utils\nfrom model import net\n",
    "src/model/__init__.py": "",
    "src/model/net.py": "LAYERS = 3\n",
    "src/model/layers/__init__.py": "from .dense import Dense\n",
    "src/model/layers/dense.py": "class Dense: ...\n",
    "src/requirements.txt": "pandas==2.2.3\n",  # what the toolkit installs: source_dir's, as the SDK ships it
    "requirements.txt": "torch\n",  # the project's own, outside source_dir: not shipped
    "lib/common/__init__.py": "SHARED = 1\n",
    "lib/common/io/__init__.py": "def read(): ...\n",
    "tools/utils.py": "def helper(): ...\n",
    "notebooks/explore.ipynb": "{}\n",
}
ROOT_SCRIPT = {
    "train.py": "import common\nimport helpers\n",
    "helpers.py": "X = 1\n",
    "requirements.txt": "pandas\n",
    "lib/common/__init__.py": "SHARED = 1\n",
    "scripts/train.py": "import common\n",
    "data/readme.md": "not code\n",
}

Case = tuple[dict[str, str], str, str | None, list[str] | None]
"""A project's files, and its entry_point, source_dir and dependencies."""

CASES: dict[str, Case] = {
    "source-dir-nested-package": (SOURCE, "train.py", "src", None),
    "source-dir-dependencies-folder-and-file": (SOURCE, "train.py", "src", ["lib/common", "tools/utils.py"]),
    "source-dir-nested-entry-point": (SOURCE, "model/net.py", "src", ["lib/common"]),
    "source-dir-dependency-inside-it": (SOURCE, "train.py", "src", ["src/model", "tools/utils.py"]),
    "source-dir-is-the-root": (ROOT_SCRIPT, "train.py", ".", ["lib/common"]),
    "no-source-dir-dependencies": (ROOT_SCRIPT, "train.py", None, ["lib/common"]),
    "no-source-dir-no-dependencies": (ROOT_SCRIPT, "train.py", None, None),
}
# Without source_dir, sagepush's tar must equal the SDK's for source_dir="." (the project root).
AS_ROOT = {name: f"{name}@root" for name, case in CASES.items() if case[2] is None}
NESTED: Case = (ROOT_SCRIPT, "scripts/train.py", None, ["lib/common"])
TYPO: Case = ({"src/train.py": "print(1)\n"}, "trian.py", "src", None)


def manifest_of(entry_point: str, source_dir: str | None, dependencies: list[str] | None) -> str:
    text = MANIFEST + f"entry_point = {json.dumps(entry_point)}\n"
    if source_dir is not None:
        text += f"source_dir = {json.dumps(source_dir)}\n"
    if dependencies is not None:
        text += f"dependencies = {json.dumps(dependencies)}\n"
    return text


def files_of(case: Case) -> dict[str, str]:
    files, entry_point, source_dir, dependencies = case
    return {**files, "sagepush.toml": manifest_of(entry_point, source_dir, dependencies)}


def sdk_case(name: str, case: Case, *, source_dir: str | None = None) -> dict[str, Any]:
    _, entry_point, own_source_dir, dependencies = case
    return {
        "id": name,
        "files": files_of(case),
        "entry_point": entry_point,
        "source_dir": source_dir or own_source_dir,
        "dependencies": dependencies,
    }


@pytest.fixture(scope="module")
def sdk() -> dict[str, Any]:
    """The SDK's staged code and program for every case, from one run of the reference."""
    payload = [sdk_case(name, case) for name, case in CASES.items()]
    payload += [sdk_case(AS_ROOT[name], CASES[name], source_dir=".") for name in AS_ROOT]
    payload += [sdk_case("nested", NESTED), sdk_case("typo", TYPO)]
    results: dict[str, Any] = run_sdk_script("code_reference.py", payload)
    return results


def sagepush(case: Case, project: Path) -> tuple[dict[str, str], str]:
    """The members of the sourcedir.tar.gz sagepush stages for `case` in folder `project` (listed as the reference
    lists the SDK's) and the sagemaker_program it renders."""
    for path, text in files_of(case).items():
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        (project / path).write_text(text)
    workdir = project.with_name(f"{project.name}-staged")
    workdir.mkdir()
    _, output = projects.stage_path(project, workdir)
    members: dict[str, str] = {}
    with tarfile.open(fileobj=io.BytesIO(output.read_bytes())) as archive:
        for info in archive.getmembers():
            if info.isdir():
                members[info.name.rstrip("/") + "/"] = "dir"
            else:
                extracted = archive.extractfile(info)
                assert extracted is not None
                members[info.name] = hashlib.sha256(extracted.read()).hexdigest()
    [rendered] = projects.render_jobs(project, region="us-east-1", project="parity")
    return members, json.loads(rendered["HyperParameters"]["sagemaker_program"])


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize("name", [name for name, case in CASES.items() if case[2] is not None])
def test_with_source_dir_the_staged_code_is_the_sdks_plus_the_manifest(
    name: str, sdk: dict[str, Any], tmp_path: Path
) -> None:
    reference = sdk[name]
    assert "error" not in reference, reference
    members, program = sagepush(CASES[name], tmp_path / "project")

    expected = dict(reference["members"])
    expected.setdefault("sagepush.toml", digest(files_of(CASES[name])["sagepush.toml"]))
    assert members == expected
    assert program == reference["program"]
    if CASES[name][0] is SOURCE:  # the toolkit installs source_dir's requirements.txt, not the project's
        assert members["requirements.txt"] == digest(SOURCE["src/requirements.txt"])


@pytest.mark.parametrize("name", list(AS_ROOT))
def test_without_source_dir_the_whole_project_is_staged_and_holds_everything_the_sdk_ships(
    name: str, sdk: dict[str, Any], tmp_path: Path
) -> None:
    alone, as_root = sdk[name], sdk[AS_ROOT[name]]
    assert "error" not in alone and "error" not in as_root, (alone, as_root)
    members, program = sagepush(CASES[name], tmp_path / "project")

    assert members == as_root["members"]  # the project root as source_dir, exactly
    assert program == as_root["program"] == alone["program"]
    assert alone["members"].items() <= members.items()  # the entry point and dependencies, where the SDK puts them


def test_a_nested_entry_point_without_source_dir_runs_from_its_folder_where_the_sdk_flattens_it(
    sdk: dict[str, Any], tmp_path: Path
) -> None:
    # The one difference, on purpose: without source_dir the SDK ships `scripts/train.py` alone as `train.py`;
    # sagepush ships the project and runs `scripts/train.py` (the same file), so the script's siblings stay importable.
    reference = sdk["nested"]
    members, program = sagepush(NESTED, tmp_path / "project")

    assert (reference["program"], program) == ("train.py", "scripts/train.py")
    assert reference["members"]["train.py"] == members["scripts/train.py"]
    shipped = {name: value for name, value in reference["members"].items() if name != "train.py"}
    assert shipped.items() <= members.items()


def test_an_entry_point_missing_from_source_dir_is_refused_by_both(sdk: dict[str, Any], tmp_path: Path) -> None:
    assert 'No file named "trian.py" was found in directory "src"' in sdk["typo"]["error"]
    with pytest.raises(SpecError, match=r"sagepush\.toml: entry_point: 'trian\.py' is not in the staged code"):
        sagepush(TYPO, tmp_path / "project")
