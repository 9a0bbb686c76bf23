"""`Tracking`: the trackers of one top-level run (`townlet train --track NAME`) and its stages.

`execution` opens a `TrackedRun` for the top-level run and for every stage, and calls it as
the run goes: `started`, then `finished` (its artifacts and end state) or `failed`; the run's
`MetricsSink` hands it each line it writes (`tap`). Trackers are plugins (`tracker_registry`);
each run hook goes to every tracker of the run (see `contract/hookspecs.py`).

A tracker can neither fail nor slow the run:

- the run's thread only appends to a queue: a metrics line costs one append;
- a pump thread turns the lines into batches (`BATCH_LINES` lines, or what came within
  `FLUSH_SECONDS`) and hands every call to each tracker's bounded queue;
- each tracker runs on a daemon thread of its own; one that raises, falls `QUEUE_CALLS`
  calls behind, or stays in one call for `HUNG_SECONDS` is switched off for the rest of the
  run, with one warning on stderr naming it and what to do;
- at the end the run waits for its trackers only while they make progress: at most
  `FINISH_STALL_SECONDS` without a call returning (a tracker still importing its library
  is making progress), and `FINISH_MAX_SECONDS` in all.
"""

from __future__ import annotations

import contextlib
import functools
import json
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy
from pydantic import BaseModel

from townlet_core.contract.hookspecs import PROJECT_NAME, TownletHookSpecs
from townlet_core.contract.spec import import_object
from townlet_core.contract.tracker import TrackerSpec
from townlet_core.contract.world import World

if TYPE_CHECKING:
    from townlet_core.dto import TrainingResultDTO
    from townlet_core.runtime.config import RunConfig, RunSettings
    from townlet_core.runtime.registry import StrategyRegistry

BATCH_LINES = 256
FLUSH_SECONDS = 1.0
QUEUE_CALLS = 1024
HUNG_SECONDS = 30.0
FINISH_STALL_SECONDS = 5.0
FINISH_MAX_SECONDS = 30.0
#: What a warning adds: how to get the run tracked, or run without the tracker.
ADVICE = (
    "check its settings (mlflow: track_uri or MLFLOW_TRACKING_URI) and that its server is "
    "reachable, or leave it out of --track / the config's track"
)

STARTING = "starting"
_CALL = object()  # marks a hook call in the event queue (a metrics line is the other kind)
_STOP = None


def _stderr_warning(message: str) -> None:
    print(f"townlet: warning: {message}", file=sys.stderr)


def _brief(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}{'...' if len(text) > 300 else ''}"


def tracker_specs(
    registry: StrategyRegistry, settings: RunSettings, world: World
) -> list[TrackerSpec]:
    """The trackers a run with `settings` asks for, checked before anything runs (an unknown
    name is a ConfigError listing the known ones). Only rank 0 of a data-parallel run, the
    one that writes, tracks."""
    if not settings.track or not world.is_writer:
        return []
    return registry.trackers.check(settings.track)


