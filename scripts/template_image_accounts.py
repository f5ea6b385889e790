"""Print (or `--write`) template.yaml's FrameworkImageAccounts mapping from the image data.

The execution role may pull images only from the accounts that hold SageMaker's framework images in the job's
region (and the deployment's own account and PolicyImageAccounts). `tests/unit/test_template_iam.py` fails when the
mapping and `layers/sagepush/sagepush/data/images.json` disagree; run `python scripts/template_image_accounts.py
--write` after regenerating the image data.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from sagepush import images

TEMPLATE = Path(__file__).resolve().parents[1] / "template.yaml"
_MAPPING = re.compile(r"(?m)^  FrameworkImageAccounts:\n(?:    [^\n]*\n)+")


def mapping() -> str:
    """Return the mapping's YAML, one region per line."""
    regions = sorted({region for registries in images._table()["registries"] for region in registries})
    lines = ["  FrameworkImageAccounts:"]
    lines += [
        f'    {region}: {{ Accounts: "{",".join(sorted(images.framework_accounts(region)))}" }}' for region in regions
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="rewrite the mapping in template.yaml")
    args = parser.parse_args()
    if not args.write:
        print(mapping(), end="")
        return
    text = TEMPLATE.read_text()
    if _MAPPING.search(text) is None:
        raise SystemExit("template.yaml has no FrameworkImageAccounts mapping under Mappings:")
    TEMPLATE.write_text(_MAPPING.sub(lambda _: mapping(), text, count=1))


if __name__ == "__main__":
    main()
