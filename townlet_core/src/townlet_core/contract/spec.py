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
    """One training strategy, declared once, as its plugin module registers it.

    What runs is named by import strings (`"package.module:attribute"`) so that nothing heavy
    is imported until the strategy is actually configured or run. Give either `run` (a
    function `run(context, config) -> TrainingResultDTO`, with an optional `prepare`
    function beside it) or `factory` (a zero-argument callable, usually a class, returning
    an object with `prepare` and `run` methods: see `TrainingStrategy`).
    """

    #: The name users type (`townlet train --strategy NAME`); equals the entry-point name.
    name: str
    #: One line shown by `townlet strategies list`.
    summary: str
    #: Import string of the pydantic model of the strategy's config section; every field
    #: needs a default so that `townlet train --strategy NAME` works without a config file.
    config_model: str
    #: Import string of `run(context, config) -> TrainingResultDTO`.
    run: str | None = None
    #: Import string of `prepare(context, config) -> None`: checks before anything is written
    #: (data present, environment known); raise a `TownletError` subclass naming the fix.
    prepare: str | None = None
    #: Import string of a zero-argument callable returning a `TrainingStrategy` (instead of
    #: `run` and `prepare`).
    factory: str | None = None
    #: Whether running the strategy needs PyTorch (listing and configuring never do).
    requires_torch: bool = False
    #: Whether `townlet train --resume RUN_DIR` can continue a stopped run: the strategy then
    #: reads `context.resume` and continues from the latest checkpoint in `context.run_dir`.
    supports_resume: bool = False
    #: Whether the strategy trains data-parallel over several processes (`townlet train
    #: --nproc N`, torchrun): it then reads `context.world`, lets only rank 0 write, keeps
    #: every rank's weights identical, returns the same result on every rank, and returns
    #: only once rank 0's files are complete (a barrier: `townlet_core.nn.distributed`).
    #: Without it, `--nproc` above 1 is refused up front.
    supports_distributed: bool = False
    #: Strategies this one always composes by name, checked before training starts. A
    #: composing strategy whose stages come from its config (anneal) checks them in
    #: `prepare` with `context.check_strategy` instead.
    requires_strategies: Sequence[str] = field(default_factory=tuple)
    #: Import string of `after_commit(context, config, result) -> TrainingResultDTO | None`,
    #: called once `result.json` is committed and before run.json's final state is written
    #: (anneal records its verdict in the promotion ledger there); a returned result replaces
    #: result.json. Ctrl-C and SIGTERM wait until it returns.
    after_commit: str | None = None
    #: The strategy API major version the plugin was written against.
    api_version: int = STRATEGY_API_VERSION

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise ValueError(
                f"strategy name {self.name!r} must be lower case letters, digits and '_', "
                "starting with a letter"
            )
        if (self.run is None) == (self.factory is None):
            raise ValueError(
                f"StrategySpec {self.name!r}: give exactly one of run='module:function' or "
                "factory='module:Class'"
            )
        if self.factory is not None and self.prepare is not None:
            raise ValueError(
                f"StrategySpec {self.name!r}: prepare= goes with run=; a factory's object "
                "has its own prepare method"
            )
        for label, value in self.import_strings().items():
            if not _IMPORT_STRING_RE.match(value):
                raise ValueError(
                    f"StrategySpec {self.name!r}: {label} must be an import string "
                    f"'package.module:attribute', got {value!r}"
                )
        # Accept any iterable of names (a list reads naturally in a plugin) but store a tuple.
        object.__setattr__(self, "requires_strategies", tuple(self.requires_strategies))

    def import_strings(self) -> dict[str, str]:
        """The spec's import strings by field name (what `strategies list --check` imports)."""
        fields = {
            "config_model": self.config_model,
            "run": self.run,
            "prepare": self.prepare,
            "factory": self.factory,
            "after_commit": self.after_commit,
        }
        return {label: value for label, value in fields.items() if value is not None}


class SpecCollector:
    """What a `townlet_register_strategies` implementation receives as `specs`."""

    def __init__(self) -> None:
        self.specs: list[StrategySpec] = []

    def add(self, spec: StrategySpec) -> None:
        """Register one strategy. Call once per strategy the plugin provides."""
        if not isinstance(spec, StrategySpec):
            raise TypeError(f"registry.add() takes a StrategySpec, got {type(spec).__name__}")
        if any(existing.name == spec.name for existing in self.specs):
            raise ValueError(f"strategy {spec.name!r} registered twice by one plugin")
        self.specs.append(spec)


def import_object(import_string: str) -> Any:
    """Import `"package.module:Attribute.sub"` and return the attribute."""
    module_name, _, attribute_path = import_string.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attribute_path.split("."):
        obj = getattr(obj, part)
    return obj
