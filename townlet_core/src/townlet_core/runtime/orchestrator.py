"""`Orchestrator`: resolve a strategy by name, validate its config, run it in a run directory.

    from townlet_core import Orchestrator
    result = Orchestrator().run("cem", config={"cem": {"iterations": 30}}, seed=1)

`townlet train` is a thin shell around `Orchestrator.run`. Side effects live here (run
directory, snapshot, status, result, carried state); strategies only compute and return.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel

from townlet_core.contract.context import Services, TrainingContext
from townlet_core.contract.spec import StrategySpec, import_object
from townlet_core.contract.strategy import TrainingStrategy
from townlet_core.dto import TrainingResultDTO
from townlet_core.errors import (
    ConfigError,
    PluginLoadError,
    RunDirectoryError,
    StrategyRunError,
    TownletError,
)
from townlet_core.runtime.config import (
    RunConfig,
    build_run_config,
    load_config_file,
    validate_section,
)
from townlet_core.runtime.metrics import MetricsSink
from townlet_core.runtime.progress import Progress, progress_wanted
from townlet_core.runtime.registry import StrategyRegistry, install_hint
from townlet_core.runtime.run_dir import (
    METRICS_FILE,
    RunDirectory,
    command_line,
    package_versions,
    utc_now,
)
from townlet_core.runtime.seeding import seed_everything
from townlet_core.runtime.state import STATE_FILE, StateStore
from townlet_core.runtime.torch_guard import require_torch


@dataclass
class _Resolved:
    """A strategy ready to run: its spec, provider version and config model."""

    spec: StrategySpec
    version: str
    distribution: str
    config_model: type[BaseModel]


class Orchestrator:
    """Runs strategies by name. One instance may run many times (state carries over)."""

    def __init__(
        self,
        registry: StrategyRegistry | None = None,
        *,
        quiet: bool = False,
        progress: bool | None = None,
        log: Callable[[str], None] | None = None,
        progress_stream: IO[str] | None = None,
    ) -> None:
        self.registry = registry if registry is not None else StrategyRegistry()
        self.quiet = quiet
        self._progress_stream = progress_stream or sys.stderr
        self._progress = (
            progress_wanted(quiet, self._progress_stream) if progress is None else progress
        )
        self._log = log or (lambda message: print(message, file=sys.stderr))
        #: The run directory of the latest run (kept even when the run failed).
        self.last_run_dir: Path | None = None
        self._resolved: dict[str, _Resolved] = {}

    # ------------------------------------------------------------------ public API

    def run(
        self,
        strategy: str | None = None,
        *,
        config: Path | str | Mapping[str, Any] | None = None,
        overrides: Sequence[str] = (),
        seed: int | None = None,
        device: str | None = None,
        run_dir: Path | str | None = None,
    ) -> TrainingResultDTO:
        """Run one strategy and return its result DTO (also written to `result.json`).

        `config` is a YAML/TOML/JSON file or a mapping shaped like one; `overrides` are
        `a.b=value` strings; `seed`, `device` and `run_dir` win over both.
        """
        file = Path(config) if isinstance(config, (str, Path)) else None
        data = config if isinstance(config, Mapping) else None
        name = strategy or _strategy_from_config(data, file)
        if self.registry.strict:
            self.registry.load_all()
        specs = self.registry.resolve_with_requirements(name)
        resolved = {spec.name: self._resolve(spec) for spec in specs}
        run_config = build_run_config(
            name,
            {n: r.config_model for n, r in resolved.items()},
            file=file,
            data=data,
            overrides=overrides,
            explicit={
                "seed": seed,
                "device": device,
                "run_dir": Path(run_dir) if run_dir is not None else None,
            },
        )
        main = resolved[name]
        strategy_obj = self._instantiate(main)
        self._check_device(main.spec, run_config.run.device)
        path = RunDirectory.choose(
            run_config.run.run_dir, runs_root=run_config.run.runs_root, strategy=name
        )
        snapshot = {
            "strategy": name,
            "seed": run_config.run.seed,
            "device": run_config.run.device,
            "config": run_config.snapshot(),
            "config_source": run_config.source,
            "overrides": list(run_config.overrides),
            "strategies": {
                n: {"distribution": r.distribution, "version": r.version}
                for n, r in resolved.items()
            },
            "versions": package_versions([r.distribution for r in resolved.values()]),
            "command": command_line(),
            "created_at": utc_now().isoformat(),
        }
        return self._run_top(main, strategy_obj, run_config, path, snapshot=snapshot)

    def resume(self, run_dir: Path | str) -> TrainingResultDTO:
        """Continue a stopped run in its own directory, from its latest checkpoint.

        The run's recorded config, seed and device are used unchanged, so the continued run
        equals one that was never interrupted. Only strategies that declare
        `supports_resume = True` can do this.
        """
        path = Path(run_dir)
        directory = RunDirectory(path)
        if not directory.config_path.exists():
            raise RunDirectoryError(
                f"{path}: not a run directory (no {directory.config_path.name}); pass the folder "
                "'townlet train' created"
            )
        snapshot = json.loads(directory.config_path.read_text(encoding="utf-8"))
        state = ""
        if directory.status_path.exists():
            state = json.loads(directory.status_path.read_text(encoding="utf-8")).get("state", "")
        if state in ("succeeded", "failed"):
            raise RunDirectoryError(
                f"{path}: this run already finished ({state}); start a new run instead"
            )
        name = str(snapshot["strategy"])
        specs = self.registry.resolve_with_requirements(name)
        resolved = {spec.name: self._resolve(spec) for spec in specs}
        data = {**snapshot["config"], "run_dir": str(path)}
        run_config = build_run_config(
            name, {n: r.config_model for n, r in resolved.items()}, data=data
        )
        strategy_obj = self._instantiate(resolved[name])
        if not getattr(strategy_obj, "supports_resume", False):
            raise ConfigError(
                f"strategy '{name}' cannot resume a stopped run; start a new run instead"
            )
        return self._run_top(resolved[name], strategy_obj, run_config, path, resume=True)

    # ------------------------------------------------------------------ internals

    def _run_top(
        self,
        resolved: _Resolved,
        strategy: TrainingStrategy,
        run_config: RunConfig,
        path: Path,
        *,
        snapshot: dict[str, Any] | None = None,
        resume: bool = False,
    ) -> TrainingResultDTO:
        """Run (or resume) a top-level run, then save the state every strategy carried."""
        store = StateStore(run_config.run.runs_root / STATE_FILE)
        states: dict[str, dict[str, Any]] = {}
        result = self._execute(
            resolved,
            strategy,
            run_config.section(resolved.spec.name),
            run_config,
            path,
            store=store,
            states=states,
            snapshot=snapshot,
            resume=resume,
        )
        for namespace, value in states.items():
            store.save(namespace, value)
        return result

    def _resolve(self, spec: StrategySpec) -> _Resolved:
        if spec.name in self._resolved:
            return self._resolved[spec.name]
        record = next(r for r in self.registry.records() if r.name == spec.name)
        try:
            model = import_object(spec.config_model)
        except Exception as exc:
            raise PluginLoadError(
                f"strategy '{spec.name}' ({record.label}): cannot import its config model "
                f"{spec.config_model}: {type(exc).__name__}: {exc}"
            ) from exc
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise PluginLoadError(
                f"strategy '{spec.name}' ({record.label}): config model {spec.config_model} "
                "is not a pydantic model"
            )
        resolved = _Resolved(spec, record.version, record.distribution, model)
        self._resolved[spec.name] = resolved
        return resolved

    def _instantiate(self, resolved: _Resolved) -> TrainingStrategy:
        spec = resolved.spec
        if spec.requires_torch:
            extra = install_hint(spec.name)
            require_torch(
                f"Strategy '{spec.name}'",
                spec.name if extra else None,
            )
        try:
            strategy = import_object(spec.factory)()
        except TownletError:
            raise
        except Exception as exc:
            raise PluginLoadError(
                f"strategy '{spec.name}' ({resolved.distribution} {resolved.version}): cannot "
                f"create it from {spec.factory}: {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(strategy, TrainingStrategy):
            raise PluginLoadError(
                f"strategy '{spec.name}': {spec.factory} returned {type(strategy).__name__}, "
                "which lacks the TrainingStrategy members (name, requires_torch, prepare, run)"
            )
        if strategy.name != spec.name:
            raise PluginLoadError(
                f"strategy '{spec.name}': {spec.factory} returned a strategy named "
                f"{strategy.name!r}"
            )
        return strategy

    @staticmethod
    def _check_device(spec: StrategySpec, device: str) -> None:
        if not spec.requires_torch and device not in ("auto", "cpu"):
            raise ConfigError(
                f"--device {device}: strategy '{spec.name}' does not use torch and runs on the "
                "CPU; use --device cpu or auto"
            )

    def _progress_factory(self) -> Callable[[int | None, str], Progress]:
        def make(total: int | None, desc: str) -> Progress:
            return Progress(total, desc, enabled=self._progress, stream=self._progress_stream)

        return make

    def _execute(
        self,
        resolved: _Resolved,
        strategy: TrainingStrategy,
        section: BaseModel,
        run_config: RunConfig,
        path: Path,
        *,
        store: StateStore,
        states: dict[str, dict[str, Any]],
        snapshot: dict[str, Any] | None = None,
        parent: TrainingContext | None = None,
        warm_start: Path | None = None,
        extras: dict[str, Any] | None = None,
        resume: bool = False,
    ) -> TrainingResultDTO:
        """Prepare (nothing written yet), then create the directory and run."""
        spec = resolved.spec
        seed = run_config.run.seed
        if spec.name not in states:
            states[spec.name] = store.load(spec.name)
        sink = MetricsSink(path / METRICS_FILE, rotate_after=run_config.run.metrics.rotate_after)
        context = TrainingContext(
            spec=spec,
            strategy_version=resolved.version,
            config=run_config,
            seed=seed,
            device=run_config.run.device,
            run_dir=path,
            registry=self.registry,
            metrics=sink,
            services=Services(rng=seed_everything(seed), progress=self._progress_factory()),
            state=states[spec.name],
            warm_start=warm_start,
            extras=extras or {},
            parent=parent,
            resume=resume,
            log=self._info,
            _run_child=self._child_runner(store, states),
            _check_child=self._child_checker(),
        )
        self._guarded(spec, lambda: strategy.prepare(context, section))
        directory = RunDirectory(path) if resume else RunDirectory.create(path)
        if parent is None:
            self.last_run_dir = path
            verb = "resuming" if resume else "running"
            self._info(f"townlet: {verb} '{spec.name}' in {path}")
        if snapshot is not None:
            directory.write_snapshot(snapshot)
        if resume:
            directory.mark("running", resumed_at=utc_now().isoformat())
        else:
            directory.mark("running", strategy=spec.name, started_at=utc_now().isoformat())
        try:
            with sink:
                result = strategy.run(context, section)
            result = self._accept_result(spec, result, directory, sink)
        except KeyboardInterrupt:
            directory.mark("interrupted", error="interrupted by the user (Ctrl-C or SIGINT)")
            raise
        except TownletError as exc:
            directory.mark("error", error=str(exc))
            raise
        except Exception as exc:
            message = f"strategy '{spec.name}' failed: {type(exc).__name__}: {exc}"
            directory.mark("error", error=message)
            raise StrategyRunError(message) from exc
        directory.write_result(result.model_dump_json())
        directory.mark(
            result.status,
            finished_at=utc_now().isoformat(),
            **({"reason": result.status_reason} if result.status_reason else {}),
        )
        return result

    def _info(self, message: str) -> None:
        if not self.quiet:
            self._log(message)

    @staticmethod
    def _guarded(spec: StrategySpec, step: Callable[[], None]) -> None:
        """Run a strategy step; a bug in it becomes a StrategyRunError naming the strategy."""
        try:
            step()
        except (TownletError, KeyboardInterrupt):
            raise
        except Exception as exc:
            raise StrategyRunError(
                f"strategy '{spec.name}' failed: {type(exc).__name__}: {exc}"
            ) from exc

    @staticmethod
    def _accept_result(
        spec: StrategySpec, result: object, directory: RunDirectory, sink: MetricsSink
    ) -> TrainingResultDTO:
        if not isinstance(result, TrainingResultDTO):
            raise StrategyRunError(
                f"strategy '{spec.name}' returned {type(result).__name__}, not a "
                "TrainingResultDTO; build the result with context.run_fields()"
            )
        if result.strategy != spec.name:
            raise StrategyRunError(
                f"strategy '{spec.name}' returned a result for {result.strategy!r}"
            )
        artifacts = {
            "config": directory.relative(directory.config_path),
            "status": directory.relative(directory.status_path),
            "result": directory.relative(directory.result_path),
        }
        if sink.files:
            artifacts["metrics"] = directory.relative(directory.metrics_path)
        artifacts.update(result.artifacts)
        return result.model_copy(update={"artifacts": artifacts})

    def _stage_config(
        self, parent: TrainingContext, name: str, overrides: dict[str, Any], stage: str
    ) -> tuple[_Resolved, BaseModel]:
        """Resolve a composed strategy and validate its config for one stage.

        The base is the run config's section for `name` (when the composing strategy
        declares it) or the model's defaults; `overrides` win; the strategy's own model
        validates the result.
        """
        resolved = self._resolve(self.registry.resolve(name))
        base = parent.config.section(name).model_dump() if name in parent.config.sections else {}
        section = validate_section(
            resolved.config_model,
            {**base, **overrides},
            section=name,
            source=f"stage '{stage}' of '{parent.strategy}'",
        )
        return resolved, section

    def _child_runner(
        self, store: StateStore, states: dict[str, dict[str, Any]]
    ) -> Callable[..., TrainingResultDTO]:
        def run_child(
            parent: TrainingContext,
            name: str,
            overrides: dict[str, Any],
            stage: str,
            warm_start: Path | None,
            extras: dict[str, Any],
        ) -> TrainingResultDTO:
            resolved, section = self._stage_config(parent, name, overrides, stage)
            strategy = self._instantiate(resolved)
            self._check_device(resolved.spec, parent.device)
            path = RunDirectory.choose(
                parent.run_dir / "stages" / stage, runs_root=parent.run_dir, strategy=name
            )
            return self._execute(
                resolved,
                strategy,
                section,
                parent.config,
                path,
                store=store,
                states=states,
                parent=parent,
                warm_start=warm_start,
                extras=extras,
            )

        return run_child

    def _child_checker(self) -> Callable[..., BaseModel]:
        def check_child(
            parent: TrainingContext, name: str, overrides: dict[str, Any], stage: str
        ) -> BaseModel:
            resolved, section = self._stage_config(parent, name, overrides, stage)
            self._instantiate(resolved)  # torch present if needed; the factory importable
            return section

        return check_child


def _strategy_from_config(data: Mapping[str, Any] | None, file: Path | None) -> str:
    """The `strategy` a config names, needed before its sections can be validated."""
    source: Mapping[str, Any] = (
        data if data is not None else (load_config_file(file) if file else {})
    )
    name = source.get("strategy")
    if not name:
        raise ConfigError(
            "no strategy given: pass --strategy NAME or set 'strategy' in the config file"
        )
    if not isinstance(name, str):
        raise ConfigError(f"{file or 'config'}: strategy: must be a strategy name, got {name!r}")
    return name