class _Worker:
    """One tracker on its own thread, fed through a bounded queue of hook calls."""

    def __init__(self, spec: TrackerSpec, warn: Callable[[str], None]) -> None:
        self.spec = spec
        self.calls: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue(QUEUE_CALLS)
        self.done = threading.Event()
        #: Why the tracker is off (None while it is on); `abandoned`: the run stopped waiting.
        self.off: str | None = None
        self.abandoned = False
        self.stopping = False
        self.completed = 0
        #: The hook being called and since when (None between calls).
        self.busy: tuple[str, float] | None = None
        self._warn = warn
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._loop, name=f"townlet-tracker-{spec.name}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    @property
    def starting(self) -> bool:
        """Whether the tracker is still being made (importing its library: local work)."""
        busy = self.busy
        return busy is not None and busy[0] == STARTING

    def submit(self, call: tuple[str, dict[str, Any]]) -> None:
        if self.off is not None:
            return
        busy = self.busy
        if busy is not None and time.monotonic() - busy[1] > HUNG_SECONDS:
            self.turn_off(f"has been stuck in {busy[0]} for over {HUNG_SECONDS:g} s")
            return
        try:
            self.calls.put_nowait(call)
        except queue.Full:
            self.turn_off(f"fell {QUEUE_CALLS} calls behind the run")

    def stop(self) -> None:
        """No more calls: the thread ends once it has made those queued (or skipped them)."""
        self.stopping = True
        with contextlib.suppress(queue.Full):  # a full queue: the thread sees `stopping`
            self.calls.put_nowait(_STOP)

    def turn_off(self, reason: str) -> None:
        with self._lock:
            if self.off is not None or self.abandoned:
                return
            self.off = reason
        self._warn(
            f"tracker '{self.spec.name}' {reason}; it is off for the rest of this run, which "
            f"goes on without it: {ADVICE}"
        )

    def abandon(self, reason: str) -> None:
        with self._lock:
            if self.off is not None or self.abandoned:
                return
            self.abandoned = True
        self._warn(
            f"tracker '{self.spec.name}' {reason}; the run stopped waiting for it, and what it "
            f"had not written is lost: {ADVICE}"
        )

    def _loop(self) -> None:
        hook = self._connect()
        while True:
            try:
                call = self.calls.get(timeout=0.5)
            except queue.Empty:
                if self.stopping:
                    break
                continue
            if call is _STOP or self.abandoned:
                break
            if hook is not None and self.off is None:
                name, kwargs = call
                self.busy = (name, time.monotonic())
                try:
                    getattr(hook, name)(**kwargs)
                except Exception as exc:
                    self.turn_off(f"failed in {name}: {_brief(exc)}")
                self.busy = None
            self.completed += 1
        self.done.set()

    def _connect(self) -> Any:
        """The tracker made by its factory (importing its library: MLflow takes seconds) and
        registered on a plugin manager of its own, whose `hook` calls it alone."""
        self.busy = (STARTING, time.monotonic())
        try:
            plugin = import_object(self.spec.factory)()
            manager = pluggy.PluginManager(PROJECT_NAME)
            manager.add_hookspecs(TownletHookSpecs)
            manager.register(plugin, name=self.spec.name)
            manager.check_pending()
        except Exception as exc:
            self.turn_off(f"could not start ({self.spec.factory}): {_brief(exc)}")
            return None
        finally:
            self.busy = None
        return manager.hook


class Tracking:
    """The trackers of one top-level run; `Tracking()` tracks nothing and costs nothing."""

    def __init__(
        self, specs: list[TrackerSpec] | None = None, warn: Callable[[str], None] | None = None
    ) -> None:
        self._workers = [_Worker(spec, warn or _stderr_warning) for spec in specs or []]
        self._events: deque[tuple[Any, Any, Any, Any]] = deque()
        self._wake = threading.Event()
        self._pump = threading.Thread(target=self._pump_loop, name="townlet-tracking", daemon=True)
        self._top: Path | None = None
        self._closing = False

    @classmethod
    def start(cls, registry: StrategyRegistry, settings: RunSettings, world: World) -> Tracking:
        """The trackers `settings.track` names, checked; nothing runs before a run starts."""
        return cls(tracker_specs(registry, settings, world))

    def open(
        self, path: Path, strategy: str, run_config: RunConfig, section: BaseModel
    ) -> TrackedRun:
        """A run (the first one opened: the top-level run) or a stage in `path`."""
        if not self._workers:
            return TrackedRun(None, path, strategy, None, {})
        if self._top is None:
            self._top = path
            return TrackedRun(self, path, strategy, None, run_config.snapshot())
        try:
            stage = "/".join(path.relative_to(self._top).parts[1::2])  # stages/a/stages/b
        except ValueError:  # not inside the top-level run (a composing strategy's choice)
            stage = path.name
        config = {
            **json.loads(run_config.run.model_dump_json()),
            "strategy": strategy,
            strategy: json.loads(section.model_dump_json()),
        }
        return TrackedRun(self, path, strategy, stage, config)

    def post(self, hook: str, **kwargs: Any) -> None:
        self._events.append((_CALL, hook, kwargs, None))
        self._wake.set()

    def line(self, run: TrackedRun, index: int, line: dict[str, Any]) -> None:
        self._events.append((run, index, line, time.time()))
        if len(self._events) >= BATCH_LINES:
            self._wake.set()

    def begin(self) -> None:
        """Start the pump and each tracker's thread (the top-level run has started)."""
        for worker in self._workers:
            worker.start()
        self._pump.start()

    def close(self) -> None:
        """Hand on what is left and wait for the trackers, as long as they make progress."""
        if not self._pump.is_alive():
            return
        self._closing = True
        self._wake.set()
        self._pump.join()  # never blocks for long: it only hands calls on
        start = time.monotonic()
        waiting = {worker: (worker.completed, start) for worker in self._workers}
        try:
            while waiting:
                now = time.monotonic()
                for worker, (seen, since) in list(waiting.items()):
                    if worker.done.is_set() or worker.off is not None:
                        del waiting[worker]
                    elif worker.completed != seen or worker.starting:
                        waiting[worker] = (worker.completed, now)
                    elif now - since > FINISH_STALL_SECONDS or now - start > FINISH_MAX_SECONDS:
                        busy = worker.busy
                        where = f" (in {busy[0]})" if busy else ""
                        worker.abandon(f"was still busy{where} {now - start:.0f} s after the run")
                        del waiting[worker]
                time.sleep(0.01)
        except KeyboardInterrupt:
            for worker in waiting:
                worker.abandon("was still busy when Ctrl-C stopped the wait for it")

    def _pump_loop(self) -> None:
        while True:
            self._wake.wait(FLUSH_SECONDS)
            self._wake.clear()
            closing = self._closing  # read first: every event posted before it is drained
            self._drain()
            if closing:
                break
        for worker in self._workers:
            worker.stop()

    def _drain(self) -> None:
        """Hand every queued event on, in order, consecutive lines of a run as one batch."""
        batch: _Batch | None = None
        while self._events:
            kind, first, second, third = self._events.popleft()
            if kind is _CALL or batch is None or not batch.continued_by(kind, first):
                if batch is not None:
                    self._hand_on(batch.call())
                batch = None if kind is _CALL else _Batch(kind, first)
            if batch is None:
                self._hand_on((first, second))
            else:
                batch.lines.append(second)
                batch.times.append(third)
        if batch is not None:
            self._hand_on(batch.call())

    def _hand_on(self, call: tuple[str, dict[str, Any]]) -> None:
        for worker in self._workers:
            worker.submit(call)


