"""Write the cut botocore models sagepush validates requests with into the layer's data/ directory.

`sagepush.request.operation_model` reads `data/sagemaker-CreateTrainingJob.json`, and `sagepush.registry.hosting_model`
`data/sagemaker-hosting.json` (the Model Registry and hosting operations, documentation dropped), each when its
botocore version is the one installed, so no cold start loads SageMaker's whole model. Run after upgrading botocore
in uv.lock: `uv run python scripts/cut_botocore_model.py`; `tests/unit/test_request.py` and
`tests/unit/test_registry.py` fail until the files are in step.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import botocore
from botocore.loaders import create_loader

from sagepush import registry, request

if TYPE_CHECKING:
    from pathlib import Path

MODELS = (("sagemaker", "CreateTrainingJob"),)


def main() -> None:
    whole = create_loader().load_service_model("sagemaker", "service-2")
    for service, operation in MODELS:
        model = request.cut_model(create_loader().load_service_model(service, "service-2"), operation)
        _write(request.PACKAGED_MODELS / f"{service}-{operation}.json", model)
    _write(registry.PACKAGED_MODEL, registry.cut_hosting_model(whole))


def _write(target: Path, model: dict[str, Any]) -> None:
    document = {"botocore": botocore.__version__, "model": model}
    target.write_text(json.dumps(document, separators=(",", ":")) + "\n")
    print(f"wrote {target} (botocore {botocore.__version__}, {len(model['shapes'])} shapes)")


if __name__ == "__main__":
    main()
