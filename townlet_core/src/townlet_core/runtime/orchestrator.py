"""`Orchestrator`, the façade `townlet train` calls: `Orchestrator().run("cem", seed=1)`.
The jobs live beside it: `registry` loads strategies, `config` validates, `run_dir` snapshots
and checks resumes, `execution` runs and commits one run, `composition` runs stages."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import IO, Any

from townlet_core.contract.world import World
from townlet_core.dto import TrainingResultDTO
from townlet_core.errors import ConfigError
from townlet_core.runtime.composition import StageRunner
from townlet_core.runtime.config import RunConfig
from townlet_core.runtime.execution import RunServices, execute
from townlet_core.runtime.launch import check_distributed
from townlet_core.runtime.planning import configure, plan_run
from townlet_core.runtime.progress import Progress, progress_wanted, write_line
from townlet_core.runtime.registry import LoadedStrategy, StrategyRegistry
from townlet_core.runtime.run_dir import RunDirectory, check_output_location, run_snapshot
from townlet_core.runtime.state import STATE_FILE, StateStore


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
        world: World | None = None,
    ) -> None:
        self.registry = registry if registry is not None else StrategyRegistry()
        #: This process's rank under torchrun (rank 0 of 1 otherwise); only rank 0 writes
        #: files, logs and shows progress.
        self.world = world if world is not None else World.from_environ()
        self.quiet = quiet = quiet or not self.world.is_writer
        self._stream = progress_stream or sys.stderr
        self._progress = progress_wanted(quiet, self._stream) if progress is None else progress
        self._progress = self._progress and self.world.is_writer
        self._log = log or (lambda message: write_line(message, sys.stderr))  # above any bar
        #: The run directory of the latest run (kept even when the run failed).
        self.last_run_dir: Path | None = None

    def run(
        self,
        strategy: str | None = None,
        *,
        config: Path | str | Mapping[str, Any] | None = None,
        overrides: Sequence[str] = (),
        seed: int | None = None,
        device: str | None = None,
        run_dir: Path | str | None = None,
        nproc: int | None = None,
    ) -> TrainingResultDTO:
        """Run one strategy and return its result DTO (also written to `result.json`).

        `config` is a YAML/TOML/JSON file or a mapping shaped like one; `overrides` are
        `a.b=value` strings; `seed`, `device`, `run_dir` and `nproc` win over both. Without
        a seed anywhere, one is drawn and recorded in `config.json`. This process is one
        rank: `nproc` above 1 needs torchrun's ranks (`townlet train --nproc` starts them).
        """
        options = {"seed": seed, "device": device, "run_dir": run_dir, "nproc": nproc}
        run_config, loaded = self.plan(strategy, config=config, overrides=overrides, **options)
        name, settings = run_config.strategy, run_config.run
        path = settings.run_dir
        if self.world.is_writer:
            path = RunDirectory.choose(path, runs_root=settings.runs_root, strategy=name)
            check_output_location(path.parent, "the run directory's parent folder")
        assert path is not None  # a rank other than 0 has the one shared_run_config set
        providers = {n: (s.distribution, s.version) for n, s in loaded.items()}
        snapshot = run_snapshot(run_config, providers)
        return self._run_top(loaded[name], run_config, path, snapshot=snapshot)

    def plan(
        self, strategy: str | None = None, **options: Any
    ) -> tuple[RunConfig, dict[str, LoadedStrategy]]:
        """What `run(strategy, **options)` would run, checked, with nothing written."""
        return plan_run(self.registry, self.world, strategy, **options)

    def resume(self, run_dir: Path | str) -> TrainingResultDTO:
        """Continue a stopped run in its own directory, from its latest checkpoint.

        The run's recorded config, seed and device are used unchanged, so the continued run
        equals one that was never interrupted. Only strategies whose spec declares
        `supports_resume=True` can do this. The run's lock is held from the first read, and
        its carried state goes to the runs root it lives in (never one its files name).
        """
        path = Path(run_dir)
        with RunDirectory(path).lock().held() if self.world.is_writer else nullcontext():
            snapshot = RunDirectory(path).read_snapshot_to_resume()
            name = str(snapshot["strategy"])
            loaded = self.registry.load_with_requirements(name)
            if not loaded[name].spec.supports_resume:
                raise ConfigError(
                    f"strategy '{name}' cannot resume a stopped run; start a new run instead"
                )
            data = RunDirectory(path).resume_config(snapshot)
            run_config = configure(self.registry, name, loaded, data=data)
            check_distributed(loaded[name].spec, run_config.run.nproc, self.world)
            return self._run_top(loaded[name], run_config, path, resume=True)

    def _run_top(
        self,
        loaded: LoadedStrategy,
        run_config: RunConfig,
        path: Path,
        *,
        snapshot: dict[str, Any] | None = None,
        resume: bool = False,
    ) -> TrainingResultDTO:
        """Run (or resume) a top-level run; its commit saves the state strategies carried."""
        services = RunServices(
            registry=self.registry,
            store=StateStore(run_config.run.runs_root / STATE_FILE),
            progress=self._make_progress,
            log=self._info,
            world=self.world,
        )
        section = run_config.section(loaded.spec.name)
        check_output_location(run_config.run.runs_root, f"the runs root (for {STATE_FILE})")
        try:
            result = execute(
                loaded,
                section,
                run_config,
                path,
                services,
                StageRunner(services),
                snapshot=snapshot,
                resume=resume,
            )
        finally:
            if path.is_dir():
                self.last_run_dir = path
        return result

    def _make_progress(self, total: int | None, desc: str, **options: Any) -> Progress:
        return Progress(total, desc, enabled=self._progress, stream=self._stream, **options)

    def _info(self, message: str) -> None:
        if not self.quiet:
            self._log(message)
