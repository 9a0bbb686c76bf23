"""Strategy discovery and loading: metadata first, import only what a command needs.

Policy (see docs/adr/0004-policy-training-strategies.md):

* Discovery reads installed distribution metadata and imports nothing. Two distributions
  providing one strategy name are a *conflict*; a plugin whose `Requires-Dist` excludes this
  core is *incompatible*. Neither is ever imported.
* A name that a first-party distribution (`FIRST_PARTY_DISTRIBUTIONS`, shipped from this
  repository) provides is first-party: another distribution providing it is the intruder,
  and the message says to uninstall that one. With the first-party distribution disabled,
  the intruder is still not run under its name unless `TOWNLET_REPLACE_FIRST_PARTY` names
  it (a comma list of distributions): disabling a plugin must never swap in other code.
* A strategy is imported only when a command needs it. The *requested* strategy failing to
  load is an error; an *unrelated* broken or incompatible plugin costs one warning line.
* `TOWNLET_LOAD_PLUGINS` (unset: all, empty: none, else a comma list of distributions),
  `TOWNLET_DISABLE_PLUGINS` (comma list of distributions) and `TOWNLET_STRICT_PLUGINS=1`
  (every warning becomes an error) select what is loaded.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from townlet_core.__about__ import (
    CORE_DISTRIBUTION,
    ENTRY_POINT_GROUP,
    FIRST_PARTY_EXTRAS,
    STRATEGY_API_VERSION,
    __version__,
)
from townlet_core._suggest import did_you_mean
from townlet_core.contract.spec import SpecCollector, StrategySpec, import_object
from townlet_core.contract.strategy import FunctionStrategy, TrainingStrategy
from townlet_core.errors import (
    IncompatiblePluginError,
    PluginLoadError,
    StrategyConflictError,
    TownletError,
    UnknownStrategyError,
)
from townlet_core.runtime.plugin_hooks import register_and_collect
from townlet_core.runtime.torch_guard import require_torch

if TYPE_CHECKING:
    from pydantic import BaseModel

    from townlet_core.runtime.tracker_registry import TrackerRegistry

PluginStatus = Literal["ok", "broken", "incompatible", "conflict", "disabled"]

ENV_LOAD = "TOWNLET_LOAD_PLUGINS"
ENV_DISABLE = "TOWNLET_DISABLE_PLUGINS"
ENV_STRICT = "TOWNLET_STRICT_PLUGINS"
ENV_REPLACE = "TOWNLET_REPLACE_FIRST_PARTY"

#: The distributions shipped from this repository (PEP 503 names). A strategy name one of
#: them provides belongs to it; any other distribution providing that name is the intruder.
FIRST_PARTY_DISTRIBUTIONS = frozenset(
    {
        CORE_DISTRIBUTION,
        "townlet-strategies-bc",
        "townlet-strategies-ppo",
        "townlet-strategies-anneal",
    }
)

IN_PROCESS = "<in-process>"


def normalize_distribution(name: str) -> str:
    """PEP 503 normalisation, so `Townlet_Foo` and `townlet-foo` name the same distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


def is_first_party(distribution: str) -> bool:
    """Whether `distribution` is one of those shipped from this repository."""
    return normalize_distribution(distribution) in FIRST_PARTY_DISTRIBUTIONS


def install_hint(strategy: str) -> str | None:
    """The command that installs a first-party strategy, or None for unknown names."""
    extra = FIRST_PARTY_EXTRAS.get(strategy)
    return f"pip install 'townlet-core[{extra}]'" if extra else None


def _parse_list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def env_flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def one_line(exc: BaseException | str) -> str:
    """An exception's message on one line (pluggy's validation errors span several)."""
    return " ".join(str(exc).split())


def _sentence(text: str) -> str:
    """`text` with its first letter upper-case (`str.capitalize` would lower the rest)."""
    return text[:1].upper() + text[1:]


def _stderr_warning(message: str) -> None:
    print(f"townlet: warning: {message}", file=sys.stderr)


