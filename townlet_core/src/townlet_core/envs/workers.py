"""Environments in worker processes: Gymnasium's `AsyncVectorEnv`, and what Townlet adds.

`AsyncVectorEnv` steps each sub-env in its own process, observations in shared memory. Two
things it leaves to its caller, measured with Gymnasium 1.4 here:

- a worker that dies (killed, out of memory, a segfault in a physics engine) surfaces as a
  bare `BrokenPipeError` or `EOFError` from the next `step`, naming neither the environment
  nor the worker;
- `close()` after that raises `BrokenPipeError` again and leaves the other workers running.

`WorkerVectorEnv` is the same class with those two handled: a dead or failed worker raises
`EnvWorkerError` naming the environment, the worker and its exit code, and `close` (also
after an error) terminates whatever workers are left, so no process outlives the run.
Everything else (seeding each sub-env `seed + i`, NEXT_STEP autoreset, shared memory) is
Gymnasium's, so a run steps the same transitions in workers as in a `SyncVectorEnv`.

Workers are started with the platform's default method (fork on Linux): the env factories
are closures over the run's settings, which fork shares without pickling.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from gymnasium.vector import AsyncVectorEnv, AutoresetMode

from townlet_core.envs.snapshot import NotSnapshotable
from townlet_core.errors import TownletError

#: What a dead worker's pipe raises in the parent.
_PIPE_ERRORS = (BrokenPipeError, EOFError, ConnectionResetError)

#: How long a broken pipe waits for its worker to be seen dead, to name it and its exit code.
WORKER_EXIT_WAIT_SECONDS = 2.0


class EnvWorkerError(TownletError):
    """An environment worker process died or failed; the run's last checkpoint is intact."""


class WorkerVectorEnv(AsyncVectorEnv):
    """`AsyncVectorEnv` that names a dead worker and never leaves one behind."""

    def __init__(self, env_id: str, env_fns: Sequence[Callable[[], Any]]) -> None:
        self.env_id = env_id
        super().__init__(
            list(env_fns),
            shared_memory=True,
            copy=False,
            autoreset_mode=AutoresetMode.NEXT_STEP,
        )

    def townlet_get_state(self) -> Any:
        """Never a snapshot (`snapshot.py`): the sub-envs live in other processes, so a
        resume restarts their episodes, and says why."""
        raise self._not_snapshotable()

    def townlet_set_state(self, state: Any) -> None:
        raise self._not_snapshotable()

    def _not_snapshotable(self) -> NotSnapshotable:
        return NotSnapshotable(f"'{self.env_id}'", "each sub-env", "worker process (vector: async)")

    def reset(self, **kwargs: Any) -> Any:
        try:
            return super().reset(**kwargs)
        except _PIPE_ERRORS as exc:
            raise self._worker_error(exc) from exc

    def step(self, actions: Any) -> Any:
        try:
            return super().step(actions)
        except _PIPE_ERRORS as exc:
            raise self._worker_error(exc) from exc

    def close_extras(self, timeout: float | None = None, terminate: bool = False) -> None:
        """Close the workers; if any has died, terminate the rest instead of asking them.

        Gymnasium's own forced close still waits for a pending step first, and that wait
        reads the dead worker's pipe again whenever every pipe is readable (the live workers
        done, the dead one at end of file): it raises `EOFError` from `close` itself. Seen
        on a 16-core machine, where the live workers finish before the close; so once a
        worker is dead, or a pipe breaks, the workers are terminated here without it."""
        if all(process.is_alive() for process in self.processes):
            try:
                super().close_extras(timeout=timeout, terminate=terminate)
                return
            except _PIPE_ERRORS:
                pass
        self._terminate_workers()

    def _terminate_workers(self) -> None:
        for process in self.processes:
            if process.is_alive():
                process.terminate()
        for pipe in self.parent_pipes:
            if pipe is not None:
                pipe.close()
        for process in self.processes:
            process.join()

    def _worker_error(self, exc: BaseException) -> EnvWorkerError:
        # a pipe can break a moment before its process is reaped: wait for it (briefly)
        deadline = time.monotonic() + WORKER_EXIT_WAIT_SECONDS
        while time.monotonic() < deadline and all(p.is_alive() for p in self.processes):
            time.sleep(0.01)
        dead = [(i, p.exitcode) for i, p in enumerate(self.processes) if not p.is_alive()]
        if dead:
            which = ", ".join(f"worker {i} (exit code {code})" for i, code in dead)
            what = f"{which} of {len(self.processes)} stopped"
        else:
            what = f"a worker's pipe broke ({type(exc).__name__})"
        with warnings.catch_warnings():  # "close while waiting for step": that is the point
            warnings.simplefilter("ignore")
            self.close(terminate=True)
        return EnvWorkerError(
            f"environment '{self.env_id}': {what} while stepping it in worker processes "
            "(vector: async); the run's last checkpoint is intact. See the worker's "
            "output above, then resume with `townlet train --resume RUN_DIR` (or set "
            "vector: sync to step the envs in this process)"
        )
