"""The run directory: every run's config snapshot, status, metrics and result in one folder.

Layout (strategies add their own artifacts beside these):

    config.json    resolved config, seed, device, command line and package versions
    run.json       state: running -> succeeded | failed | error | interrupted (with the reason)
    metrics.jsonl  one line per logged step (rotated to metrics.jsonl.1, ... if configured)
    result.json    the strategy's result DTO, written last
"""

from __future__ import annotations

import json
import platform
import secrets
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from townlet_core.__about__ import __version__
from townlet_core.atomic import atomic_write_json
from townlet_core.errors import RunDirectoryError
from townlet_core.runtime.config import RunConfig

RunState = Literal["running", "succeeded", "failed", "error", "interrupted"]

CONFIG_FILE = "config.json"
STATUS_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
RESULT_FILE = "result.json"


def utc_now() -> datetime:
    return datetime.now(UTC)


def package_versions(distributions: list[str]) -> dict[str, str | None]:
    """Versions of the packages that shape a run, read from metadata (torch is not imported)."""
    versions: dict[str, str | None] = {
        "python": platform.python_version(),
        "townlet-core": __version__,
    }
    for name in [*distributions, "numpy", "pydantic", "gymnasium", "torch"]:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions.setdefault(name, None)
    return versions


class RunDirectory:
    """A created run directory and the files the orchestrator writes into it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @staticmethod
    def choose(path: Path | None, *, runs_root: Path, strategy: str) -> Path:
        """The run directory to use, checked but not created yet.

        None gives a fresh `runs_root/STRATEGY-YYYYmmdd-HHMMSS-xxxx`. An existing, non-empty
        `path` is refused: a run never overwrites another run.
        """
        if path is None:
            stamp = utc_now().strftime("%Y%m%d-%H%M%S")
            path = runs_root / f"{strategy}-{stamp}-{secrets.token_hex(2)}"
        if path.exists():
            if not path.is_dir():
                raise RunDirectoryError(f"run directory {path} exists and is not a directory")
            if any(path.iterdir()):
                raise RunDirectoryError(
                    f"run directory {path} already exists and is not empty; "
                    "choose another --run-dir or remove it"
                )
        return path

    @classmethod
    def create(cls, path: Path) -> RunDirectory:
        """Create a directory chosen by `choose` (after the strategy's checks passed)."""
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunDirectoryError(f"cannot create run directory {path}: {exc}") from exc
        return cls(path)

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def result_path(self) -> Path:
        return self.path / RESULT_FILE

    @property
    def status_path(self) -> Path:
        return self.path / STATUS_FILE

    def write_snapshot(self, snapshot: dict[str, Any]) -> None:
        atomic_write_json(self.config_path, snapshot)

    def read_snapshot(self) -> dict[str, Any]:
        """The run's config snapshot (`config.json`), or RunDirectoryError saying what is
        wrong with it (missing, unreadable, not a snapshot)."""
        if not self.config_path.exists():
            raise RunDirectoryError(
                f"{self.path}: not a run directory (no {self.config_path.name}); pass the "
                "folder 'townlet train' created"
            )
        snapshot = _read_json(self.config_path)
        if not isinstance(snapshot.get("config"), dict) or not snapshot.get("strategy"):
            raise RunDirectoryError(
                f"{self.config_path}: not a townlet config snapshot (no strategy or config)"
            )
        return snapshot

    def read_snapshot_to_resume(self) -> dict[str, Any]:
        """The config snapshot of a stopped run, or RunDirectoryError saying why it cannot be
        resumed (not a run directory, unreadable, or already finished)."""
        snapshot = self.read_snapshot()
        state = _read_json(self.status_path).get("state", "") if self.status_path.exists() else ""
        if state in ("succeeded", "failed"):
            raise RunDirectoryError(
                f"{self.path}: this run already finished ({state}); start a new run instead"
            )
        return snapshot

    def mark(self, state: RunState, **details: Any) -> None:
        """Record the run's state (and, on failure, the one-line reason) in run.json."""
        status: dict[str, Any] = {}
        if self.status_path.exists():
            status = _read_json(self.status_path)
        status.update(details)
        status["state"] = state
        status["updated_at"] = utc_now().isoformat()
        atomic_write_json(self.status_path, status)

    def write_result(self, result_json: str) -> None:
        atomic_write_json(self.result_path, json.loads(result_json))

    def relative(self, path: Path) -> str:
        """`path` relative to the run directory, for a result's `artifacts`."""
        try:
            return path.resolve().relative_to(self.path.resolve()).as_posix()
        except ValueError:
            return str(path)


def command_line() -> list[str]:
    return list(sys.argv)


def run_snapshot(config: RunConfig, providers: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """What `config.json` records: the resolved config, seed, device, where they came from,
    who provided each strategy (`{name: (distribution, version)}`), package versions and the
    command line. Enough to repeat the run, and to tell two runs' evidence apart."""
    return {
        "strategy": config.strategy,
        "seed": config.run.seed,
        "device": config.run.device,
        "config": config.snapshot(),
        "config_source": config.source,
        "overrides": list(config.overrides),
        "strategies": {
            name: {"distribution": dist, "version": version}
            for name, (dist, version) in providers.items()
        },
        "versions": package_versions([dist for dist, _version in providers.values()]),
        "command": command_line(),
        "created_at": utc_now().isoformat(),
    }


def _read_json(path: Path) -> dict[str, Any]:
    """A run file as a mapping, or RunDirectoryError naming the damaged file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunDirectoryError(
            f"{path}: unreadable ({exc}); the run directory is damaged, start a new run"
        ) from exc
    if not isinstance(data, dict):
        raise RunDirectoryError(f"{path}: expected a JSON object; the run directory is damaged")
    return data