@dataclass
class PluginRecord:
    """One strategy as discovery sees it: filled from metadata, completed on import."""

    name: str
    distribution: str
    version: str
    entry_point: str
    summary: str = ""
    status: PluginStatus = "ok"
    error: str | None = None
    #: Filled once the plugin module has been imported and registered its spec.
    spec: StrategySpec | None = None
    _entry_point: metadata.EntryPoint | None = field(default=None, repr=False)
    _warned: bool = field(default=False, repr=False)

    @property
    def label(self) -> str:
        return f"{self.distribution} {self.version}"

    @property
    def usable(self) -> bool:
        return self.status == "ok"

    @property
    def removal(self) -> str:
        """How to get rid of this provider: uninstall it, or stop registering it in-process."""
        if self._entry_point is None:
            return f"stop registering the in-process plugin {self.distribution}"
        return f"uninstall {self.distribution}"

    def as_dict(self) -> dict[str, Any]:
        """The shape `townlet strategies list --json` prints (stable; extend, don't rename)."""
        spec = self.spec
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "entry_point": self.entry_point,
            "status": self.status,
            "error": self.error,
            "summary": spec.summary if spec else self.summary,
            "loaded": spec is not None,
            "requires_torch": spec.requires_torch if spec else None,
            "requires_strategies": list(spec.requires_strategies) if spec else None,
            "supports_resume": spec.supports_resume if spec else None,
            "api_version": spec.api_version if spec else None,
        }


def _core_conflict(dist: metadata.Distribution) -> str | None:
    """Why `dist` cannot run on this core (from its Requires-Dist), or None if it can."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.version import InvalidVersion, Version

    for line in dist.requires or ():
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if normalize_distribution(requirement.name) != CORE_DISTRIBUTION:
            continue
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue  # a requirement under one of the plugin's own extras
        try:
            compatible = requirement.specifier.contains(Version(__version__), prereleases=True)
        except InvalidVersion:  # pragma: no cover - our own version is always valid
            compatible = True
        if not compatible:
            return f"requires {CORE_DISTRIBUTION}{requirement.specifier}; installed {__version__}"
    return None


#: `after_commit(context, config, result)`: see `StrategySpec.after_commit`.
AfterCommit = Callable[[Any, Any, Any], Any]


def _mark_shared_name(records: list[PluginRecord]) -> None:
    """Mark every provider of one name a conflict; where one is first-party, say which of
    the others are the intruders to remove."""
    first_party = [r for r in records if is_first_party(r.distribution)]
    for record in records:
        others = [r for r in records if r is not record]
        if not first_party:
            error = f"also provided by {', '.join(r.label for r in others)}"
        elif record in first_party:
            intruders = [r for r in others if r not in first_party]
            error = (
                f"also provided by {', '.join(r.label for r in intruders)} (third party); "
                f"{'; '.join(r.removal for r in intruders)}"
            )
        else:
            error = (
                f"shadows first-party strategy '{record.name}' of {first_party[0].label}; "
                f"{record.removal}"
            )
        record.status, record.error = "conflict", error


def _conflict_message(name: str, active: list[PluginRecord]) -> str:
    """Why `name` cannot run with several providers, and which one to remove."""
    first_party = [r for r in active if is_first_party(r.distribution)]
    intruders = [r for r in active if r not in first_party]
    if not first_party or not intruders:
        labels = " and ".join(r.label for r in active)
        return (
            f"Conflicting strategy '{name}' provided by {labels}; uninstall one or set "
            f"{ENV_DISABLE}={active[-1].distribution}"
        )
    owner = " and ".join(r.label for r in first_party)
    others = " and ".join(r.label for r in intruders)
    one = len(intruders) == 1
    if all(r._entry_point is not None for r in intruders):
        command = " ".join(r.distribution for r in intruders)
        remedy = f"Uninstall {'it' if one else 'them'}: pip uninstall {command}"
    else:
        remedy = _sentence("; ".join(r.removal for r in intruders))
    return (
        f"Conflicting strategy '{name}': {owner} is the first-party distribution (shipped "
        f"with Townlet); {others} {'is a third party' if one else 'are third parties'} "
        f"providing the same name. {remedy}"
    )


@dataclass(frozen=True)
class LoadedStrategy:
    """A strategy ready to run: its spec, who provides it, its config model and its object."""

    spec: StrategySpec
    distribution: str
    version: str
    config_model: type[BaseModel]
    strategy: TrainingStrategy
    after_commit: AfterCommit | None = None


def _import(spec: StrategySpec, key: str, value: str, label: str) -> Any:
    try:
        return import_object(value)
    except TownletError:
        raise
    except Exception as exc:
        raise PluginLoadError(
            f"strategy '{spec.name}' ({label}): cannot import its {key} {value}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _config_model(spec: StrategySpec, label: str) -> type[BaseModel]:
    from pydantic import BaseModel  # not at import time: listing strategies never needs it

    model = _import(spec, "config_model", spec.config_model, label)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise PluginLoadError(
            f"strategy '{spec.name}' ({label}): config model {spec.config_model} is not a "
            "pydantic model"
        )
    return model


def _check_parts(spec: StrategySpec, label: str) -> None:
    """What `strategies list --check` checks of a spec's import strings (see `load_all`)."""
    _config_model(spec, label)
    if not spec.requires_torch:
        _import_callables(spec, label)
        return
    for key, value in _runnable_strings(spec).items():
        problem = _locate(value)
        if problem:
            raise PluginLoadError(f"strategy '{spec.name}' ({label}): its {key} {value}: {problem}")


