"""State a strategy carries from one run to the next (counters, baselines), per strategy name.

Kept in one JSON file beside the run directories (`RUNS_ROOT/state.json`). Updates are
read-modify-write under a file lock and replaced atomically, so two runs finishing together
lose nothing and a crash never leaves a half-written file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from townlet_core.atomic import atomic_write_json, file_lock
from townlet_core.errors import ConfigError

STATE_FILE = "state.json"


class StateStore:
    """Namespaced JSON state, one namespace per strategy."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_path = path.with_name(path.name + ".lock")

    def _read(self) -> dict[str, Any]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(
                f"{self.path}: cannot read carried-over run state ({exc}); "
                "fix or delete the file to start afresh"
            ) from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{self.path}: run state must be a JSON object; delete it to reset")
        return data

    def load(self, namespace: str) -> dict[str, Any]:
        """A copy of one namespace (empty if never saved)."""
        value = self._read().get(namespace, {})
        return dict(value) if isinstance(value, dict) else {}

    def update(
        self, namespace: str, change: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> dict[str, Any]:
        """Apply `change` to the namespace's latest content under the lock; return the result."""
        with file_lock(self._lock_path):
            data = self._read()
            current = data.get(namespace, {})
            data[namespace] = change(dict(current) if isinstance(current, dict) else {})
            atomic_write_json(self.path, data)
            return dict(data[namespace])

    def save(self, namespace: str, value: dict[str, Any]) -> None:
        """Replace one namespace, leaving the others untouched."""
        self.update(namespace, lambda _old: dict(value))
