"""Planning a run: the strategy loaded and the run config validated and checked, with
nothing written yet. The orchestrator runs what this plans; `townlet train --nproc` plans
first so that every rank it starts gets the same seed and run directory."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from townlet_core.contract.world import World
from townlet_core.runtime.config import RunConfig, build_run_config, strategy_from_config
from townlet_core.runtime.execution import check_device
from townlet_core.runtime.launch import (
    check_distributed,
    check_ranks_fit_devices,
    shared_run_config,
)
from townlet_core.runtime.registry import LoadedStrategy, StrategyRegistry
from townlet_core.runtime.tracking import tracker_specs


def plan_run(
    registry: StrategyRegistry, world: World, strategy: str | None, **options: Any
) -> tuple[RunConfig, dict[str, LoadedStrategy]]:
    """The validated run config of `Orchestrator.run(strategy, **options)`, every check
    made (device, --nproc, trackers), with the strategy and those it requires, loaded."""
    config, overrides = options.get("config"), options.get("overrides", ())
    file = Path(config) if isinstance(config, (str, Path)) else None
    data = config if isinstance(config, Mapping) else None
    name = strategy or strategy_from_config(data, file)
    if registry.strict:
        registry.load_all()
    loaded = registry.load_with_requirements(name)
    run_dir = options.get("run_dir")
    explicit = {
        "seed": options.get("seed"),
        "device": options.get("device"),
        "run_dir": run_dir and Path(run_dir),
        "nproc": options.get("nproc") or (world.size if world.distributed else None),
    }
    run_config = configure(
        registry, name, loaded, file=file, data=data, overrides=overrides, explicit=explicit
    )
    run_config = shared_run_config(run_config, world)
    check_device(loaded[name].spec, run_config.run.device)
    check_distributed(loaded[name].spec, run_config.run.nproc, world)
    check_ranks_fit_devices(run_config.run.device, run_config.run.nproc, world)
    tracker_specs(registry, run_config.run, world)  # an unknown or missing tracker, now
    return run_config, loaded


def configure(
    registry: StrategyRegistry, name: str, loaded: Mapping[str, LoadedStrategy], **sources: Any
) -> RunConfig:
    """The validated run config; a section naming another installed strategy is validated
    by that strategy's model (a composing strategy may run it as a stage)."""

    def section_model(key: str) -> type[BaseModel] | None:
        return registry.config_model(key) if key in registry.available() else None

    models = {n: strategy.config_model for n, strategy in loaded.items()}
    return build_run_config(name, models, optional_section=section_model, **sources)