def _runnable_strings(spec: StrategySpec) -> dict[str, str]:
    """The spec's import strings other than its config model (run, prepare, factory, ...)."""
    return {k: v for k, v in spec.import_strings().items() if k != "config_model"}


def _import_callables(spec: StrategySpec, label: str) -> dict[str, Any]:
    """Import run/prepare/factory/after_commit and check each is callable."""
    parts = {
        key: _import(spec, key, value, label) for key, value in _runnable_strings(spec).items()
    }
    for key, part in parts.items():
        if not callable(part):
            raise PluginLoadError(
                f"strategy '{spec.name}' ({label}): {key} {getattr(spec, key)} is not callable"
            )
    return parts


def _locate(import_string: str) -> str | None:
    """Why `module:attribute` cannot be found, read from the module's source without running
    it (None when the module exists and defines or imports the attribute at its top level)."""
    import ast
    import importlib.util

    module_name, _, attribute_path = import_string.partition(":")
    try:
        found = importlib.util.find_spec(module_name)
    except (ImportError, ValueError) as exc:
        return f"cannot find module {module_name}: {exc}"
    if found is None or found.origin is None or not found.origin.endswith(".py"):
        return None if found is not None else f"no module named {module_name!r}"
    tree = ast.parse(Path(found.origin).read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    attribute = attribute_path.split(".")[0]
    if attribute in names:
        return None
    return f"module {module_name} defines no {attribute!r}{did_you_mean(attribute, names)}"


class StrategyRegistry:
    """Discovers strategy plugins and hands out their `StrategySpec`s by name.

    Build one per command (or per test). `discover=False` gives an empty, isolated registry
    for in-process registration with `add_plugin`; `path` restricts discovery to some
    directories (tests point it at fake `*.dist-info` folders).
    """

    def __init__(
        self,
        *,
        discover: bool = True,
        path: Sequence[str] | None = None,
        environ: Mapping[str, str] | None = None,
        strict: bool | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        import pluggy

        from townlet_core.contract.hookspecs import PROJECT_NAME, TownletHookSpecs

        env = os.environ if environ is None else environ
        self.strict = env_flag(env.get(ENV_STRICT)) if strict is None else strict
        self._warn_sink = warn or _stderr_warning
        self._records: list[PluginRecord] = []
        self._pm = pluggy.PluginManager(PROJECT_NAME)
        self._pm.add_hookspecs(TownletHookSpecs)
        self._pending_warnings: list[str] = []
        #: Specs collected per plugin object: one module may back several entry points.
        self._collected: dict[int, list[StrategySpec]] = {}
        self._loaded: dict[str, LoadedStrategy] = {}
        #: Third-party distributions allowed to provide a disabled first-party name.
        self._replacing = {normalize_distribution(n) for n in _parse_list(env.get(ENV_REPLACE, ""))}
        self._discovery = (discover, path)  # the trackers are found the same way
        if discover:
            self._discover(path, env)

    @functools.cached_property
    def trackers(self) -> TrackerRegistry:
        """The trackers a run can name (`--track`), found on first use like strategies, on
        this registry's plugin manager: see `runtime.tracker_registry`."""
        from townlet_core.runtime.tracker_registry import TrackerRegistry

        discover, path = self._discovery
        return TrackerRegistry(self._pm, discover=discover, path=path)

    # ----------------------------------------------------------------- metadata phase

    def _discover(self, path: Sequence[str] | None, env: Mapping[str, str]) -> None:
        seen: set[str] = set()
        distributions = (
            metadata.distributions(path=list(path))
            if path is not None
            else metadata.distributions()
        )
        for dist in distributions:
            dist_name = dist.metadata["Name"] or ""
            key = normalize_distribution(dist_name)
            if not key or key in seen:
                continue  # the same distribution found twice on the path: first one wins
            eps = [ep for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP]
            if not eps:
                continue
            seen.add(key)
            conflict = _core_conflict(dist)
            for ep in eps:
                record = PluginRecord(
                    name=ep.name,
                    distribution=dist_name,
                    version=dist.version,
                    entry_point=ep.value,
                    summary=dist.metadata["Summary"] or "",
                    _entry_point=ep,
                )
                if conflict:
                    record.status, record.error = "incompatible", conflict
                self._records.append(record)
        self._apply_environment(env)
        self._mark_conflicts()
        for message in self._pending_warnings:
            if self.strict:
                raise PluginLoadError(message + f" ({ENV_STRICT} is set)")

    def _apply_environment(self, env: Mapping[str, str]) -> None:
        load = env.get(ENV_LOAD)
        disabled = {normalize_distribution(n) for n in _parse_list(env.get(ENV_DISABLE, ""))}
        wanted = None if load is None else {normalize_distribution(n) for n in _parse_list(load)}
        present = {normalize_distribution(r.distribution) for r in self._records}
        for name in sorted((wanted or set()) - present):
            self._pending_warnings.append(
                f"{ENV_LOAD} names '{name}', which is not installed or provides no strategy"
            )
            self._warn_sink(self._pending_warnings[-1])
        for record in self._records:
            key = normalize_distribution(record.distribution)
            if wanted is not None and key not in wanted:
                record.status, record.error = "disabled", f"not listed in {ENV_LOAD}"
            elif key in disabled:
                record.status, record.error = "disabled", f"listed in {ENV_DISABLE}"

    def _mark_conflicts(self) -> None:
        """Mark every provider of a name two distributions provide, and third parties that
        would stand in for a disabled first-party strategy (see the module docstring)."""
        by_name: dict[str, list[PluginRecord]] = {}
        for record in self._records:
            if record.status != "disabled":
                by_name.setdefault(record.name, []).append(record)
        for name, records in by_name.items():
            if len({normalize_distribution(r.distribution) for r in records}) >= 2:
                _mark_shared_name(records)
            else:
                self._mark_stand_ins(name, records)

    def _first_party_providers(self, name: str) -> list[PluginRecord]:
        """The first-party records (enabled or not) that provide strategy `name`."""
        return [r for r in self._records if r.name == name and is_first_party(r.distribution)]

    def _mark_stand_ins(self, name: str, records: list[PluginRecord]) -> None:
        """A discovered third party is not run as a first-party strategy someone disabled,
        unless `TOWNLET_REPLACE_FIRST_PARTY` names it (in-process plugins are explicit code)."""
        owners = [r for r in self._first_party_providers(name) if r.status == "disabled"]
        if not owners:
            return
        for record in records:
            key = normalize_distribution(record.distribution)
            if record._entry_point is None or is_first_party(key) or key in self._replacing:
                continue
            record.status, record.error = (
                "conflict",
                (
                    f"shadows first-party strategy '{name}' of {owners[0].label} (disabled: "
                    f"{owners[0].error}); {record.removal}, or set "
                    f"{ENV_REPLACE}={record.distribution} to run it as '{name}'"
                ),
            )

    # ------------------------------------------------------------------ listing

    def records(self, *, include_disabled: bool = False) -> list[PluginRecord]:
        """Every discovered strategy, sorted by name; disabled ones only when asked."""
        chosen = [r for r in self._records if include_disabled or r.status != "disabled"]
        return sorted(chosen, key=lambda r: (r.name, normalize_distribution(r.distribution)))

    def available(self) -> list[str]:
        """Names of strategies that can be requested (discovered, enabled, not in trouble)."""
        return sorted({r.name for r in self._records if r.status == "ok"})

    # ------------------------------------------------------------------ import phase

    def add_plugin(
        self, plugin: object, *, distribution: str = IN_PROCESS, version: str = "0"
    ) -> list[StrategySpec]:
        """Register a plugin object or module in-process (tests, notebooks, scripts).

        Every strategy it registers becomes available under its own name.
        """
        specs = self._register(plugin, plugin_name=f"{distribution}:{id(plugin)}")
        for spec in specs:
            self._records.append(
                PluginRecord(
                    name=spec.name,
                    distribution=distribution,
                    version=version,
                    entry_point=getattr(plugin, "__name__", type(plugin).__name__),
                    summary=spec.summary,
                    spec=spec,
                )
            )
            self._check_api(self._records[-1])
        self._mark_conflicts()
        return specs

    def _register(self, plugin: object, *, plugin_name: str) -> list[StrategySpec]:
        """Register `plugin` with pluggy and collect what its hook adds. Raises on misuse."""
        if id(plugin) in self._collected:
            return self._collected[id(plugin)]
        collector = SpecCollector()
        register_and_collect(
            self._pm,
            plugin,
            plugin_name,
            hook="townlet_register_strategies",
            argument="specs",
            collector=collector,
            invalid=lambda message: IncompatiblePluginError(one_line(message)),
        )
        self._collected[id(plugin)] = collector.specs
        return collector.specs

    def _check_api(self, record: PluginRecord) -> None:
        spec = record.spec
        if spec is not None and spec.api_version != STRATEGY_API_VERSION:
            record.status = "incompatible"
            record.error = (
                f"written for strategy API v{spec.api_version}; "
                f"this core supports v{STRATEGY_API_VERSION}"
            )

    def _load(self, record: PluginRecord) -> StrategySpec:
        """Import one discovered entry point and return its spec, or raise PluginLoadError."""
        if record.spec is not None:
            return record.spec
        assert record._entry_point is not None
        try:
            plugin = record._entry_point.load()
            specs = self._register(plugin, plugin_name=f"{record.distribution}:{record.name}")
        except TownletError as exc:
            record.status, record.error = (
                "incompatible" if isinstance(exc, IncompatiblePluginError) else "broken",
                str(exc),
            )
            raise
        except Exception as exc:
            record.status, record.error = "broken", f"{type(exc).__name__}: {one_line(exc)}"
            raise PluginLoadError(record.error) from exc
        matching = [spec for spec in specs if spec.name == record.name]
        if not matching:
            registered = ", ".join(spec.name for spec in specs) or "nothing"
            record.status = "broken"
            record.error = (
                f"entry point '{record.name}' registered no strategy named '{record.name}' "
                f"(it registered: {registered})"
            )
            raise PluginLoadError(record.error)
        record.spec = matching[0]
        record.summary = record.spec.summary
        self._check_api(record)
        if record.status == "incompatible":
            raise IncompatiblePluginError(record.error or "incompatible")
        return record.spec

    def resolve(self, name: str) -> StrategySpec:
        """The spec of strategy `name`, importing only its plugin module.

        Raises `UnknownStrategyError`, `StrategyConflictError`, `IncompatiblePluginError` or
        `PluginLoadError` with a message that says what to do.
        """
        records = [r for r in self._records if r.name == name]
        active = [r for r in records if r.status != "disabled"]
        if not records:
            raise UnknownStrategyError(self._unknown_message(name))
        if not active:
            raise UnknownStrategyError(
                f"Strategy '{name}' is provided by {records[0].label}, which is disabled "
                f"({records[0].error}). Change {ENV_LOAD} / {ENV_DISABLE} to use it."
            )
        if len(active) > 1:
            raise StrategyConflictError(_conflict_message(name, active))
        record = active[0]
        if record.status == "conflict":
            raise StrategyConflictError(self._stand_in_message(record))
        self._warn_about_others(exclude=record)
        if record.status in ("incompatible", "broken"):
            error_type = (
                IncompatiblePluginError if record.status == "incompatible" else PluginLoadError
            )
            raise error_type(self._load_failure(record, record.error))
        try:
            return self._load(record)
        except PluginLoadError as exc:
            raise type(exc)(self._load_failure(record, str(exc))) from exc

    def _stand_in_message(self, record: PluginRecord) -> str:
        """Why a third party is not run in place of a disabled first-party strategy."""
        owners = self._first_party_providers(record.name)
        if not owners:  # pragma: no cover - only `_mark_stand_ins` marks a lone provider
            return f"strategy '{record.name}' ({record.label}): {record.error}"
        owner = owners[0]
        return (
            f"Strategy '{record.name}' is first-party ({owner.label}, disabled: {owner.error}); "
            f"{record.label} also provides it and is not run in its place. "
            f"{_sentence(record.removal)}, or set {ENV_REPLACE}={record.distribution} to "
            f"run it as '{record.name}'"
        )

    def resolve_with_requirements(self, name: str) -> list[StrategySpec]:
        """`name` and, recursively, every strategy it composes, failing before any training."""
        resolved: dict[str, StrategySpec] = {}
        queue = [name]
        while queue:
            current = queue.pop(0)
            if current in resolved:
                continue
            spec = self.resolve(current)
            resolved[current] = spec
            missing = [
                req
                for req in spec.requires_strategies
                if req not in resolved
                and not any(r.name == req and r.status != "disabled" for r in self._records)
            ]
            if missing:
                hints = "; ".join(
                    f"{req} -> {install_hint(req) or 'no installed distribution provides it'}"
                    for req in missing
                )
                raise UnknownStrategyError(
                    f"Strategy '{current}' requires strategies "
                    f"{', '.join(spec.requires_strategies)}; missing: {hints}"
                )
            queue.extend(spec.requires_strategies)
        return list(resolved.values())

    def load_all(self, *, check_imports: bool = False) -> list[PluginRecord]:
        """Import every enabled plugin (for `strategies list --check` and strict mode).

        With `check_imports`, also check what each spec names (config model, run, prepare,
        factory, after_commit), so a typo in an import string shows here rather than at
        `train`: config models are imported; the other strings of a torch strategy are found
        without importing them (their modules import torch), the rest are imported. A plugin
        that fails is marked broken or incompatible and reported with one warning line; in
        strict mode the first failure raises instead.
        """
        for record in self.records():
            if record.status == "ok" and record.spec is None:
                with contextlib.suppress(PluginLoadError):
                    self._load(record)
            if check_imports and record.status == "ok" and record.spec is not None:
                try:
                    _check_parts(record.spec, record.label)
                except PluginLoadError as exc:
                    record.status, record.error = "broken", str(exc)
            if record.status in ("broken", "incompatible", "conflict"):
                self._warn(record)
        return self.records()

    # ------------------------------------------------------------------ loading to run

    def record_of(self, name: str) -> PluginRecord:
        """The active record of strategy `name` (resolving it first)."""
        self.resolve(name)
        return self._active_record(name)

    def _active_record(self, name: str) -> PluginRecord:
        return next(r for r in self._records if r.name == name and r.status != "disabled")

    def config_model(self, name: str) -> type[BaseModel]:
        """The pydantic model of strategy `name`'s config section (imports only that)."""
        spec = self.resolve(name)
        return _config_model(spec, self._active_record(name).label)

    def load(self, name: str) -> LoadedStrategy:
        """Strategy `name` ready to run: config model imported, torch checked when it needs
        it, and its strategy object built from `run`/`prepare` or `factory`.

        Raises the errors of `resolve`, `TorchNotAvailableError`, or `PluginLoadError` naming
        the import string that failed.
        """
        if name in self._loaded:
            return self._loaded[name]
        spec = self.resolve(name)
        record = self._active_record(name)
        model = _config_model(spec, record.label)
        if spec.requires_torch:
            require_torch(f"Strategy '{spec.name}'", spec.name if install_hint(name) else None)
        strategy, after_commit = self._import_parts(spec, record.label)
        loaded = LoadedStrategy(
            spec=spec,
            distribution=record.distribution,
            version=record.version,
            config_model=model,
            strategy=strategy,
            after_commit=after_commit,
        )
        self._loaded[name] = loaded
        return loaded

    def load_with_requirements(self, name: str) -> dict[str, LoadedStrategy]:
        """`name` and every strategy its spec requires, loaded, by name (`name` first)."""
        return {spec.name: self.load(spec.name) for spec in self.resolve_with_requirements(name)}

    @staticmethod
    def _import_parts(
        spec: StrategySpec, label: str
    ) -> tuple[TrainingStrategy, AfterCommit | None]:
        """The strategy object (from run/prepare or the factory) and the after_commit step."""
        parts = _import_callables(spec, label)
        if spec.factory is not None:
            try:
                strategy = parts["factory"]()
            except TownletError:
                raise
            except Exception as exc:
                raise PluginLoadError(
                    f"strategy '{spec.name}' ({label}): cannot create it from {spec.factory}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            if not isinstance(strategy, TrainingStrategy):
                raise PluginLoadError(
                    f"strategy '{spec.name}' ({label}): {spec.factory} returned "
                    f"{type(strategy).__name__}, which lacks TrainingStrategy's prepare and run"
                )
        else:
            strategy = FunctionStrategy(parts["run"], parts.get("prepare"))
        return strategy, parts.get("after_commit")

    # ------------------------------------------------------------------ messages

    def _unknown_message(self, name: str) -> str:
        installed = self.available()
        message = f"Unknown strategy '{name}'. Installed: {', '.join(installed) or '(none)'}."
        hint = install_hint(name)
        if hint:
            return f"{message} Install with: {hint}"
        suggestion = did_you_mean(name, installed)
        if suggestion:
            return f"{message[:-1]}{suggestion}"
        return f"{message} Run 'townlet strategies list' to see what is installed."

    @staticmethod
    def _load_failure(record: PluginRecord, reason: str | None) -> str:
        hint = f" Reinstall or upgrade {record.distribution}."
        return f"strategy '{record.name}' ({record.label}) failed to load: {reason}.{hint}"

    def _warn(self, record: PluginRecord) -> None:
        if record._warned:
            return
        record._warned = True
        message = f"skipped strategy '{record.name}' from {record.label}: {record.error}"
        if self.strict:
            raise PluginLoadError(f"{message} ({ENV_STRICT} is set)")
        self._warn_sink(f"{message} (run 'townlet strategies list --check' for details)")

    def _warn_about_others(self, exclude: PluginRecord) -> None:
        for record in self._records:
            if record is not exclude and record.status in ("broken", "incompatible", "conflict"):
                self._warn(record)
