"""EventBridge pattern matching where moto's matcher stops short, for the local stack's rule delivery.

Two gaps, both closed here rather than in the template so local and cloud routing read the same patterns:
- A scheduled rule (ScheduleExpression, no EventPattern) matches no event; moto treats an empty pattern as match-all.
- A pattern key below an array of objects (`detail.Tags.Key` against `Tags: [{Key, Value}]`) matches when any element
  matches, as EventBridge does; moto does not descend into arrays.
"""

from __future__ import annotations

import json
from typing import Any


def matches(rule: Any, event: Any) -> bool:
    """Return True when moto's `rule` would deliver `event` on EventBridge."""
    pattern = rule.event_pattern.get_pattern()
    if not pattern:
        return not rule.scheduled_expression
    document = json.loads(json.dumps(event, default=str))
    flat: dict[str, Any] = {}
    _flatten(document, "", flat)
    matched: bool = rule.event_pattern._does_event_match(flat, pattern)
    return matched


def _flatten(node: Any, prefix: str, result: dict[str, Any]) -> None:
    """Flatten as moto does, and also give each key found inside an array of objects the list of its values."""
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict) and value:
            _flatten(value, path, result)
            continue
        result[path] = value
        if isinstance(value, list):
            for element in value:
                if isinstance(element, dict):
                    inner: dict[str, Any] = {}
                    _flatten(element, path, inner)
                    for inner_path, inner_value in inner.items():
                        values = result.setdefault(inner_path, [])
                        values.extend(inner_value if isinstance(inner_value, list) else [inner_value])
