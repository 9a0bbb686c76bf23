"""Environments in worker processes (`vector: async`): the same transitions as in-process
stepping for a seed, a clear error naming a worker that dies, and no process left behind."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from typing import Any

import gymnasium
import numpy as np
import pytest

from tests.strategies.ppo.conftest import QUICK
from townlet_core.envs.capture import capture
from townlet_core.envs.make import make_vector_env, steps_in_workers
from townlet_core.envs.workers import EnvWorkerError


def _children_gone() -> bool:
    """True once every child process of this test process has exited (reaped)."""
    deadline = time.monotonic() + 5
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.05)
    return not multiprocessing.active_children()


def _rollout(vector: str, steps: int = 150) -> list[np.ndarray]:
    env, how = make_vector_env("CartPole-v1", 3, vector=vector)  # type: ignore[arg-type]
    assert how == ("async" if vector == "async" else "sync")
    rng = np.random.default_rng(7)
    try:
        observation, _info = env.reset(seed=11)
        seen = [observation.copy()]
        for _ in range(steps):
            observation, reward, terminated, truncated, _info = env.step(rng.integers(0, 2, 3))
            seen += [observation.copy(), reward.copy(), terminated.copy(), truncated.copy()]
        return seen
    finally:
        env.close()


def test_async_steps_the_same_transitions_as_sync_for_a_seed():
    # 3 envs stay below the native CartPole vector env's threshold: both are one env per copy
    for a, b in zip(_rollout("async"), _rollout("sync"), strict=True):
        np.testing.assert_array_equal(a, b)
    assert _children_gone()


def test_capture_in_workers_records_the_same_data(tmp_path):
    summaries = {
        vector: capture(
            "CartPole-v1",
            "scripted",
            episodes=4,
            num_envs=2,
            seed=3,
            out=tmp_path / vector,
            max_episode_steps=80,
            vector=vector,  # type: ignore[arg-type]
        )
        for vector in ("sync", "async")
    }
    assert summaries["async"].vectorization == "async"
    written = sorted(p.name for p in (tmp_path / "sync").glob("*.npz"))
    assert written and written == sorted(p.name for p in (tmp_path / "async").glob("*.npz"))
    for name in written:
        with np.load(tmp_path / "sync" / name) as a, np.load(tmp_path / "async" / name) as b:
            assert sorted(a.files) == sorted(b.files)
            for key in a.files:
                np.testing.assert_array_equal(a[key], b[key])
    assert _children_gone()


def test_evaluation_in_workers_sees_the_same_episodes():
    from townlet_core.envs.evaluation import evaluate_policy

    results = {
        vector: evaluate_policy(
            "CartPole-v1",
            "random",
            episodes=4,
            seed=11,
            num_envs=2,
            max_episode_steps=60,
            vector=vector,  # type: ignore[arg-type]
        )
        for vector in ("sync", "async")
    }
    assert results["async"].returns == results["sync"].returns
    assert len(results["async"].returns) == 4
    assert _children_gone()


def test_a_killed_worker_is_named_and_no_worker_is_left():
    env, _how = make_vector_env("CartPole-v1", 2, vector="async")
    env.reset(seed=0)
    env.step(np.zeros(2, dtype=np.int64))
    os.kill(env.processes[1].pid, signal.SIGKILL)
    env.processes[1].join(5)
    with pytest.raises(EnvWorkerError) as info:
        env.step(np.zeros(2, dtype=np.int64))
    message = str(info.value)
    assert "environment 'CartPole-v1'" in message
    assert "worker 1 (exit code -9) of 2 stopped" in message
    assert "last checkpoint is intact" in message and "--resume" in message
    assert not any(process.is_alive() for process in env.processes)
    env.close()  # closing again after the error is quiet
    assert _children_gone()


class _Slow(gymnasium.Wrapper):  # type: ignore[type-arg]
    """CartPole that takes 2 ms a step, as a costly simulator would."""

    def step(self, action: Any) -> Any:
        time.sleep(2e-3)
        return self.env.step(action)


def test_auto_steps_costly_envs_in_workers_and_cheap_ones_here():
    slow = lambda: _Slow(gymnasium.make("CartPole-v1"))  # noqa: E731
    cheap = lambda: gymnasium.make("CartPole-v1")  # noqa: E731
    several_cores = (os.cpu_count() or 1) >= 2
    assert steps_in_workers(slow, 4) is several_cores
    assert steps_in_workers(slow, 1) is False  # one env: nothing to share out
    assert steps_in_workers(cheap, 4) is False  # CartPole steps in about 20 us


# ---------------------------------------------------------------------- PPO in workers

DIES_AFTER = 150  # steps of one worker's env; the parent's own envs never die


def _dying_cartpole(**kwargs: Any) -> Any:
    """CartPole whose copy in a worker process exits abruptly after DIES_AFTER steps."""

    class Dying(gymnasium.Wrapper):  # type: ignore[type-arg]
        steps = 0

        def step(self, action: Any) -> Any:
            Dying.steps += 1
            if multiprocessing.parent_process() is not None and Dying.steps > DIES_AFTER:
                os._exit(3)  # a crash: no exception, no clean-up
            return self.env.step(action)

    return Dying(gymnasium.make("CartPole-v1", **kwargs))


@pytest.fixture
def dying_env_id():
    env_id = "TownletTestDyingCartPole-v0"
    gymnasium.register(env_id, entry_point=_dying_cartpole, max_episode_steps=60)
    yield env_id
    del gymnasium.registry[env_id]


#: PPO's quick CartPole updates, in 2 envs (2 workers) x 32 steps.
PPO_QUICK: dict[str, Any] = {**QUICK, "num_envs": 2, "num_steps": 32}


@pytest.mark.slow
def test_ppo_in_workers_trains_the_same_weights_as_in_process(
    ppo_registry, townlet_train, tmp_path
):
    for vector in ("sync", "async"):
        townlet_train("ppo", {**PPO_QUICK, "vector": vector}, name=vector, seed=5)
    weights = "checkpoint/weights.safetensors"
    assert (tmp_path / "async" / weights).read_bytes() == (tmp_path / "sync" / weights).read_bytes()
    assert _children_gone()


def test_a_worker_that_dies_mid_run_ends_it_with_the_env_named_and_checkpoints_kept(
    ppo_registry, townlet_train, tmp_path, dying_env_id
):
    section = {**PPO_QUICK, "env": dying_env_id, "vector": "async"}
    with pytest.raises(
        EnvWorkerError, match=rf"environment '{dying_env_id}': worker \d \(exit code 3\)"
    ):
        townlet_train("ppo", section, name="run", seed=0)
    latest = tmp_path / "run" / "checkpoints" / "latest.json"
    assert latest.exists()  # the updates before the crash were checkpointed, and stay
    assert _children_gone()


def test_closing_while_dead_workers_owe_a_step_raises_nothing_and_leaves_no_process(
    dying_env_id,
):
    # every worker has died and every pipe is readable (at end of file): Gymnasium's own
    # forced close reads them again and raises EOFError (seen on a 16-core GPU machine)
    env, _how = make_vector_env(dying_env_id, 2, vector="async")
    env.reset(seed=0)
    for _ in range(4 * DIES_AFTER):  # episode resets take steps too: step until they die
        env.step_async(np.zeros(2, dtype=np.int64))
        while all(p.is_alive() for p in env.processes) and not all(
            pipe.poll(0.01) for pipe in env.parent_pipes
        ):
            pass
        if not all(p.is_alive() for p in env.processes):
            break
        env.step_wait()
    deadline = time.monotonic() + 5
    while any(p.is_alive() for p in env.processes) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(p.is_alive() for p in env.processes)
    env.close()
    assert env.closed and _children_gone()


def test_envs_in_workers_are_not_snapshotted_and_say_why():
    from townlet_core.envs import snapshot

    env, _how = make_vector_env("CartPole-v1", 2, vector="async")
    try:
        with pytest.raises(snapshot.NotSnapshotable, match="worker process \\(vector: async\\)"):
            snapshot.capture(env)
    finally:
        env.close()
    assert _children_gone()


def test_bc_captures_its_demonstrations_in_workers(ppo_registry, townlet_train, tmp_path):
    capture_spec = {"env": "CartPole-v1", "episodes": 2, "num_envs": 2, "vector": "async"}
    capture_spec["max_episode_steps"] = 30
    townlet_train("bc", {"capture": capture_spec, "epochs": 1, "eval_episodes": 1}, name="bc")
    manifest = (tmp_path / "bc" / "demonstrations" / "manifest.json").read_text()
    assert '"vectorization": "async"' in manifest
    assert _children_gone()


class _RefusesRandomActions(gymnasium.Wrapper):  # type: ignore[type-arg]
    """An env whose masks forbid what random actions pick: the timing probe cannot step it."""

    def step(self, action: Any) -> Any:
        raise ValueError("action 1 is masked")


def test_auto_keeps_an_env_it_cannot_time_in_this_process():
    refuses = lambda: _RefusesRandomActions(gymnasium.make("CartPole-v1"))  # noqa: E731
    assert steps_in_workers(refuses, 4) is False
