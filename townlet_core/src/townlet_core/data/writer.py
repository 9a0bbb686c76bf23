"""`DatasetWriter`: append trajectories to a folder that is a valid dataset after every one.

Each trajectory is written atomically (`.npz` and `.json`) and the folder's `manifest.json`
is rewritten atomically to list it, at most once per `flush_interval` seconds (rewriting a
growing manifest after every trajectory would cost time quadratic in its length) and always
on `flush()`/`close()`. A capture interrupted by Ctrl-C flushes and so lists every complete
trajectory; a hard kill can leave the last second's trajectories on disk but unlisted. The
folder is never left with a half-written file.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from townlet_core.atomic import atomic_write_json
from townlet_core.data.manifest import MANIFEST_NAME, write_manifest
from townlet_core.data.npz import write_sample
from townlet_core.data.stats import sample_metrics
from townlet_core.data.trajectory import Trajectory
from townlet_core.errors import DataError


class DatasetWriter:
    """Write trajectories as `PREFIX_NNNNN.npz` + `.json` and keep `manifest.json` current."""

    def __init__(
        self,
        directory: Path,
        *,
        prefix: str = "traj",
        metadata: Mapping[str, Any] | None = None,
        compress: bool = True,
        flush_interval: float = 1.0,
    ) -> None:
        self.directory = directory
        self.prefix = prefix
        self.metadata = dict(metadata or {})
        self.compress = compress
        self.flush_interval = flush_interval
        self._samples: list[dict[str, Any]] = []
        self._listed = 0
        self._last_flush = -math.inf
        if (directory / self.manifest_name).exists():
            raise DataError(
                f"{directory}: already holds a dataset ({self.manifest_name}); choose another "
                "--out folder or remove it"
            )
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def count(self) -> int:
        return len(self._samples)

    @property
    def manifest_name(self) -> str:
        return MANIFEST_NAME

    @property
    def manifest_path(self) -> Path:
        return self.directory / self.manifest_name

    def _stem(self, trajectory: Trajectory) -> str:
        return f"{self.prefix}_{len(self._samples):05d}"

    def _entry(
        self, trajectory: Trajectory, sample: Path, meta: Path, metrics: dict[str, float]
    ) -> dict[str, Any]:
        return {"sample": sample.name, "meta": meta.name, "metrics": metrics}

    def add(self, trajectory: Trajectory) -> Path:
        """Write one trajectory and list it; returns the `.npz` path."""
        stem = self._stem(trajectory)
        metrics = sample_metrics(trajectory)
        trajectory.metadata["metrics"] = metrics
        sample_path, meta_path = write_sample(
            self.directory, stem, trajectory, compress=self.compress
        )
        self._samples.append(self._entry(trajectory, sample_path, meta_path, metrics))
        if time.monotonic() - self._last_flush >= self.flush_interval:
            self.flush()
        return sample_path

    def flush(self) -> None:
        """Rewrite the manifest (atomically) to list every trajectory written so far."""
        if self._samples:
            self._write_listing()
            self._listed = len(self._samples)
        self._last_flush = time.monotonic()

    def _write_listing(self) -> None:
        write_manifest(self.manifest_path, self._samples, self.metadata)

    def close(self) -> None:
        if self._listed != len(self._samples):
            self.flush()

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def update_metadata(self, **values: Any) -> None:
        """Change the manifest's metadata (e.g. final counts) and rewrite it."""
        self.metadata.update(values)
        self.flush()


class AgentCaptureWriter(DatasetWriter):
    """A multi-agent capture in the original Townlet capture layout, a trajectory per agent
    episode (`scripts/capture_rollout.py` of the original tools):

        <prefix>_<agent>_<NNN>.npz / .json   NNN counts every trajectory from 001
        <prefix>_manifest.json               {metadata, samples: [{sample, meta, agent_id,
                                              frame_count}]}
        <prefix>_metrics.json                {metadata, samples: {<npz name>: metrics}}

    Each `.json` carries the sample's metadata plus `agent_id`, `frame_count`, `metrics`
    and `capture_metadata` (the capture settings), as the original's did. The readers here
    open the folder (`read_capture_dir`), and so did the original's `from_capture_dir`
    for the default prefix `rollout_sample`.
    """

    def __init__(
        self,
        directory: Path,
        *,
        prefix: str = "rollout_sample",
        metadata: Mapping[str, Any] | None = None,
        compress: bool = True,
        flush_interval: float = 1.0,
    ) -> None:
        super().__init__(
            directory,
            prefix=prefix,
            metadata=metadata,
            compress=compress,
            flush_interval=flush_interval,
        )

    @property
    def manifest_name(self) -> str:
        return f"{self.prefix}_manifest.json"

    @property
    def metrics_path(self) -> Path:
        return self.directory / f"{self.prefix}_metrics.json"

    def _stem(self, trajectory: Trajectory) -> str:
        agent = str(trajectory.metadata.get("agent_id", "agent"))
        if not agent or any(c in agent for c in "/\\\0") or agent in {".", ".."}:
            raise DataError(f"agent id {agent!r} cannot be part of a file name")
        trajectory.metadata.setdefault("frame_count", trajectory.timesteps)
        trajectory.metadata["capture_metadata"] = dict(self.metadata)
        return f"{self.prefix}_{agent}_{len(self._samples) + 1:03d}"

    def _entry(
        self, trajectory: Trajectory, sample: Path, meta: Path, metrics: dict[str, float]
    ) -> dict[str, Any]:
        return {
            "sample": sample.name,
            "meta": meta.name,
            "agent_id": trajectory.metadata.get("agent_id"),
            "frame_count": trajectory.timesteps,
            "metrics": metrics,
        }

    def _write_listing(self) -> None:
        listed = [{k: v for k, v in entry.items() if k != "metrics"} for entry in self._samples]
        metrics = {entry["sample"]: entry["metrics"] for entry in self._samples}
        # the metrics file first: a listed sample always has its metrics on disk
        atomic_write_json(self.metrics_path, {"metadata": self.metadata, "samples": metrics})
        write_manifest(self.manifest_path, listed, self.metadata)
