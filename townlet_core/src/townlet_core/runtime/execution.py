"""One run in its run directory, for a top-level run and a composed stage alike.

The order is the contract with strategies: `prepare` (nothing written yet), create the
directory and mark it running, `run`, check the result, commit `result.json` and `run.json`,
and only then the strategy's `after_commit` step (anneal's promotion ledger), so nothing
outside the run directory ever records a run whose result was not committed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from townlet_core.contract.context import Annotator, Services, Stages, TrainingContext
from townlet_core.contract.spec import StrategySpec
from townlet_core.dto import TrainingResultDTO
from townlet_core.errors import ConfigError, RunDirectoryError, StrategyRunError, TownletError
from townlet_core.runtime.config import RunConfig
from townlet_core.runtime.metrics import MetricsSink
from townlet_core.runtime.progress import Progress
from townlet_core.runtime.registry import LoadedStrategy, StrategyRegistry
from townlet_core.runtime.run_dir import METRICS_FILE, RunDirectory, utc_now
from townlet_core.runtime.seeding import seed_everything
from townlet_core.runtime.state import StateStore


@dataclass
class RunServices:
    """What every run of one top-level run shares: the registry, the state carried across
    runs (saved once the top-level run succeeded), the progress display and the log."""

    registry: StrategyRegistry
    store: StateStore
    progress: Callable[[int | None, str], Progress]
    log: Callable[[str], None]
    states: dict[str, dict[str, Any]] = field(default_factory=dict)

    def state_for(self, strategy: str) -> dict[str, Any]:
        if strategy not in self.states:
            self.states[strategy] = self.store.load(strategy)
        return self.states[strategy]

    def save_states(self) -> None:
        for namespace, value in self.states.items():
            self.store.save(namespace, value)


def check_device(spec: StrategySpec, device: str) -> None:
    """A torch-free strategy runs on the CPU; asking it for a GPU is a config error."""
    if not spec.requires_torch and device not in ("auto", "cpu"):
        raise ConfigError(
            f"--device {device}: strategy '{spec.name}' does not use torch and runs on the "
            "CPU; use --device cpu or auto"
        )


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
    """Run `loaded` with `section` in `path` and return its committed result."""
    spec = loaded.spec
    seed = run_config.run.seed
    sink = MetricsSink(
        path / METRICS_FILE, rotate_after=run_config.run.metrics.rotate_after, annotate=annotate
    )
    context = TrainingContext(
        spec=spec,
        strategy_version=loaded.version,
        config=run_config,
        seed=seed,
        device=run_config.run.device,
        run_dir=path,
        metrics=sink,
        services=Services(rng=seed_everything(seed), progress=services.progress),
        state=services.state_for(spec.name),
        stages=stages,
        warm_start=warm_start,
        extras=extras or {},
        parent=parent,
        resume=resume,
        log=services.log,
    )
    _guarded(spec, lambda: loaded.strategy.prepare(context, section))
    directory = RunDirectory(path) if resume else RunDirectory.create(path)
    if parent is None:
        verb = "resuming" if resume else "running"
        services.log(f"townlet: {verb} '{spec.name}' in {path} (seed {seed})")
    if snapshot is not None:
        directory.write_snapshot(snapshot)
    if resume:
        directory.mark("running", resumed_at=utc_now().isoformat())
    else:
        directory.mark("running", strategy=spec.name, started_at=utc_now().isoformat())
    try:
        with sink:
            result = loaded.strategy.run(context, section)
        result = accept_result(spec, result, directory, sink)
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
    try:
        directory.write_result(result.model_dump_json())
    except OSError as exc:
        message = f"cannot write {directory.result_path}: {exc}; the run's files are kept"
        directory.mark("error", error=message)
        raise RunDirectoryError(message) from exc
    directory.mark(
        result.status,
        finished_at=utc_now().isoformat(),
        **({"reason": result.status_reason} if result.status_reason else {}),
    )
    if loaded.after_commit is not None:
        result = _after_commit(loaded, context, section, result, directory)
    return result


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
    """The strategy's step after the commit; a result it returns replaces result.json."""
    assert loaded.after_commit is not None
    try:
        updated = loaded.after_commit(context, section, result)
    except (TownletError, KeyboardInterrupt) as exc:
        directory.mark(result.status, after_commit_error=str(exc) or type(exc).__name__)
        raise
    except Exception as exc:
        message = (
            f"strategy '{loaded.spec.name}': the run finished and its result is committed, "
            f"but its after-commit step failed: {type(exc).__name__}: {exc}"
        )
        directory.mark(result.status, after_commit_error=message)
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
