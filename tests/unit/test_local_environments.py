"""What a local job's environment is asked to hold: read from its training image, said when it differs."""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path

import pytest

from sagepush import images
from sagepush_cli.local import environments
from sagepush_cli.local.environments import Image, Plan

HOST = f"{sys.version_info[0]}.{sys.version_info[1]}"


@pytest.mark.parametrize(
    ("framework", "version", "py_version"),
    [
        ("sklearn", "1.2-1", "py3"),
        ("xgboost", "1.7-1", "py3"),
        ("pytorch", "2.5", "py311"),
        ("tensorflow", "2.13", None),
    ],
)
def test_the_image_the_request_names_is_read_back_as_its_framework_and_version(
    framework: str, version: str, py_version: str | None
) -> None:
    uri = images.training_image_uri(
        framework, version, region="eu-west-1", instance_type="ml.m5.large", py_version=py_version
    )

    image = Image.of(uri)

    assert (image.framework, image.version) == (framework, version)
    assert image.py_version == (py_version if py_version and py_version != "py3" else image.py_version)


@pytest.mark.parametrize(
    "uri",
    [
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-own-image:latest",
        "382416733822.dkr.ecr.us-east-1.amazonaws.com/kmeans:1",
        None,
        "",
    ],
)
def test_an_image_sagepush_has_no_data_on_is_no_framework(uri: str | None) -> None:
    assert Image.of(uri) == Image(None, None, None)


def test_py_version_with_a_minor_names_the_python_and_py3_leaves_it_to_the_image() -> None:
    assert environments._python_of("py310") == "3.10"
    assert environments._python_of("py311") == "3.11"
    assert environments._python_of("py3") is None
    assert environments._python_of(None) is None


def plan(pins: tuple[str, ...], *, python: str = HOST, wanted: str | None = None) -> Plan:
    return Plan(
        image=Image("sklearn", "1.2-1", "py3"),
        python=Path(sys.executable),
        python_version=python,
        wanted_python=wanted,
        pins=pins,
        toolkit="sagemaker-training==5.1.4",
    )


def test_an_environment_as_the_image_pins_it_says_nothing() -> None:
    chosen = plan(("scikit-learn==1.2.1", "pandas==1.5.3"), wanted=HOST)

    assert environments.notice(chosen, {"scikit-learn": "1.2.1", "pandas": "1.5.3", "numpy": "2.0.0"}) == ""


def test_every_difference_from_the_image_is_named_in_one_line() -> None:
    chosen = plan(("scikit-learn==1.2.1", "Pandas==1.5.3", "scipy==1.8.0"), wanted="3.9")

    line = environments.notice(chosen, {"scikit-learn": "1.3.2", "pandas": "1.5.3"})

    assert "\n" not in line
    assert line.startswith("differs from the sklearn 1.2-1 image: ")
    assert f"Python {HOST} (the image has 3.9, not found here)" in line
    assert "scikit-learn 1.3.2 (the image pins 1.2.1)" in line
    assert "scipy missing (the image pins 1.8.0)" in line
    assert "Pandas" not in line


def test_an_image_without_package_data_says_what_its_environment_holds() -> None:
    unknown = Plan(Image(None, None, None), Path(sys.executable), HOST, None, (), "sagemaker-training")

    assert "no framework image data" in environments.notice(unknown, {})
    assert "no package data for the sklearn 1.2-1 image" in environments.notice(plan(()), {})


def test_the_base_environment_is_keyed_by_its_python_and_packages_not_their_order() -> None:
    one = plan(("a==1", "b==2"))

    assert one.key == plan(("b==2", "a==1")).key
    assert one.key != plan(("a==1", "b==3")).key
    assert one.key != plan(("a==1", "b==2"), python="3.9").key


def test_pip_runs_without_this_machine_s_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_FIND_LINKS", "/opt/wheels")
    monkeypatch.setenv("PIP_CONSTRAINT", "/etc/xdg/pip/constraints.txt")
    monkeypatch.setenv("PIP_INDEX_URL", "https://mirror.example/simple")
    monkeypatch.setenv("PIP_CERT", "/etc/ssl/certs/ca-certificates.crt")

    environment = environments.pip_environment()

    assert not {"PIP_FIND_LINKS", "PIP_CONSTRAINT", "PIP_INDEX_URL"} & set(environment)
    assert environment["PIP_CONFIG_FILE"] == os.devnull
    assert environment["PIP_CERT"] == "/etc/ssl/certs/ca-certificates.crt"


def test_this_python_is_found_without_asking_uv() -> None:
    assert environments.find_python(HOST) == Path(sys.executable)


def test_a_python_that_is_nowhere_is_not_found() -> None:
    assert environments.find_python("2.1") is None


def test_the_uv_make_installed_is_found_without_uv_on_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    installed = Path(environments.__file__).resolve().parents[3] / ".local" / "uv" / "bin" / "uv"
    if not installed.is_file():
        pytest.skip("make has not installed uv into .local/uv in this checkout")
    monkeypatch.delenv("UV", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))

    assert environments.uv_binary() == str(installed)


def test_the_image_s_own_library_is_said_missing() -> None:
    chosen = Plan(
        Image("xgboost", "1.7-1", "py3"),
        Path(sys.executable),
        HOST,
        HOST,
        ("xgboost==1.7.4",),
        "sagemaker-training",
        own_libraries=("sagemaker-xgboost-container",),
    )

    line = environments.notice(chosen, {"xgboost": "1.7.4"})

    assert line == (
        "differs from the xgboost 1.7-1 image: sagemaker-xgboost-container missing (the image's own library, on no "
        "package index)"
    )


def test_what_the_image_leaves_unpinned_resolves_as_of_its_date_and_what_it_pins_does_not() -> None:
    chosen = Plan(
        Image("pytorch", "2.0.1", "py310"),
        Path(sys.executable),
        HOST,
        HOST,
        ("torch==2.0.1", "Pillow>=9.5", "torchvision"),
        environments.toolkit_requirement(),
        date="2023-08-21",
    )

    arguments = environments.as_of(chosen)

    assert arguments[:2] == ["--exclude-newer", "2023-08-22T00:00:00Z"]
    pairs = itertools.pairwise(arguments)
    exempt = {value.split("=")[0] for flag, value in pairs if flag == "--exclude-newer-package"}
    assert {"torch", "pillow", "torchvision", "sagemaker-training", "protobuf"} <= exempt
    assert "numpy" not in exempt  # unpinned by the image and unbounded by the toolkit: as of the image's date
    assert environments.as_of(plan(("torch==2.0.1",))) == []  # no date, no limit


def test_an_image_python_older_than_the_toolkit_runs_on_gives_way_to_this_one() -> None:
    uri = images.training_image_uri("pytorch", "1.5", region="eu-west-1", instance_type="ml.m5.large", py_version="py3")

    chosen = environments.plan(uri)

    assert (chosen.wanted_python, chosen.python_version) == ("3.6", HOST)
    assert f"Python {HOST} (the image has 3.6, older than the toolkit runs on)" in environments.notice(chosen, {})
