"""Generate `sagepush/data/images.json`, the training- and inference-image table, from the SageMaker Python SDK's
own config.

Run it from the repository root (`make images`):

    uv run python scripts/generate_images.py [--sdk sagemaker==3.27.0] [--legacy-sdk 'sagemaker<3'] [--recorded]

(`--sdk 'sagemaker==3.27.0 sagemaker-core==2.27.0 botocore==1.44.18'` pins every package the data records;
`--recorded` pins both SDKs to the releases the current images.json records, to regenerate it after a change to this
script without taking a new SDK release.)

It runs itself (`--dump`) in two isolated uv environments: the newest SDK release on PyPI (v3, whose image-URI config
lives in `sagemaker-core` as `sagemaker/core/image_uri_config/*.json`) and the newest v2 release, which froze with
the estimators. Each dump holds the training scopes of pytorch, tensorflow, sklearn, xgboost and huggingface, and of
`pytorch-neuron` and `pytorch-smp` (the SDK switches to them for Trainium instances and for the model-parallel
library), the built-in algorithms' images (kmeans, linear-learner, ...), the latest version of each as
`retrieve(..., image_scope="training")` picks it, and the few tables the SDK keeps in code. Under `inference`, it
holds what `retrieve(..., image_scope="inference")` reads: each framework's inference scope, `huggingface-neuron`'s
(the SDK's HuggingFace image on Inferentia), the `inference_graviton` scope of the frameworks the SDK serves on
Graviton, the latest inference version of each framework, and the Graviton tables the SDK keeps in code (pytorch on
Inferentia takes `pytorch-neuron`'s training config, the only scope it has). The table is v3's; whatever v2 knows
that v3 dropped (a version, an alias, a base framework, a region, a Python version) is kept, and listed under `kept`
(`inference.kept` for the inference part); where both know a value and it differs, v3 wins. ECR hostnames come from
the botocore the v3 SDK installs, for every region either config names.

Configs keep the SDK's key order, which its error messages list options in; identical region-to-account maps are
stored once and referred to by index. The output is deterministic for given SDK releases: commit it, and re-run this
script when a new SDK release ships framework versions.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.metadata
import inspect
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).resolve().parent.parent / "layers" / "sagepush" / "sagepush" / "data" / "images.json"
PUBLIC_FRAMEWORKS = ("pytorch", "tensorflow", "sklearn", "xgboost", "huggingface")
# The SDK resolves pytorch on trn*/inf* instances through `pytorch-neuron`, and any framework whose distribution
# enables smdistributed model parallelism with torch_distributed through `pytorch-smp`.
VARIANT_FRAMEWORKS = ("pytorch-neuron", "pytorch-smp")
# The SDK resolves huggingface's inference image on inf*/trn* instances through `huggingface-neuron`.
INFERENCE_VARIANT_FRAMEWORKS = ("huggingface-neuron",)
# SageMaker's built-in training algorithms that have their own image (XGBoost's is the framework image above).
ALGORITHMS = (
    "blazingtext",
    "factorization-machines",
    "forecasting-deepar",
    "image-classification",
    "ipinsights",
    "kmeans",
    "knn",
    "lda",
    "linear-learner",
    "ntm",
    "object-detection",
    "object2vec",
    "pca",
    "randomcutforest",
    "semantic-segmentation",
    "seq2seq",
)
FORMAT = 2
SDK = "sagemaker"
LEGACY_SDK = "sagemaker<3"
SDK_PYTHON = "3.11"


# ---------------------------------------------------------------- inside an SDK environment (--dump)


def _sdk_modules() -> tuple[Any, Any, Any]:
    """Return the SDK's image_uris, fw_utils and utils modules: v3 keeps them in sagemaker-core, v2 at the top."""
    try:
        names = ("sagemaker.core.image_uris", "sagemaker.core.fw_utils", "sagemaker.core.common_utils")
        return tuple(importlib.import_module(name) for name in names)  # type: ignore[return-value]
    except ImportError:
        names = ("sagemaker.image_uris", "sagemaker.fw_utils", "sagemaker.utils")
        return tuple(importlib.import_module(name) for name in names)  # type: ignore[return-value]


