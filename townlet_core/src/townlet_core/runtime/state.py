"""State a strategy carries from one run to the next (counters, baselines), per strategy name.

Kept in one JSON file beside the run directories (`RUNS_ROOT/state.json`). Updates are
read-modify-write under a file lock and replaced atomically, so a crash never leaves a
half-written file. A run saves its *changes* (`merge`): an integer (a counter) it moved
from 10 to 12 adds 2 to whatever the file holds now, so three runs that each count 1,979
steps in parallel leave 5,937, as three runs one after another do; any other value it
changed (a float baseline, a string) replaces what is there, the last run to finish winning.
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

    def merge(self, namespace: str, base: dict[str, Any], value: dict[str, Any]) -> None:
        """Save the changes a run made (`base`, as it read the namespace, to `value`) into
        the namespace's current content, which concurrent runs may have changed meanwhile."""
        self.update(namespace, lambda current: three_way_merge(base, value, current))

    def save(self, namespace: str, value: dict[str, Any]) -> None:
        """Replace one namespace, leaving the others untouched."""
        self.update(namespace, lambda _old: dict(value))


def _is_number(value: Any) -> bool:
    """Counters: integers (floats are measurements, replaced rather than added)."""
    return isinstance(value, int) and not isinstance(value, bool)


def three_way_merge(base: dict[str, Any], mine: dict[str, Any], theirs: dict[str, Any]) -> Any:
    """`theirs` with the changes from `base` to `mine` applied: integers by their difference
    (counters add up), nested mappings key by key, anything else replaced when it changed.
    A key this run removed is removed; keys only `theirs` has are kept."""
    merged = dict(theirs)
    for key in base.keys() - mine.keys():
        merged.pop(key, None)
    for key, value in mine.items():
        if key in base and base[key] == value:
            continue  # unchanged by this run: keep what is there now
        old, now = base.get(key), theirs.get(key)
        if _is_number(value) and _is_number(old) and _is_number(now):
            merged[key] = now + (value - old)
        elif isinstance(value, dict) and isinstance(now, dict):
            merged[key] = three_way_merge(old if isinstance(old, dict) else {}, value, now)
        elif _is_number(value) and key not in base and _is_number(now):
            merged[key] = now + value  # both runs started the counter from nothing
        else:
            merged[key] = value
    return merged
