"""Capturing trajectories from Gymnasium environments: budgets, reproducibility, layout,
counters, bootstrap values, interruption and the errors a user can act on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, ClassVar

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces

from townlet_core.data import ReplayDataset
from townlet_core.envs.capture import capture
from townlet_core.envs.experts import expert_for
from townlet_core.envs.policies import Observation, PolicyOutput
from townlet_core.errors import ConfigError, DataError

QUEUE_ENV = "TownletTestQueue-v0"


class QueueEnv(gymnasium.Env[dict[str, np.ndarray], int]):
    """A Townlet-like env: Dict observation (map + features), episodes of `length` steps,
    conflict counters in `info`. features[0] is the step number, so a test can see exactly
    which observations were recorded."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": [], "feature_names": ["step", "offset"]}

    def __init__(self, length: int = 6) -> None:
        self.length = length
        self.observation_space = spaces.Dict(
            {
                "map": spaces.Box(0.0, 1.0, (2, 3, 3), np.float32),
                "features": spaces.Box(-np.inf, np.inf, (2,), np.float32),
            }
        )
        self.action_space = spaces.Discrete(3)
        self.t = 0
        self.offset = 0.0

    def _observation(self) -> dict[str, np.ndarray]:
        grid = np.full((2, 3, 3), self.t / 10, dtype=np.float32)
        return {"map": grid, "features": np.array([self.t, self.offset], dtype=np.float32)}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        self.t = 0
        self.offset = float(self.np_random.random())
        # A reset is no step: this must never reach a trajectory's counters.
        return self._observation(), {"queue_conflict_events": 100}

    def step(self, action: int) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        self.t += 1
        conflict = int(action == 2)
        info = {
            "queue_conflict_events": conflict,
            "queue_conflict_intensity_sum": 0.5 * conflict,
            "_private": 7,
            "label": "not a number",
        }
        return self._observation(), float(action), self.t >= self.length, False, info


@pytest.fixture
def queue_env() -> Iterator[str]:
    gymnasium.register(QUEUE_ENV, entry_point=QueueEnv)
    yield QUEUE_ENV
    del gymnasium.registry[QUEUE_ENV]


def always(action: int, values: bool = False) -> Any:
    """A policy taking `action` everywhere; with `values`, V(obs) = the step number."""

    def policy(observation: Observation) -> np.ndarray | PolicyOutput:
        features = observation["features"] if isinstance(observation, dict) else observation
        actions = np.full(len(features), action, dtype=np.int64)
        if not values:
            return actions
        log_probs = np.full(len(features), -0.5, dtype=np.float32)
        return PolicyOutput(actions, log_probs=log_probs, values=features[:, 0].copy())

    return policy


def arrays_of(summary: Any) -> list[dict[str, np.ndarray]]:
    return [t.arrays() for t in summary.trajectories]


# --- budgets and layout -----------------------------------------------------------------


def test_episodes_budget_gives_exactly_that_many_trajectories_split_over_envs():
    summary = capture("CartPole-v1", "random", episodes=7, num_envs=3, seed=0)
    assert summary.num_trajectories == 7
    envs = [t.metadata["env_index"] for t in summary.trajectories]
    assert sorted(envs.count(i) for i in range(3)) == [2, 2, 3]
    assert summary.transitions == sum(summary.lengths)


def test_steps_budget_gives_exactly_that_many_transitions():
    summary = capture("CartPole-v1", "random", steps=500, num_envs=3, seed=0)
    assert summary.transitions == 500
    assert sum(t.timesteps for t in summary.trajectories) == 500


def test_steps_budget_cuts_running_episodes_and_marks_them_truncated(queue_env):
    summary = capture(queue_env, always(1, values=True), steps=10, seed=0)
    first, cut = summary.trajectories
    assert (first.timesteps, cut.timesteps) == (6, 4)
    assert first.extras["terminated"][-1] and not first.metadata["cut_by_budget"]
    assert cut.extras["truncated"].tolist() == [False, False, False, True]
    assert cut.dones[-1] and not cut.extras["terminated"].any()
    assert cut.metadata["cut_by_budget"] is True
    # The bootstrap of the cut episode is the policy's value of the next observation (t=4).
    assert cut.value_preds.tolist() == [0, 1, 2, 3, 4]