def _literal_assigned(function: Any, name: str) -> Any:
    """Return the literal a function of the SDK assigns to local `name`, so tables kept in its code stay in sync."""
    tree = ast.parse(inspect.getsource(function).lstrip())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    sys.exit(f"{function.__qualname__} no longer assigns {name}: review the SDK change before regenerating")


def _regions(node: Any, found: list[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "registries":
                found.extend(r for r in value if r not in found)
            else:
                _regions(value, found)


def _hostnames(utils: Any, regions: list[str]) -> dict[str, str]:
    """Return the DNS suffix of each region's ECR endpoint, as the SDK resolves it through botocore."""
    resolver = utils._botocore_resolver()
    suffixes: dict[str, str] = {}
    for region in sorted(regions):
        endpoint = resolver.construct_endpoint("ecr", region)
        if region == "il-central-1" and not endpoint:  # the SDK's own fallback
            endpoint = {"hostname": f"ecr.{region}.amazonaws.com"}
        if not endpoint:
            sys.exit(f"botocore resolves no ECR endpoint for {region}")
        prefix = f"ecr.{region}."
        hostname = endpoint["hostname"]
        if not hostname.startswith(prefix):
            sys.exit(f"ECR hostname {hostname} for {region} is not ecr.<region>.<suffix>")
        suffixes[region] = hostname[len(prefix) :]
    return suffixes


def _dump_inference(image_uris: Any, fw_utils: Any, regions: list[str]) -> dict[str, Any]:
    """Return the configs `retrieve(..., image_scope="inference")` reads for the public frameworks, as it selects
    them (a config with a single scope answers for any scope), and the latest inference version of each."""
    if set(image_uris.config_for_framework("pytorch-neuron")) != {"training"}:
        sys.exit("pytorch-neuron has more than a training scope now: review before regenerating")
    configs: dict[str, Any] = {}
    for framework in PUBLIC_FRAMEWORKS + INFERENCE_VARIANT_FRAMEWORKS:
        configs[framework] = image_uris._config_for_framework_and_scope(framework, "inference")
        _regions(configs[framework], regions)
    graviton_frameworks = sorted(fw_utils.GRAVITON_ALLOWED_FRAMEWORKS)
    graviton: dict[str, Any] = {}
    for framework in graviton_frameworks:
        graviton[framework] = image_uris._config_for_framework_and_scope(framework, "inference_graviton")
        _regions(graviton[framework], regions)
    return {
        "latest": {
            framework: image_uris._fetch_latest_version_from_config(
                image_uris.config_for_framework(framework), "inference"
            )
            for framework in PUBLIC_FRAMEWORKS
        },
        "graviton_frameworks": graviton_frameworks,
        "arm64_tags": _literal_assigned(image_uris._get_image_tag, "version_to_arm64_tag_mapping"),
        "configs": configs,
        "graviton": graviton,
    }


def dump(extra_regions: list[str]) -> dict[str, Any]:
    """Return what this environment's SDK knows: its training configs, latest versions, code tables, hostnames."""
    import botocore

    image_uris, fw_utils, utils = _sdk_modules()
    configs: dict[str, Any] = {}
    latest: dict[str, str | None] = {}
    regions: list[str] = []
    for framework in PUBLIC_FRAMEWORKS + VARIANT_FRAMEWORKS:
        full = image_uris.config_for_framework(framework)
        configs[framework] = full["training"]
        _regions(full["training"], regions)
        if framework != "pytorch-neuron":  # an empty version is resolved against the requested framework only
            latest[framework] = image_uris._fetch_latest_version_from_config(full, "training")
    algorithms: dict[str, Any] = {}
    for algorithm in ALGORITHMS:
        full = image_uris.config_for_framework(algorithm)
        if "training" not in full.get("scope", []):
            sys.exit(f"{algorithm} is no longer a training algorithm in the SDK: review before regenerating")
        algorithms[algorithm] = {"versions": full["versions"]}
        _regions(full["versions"], regions)
    inference = _dump_inference(image_uris, fw_utils, regions)
    smp = inspect.getsource(image_uris.get_training_image_uri)
    if '"p5" in instance_type' not in smp:
        sys.exit("get_training_image_uri changed how it picks the smp container version: review before regenerating")
    packages = {}
    for package in ("sagemaker", "sagemaker-core"):
        try:
            packages[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return {
        "packages": packages,
        "botocore": botocore.__version__,
        "configs": configs,
        "algorithms": algorithms,
        "latest": latest,
        "inference": inference,
        "hostnames": _hostnames(utils, regions + [r for r in extra_regions if r not in regions]),
        "graviton_families": list(fw_utils.GRAVITON_ALLOWED_TARGET_INSTANCE_FAMILY),
        "auto_container_versions": _literal_assigned(image_uris._get_image_tag, "container_versions"),
        "smp_container_versions": {
            "cu124": list(_literal_assigned(image_uris.get_training_image_uri, "supported_smp_pt_versions_cu124")),
            "cu121": list(_literal_assigned(image_uris.get_training_image_uri, "supported_smp_pt_versions_cu121")),
        },
    }


# ---------------------------------------------------------------- in the project (the default)


def merge(current: Any, legacy: Any, path: str, kept: list[str]) -> Any:
    """Return `current` with what only `legacy` knows added, appending the path of each addition to `kept`.

    Maps keep current's order, a key only legacy has goes right after the key legacy has before it; lists keep
    current's items and gain legacy's others; where both hold a value that is not a map or a list, current wins.
    """
    if isinstance(current, dict) and isinstance(legacy, dict):
        merged = {key: merge(value, legacy.get(key), f"{path}/{key}", kept) for key, value in current.items()}
        order = list(current)
        previous: str | None = None
        for key, value in legacy.items():
            if key not in merged:
                merged[key] = value
                order.insert(order.index(previous) + 1 if previous is not None else 0, key)
                kept.append(f"{path}/{key}")
            previous = key
        return {key: merged[key] for key in order}
    if isinstance(current, list) and isinstance(legacy, list):
        added = [item for item in legacy if item not in current]
        kept.extend(f"{path}/{item}" for item in added)
        return [*current, *added]
    return current


class _Registries:
    """Identical region-to-account maps, stored once in first-seen order."""

    def __init__(self) -> None:
        self.maps: list[dict[str, str]] = []
        self._index: dict[tuple[tuple[str, str], ...], int] = {}

    def ref(self, registries: dict[str, str]) -> int:
        key = tuple(registries.items())
        if key not in self._index:
            self._index[key] = len(self.maps)
            self.maps.append(dict(registries))
        return self._index[key]


def _compact(node: Any, registries: _Registries) -> Any:
    if isinstance(node, dict):
        return {k: registries.ref(v) if k == "registries" else _compact(v, registries) for k, v in node.items()}
    return node


def build(current: dict[str, Any], legacy: dict[str, Any]) -> dict[str, Any]:
    """Return the table `sagepush.images` reads, from the dumps of the newest SDK and of the newest v2."""
    registries = _Registries()
    kept: list[str] = []
    configs = {
        framework: _compact(merge(config, legacy["configs"].get(framework), framework, kept), registries)
        for framework, config in current["configs"].items()
    }
    algorithms = {
        name: _compact(merge(config, legacy.get("algorithms", {}).get(name), f"algorithms/{name}", kept), registries)
        for name, config in current["algorithms"].items()
    }
    inference = _build_inference(current["inference"], legacy.get("inference", {}), registries)
    regions: list[str] = []
    for registry in registries.maps:
        regions.extend(r for r in registry if r not in regions)
    missing = [region for region in regions if region not in current["hostnames"]]
    if missing:
        sys.exit(f"no ECR hostname for {', '.join(missing)}")
    hosts: dict[str, list[str]] = {}
    for region in sorted(regions):
        hosts.setdefault(current["hostnames"][region], []).append(region)
    return {
        "format": FORMAT,
        "source": {
            **current["packages"],
            "botocore": current["botocore"],
            "legacy": legacy["packages"],
        },
        "kept": kept,
        "hosts": dict(sorted(hosts.items())),
        "latest": current["latest"],
        "graviton_families": current["graviton_families"],
        "auto_container_versions": current["auto_container_versions"],
        "smp_container_versions": current["smp_container_versions"],
        "configs": configs,
        "algorithms": algorithms,
        "inference": inference,
        "registries": registries.maps,
    }


def _build_inference(current: dict[str, Any], legacy: dict[str, Any], registries: _Registries) -> dict[str, Any]:
    """Return the inference part of the table: v3's configs with what only v2 knows kept (listed under its `kept`,
    as `configs/<framework>/...` and `graviton/<framework>/...`), sharing the training part's registries."""
    kept: list[str] = []
    scoped: dict[str, dict[str, Any]] = {}
    for scope in ("configs", "graviton"):
        scoped[scope] = {
            framework: _compact(
                merge(config, legacy.get(scope, {}).get(framework), f"{scope}/{framework}", kept), registries
            )
            for framework, config in current[scope].items()
        }
    return {
        "kept": kept,
        "latest": current["latest"],
        "graviton_frameworks": current["graviton_frameworks"],
        "arm64_tags": current["arm64_tags"],
        **scoped,
    }


def recorded_requirements(table: dict[str, Any]) -> tuple[str, str]:
    """Return the `--sdk` and `--legacy-sdk` requirements that pin the releases `table` was generated from."""
    source = table["source"]
    current = " ".join(
        f"{name}=={source[name]}" for name in ("sagemaker", "sagemaker-core", "botocore") if name in source
    )
    legacy = " ".join(f"{name}=={version}" for name, version in source["legacy"].items())
    return current, legacy


def _uv() -> str:
    found = os.environ.get("UV") or shutil.which("uv")
    if not found:
        sys.exit("uv is needed to install the SageMaker SDKs: run `make images`, or put uv on PATH")
    return found


def _dump_under(requirement: str, extra_regions: list[str]) -> dict[str, Any]:
    """Run this script's `--dump` with `requirement` installed in a throwaway environment; return its document."""
    env = {**os.environ, "SAGEMAKER_SUPPRESS_V2_WARNING": "1", "PYTHONWARNINGS": "ignore"}
    env.pop("VIRTUAL_ENV", None)
    command = [_uv(), "run", "--isolated", "--no-project", "--python", SDK_PYTHON]
    # Ask the index again, so an unpinned requirement means the newest release, not the newest one cached.
    command += ["--refresh-package", "sagemaker", "--refresh-package", "sagemaker-core"]
    for one in requirement.split():
        command += ["--with", one]
    command += ["python", str(Path(__file__).resolve()), "--dump"]
    print(f"reading the image config of {requirement}", file=sys.stderr)
    done = subprocess.run(
        command, input=json.dumps(extra_regions), capture_output=True, text=True, env=env, check=False
    )
    if done.returncode != 0:
        sys.exit(f"the dump under {requirement} failed:\n{done.stderr[-4000:]}")
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sdk", default=SDK, help=f"the SDK whose config wins (default: {SDK}, the newest)")
    parser.add_argument(
        "--legacy-sdk", default=LEGACY_SDK, help=f"the SDK whose extra knowledge is kept ({LEGACY_SDK})"
    )
    parser.add_argument(
        "--recorded", action="store_true", help="pin both SDKs to the releases the current images.json records"
    )
    parser.add_argument("--dump", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.dump:
        # The SDK may log to stdout while importing: keep stdout for the document alone.
        answer, sys.stdout = sys.stdout, sys.stderr
        json.dump(dump(json.load(sys.stdin)), answer)
        return
    if args.recorded:
        args.sdk, args.legacy_sdk = recorded_requirements(json.loads(OUTPUT.read_text(encoding="utf-8")))
    legacy = _dump_under(args.legacy_sdk, [])
    legacy_regions: list[str] = []
    _regions(legacy["configs"], legacy_regions)
    current = _dump_under(args.sdk, legacy_regions)
    table = build(current, legacy)
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(table, separators=(",", ":"), ensure_ascii=True) + "\n"
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT} ({len(text.encode())} bytes) from {table['source']}; kept from v2: {len(table['kept'])}")


if __name__ == "__main__":
    main()
