"""Generate `sagepush/data/images.json`, the training-image table, from the SageMaker Python SDK's own config.

Run it under the SDK pinned in `tests/reference/sdk.py`, from the repository root:

    uv run --isolated --no-project --python 3.11 --with sagemaker==2.257.7 python scripts/generate_images.py

It reads the SDK's `image_uri_config/*.json` training scopes (pytorch, tensorflow, sklearn, xgboost, huggingface, and
`pytorch-neuron` and `pytorch-smp`, which the SDK switches to for Trainium instances and for the model-parallel
library), the ECR hostname botocore resolves for every region those configs name, and the few tables the SDK keeps
in code, and writes one compact JSON document. Configs keep the SDK's key order, which its error messages list
options in; identical region-to-account maps are stored once and referred to by index. The output is deterministic:
commit it, and re-run this script when the SDK pin moves.
"""

from __future__ import annotations

import ast
import inspect
import json
import sys
from pathlib import Path
from typing import Any

import botocore
import sagemaker
from sagemaker import fw_utils, image_uris, utils

OUTPUT = Path(__file__).resolve().parent.parent / "layers" / "sagepush" / "sagepush" / "data" / "images.json"
PUBLIC_FRAMEWORKS = ("pytorch", "tensorflow", "sklearn", "xgboost", "huggingface")
# The SDK resolves pytorch on trn*/inf* instances through `pytorch-neuron`, and any framework whose distribution
# enables smdistributed model parallelism with torch_distributed through `pytorch-smp`.
VARIANT_FRAMEWORKS = ("pytorch-neuron", "pytorch-smp")
FORMAT = 1


def _literal_assigned(function: Any, name: str) -> Any:
    """Return the literal a function of the SDK assigns to local `name`, so tables kept in its code stay in sync."""
    tree = ast.parse(inspect.getsource(function).lstrip())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    sys.exit(f"{function.__qualname__} no longer assigns {name}: review the SDK change before regenerating")


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


def _regions(node: Any, found: list[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "registries":
                found.extend(r for r in value if r not in found)
            else:
                _regions(value, found)


def _hosts(regions: list[str]) -> dict[str, list[str]]:
    """Group regions by the DNS suffix of their ECR endpoint, as the SDK resolves it through botocore."""
    resolver = utils._botocore_resolver()
    hosts: dict[str, list[str]] = {}
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
        hosts.setdefault(hostname[len(prefix) :], []).append(region)
    return dict(sorted(hosts.items()))


def build() -> dict[str, Any]:
    """Return the table `sagepush.images` reads."""
    registries = _Registries()
    configs: dict[str, Any] = {}
    latest: dict[str, str | None] = {}
    regions: list[str] = []
    for framework in PUBLIC_FRAMEWORKS + VARIANT_FRAMEWORKS:
        full = image_uris.config_for_framework(framework)
        training = full["training"]
        _regions(training, regions)
        configs[framework] = _compact(training, registries)
        if framework != "pytorch-neuron":  # an empty version is resolved against the requested framework only
            # The SKLearn estimator asks without an image scope, and then the SDK finds no latest version.
            scope = None if framework == "sklearn" else "training"
            latest[framework] = image_uris._fetch_latest_version_from_config(full, scope)
    smp = inspect.getsource(image_uris.get_training_image_uri)
    if '"p5" in instance_type' not in smp:
        sys.exit("get_training_image_uri changed how it picks the smp container version: review before regenerating")
    return {
        "format": FORMAT,
        "source": {"sagemaker": sagemaker.__version__, "botocore": botocore.__version__},
        "hosts": _hosts(regions),
        "latest": latest,
        "graviton_families": list(fw_utils.GRAVITON_ALLOWED_TARGET_INSTANCE_FAMILY),
        "auto_container_versions": _literal_assigned(image_uris._get_image_tag, "container_versions"),
        "smp_container_versions": {
            "cu124": list(_literal_assigned(image_uris.get_training_image_uri, "supported_smp_pt_versions_cu124")),
            "cu121": list(_literal_assigned(image_uris.get_training_image_uri, "supported_smp_pt_versions_cu121")),
        },
        "configs": configs,
        "registries": registries.maps,
    }


def main() -> None:
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(build(), separators=(",", ":"), ensure_ascii=True) + "\n"
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT} ({len(text.encode())} bytes)")


if __name__ == "__main__":
    main()
