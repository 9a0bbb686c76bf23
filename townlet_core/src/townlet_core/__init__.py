"""Townlet core: the torch-free half of the Townlet training framework.

Public names are imported lazily (PEP 562), so `import townlet_core` and a plugin module's
`from townlet_core import hookimpl, StrategySpec` stay cheap: the CLI answers `--version`
and `strategies list` without loading pydantic, NumPy or any strategy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from townlet_core.__about__ import ENTRY_POINT_GROUP, STRATEGY_API_VERSION, __version__

if TYPE_CHECKING:
    from pathlib import Path

    from townlet_core.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
    from townlet_core.contract.context import Services, TrainingContext
    from townlet_core.contract.hookspecs import hookimpl
    from townlet_core.contract.spec import SpecCollector, StrategySpec
    from townlet_core.contract.strategy import TrainingStrategy
    from townlet_core.contract.tracker import TrackerCollector, TrackerSpec
    from townlet_core.dto import TrainingResultDTO
    from townlet_core.errors import (
        ConfigError,
        PluginLoadError,
        TorchNotAvailableError,
        TownletError,
        UnknownStrategyError,
    )
    from townlet_core.nn.predictor import LoadedPolicy
    from townlet_core.runtime.config import RunConfig
    from townlet_core.runtime.orchestrator import Orchestrator
    from townlet_core.runtime.registry import StrategyRegistry
    from townlet_core.runtime.torch_guard import require_torch, torch_available

_EXPORTS = {
    "ConfigError": "townlet_core.errors",
    "Orchestrator": "townlet_core.runtime.orchestrator",
    "PluginLoadError": "townlet_core.errors",
    "RunConfig": "townlet_core.runtime.config",
    "Services": "townlet_core.contract.context",
    "SpecCollector": "townlet_core.contract.spec",
    "StrategyRegistry": "townlet_core.runtime.registry",
    "StrategySpec": "townlet_core.contract.spec",
    "TorchNotAvailableError": "townlet_core.errors",
    "TownletError": "townlet_core.errors",
    "TrackerCollector": "townlet_core.contract.tracker",
    "TrackerSpec": "townlet_core.contract.tracker",
    "TrainingContext": "townlet_core.contract.context",
    "TrainingResultDTO": "townlet_core.dto",
    "TrainingStrategy": "townlet_core.contract.strategy",
    "UnknownStrategyError": "townlet_core.errors",
    "atomic_write_bytes": "townlet_core.atomic",
    "atomic_write_json": "townlet_core.atomic",
    "atomic_write_text": "townlet_core.atomic",
    "hookimpl": "townlet_core.contract.hookspecs",
    "require_torch": "townlet_core.runtime.torch_guard",
    "torch_available": "townlet_core.runtime.torch_guard",
}

__all__ = [
    "ENTRY_POINT_GROUP",
    "STRATEGY_API_VERSION",
    "ConfigError",
    "Orchestrator",
    "PluginLoadError",
    "RunConfig",
    "Services",
    "SpecCollector",
    "StrategyRegistry",
    "StrategySpec",
    "TorchNotAvailableError",
    "TownletError",
    "TrackerCollector",
    "TrackerSpec",
    "TrainingContext",
    "TrainingResultDTO",
    "TrainingStrategy",
    "UnknownStrategyError",
    "__version__",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "hookimpl",
    "load_policy",
    "require_torch",
    "torch_available",
]


def load_policy(
    path: Path | str,
    *,
    best: bool = False,
    device: str = "cpu",
    seed: int = 0,
    observation_space: Any = None,
) -> LoadedPolicy:
    """A trained policy with Stable-Baselines3's `predict(observation, deterministic=True)`,
    which returns `(actions, None)`: from a checkpoint folder, or a run folder (its final
    checkpoint; with `best`, its best). Needs torch, imported only now; see
    `townlet_core.nn.predictor`."""
    from townlet_core.runtime.torch_guard import require_torch

    require_torch("townlet_core.load_policy", "bc")
    from townlet_core.nn.predictor import load_policy as load

    return load(path, best=best, device=device, seed=seed, observation_space=observation_space)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'townlet_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
