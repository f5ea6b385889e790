"""Write the cut botocore model(s) sagepush validates requests with into the layer's data/ directory.

`sagepush.request.operation_model` reads `data/<service>-<operation>.json` when its botocore version is the one
installed, so no cold start loads SageMaker's whole model. Run after upgrading botocore in uv.lock:
`uv run python scripts/cut_botocore_model.py`; `tests/unit/test_request.py` fails until the file is in step.
"""

from __future__ import annotations

import json

import botocore
from botocore.loaders import create_loader

from sagepush import request

MODELS = (("sagemaker", "CreateTrainingJob"),)


def main() -> None:
    for service, operation in MODELS:
        model = request.cut_model(create_loader().load_service_model(service, "service-2"), operation)
        target = request.PACKAGED_MODELS / f"{service}-{operation}.json"
        document = {"botocore": botocore.__version__, "model": model}
        target.write_text(json.dumps(document, separators=(",", ":")) + "\n")
        print(f"wrote {target} (botocore {botocore.__version__}, {len(model['shapes'])} shapes)")


if __name__ == "__main__":
    main()