def test_every_trajectory_is_one_episode_of_one_env_with_dones_only_at_its_end(queue_env):
    summary = capture(queue_env, "random", episodes=9, num_envs=4, seed=1)
    assert summary.num_trajectories == 9
    for trajectory in summary.trajectories:
        steps = trajectory.features[:, 0]
        # Starts at the reset observation; never holds a final observation (t=6).
        assert steps.tolist() == [0, 1, 2, 3, 4, 5]
        assert np.unique(trajectory.features[:, 1]).size == 1  # one episode's offset
        assert trajectory.dones.tolist() == [False] * 5 + [True]


def test_cartpole_trajectories_from_several_envs_end_exactly_where_their_episode_ends():
    summary = capture("CartPole-v1", "random", episodes=12, num_envs=6, seed=2)
    for trajectory in summary.trajectories:
        assert trajectory.dones.sum() == 1 and trajectory.dones[-1]
        assert trajectory.extras["terminated"][-1] != trajectory.extras["truncated"][-1]
        assert trajectory.metadata["length"] == trajectory.timesteps
        # CartPole's reset state is within ±0.05: a final observation would not be.
        assert np.abs(trajectory.features[0]).max() <= 0.05


def test_single_env_capture_matches_a_plain_gymnasium_loop_over_many_episodes():
    """An independent reference: one env, reset with the seed once, then unseeded resets
    (what the vector env's autoreset does). Long enough to recycle the step buffer."""
    summary = capture("CartPole-v1", "random", episodes=40, seed=4)
    env = gymnasium.make("CartPole-v1")
    observation, _ = env.reset(seed=4)
    for trajectory in summary.trajectories:
        observations, rewards, dones = [], [], []
        for action in trajectory.actions:
            observations.append(observation)
            observation, reward, terminated, truncated, _ = env.step(int(action))
            rewards.append(reward)
            dones.append(terminated or truncated)
        observation, _ = env.reset()
        np.testing.assert_array_equal(trajectory.features, np.array(observations, np.float32))
        np.testing.assert_array_equal(trajectory.rewards, np.array(rewards, np.float32))
        assert trajectory.dones.tolist() == dones
    assert sum(summary.lengths) > 600  # more rows than the buffer starts with


def test_arrays_have_the_townlet_dtypes_and_a_bootstrap_value_entry():
    trajectory = capture("CartPole-v1", "scripted", episodes=1, seed=0).trajectories[0]
    assert trajectory.features.dtype == np.float32 and trajectory.features.shape == (500, 4)
    assert trajectory.actions.dtype == np.int64
    assert trajectory.rewards.dtype == np.float32
    assert trajectory.dones.dtype == np.bool_
    assert trajectory.value_preds.shape == (501,)
    assert trajectory.metadata["return"] == 500.0
    assert trajectory.metadata["action_dim"] == 2
    assert trajectory.metadata["feature_names"] is None


def test_truncated_episode_bootstraps_from_the_policy_value_of_its_final_observation(queue_env):
    summary = capture(queue_env, always(0, values=True), episodes=2, max_episode_steps=4, seed=0)
    for trajectory in summary.trajectories:
        assert trajectory.extras["truncated"][-1]
        assert trajectory.value_preds.tolist() == [0, 1, 2, 3, 4]
        assert trajectory.old_log_probs.tolist() == [-0.5] * 4


def test_terminated_episode_bootstraps_from_zero(queue_env):
    trajectory = capture(queue_env, always(0, values=True), episodes=1, seed=0).trajectories[0]
    assert trajectory.extras["terminated"][-1]
    assert trajectory.value_preds[-1] == 0.0


def test_capture_without_keep_reports_the_same_returns_and_holds_no_trajectories():
    kept = capture("CartPole-v1", "random", episodes=6, num_envs=2, seed=9)
    tallied = capture("CartPole-v1", "random", episodes=6, num_envs=2, seed=9, keep=False)
    assert tallied.trajectories == ()
    assert (tallied.returns, tallied.lengths) == (kept.returns, kept.lengths)


def test_policy_without_values_or_log_probs_records_zeros():
    trajectory = capture("CartPole-v1", "scripted", steps=20, seed=0).trajectories[0]
    assert not trajectory.old_log_probs.any()
    assert not trajectory.value_preds.any()


