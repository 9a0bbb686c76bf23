"""`StrategySpec`: what a plugin registers. Plain data with import strings, so that listing,
`--help` and `--version` never import a strategy's heavy modules."""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from townlet_core.__about__ import STRATEGY_API_VERSION

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_IMPORT_STRING_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


@dataclass(frozen=True)
class StrategySpec:
    """One training strategy, as a plugin registers it.

    `config_model` and `factory` are import strings (`"package.module:Attribute"`) so that
    nothing heavy is imported until the strategy is actually configured or run.
    """

    #: The name users type (`townlet train --strategy NAME`); equals the entry-point name.
    name: str
    #: One line shown by `townlet strategies list`.
    summary: str
    #: Import string of the pydantic model of the strategy's config section; every field
    #: needs a default so that `townlet train --strategy NAME` works without a config file.
    config_model: str
    #: Import string of a zero-argument callable (usually the class) returning the strategy.
    factory: str
    #: Whether running the strategy needs PyTorch (listing and configuring never do).
    requires_torch: bool = False
    #: Strategies this one composes by name (anneal: bc, ppo); checked before training starts.
    requires_strategies: Sequence[str] = field(default_factory=tuple)
    #: The strategy API major version the plugin was written against.
    api_version: int = STRATEGY_API_VERSION

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise ValueError(
                f"strategy name {self.name!r} must be lower case letters, digits and '_', "
                "starting with a letter"
            )
        for label, value in (("config_model", self.config_model), ("factory", self.factory)):
            if not _IMPORT_STRING_RE.match(value):
                raise ValueError(
                    f"StrategySpec {self.name!r}: {label} must be an import string "
                    f"'package.module:Attribute', got {value!r}"
                )
        # Accept any iterable of names (a list reads naturally in a plugin) but store a tuple.
        object.__setattr__(self, "requires_strategies", tuple(self.requires_strategies))


def import_object(import_string: str) -> Any:
    """Import `"package.module:Attribute.sub"` and return the attribute."""
    module_name, _, attribute_path = import_string.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attribute_path.split("."):
        obj = getattr(obj, part)
    return obj
