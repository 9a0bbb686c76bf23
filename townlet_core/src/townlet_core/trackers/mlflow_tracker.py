"""`--track mlflow`: one MLflow run per townlet run, a nested one per stage.

Where: the run setting `track_uri` (`--set track_uri=http://host:5000`), else the
`MLFLOW_TRACKING_URI` environment variable, else a local store in `RUNS_ROOT/mlruns/`
(`mlflow.db`, MLflow's SQLite store, and `artifacts/`; MLflow 3 keeps its plain-file store
for old data only): `mlflow ui --backend-store-uri sqlite:///runs/mlruns/mlflow.db`. The
experiment is `MLFLOW_EXPERIMENT_NAME`, else `townlet`.

What: the config flattened to parameters (`ppo.learning_rate`), every number of each
metrics line as a metric at the line's step (its index in metrics.jsonl), the checkpoint
and result.json as artifacts, and the end state (succeeded -> FINISHED, failed or error ->
FAILED, interrupted -> KILLED; the tag `townlet.state` has townlet's own word), with the
result's numbers as `result.NAME` metrics. Uses
`MlflowClient` only, never MLflow's global active run, so it touches no state of the
process beyond its own client.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from townlet_core.contract.hookspecs import hookimpl
from townlet_core.trackers.values import flat_config, scalars

if TYPE_CHECKING:
    from townlet_core.dto import TrainingResultDTO

EXPERIMENT = "townlet"
STORE = "mlruns"
#: MLflow's limits: entries per `log_batch` call, and a parameter value's length.
PARAMS_PER_BATCH, METRICS_PER_BATCH, PARAM_LENGTH = 100, 1000, 6000
#: The kinds of artifact copied into MLflow (the others are MLflow's own data already).
COPIED = ("checkpoint", "result")
STATUS = {"succeeded": "FINISHED", "failed": "FAILED", "error": "FAILED", "interrupted": "KILLED"}

#: What MLflow refuses in a parameter or metric name (a free-form mapping's keys may hold it).
_NOT_IN_NAMES = re.compile(r"[^\w./\- ]")

T = TypeVar("T")


def _name(key: str) -> str:
    return _NOT_IN_NAMES.sub("_", key)[:250]


def _chunks(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def store(config: Mapping[str, Any]) -> tuple[str, str | None]:
    """The tracking URI for a run with `config`, and the artifact location of a local store
    (None for a store the user named: it has its own)."""
    named = config.get("track_uri") or os.environ.get("MLFLOW_TRACKING_URI")
    if named:
        return str(named), None
    folder = Path(str(config.get("runs_root", "runs"))).resolve() / STORE
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}", (folder / "artifacts").as_uri()


class MlflowTracker:
    """The MLflow runs of one tracked top-level run and its stages."""

    def __init__(self) -> None:
        self._client: MlflowClient | None = None
        self._experiment = ""
        self._runs: dict[Path, str] = {}
        self._top: str | None = None

    def _connect(self, config: Mapping[str, Any]) -> MlflowClient:
        uri, artifacts = store(config)
        client = MlflowClient(tracking_uri=uri)
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or EXPERIMENT
        found = client.get_experiment_by_name(name)
        if found is None:
            try:
                self._experiment = client.create_experiment(name, artifact_location=artifacts)
            except MlflowException:  # another run created it meanwhile
                found = client.get_experiment_by_name(name)
                if found is None:
                    raise
        if found is not None:
            self._experiment = found.experiment_id
        return client

    @hookimpl
    def townlet_run_started(
        self, run_dir: Path, config: Mapping[str, Any], strategy: str, stage: str | None
    ) -> None:
        if self._client is None:
            self._client = self._connect(config)
        tags = {"townlet.strategy": strategy, "townlet.run_dir": str(run_dir)}
        if stage is not None and self._top is not None:
            tags.update({"mlflow.parentRunId": self._top, "townlet.stage": stage})
        run = self._client.create_run(self._experiment, run_name=stage or run_dir.name, tags=tags)
        self._runs[run_dir] = run.info.run_id
        if stage is None:
            self._top = run.info.run_id
        params = [Param(_name(k), str(v)[:PARAM_LENGTH]) for k, v in flat_config(config).items()]
        for chunk in _chunks(params, PARAMS_PER_BATCH):
            self._client.log_batch(run.info.run_id, params=chunk)

    @hookimpl
    def townlet_metrics_recorded(
        self,
        run_dir: Path,
        lines: Sequence[Mapping[str, Any]],
        first_step: int,
        times: Sequence[float],
    ) -> None:
        assert self._client is not None
        metrics = [
            Metric(_name(key), value, int(wall_time * 1000), step)
            for step, (line, wall_time) in enumerate(zip(lines, times, strict=True), first_step)
            for key, value in scalars(line).items()
        ]
        for chunk in _chunks(metrics, METRICS_PER_BATCH):
            self._client.log_batch(self._runs[run_dir], metrics=chunk)

    @hookimpl
    def townlet_artifact_written(self, run_dir: Path, path: Path, kind: str) -> None:
        assert self._client is not None
        if kind not in COPIED:
            return
        if path.is_dir():
            self._client.log_artifacts(self._runs[run_dir], str(path), artifact_path=path.name)
        else:
            self._client.log_artifact(self._runs[run_dir], str(path))

    @hookimpl
    def townlet_run_finished(
        self, run_dir: Path, state: str, result: TrainingResultDTO | None
    ) -> None:
        run_id = self._runs.pop(run_dir, None)
        if self._client is None or run_id is None:
            return
        end = int(time.time() * 1000)
        if result is not None:  # its numbers, to compare runs by (`result.eval_mean_return`)
            numbers = scalars(result.model_dump(mode="json"), "result.")
            metrics = [Metric(_name(key), value, end, 0) for key, value in numbers.items()]
            for chunk in _chunks(metrics, METRICS_PER_BATCH):
                self._client.log_batch(run_id, metrics=chunk)
        self._client.set_tag(run_id, "townlet.state", state)
        self._client.set_terminated(run_id, STATUS.get(state, "FAILED"), end_time=end)