def test_random_policy_records_its_exact_log_probability():
    trajectory = capture("CartPole-v1", "random", episodes=1, seed=0).trajectories[0]
    np.testing.assert_allclose(trajectory.old_log_probs, np.log(0.5))


def test_env_class_entry_point_is_instantiated_and_time_limited():
    summary = capture(
        "gymnasium.envs.classic_control.cartpole:CartPoleEnv",
        expert_for("CartPole-v1"),
        episodes=2,
        max_episode_steps=50,
        seed=0,
    )
    assert summary.lengths == (50, 50)


def test_native_vector_env_is_used_for_many_cartpole_envs():
    summary = capture("CartPole-v1", "scripted", episodes=8, num_envs=8, seed=0)
    assert summary.vectorization == "native"
    assert summary.returns == (500.0,) * 8


# --- reproducibility --------------------------------------------------------------------


@pytest.mark.parametrize("num_envs", [3, 8], ids=["sync", "native"])
def test_same_seed_gives_identical_arrays(num_envs):
    first = capture("CartPole-v1", "random", steps=400, num_envs=num_envs, seed=5)
    second = capture("CartPole-v1", "random", steps=400, num_envs=num_envs, seed=5)
    assert len(first.trajectories) == len(second.trajectories)
    for a, b in zip(arrays_of(first), arrays_of(second), strict=True):
        assert a.keys() == b.keys()
        for name in a:
            assert a[name].tobytes() == b[name].tobytes(), name


def test_different_seed_gives_different_data():
    first = capture("CartPole-v1", "random", steps=400, num_envs=3, seed=5)
    second = capture("CartPole-v1", "random", steps=400, num_envs=3, seed=6)
    assert first.trajectories[0].features.tobytes() != second.trajectories[0].features.tobytes()
    assert first.trajectories[0].actions.tobytes() != second.trajectories[0].actions.tobytes()


# --- on disk ----------------------------------------------------------------------------


def test_written_capture_reads_back_as_a_dataset_with_its_metrics(tmp_path):
    out = tmp_path / "cartpole"
    summary = capture("CartPole-v1", "scripted", episodes=3, num_envs=2, seed=0, out=out)
    assert summary.path == out and summary.trajectories == ()
    dataset = ReplayDataset(out)
    assert dataset.num_trajectories == 3
    assert dataset.transitions == 1500
    assert dataset.action_dim == 2
    assert dataset.baseline_metrics["reward_sum"] == 1500.0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["metadata"]["env_id"] == "CartPole-v1"
    assert manifest["metadata"]["seed"] == 0
    assert manifest["metadata"]["interrupted"] is False
    assert manifest["metadata"]["transitions"] == 1500
    assert "townlet_core_version" in manifest["metadata"]


def test_dict_observation_keeps_the_map_and_info_counters_reach_the_metrics(queue_env, tmp_path):
    out = tmp_path / "queue"
    capture(queue_env, always(2), episodes=3, num_envs=2, seed=0, out=out)
    dataset = ReplayDataset(out)
    trajectory = dataset.trajectory(0)
    assert trajectory.map is not None and trajectory.map.shape == (6, 2, 3, 3)
    assert trajectory.features.shape == (6, 2)
    assert trajectory.metadata["map_shape"] == [2, 3, 3]
    assert trajectory.metadata["feature_names"] == ["step", "offset"]
    # Six conflicts per episode; the reset's 100 and the non-numeric entries are ignored.
    assert trajectory.metadata["counters"] == {
        "queue_conflict_events": 6,
        "queue_conflict_intensity_sum": 3.0,
    }
    baseline = dataset.baseline_metrics
    assert baseline["queue_conflict_events"] == 6.0
    assert baseline["queue_conflict_intensity_sum"] == 9.0


