"""Tracker discovery: the trackers `townlet train --track NAME` can name, and their specs.

Trackers are plugins, found like strategies (see `registry`) and on the same plugin manager:
a distribution declares an entry point in the `townlet_core.trackers` group whose name is the
tracker name and whose value is a light module implementing `townlet_register_trackers`.
Discovery reads metadata and imports nothing; a tracker's module is imported when a run
names it, and what the tracker itself needs (MLflow, TensorBoard) only on the tracker's own
thread once the run has started (`tracking`). The first-party trackers (`tensorboard`,
`mlflow`) are registered by the core itself. A tracker is loaded only when a run names it,
so naming it is its switch: `TOWNLET_LOAD_PLUGINS` and `TOWNLET_DISABLE_PLUGINS` are for
strategies, whose plugins every listing imports.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING

from townlet_core.__about__ import CORE_DISTRIBUTION
from townlet_core._suggest import did_you_mean
from townlet_core.contract.tracker import TrackerCollector, TrackerSpec
from townlet_core.errors import ConfigError, PluginLoadError
from townlet_core.runtime.plugin_hooks import register_and_collect

if TYPE_CHECKING:
    import pluggy

#: The entry-point group tracker plugins register under (the name is the tracker name).
TRACKER_ENTRY_POINT_GROUP = "townlet_core.trackers"
#: The core's own tracker plugin: tensorboard and mlflow.
FIRST_PARTY_TRACKERS = "townlet_core.trackers.plugin"
IN_PROCESS = "<in-process>"


@dataclass
class _Provider:
    """One tracker name and who provides it; `spec` is filled once its module is imported."""

    name: str
    distribution: str
    entry_point: metadata.EntryPoint | None = None
    spec: TrackerSpec | None = None


class TrackerRegistry:
    """The trackers a `StrategyRegistry` knows (`registry.trackers`), by name."""

    def __init__(
        self,
        plugin_manager: pluggy.PluginManager,
        *,
        discover: bool = True,
        path: Sequence[str] | None = None,
    ) -> None:
        self._pm = plugin_manager
        self._providers: list[_Provider] = []
        self._collected: dict[int, list[TrackerSpec]] = {}
        first_party = importlib.import_module(FIRST_PARTY_TRACKERS)
        self.add_plugin(first_party, distribution=CORE_DISTRIBUTION)
        if discover:
            self._discover(path)

    def _discover(self, path: Sequence[str] | None) -> None:
        seen: set[str] = set()
        found = metadata.distributions(path=list(path)) if path is not None else None
        for dist in found if found is not None else metadata.distributions():
            name = dist.metadata["Name"] or ""
            if not name or name.lower() in seen:
                continue  # the same distribution found twice on the path: first one wins
            seen.add(name.lower())
            for ep in dist.entry_points:
                if ep.group == TRACKER_ENTRY_POINT_GROUP:
                    self._providers.append(_Provider(ep.name, f"{name} {dist.version}", ep))

    def names(self) -> list[str]:
        """Every tracker name a run can ask for."""
        return sorted({p.name for p in self._providers})

    def add_plugin(self, plugin: object, *, distribution: str = IN_PROCESS) -> list[TrackerSpec]:
        """Register a tracker plugin (a module or object implementing
        `townlet_register_trackers`) in-process: tests, notebooks, scripts."""
        specs = self._register(plugin, f"{distribution}:trackers:{id(plugin)}")
        self._providers.extend(_Provider(s.name, distribution, spec=s) for s in specs)
        return specs

    def _register(self, plugin: object, plugin_name: str) -> list[TrackerSpec]:
        if id(plugin) in self._collected:
            return self._collected[id(plugin)]
        collector = TrackerCollector()
        register_and_collect(
            self._pm,
            plugin,
            plugin_name,
            hook="townlet_register_trackers",
            argument="trackers",
            collector=collector,
            invalid=PluginLoadError,
            reuse_registered=True,  # a strategy plugin may register trackers too
        )
        self._collected[id(plugin)] = collector.specs
        return collector.specs

    def resolve(self, name: str) -> TrackerSpec:
        """The spec of tracker `name`, its plugin module imported and what it needs present
        (not imported). A ConfigError for an unknown name, PluginLoadError for the rest."""
        providers = [p for p in self._providers if p.name == name]
        if not providers:
            known = self.names()
            raise ConfigError(
                f"unknown tracker '{name}' in track (--track){did_you_mean(name, known)}; "
                f"available: {', '.join(known)} (a tracker plugin adds more: see "
                "docs/tracking.md)"
            )
        if len(providers) > 1:
            labels = " and ".join(p.distribution for p in providers)
            raise PluginLoadError(
                f"tracker '{name}' is provided by {labels}; uninstall all but one of them"
            )
        spec = self._load(providers[0])
        missing = [module for module in spec.requires if importlib.util.find_spec(module) is None]
        if missing:
            install = f"; install with: {spec.install}" if spec.install else ""
            raise PluginLoadError(
                f"tracker '{name}' needs {', '.join(missing)}, which is not installed{install}"
            )
        return spec

    def check(self, names: Sequence[str]) -> list[TrackerSpec]:
        """The specs of `names` (each once, in order), or the error of the first bad one."""
        return [self.resolve(name) for name in dict.fromkeys(names)]

    def _load(self, provider: _Provider) -> TrackerSpec:
        if provider.spec is not None:
            return provider.spec
        assert provider.entry_point is not None
        where = f"tracker '{provider.name}' ({provider.distribution})"
        try:
            plugin = provider.entry_point.load()
            specs = self._register(plugin, f"{provider.distribution}:tracker:{provider.name}")
        except PluginLoadError as exc:
            raise PluginLoadError(f"{where}: {exc}; reinstall or upgrade it") from exc
        except Exception as exc:
            raise PluginLoadError(
                f"{where} failed to load: {type(exc).__name__}: {exc}; reinstall or upgrade it"
            ) from exc
        matching = [spec for spec in specs if spec.name == provider.name]
        if not matching:
            registered = ", ".join(spec.name for spec in specs) or "nothing"
            raise PluginLoadError(
                f"{where}: its entry point registered no tracker named '{provider.name}' "
                f"(it registered: {registered})"
            )
        provider.spec = matching[0]
        return provider.spec
