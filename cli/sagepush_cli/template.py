"""The project's SAM template: read it, find its functions, and translate it to plain CloudFormation."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mypy_boto3_iam import IAMClient

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


@dataclass(frozen=True, slots=True)
class FunctionSource:
    """Where one template function's code lives on disk and which handler runs it."""

    logical_id: str
    code_dir: Path
    handler: str

    @property
    def module_file(self) -> Path:
        """The handler's module file, e.g. functions/stage/app.py."""
        return self.code_dir / (self.handler.rpartition(".")[0].replace(".", "/") + ".py")

    @property
    def function_name(self) -> str:
        """The handler's function name, e.g. lambda_handler."""
        return self.handler.rpartition(".")[2]


def load(path: Path = TEMPLATE) -> dict[str, Any]:
    """Parse a SAM template, keeping short-form intrinsics (!Ref, !Sub ...) as their long form."""
    from samtranslator.yaml_helper import yaml_parse

    document: dict[str, Any] = yaml_parse(path.read_text())
    return document


def functions(template: Mapping[str, Any], *, root: Path = ROOT) -> dict[str, FunctionSource]:
    """Return every AWS::Serverless::Function of `template` by logical id."""
    default_handler = template.get("Globals", {}).get("Function", {}).get("Handler", "app.lambda_handler")
    found = {}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        properties = resource["Properties"]
        found[logical_id] = FunctionSource(
            logical_id=logical_id,
            code_dir=root / properties["CodeUri"],
            handler=properties.get("Handler", default_handler),
        )
    return found


def parameter_defaults(template: Mapping[str, Any]) -> dict[str, str]:
    """Return each template parameter's default value as a string."""
    return {name: str(p["Default"]) for name, p in template.get("Parameters", {}).items() if "Default" in p}


def translate(
    template: Mapping[str, Any],
    *,
    code_locations: Mapping[str, str],
    parameters: Mapping[str, str],
    region: str,
    account_id: str,
    iam: IAMClient,
    root: Path = ROOT,
) -> dict[str, Any]:
    """Translate a SAM template to CloudFormation with the SAM translator.

    Local code paths are replaced by the S3 URIs in `code_locations` (logical id → s3://bucket/key), as
    `sam package` would, and a local state machine definition is inlined.
    """
    from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
    from samtranslator.translator.transform import transform

    document = copy.deepcopy(dict(template))
    for logical_id, resource in document["Resources"].items():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function" and logical_id in code_locations:
            properties["CodeUri"] = code_locations[logical_id]
        elif resource["Type"] == "AWS::Serverless::LayerVersion" and logical_id in code_locations:
            properties["ContentUri"] = code_locations[logical_id]
        elif resource["Type"] == "AWS::Serverless::StateMachine" and "DefinitionUri" in properties:
            properties["Definition"] = json.loads((root / properties.pop("DefinitionUri")).read_text())
    values = {
        **parameters,
        "AWS::Region": region,
        "AWS::AccountId": account_id,
        "AWS::Partition": "aws-cn" if region.startswith("cn-") else "aws",
    }
    translated: dict[str, Any] = transform(document, values, ManagedPolicyLoader(iam))
    return translated
