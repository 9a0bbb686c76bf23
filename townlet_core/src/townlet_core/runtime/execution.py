"""One run in its run directory, for a top-level run and a composed stage alike.

The order is the contract with strategies: `prepare` (nothing written yet), create the
directory, take its lock (top-level runs) and mark it running, `run`, check the result,
then commit: `result.json`, the state carried to later runs, the strategy's `after_commit`
step (anneal's promotion ledger) and, last, `run.json`'s final state. Nothing outside the
run directory records a run whose result is not committed, and run.json never claims a
state the other files contradict. Ctrl-C or SIGTERM during the commit waits for it (see
`interrupts`); a kill leaves run.json at `running`, which readers report as `stopped`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel

from townlet_core.contract.context import Annotator, Services, Stages, TrainingContext
from townlet_core.contract.spec import StrategySpec
from townlet_core.contract.world import SINGLE, World
from townlet_core.dto import TrainingResultDTO
from townlet_core.errors import ConfigError, RunDirectoryError, StrategyRunError, TownletError
from townlet_core.runtime.config import RunConfig
from townlet_core.runtime.interrupts import held_interrupts
from townlet_core.runtime.metrics import DiscardingSink, MetricsSink
from townlet_core.runtime.progress import ProgressFactory, labelled
from townlet_core.runtime.registry import LoadedStrategy, StrategyRegistry
from townlet_core.runtime.run_dir import (
    LOCK_FILE,
    METRICS_FILE,
    RunDirectory,
    is_no_space,
    utc_now,
)
from townlet_core.runtime.seeding import seed_everything
from townlet_core.runtime.state import StateStore
from townlet_core.runtime.tracking import Tracking

#: What a guarded strategy step returns.
T = TypeVar("T")


@dataclass
class RunServices:
    """What every run of one top-level run shares: the registry, the state carried across
    runs (saved when the top-level run commits), the progress display and the log."""

    registry: StrategyRegistry
    store: StateStore
    progress: ProgressFactory
    log: Callable[[str], None]
    #: This process's rank in a data-parallel run; only rank 0 writes anything.
    world: World = SINGLE
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Each namespace as it was read, so saving merges this run's changes into what
    #: concurrent runs saved meanwhile instead of overwriting them.
    loaded: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The trackers of the top-level run (`--track`), which hear its stages too.
    tracking: Tracking = field(default_factory=Tracking)

    def state_for(self, strategy: str) -> dict[str, Any]:
        if strategy not in self.states:
            base = self.store.load(strategy)
            self.loaded[strategy] = base
            self.states[strategy] = copy.deepcopy(base)
        return self.states[strategy]

    def save_states(self) -> None:
        for namespace, value in self.states.items():
            self.store.merge(namespace, self.loaded.get(namespace, {}), value)


def check_device(spec: StrategySpec, device: str) -> None:
    """A torch-free strategy runs on the CPU; asking it for a GPU is a config error. A torch
    strategy's device must exist on this machine (checked before anything is written)."""
    if not spec.requires_torch:
        if device not in ("auto", "cpu"):
            raise ConfigError(
                f"--device {device}: strategy '{spec.name}' does not use torch and runs on the "
                "CPU; use --device cpu or auto"
            )
        return
    if device in ("auto", "cpu"):
        return  # no need to import torch here: every machine has a CPU
    from townlet_core.nn.device import check_device_available

    check_device_available(device)


def execute(
    loaded: LoadedStrategy,
    section: BaseModel,
    run_config: RunConfig,
    path: Path,
    services: RunServices,
    stages: Stages,
    *,
    snapshot: dict[str, Any] | None = None,
    parent: TrainingContext | None = None,
    warm_start: Path | None = None,
    extras: dict[str, Any] | None = None,
    annotate: Annotator | None = None,
    resume: bool = False,
) -> TrainingResultDTO:
    """Run `loaded` with `section` in `path` and return its committed result.

    A resumed run's lock is taken by the caller before it reads the run's files. A rank
    other than 0 of a data-parallel run runs the strategy and writes nothing (`_follow`)."""
    spec = loaded.spec
    seed = run_config.run.seed
    if parent is None:  # the trackers `track` names, checked; they start with the run
        services.tracking = Tracking.start(services.registry, run_config.run, services.world)
    tracked = services.tracking.open(path, spec.name, run_config, section)
    sink = (
        MetricsSink(
            path / METRICS_FILE,
            rotate_after=run_config.run.metrics.rotate_after,
            annotate=annotate,
            log=services.log,
            tap=tracked.tap,
        )
        if services.world.is_writer
        else DiscardingSink(path / METRICS_FILE, annotate=annotate)
    )
    context = build_context(
        loaded,
        run_config,
        path,
        services,
        stages,
        sink=sink,
        rng=seed_everything(seed),
        parent=parent,
        warm_start=warm_start,
        extras=extras,
        resume=resume,
    )
    _guarded(spec, lambda: loaded.strategy.prepare(context, section))
    if not services.world.is_writer:
        return _follow(loaded, context, section)
    directory = RunDirectory(path) if resume else RunDirectory.create(path)
    lock = directory.lock() if parent is None and not resume else None
    if lock is not None:
        lock.acquire()
    try:
        if lock is not None and any(p.name != LOCK_FILE for p in path.iterdir()):
            raise RunDirectoryError(directory.occupied_message())  # another run got there first
        if parent is None:
            verb = "resuming" if resume else "running"
            services.log(f"townlet: {verb} '{spec.name}' in {path} (seed {seed})")
        _start(directory, spec, snapshot, resume)
        tracked.started()
        result = _run(loaded, context, section, directory, sink)
        return tracked.finished(_commit(loaded, context, section, result, directory, services))
    except BaseException as exc:
        tracked.failed(exc)
        raise
    finally:
        if lock is not None:
            lock.release()


