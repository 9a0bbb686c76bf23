"""Named schema checks for domain data, run on request (`dataset validate --schema townlet`).

The original loader refused any sample without the conflict features; here that rule is one
named check among possibly many, so the generic loader reads data from any environment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from townlet_core.data.stats import CONFLICT_FEATURES
from townlet_core.errors import DataError

SchemaCheck = Callable[[Mapping[str, Any]], list[str]]


def _townlet(metadata: Mapping[str, Any]) -> list[str]:
    names = metadata.get("feature_names")
    if not isinstance(names, list):
        return ["metadata has no feature_names list (the Townlet schema requires one)"]
    missing = [name for name in CONFLICT_FEATURES if name not in names]
    if missing:
        return [f"feature_names lacks the conflict feature(s) {', '.join(missing)}"]
    return []


SCHEMAS: dict[str, SchemaCheck] = {"townlet": _townlet}


def check_schema(name: str, metadata: Mapping[str, Any]) -> list[str]:
    """Problems `metadata` has under schema `name` (empty when it conforms)."""
    try:
        check = SCHEMAS[name]
    except KeyError:
        raise DataError(f"unknown schema '{name}'; known: {', '.join(sorted(SCHEMAS))}") from None
    return check(metadata)