def test_interrupted_capture_leaves_a_dataset_of_exactly_the_completed_trajectories(
    queue_env, tmp_path
):
    full = capture(queue_env, "random", episodes=6, num_envs=2, seed=3)
    random_policy = None
    calls = 0

    def interrupting(observation: Observation) -> Any:
        nonlocal calls, random_policy
        calls += 1
        if calls == 11:  # after step 10: each env finished one episode, at step 6
            raise KeyboardInterrupt
        return random_policy(observation)  # type: ignore[misc]

    from townlet_core.envs.policies import RandomPolicy

    random_policy = RandomPolicy(3, seed=3)
    out = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        capture(queue_env, interrupting, episodes=6, num_envs=2, seed=3, out=out)
    dataset = ReplayDataset(out)
    assert dataset.num_trajectories == 2
    for index in range(2):
        written, expected = dataset.trajectory(index), full.trajectories[index]
        for name, array in expected.arrays().items():
            np.testing.assert_array_equal(written.arrays()[name], array)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["metadata"]["interrupted"] is True
    assert manifest["metadata"]["trajectories"] == 2
    assert not list(out.glob(".*tmp"))  # no half-written file left behind


def test_progress_advances_by_episodes_with_the_mean_return():
    updates: list[tuple[int, dict[str, Any]]] = []

    class Recorder:
        def update(self, n: int = 1, **postfix: Any) -> None:
            updates.append((n, postfix))

    capture("CartPole-v1", "scripted", episodes=2, num_envs=2, seed=0, progress=Recorder())
    assert sum(n for n, _ in updates) == 2
    assert updates[-1][1] == {"episodes": 2, "mean_return": 500.0}


# --- errors -----------------------------------------------------------------------------


def test_unknown_env_suggests_the_closest_id():
    with pytest.raises(
        ConfigError, match=r"^unknown environment 'CartPol-v1'; did you mean 'CartPole-v1'\?$"
    ):
        capture("CartPol-v1", "random", episodes=1)


def test_unknown_env_without_a_close_match_says_what_to_pass():
    with pytest.raises(ConfigError, match="pass a registered Gymnasium id .* or module:Class"):
        capture("NoSuchThingAtAll", "random", episodes=1)


def test_env_entry_point_in_a_missing_module_is_a_config_error():
    with pytest.raises(ConfigError, match="cannot import environment module 'no_such_module'"):
        capture("no_such_module:Env", "random", episodes=1)


def test_unsupported_observation_space_is_refused_naming_the_space():
    with pytest.raises(ConfigError, match=r"'Blackjack-v1' has observation space Tuple\("):
        capture("Blackjack-v1", "random", episodes=1)


def test_a_discrete_observation_is_recorded_one_hot(tmp_path):
    summary = capture("FrozenLake-v1", "random", episodes=2, out=tmp_path / "lake")
    assert len(summary.returns) == 2
    features = np.concatenate([t.features for t in ReplayDataset(tmp_path / "lake").trajectories()])
    assert features.shape[1] == 16
    assert np.array_equal(features.sum(axis=1), np.ones(len(features)))


@pytest.mark.parametrize("budget", [{}, {"episodes": 1, "steps": 1}], ids=["neither", "both"])
def test_exactly_one_budget_is_required(budget):
    with pytest.raises(ConfigError, match="exactly one of episodes or steps"):
        capture("CartPole-v1", "random", **budget)


@pytest.mark.parametrize("budget", [{"episodes": 0}, {"steps": -3}])
def test_budget_must_be_positive(budget):
    with pytest.raises(ConfigError, match="must be a positive integer"):
        capture("CartPole-v1", "random", **budget)


def test_existing_dataset_at_out_is_refused(tmp_path):
    capture("CartPole-v1", "random", episodes=1, out=tmp_path)
    with pytest.raises(DataError, match="already holds a dataset"):
        capture("CartPole-v1", "random", episodes=1, out=tmp_path)


def test_policy_returning_out_of_range_actions_is_a_config_error():
    with pytest.raises(ConfigError, match=r"returned action 5, outside the action space 0\.\.1"):
        capture("CartPole-v1", lambda obs: np.full(len(obs), 5), episodes=1)


def test_policy_returning_one_action_for_a_batch_is_a_config_error():
    with pytest.raises(ConfigError, match=r"shape \(2,\)"):
        capture("CartPole-v1", lambda obs: np.int64(0), episodes=2, num_envs=2)


def test_nothing_is_written_when_the_environment_is_wrong(tmp_path):
    with pytest.raises(ConfigError):
        capture("Blackjack-v1", "random", episodes=1, out=tmp_path / "never")
    assert not (tmp_path / "never").exists()
