"""The run directory: every run's config snapshot, status, metrics and result in one folder.

Layout (strategies add their own artifacts beside these):

    config.json    resolved config, seed, device, command line and package versions
    run.json       state: running -> succeeded | failed | error | interrupted (with the reason)
    metrics.jsonl  one line per logged step (rotated to metrics.jsonl.1, ... if configured)
    result.json    the strategy's result DTO
    .townlet.lock  held (flock) by the one process running or resuming the run

The commit order is result.json, then the carried state and the strategy's after-commit
step, and run.json's final state last; a signal during those writes waits for them (see
`execution`). A run.json still saying `running` whose lock nobody holds is a run that was
stopped without a chance to say so (SIGKILL, power loss, a full disk): `recorded_state`
reports it as `stopped`.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import platform
import secrets
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from townlet_core.__about__ import __version__
from townlet_core.atomic import atomic_write_json
from townlet_core.errors import RunDirectoryError
from townlet_core.runtime.config import RunConfig

RunState = Literal["running", "succeeded", "failed", "error", "interrupted"]
#: What a reader sees: a recorded state, or `stopped` for `running` with nobody running it.
ObservedState = Literal["running", "stopped", "succeeded", "failed", "error", "interrupted", ""]

CONFIG_FILE = "config.json"
STATUS_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
RESULT_FILE = "result.json"
LOCK_FILE = ".townlet.lock"
FINAL_STATES = ("succeeded", "failed")


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
            if any(p.name != LOCK_FILE for p in path.iterdir()):
                raise RunDirectoryError(RunDirectory(path).occupied_message())
        return path

    def occupied_message(self) -> str:
        """Why a new run cannot start in this non-empty directory, and what to do instead."""
        head = f"run directory {self.path} already exists and is not empty"
        if not self.config_path.exists():
            return f"{head}; choose another --run-dir or remove it"
        state = self.recorded_state()
        if state == "running":
            return f"{head}: another process is running it; choose another --run-dir"
        if state in ("stopped", "interrupted", "error"):
            return (
                f"{head}: it holds a {state} run; continue it with 'townlet train --resume "
                f"{self.path}' (strategies that checkpoint), or choose another --run-dir"
            )
        return f"{head}: it holds a finished run ({state or 'no state'}); choose another --run-dir"

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
        state = self.recorded_state()
        if state in FINAL_STATES:
            raise RunDirectoryError(
                f"{self.path}: this run already finished ({state}); start a new run instead"
            )
        return snapshot

    def resume_config(self, snapshot: dict[str, Any]) -> dict[str, Any]:
        """The config a resume runs with: the recorded one, in this directory, with its
        carried state going to `resumed_runs_root`."""
        data = {**snapshot["config"], "run_dir": str(self.path)}
        data["runs_root"] = str(resumed_runs_root(self.path, data.get("runs_root")))
        return data

    def read_status(self) -> dict[str, Any]:
        """run.json as a mapping ({} before the run started), or RunDirectoryError naming it."""
        return _read_json(self.status_path) if self.status_path.exists() else {}

    def recorded_state(self) -> ObservedState:
        """The state run.json records, with `running` read as `stopped` when no process holds
        the run's lock (it was killed before it could record anything)."""
        state = str(self.read_status().get("state", ""))
        if not state and self.config_path.exists():
            state = "running"  # killed between config.json and run.json
        if state == "running" and not RunLock(self._top_level()).held_elsewhere():
            return "stopped"
        return state  # type: ignore[return-value]

    def _top_level(self) -> Path:
        """The run whose lock covers this directory (a stage lives in PARENT/stages/NAME)."""
        path = self.path
        while path.parent.name == "stages" and (path.parent.parent / CONFIG_FILE).exists():
            path = path.parent.parent
        return path

    def mark(self, state: RunState, **details: Any) -> None:
        """Record the run's state (and, on failure, the one-line reason) in run.json.

        A damaged run.json is replaced rather than blocking the record of what happened."""
        try:
            status = self.read_status()
        except RunDirectoryError:
            status = {"damaged_status_replaced": True}
        status.update(details)
        status["state"] = state
        status["updated_at"] = utc_now().isoformat()
        atomic_write_json(self.status_path, status)

    def try_mark(self, state: RunState, log: Any = None, **details: Any) -> bool:
        """`mark`, for failure paths: a disk that is full cannot take run.json either, and that
        must not hide the error being reported. Returns whether run.json was written."""
        try:
            self.mark(state, **details)
        except OSError as exc:
            if log is not None:
                log(f"townlet: warning: could not record '{state}' in {self.status_path}: {exc}")
            return False
        return True

    def lock(self) -> RunLock:
        """The lock that makes one process the run directory's only writer."""
        return RunLock(self.path)

    def write_result(self, result_json: str) -> None:
        atomic_write_json(self.result_path, json.loads(result_json))

    def relative(self, path: Path) -> str:
        """`path` relative to the run directory, for a result's `artifacts`."""
        try:
            return path.resolve().relative_to(self.path.resolve()).as_posix()
        except ValueError:
            return str(path)


class RunLock:
    """An exclusive `flock` on `RUN_DIR/.townlet.lock`, held while a process runs or resumes
    the run, so two processes never write one run directory. The kernel drops it when the
    process dies, so a killed run never leaves a stale lock behind."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or RunDirectoryError naming the process that holds it."""
        if not self.path.parent.is_dir():
            raise RunDirectoryError(
                f"{self.path.parent}: no such run directory; pass the folder 'townlet train' "
                "created"
            )
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RunDirectoryError(f"cannot lock run directory {self.path.parent}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunDirectoryError(
                f"run directory {self.path.parent} is in use by another townlet process"
                f"{holder}; wait for it to finish (or stop it), or choose another --run-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "since": utc_now().isoformat()}).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def held_elsewhere(self) -> bool:
        """Whether another open lock holds the run (a live process running it)."""
        if self._fd is not None or not self.path.exists():
            return False
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    @contextmanager
    def held(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()


def _read_holder(fd: int) -> str:
    try:
        holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f" (pid {holder['pid']}, since {holder['since']})"
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def check_output_location(path: Path, what: str) -> None:
    """Refuse, before anything trains, a folder that cannot hold a run's output: a file in
    the way, or one that cannot be written (probed with a temporary file, removed at once,
    in the folder or its nearest existing parent; nothing else is created)."""
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise RunDirectoryError(
            f"{path}: {what} cannot be created because {existing} is a file; "
            "choose another location"
        )
    try:
        fd, probe = tempfile.mkstemp(prefix=".townlet-write-probe-", dir=existing)
    except OSError as exc:
        reason = "no space left on device" if exc.errno in _NO_SPACE else exc.strerror
        raise RunDirectoryError(
            f"{path}: {what} is not writable ({reason} at {existing}); "
            "fix the permissions or choose another location"
        ) from exc
    os.close(fd)
    Path(probe).unlink()


_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def is_no_space(exc: BaseException) -> bool:
    """Whether an error is the disk (or quota) being full."""
    return isinstance(exc, OSError) and exc.errno in _NO_SPACE


def resumed_runs_root(run_dir: Path, recorded: object) -> Path:
    """Where a resumed run's carried state goes: the folder the run lives in when that is
    the runs root it was created in (wherever the folder has moved since), else the default
    runs root of this invocation. A path read from the run's own files never decides where
    anything outside the run directory is written."""
    from townlet_core.runtime.config import RunSettings

    default = RunSettings.model_fields["runs_root"].default
    if isinstance(recorded, str) and Path(recorded).name == run_dir.resolve().parent.name:
        return run_dir.resolve().parent
    return Path(default)


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