class _Batch:
    """Consecutive metrics lines of one run, handed on as one call."""

    def __init__(self, run: TrackedRun, first: int) -> None:
        self.run, self.first = run, first
        self.lines: list[dict[str, Any]] = []
        self.times: list[float] = []

    def continued_by(self, run: TrackedRun, index: int) -> bool:
        full = len(self.lines) >= BATCH_LINES
        return run is self.run and index == self.first + len(self.lines) and not full

    def call(self) -> tuple[str, dict[str, Any]]:
        where = {"run_dir": self.run.path, "stage": self.run.stage}
        lines = {"lines": self.lines, "first_step": self.first, "times": self.times}
        return "townlet_metrics_recorded", {**where, **lines}


class TrackedRun:
    """What `execution` tells the trackers about one run or stage (nothing when untracked)."""

    def __init__(
        self,
        tracking: Tracking | None,
        path: Path,
        strategy: str,
        stage: str | None,
        config: dict[str, Any],
    ) -> None:
        self._tracking = tracking
        self.path, self.strategy, self.stage, self.config = path, strategy, stage, config
        self._started = False

    @property
    def tap(self) -> Callable[[int, dict[str, Any]], None] | None:
        """What the run's MetricsSink calls with each line it writes (None: untracked)."""
        return None if self._tracking is None else functools.partial(self._tracking.line, self)

    def started(self) -> None:
        """The run's directory and run.json exist; its trackers start with the top-level run."""
        if self._tracking is None:
            return
        self._started = True
        if self.stage is None:
            self._tracking.begin()
        self._tracking.post(
            "townlet_run_started",
            run_dir=self.path,
            config=self.config,
            strategy=self.strategy,
            stage=self.stage,
        )

    def finished(self, result: TrainingResultDTO) -> TrainingResultDTO:
        """The run is committed: its artifacts, its end, and (top-level) the wait."""
        if self._tracking is not None and self._started:
            for kind, relative in result.artifacts.items():
                if (self.path / relative).exists():
                    self._post("townlet_artifact_written", path=self.path / relative, kind=kind)
            self._post("townlet_run_finished", state=result.status, result=result)
            self._close()
        return result

    def failed(self, error: BaseException) -> None:
        """The run stopped with `error` (it has no result)."""
        if self._tracking is not None and self._started:
            state = "interrupted" if isinstance(error, KeyboardInterrupt) else "error"
            self._post("townlet_run_finished", state=state, result=None)
            self._close()

    def _post(self, hook: str, **kwargs: Any) -> None:
        assert self._tracking is not None
        self._tracking.post(hook, run_dir=self.path, stage=self.stage, **kwargs)

    def _close(self) -> None:
        if self.stage is None and self._tracking is not None:
            self._tracking.close()
