"""A job whose entry point is not in its staged code is refused before anything is uploaded or started."""

from __future__ import annotations

from typing import TYPE_CHECKING

from typer.testing import CliRunner

from sagepush_cli.main import app

if TYPE_CHECKING:
    from pathlib import Path

MANIFEST = """framework = "sklearn"
framework_version = "1.2-1"
py_version = "py3"
instance_type = "ml.m5.large"
"""


def render(project: Path, manifest: str) -> tuple[int, str]:
    (project / "sagepush.toml").write_text(MANIFEST + manifest)
    result = CliRunner().invoke(app, ["render", str(project), "--project", "iris", "--json"])
    return result.exit_code, " ".join(result.output.split())


def test_a_misspelt_entry_point_is_refused_naming_the_field_and_the_nearest_script(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("print('training')\n")
    code, output = render(tmp_path, 'entry_point = "trian.py"\n')
    assert code == 2
    assert "sagepush.toml: entry_point: 'trian.py' is not in the staged code" in output and "train.py" in output


def test_the_entry_point_is_looked_for_under_source_dir(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text("print('training')\n")
    code, output = render(tmp_path, 'entry_point = "train.py"\nsource_dir = "src"\n')
    assert code == 0, output
    # source_dir's contents are the staged code's root, as the SDK stages them: the program is the entry point
    assert '"sagemaker_program": "\\"train.py\\""' in output
    code, output = render(tmp_path, 'entry_point = "train.py"\n')
    assert code == 2 and "src/train.py" in output
    code, output = render(tmp_path, 'entry_point = "train.py"\nsource_dir = "scripts"\n')
    assert code == 2 and "sagepush.toml: source_dir: 'scripts' is not a directory of the code" in output
