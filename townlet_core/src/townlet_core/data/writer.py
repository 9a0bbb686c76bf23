"""`DatasetWriter`: append trajectories to a folder that is a valid dataset after every one.

Each trajectory is written atomically (`.npz` and `.json`), then the folder's
`manifest.json` is rewritten atomically to list it. An interrupted capture therefore leaves a
readable dataset of every complete trajectory and never a half-written file.
"""

from __future__ import annotations

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
    ) -> None:
        self.directory = directory
        self.prefix = prefix
        self.metadata = dict(metadata or {})
        self.compress = compress
        self._samples: list[dict[str, Any]] = []
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
        write_manifest(self.manifest_path, self._samples, self.metadata)
        return sample_path

    def update_metadata(self, **values: Any) -> None:
        """Change the manifest's metadata (e.g. final counts) and rewrite it."""
        self.metadata.update(values)
        if self._samples:
            write_manifest(self.manifest_path, self._samples, self.metadata)
