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
        if (directory / MANIFEST_NAME).exists():
            raise DataError(
                f"{directory}: already holds a dataset ({MANIFEST_NAME}); choose another --out "
                "folder or remove it"
            )
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def count(self) -> int:
        return len(self._samples)

    @property
    def manifest_path(self) -> Path:
        return self.directory / MANIFEST_NAME

    def add(self, trajectory: Trajectory) -> Path:
        """Write one trajectory and list it; returns the `.npz` path."""
        stem = f"{self.prefix}_{len(self._samples):05d}"
        metrics = sample_metrics(trajectory)
        trajectory.metadata["metrics"] = metrics
        sample_path, meta_path = write_sample(
            self.directory, stem, trajectory, compress=self.compress
        )
        self._samples.append(
            {"sample": sample_path.name, "meta": meta_path.name, "metrics": metrics}
        )
        if time.monotonic() - self._last_flush >= self.flush_interval:
            self.flush()
        return sample_path

    def flush(self) -> None:
        """Rewrite `manifest.json` (atomically) to list every trajectory written so far."""
        if self._samples:
            write_manifest(self.manifest_path, self._samples, self.metadata)
            self._listed = len(self._samples)
        self._last_flush = time.monotonic()

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