def build_context(
    loaded: LoadedStrategy,
    run_config: RunConfig,
    path: Path,
    services: RunServices,
    stages: Stages,
    *,
    sink: MetricsSink,
    rng: np.random.Generator,
    parent: TrainingContext | None = None,
    warm_start: Path | None = None,
    extras: dict[str, Any] | None = None,
    resume: bool = False,
) -> TrainingContext:
    """The context a strategy's `prepare` and `run` see (nothing is written to build it)."""
    # a stage's bars are named after the stage ("01-cycle1-ppo: ppo ...")
    progress = services.progress if parent is None else labelled(services.progress, path.name)
    return TrainingContext(
        spec=loaded.spec,
        strategy_version=loaded.version,
        config=run_config,
        seed=run_config.run.seed,
        device=run_config.run.device,
        run_dir=path,
        metrics=sink,
        services=Services(rng=rng, progress=progress),
        state=services.state_for(loaded.spec.name),
        stages=stages,
        warm_start=warm_start,
        extras=extras or {},
        parent=parent,
        resume=resume,
        log=services.log,
        world=services.world,
    )


def prepare_only(loaded: LoadedStrategy, context: TrainingContext, section: BaseModel) -> None:
    """The strategy's `prepare` checks alone (a composing strategy checking its stages)."""
    _guarded(loaded.spec, lambda: loaded.strategy.prepare(context, section))


def _start(
    directory: RunDirectory, spec: StrategySpec, snapshot: dict[str, Any] | None, resume: bool
) -> None:
    """config.json (a new top-level run) and run.json `running`."""
    try:
        if snapshot is not None:
            directory.write_snapshot(snapshot)
        if resume:
            directory.mark("running", resumed_at=utc_now().isoformat())
        else:
            directory.mark("running", strategy=spec.name, started_at=utc_now().isoformat())
    except OSError as exc:
        raise RunDirectoryError(write_failure(exc, directory.path)) from exc


def _run(
    loaded: LoadedStrategy,
    context: TrainingContext,
    section: BaseModel,
    directory: RunDirectory,
    sink: MetricsSink,
) -> TrainingResultDTO:
    """The strategy's `run`, its result checked; any failure recorded in run.json."""
    spec, log = loaded.spec, context.log
    try:
        with sink:
            result = loaded.strategy.run(context, section)
        return accept_result(spec, result, directory, sink)
    except KeyboardInterrupt:
        directory.try_mark("interrupted", log, error="interrupted by the user (Ctrl-C or SIGINT)")
        raise
    except TownletError as exc:
        directory.try_mark("error", log, error=str(exc))
        raise
    except OSError as exc:
        message = f"strategy '{spec.name}': {write_failure(exc, directory.path)}"
        directory.try_mark("error", log, error=message)
        raise RunDirectoryError(message) from exc
    except Exception as exc:
        message = f"strategy '{spec.name}' failed: {type(exc).__name__}: {exc}"
        directory.try_mark("error", log, error=message)
        raise StrategyRunError(message) from exc


def _follow(
    loaded: LoadedStrategy, context: TrainingContext, section: BaseModel
) -> TrainingResultDTO:
    """A rank other than 0: the strategy runs as on rank 0 (whose result it returns, the
    ranks being in step) and nothing is written; rank 0 records and commits the run."""
    spec = loaded.spec
    result = _guarded(spec, lambda: loaded.strategy.run(context, section))
    if not isinstance(result, TrainingResultDTO):
        raise StrategyRunError(
            f"strategy '{spec.name}' returned {type(result).__name__}, not a TrainingResultDTO"
        )
    return result


