"""The core's own tracker plugin: registers `tensorboard` and `mlflow` (imports neither)."""

from __future__ import annotations

from townlet_core.contract.hookspecs import hookimpl
from townlet_core.contract.tracker import TrackerCollector, TrackerSpec


@hookimpl
def townlet_register_trackers(trackers: TrackerCollector) -> None:
    trackers.add(
        TrackerSpec(
            name="tensorboard",
            summary="TensorBoard event files in RUN_DIR/tensorboard (a stage's in a subfolder)",
            factory="townlet_core.trackers.tensorboard_tracker:TensorBoardTracker",
            requires=("tensorboard",),
            install="pip install 'townlet-core[tensorboard]'",
        )
    )
    trackers.add(
        TrackerSpec(
            name="mlflow",
            summary="MLflow runs (track_uri, MLFLOW_TRACKING_URI, or RUNS_ROOT/mlruns)",
            factory="townlet_core.trackers.mlflow_tracker:MlflowTracker",
            requires=("mlflow",),
            install="pip install 'townlet-core[mlflow]'",
        )
    )
