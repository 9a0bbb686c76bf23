"""What the first-party trackers send of a metrics line and of a config (torch-free, no
tracker library): the numbers of a line, and a config flattened to `a.b` parameters."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def scalars(line: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The numbers of one metrics line by name: numbers, and booleans as 0 or 1; a nested
    mapping's as `outer/inner`. None (a non-finite number), text and lists are left out."""
    found: dict[str, float] = {}
    for key, value in line.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            found.update(scalars(value, f"{name}/"))
        elif isinstance(value, (bool, int, float)):
            found[name] = float(value)
    return found


def flat_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, str | int | float | bool]:
    """`config` as `section.field` parameters: scalars as they are, lists and None as JSON."""
    found: dict[str, str | int | float | bool] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            found.update(flat_config(value, f"{name}."))
        elif isinstance(value, (str, int, float, bool)):
            found[name] = value
        else:
            found[name] = json.dumps(value)
    return found