def _commit(
    loaded: LoadedStrategy,
    context: TrainingContext,
    section: BaseModel,
    result: TrainingResultDTO,
    directory: RunDirectory,
    services: RunServices,
) -> TrainingResultDTO:
    """result.json, the carried state (top-level runs), after_commit, run.json: in that
    order, with Ctrl-C and SIGTERM held until all are written."""
    with held_interrupts(services.log) as stop:
        try:
            directory.write_result(result.model_dump_json())
            if context.parent is None:
                services.save_states()
        except OSError as exc:
            message = f"{write_failure(exc, directory.path)}; the run's other files are kept"
            directory.try_mark("error", context.log, error=message)
            raise RunDirectoryError(message) from exc
        if loaded.after_commit is not None:
            result = _after_commit(loaded, context, section, result, directory)
        directory.mark(
            result.status,
            finished_at=utc_now().isoformat(),
            **({"reason": result.status_reason} if result.status_reason else {}),
        )
    if stop and context.parent is not None:
        raise KeyboardInterrupt  # the stage is committed; its parent stops now
    if stop:
        services.log("townlet: the stop came after the run's result was committed; it stands")
    return result


def write_failure(exc: OSError, run_dir: Path) -> str:
    """A write error in words: a full disk is named as such, with the path it hit."""
    where = exc.filename or f"a file under {run_dir}"
    if is_no_space(exc):
        return (
            f"no space left on device at {where}; free space, then continue the run with "
            f"'townlet train --resume {run_dir}' (strategies that checkpoint) or start it again"
        )
    return f"cannot write {where}: {exc.strerror or exc}"


def accept_result(
    spec: StrategySpec, result: object, directory: RunDirectory, sink: MetricsSink
) -> TrainingResultDTO:
    """Check what a strategy returned and add the run directory's own files to its
    artifacts; a named checkpoint must exist inside the run directory."""
    if not isinstance(result, TrainingResultDTO):
        raise StrategyRunError(
            f"strategy '{spec.name}' returned {type(result).__name__}, not a "
            "TrainingResultDTO; build the result with context.run_fields()"
        )
    if result.strategy != spec.name:
        raise StrategyRunError(f"strategy '{spec.name}' returned a result for {result.strategy!r}")
    if result.checkpoint is not None and not (directory.path / result.checkpoint).exists():
        raise StrategyRunError(
            f"strategy '{spec.name}' returned checkpoint {result.checkpoint!r}, which does not "
            f"exist in {directory.path}; set result.checkpoint to the path (relative to the run "
            "directory) of the policy it saved, or None"
        )
    artifacts = {
        "config": directory.relative(directory.config_path),
        "status": directory.relative(directory.status_path),
        "result": directory.relative(directory.result_path),
    }
    if sink.files:
        artifacts["metrics"] = directory.relative(directory.metrics_path)
    if result.checkpoint is not None:
        artifacts["checkpoint"] = result.checkpoint
    artifacts.update(result.artifacts)
    return result.model_copy(update={"artifacts": artifacts})


def _after_commit(
    loaded: LoadedStrategy,
    context: TrainingContext,
    section: BaseModel,
    result: TrainingResultDTO,
    directory: RunDirectory,
) -> TrainingResultDTO:
    """The strategy's step after result.json is committed; a result it returns replaces
    result.json. A failure here is recorded with the run's own state (its result stands)."""
    assert loaded.after_commit is not None
    try:
        updated = loaded.after_commit(context, section, result)
    except (TownletError, KeyboardInterrupt) as exc:
        directory.try_mark(
            result.status, context.log, after_commit_error=str(exc) or type(exc).__name__
        )
        raise
    except Exception as exc:
        message = (
            f"strategy '{loaded.spec.name}': the run finished and its result is committed, "
            f"but its after-commit step failed: {type(exc).__name__}: {exc}"
        )
        directory.try_mark(result.status, context.log, after_commit_error=message)
        raise StrategyRunError(message) from exc
    if updated is None:
        return result
    if not isinstance(updated, TrainingResultDTO):
        raise StrategyRunError(
            f"strategy '{loaded.spec.name}': after_commit returned {type(updated).__name__}, "
            "not a TrainingResultDTO or None"
        )
    directory.write_result(updated.model_dump_json())
    return updated


def _guarded(spec: StrategySpec, step: Callable[[], T]) -> T:
    """Run a strategy step and return what it returns; a bug in it becomes a
    StrategyRunError naming the strategy."""
    try:
        return step()
    except (TownletError, KeyboardInterrupt):
        raise
    except Exception as exc:
        raise StrategyRunError(
            f"strategy '{spec.name}' failed: {type(exc).__name__}: {exc}"
        ) from exc
