"""Minari <-> Townlet: import a local Minari dataset, export it back, arrays identical.

Every test builds its Minari datasets under `tmp_path` (and points MINARI_DATASETS_PATH
there too), so nothing touches ~/.minari or the network. The test command installs the
`minari` extra; without it these tests fail (they never skip), except the missing-extra
tests, which simulate its absence.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from townlet_core.data import DatasetWriter, ReplayDataset, build_trajectory
from townlet_core.data.minari_io import MINARI_HINT, export_minari, import_minari
from townlet_core.errors import ConfigError, DataError

from .conftest import make_arrays

MINARI_FIELDS = ("observations", "actions", "rewards", "terminations", "truncations")


@pytest.fixture
def minari_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private Minari folder, also set as MINARI_DATASETS_PATH so nothing leaks out."""
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


def _create(dataset_id: str, buffers: list[Any], **kwargs: Any) -> None:
    import minari

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Minari warns about every optional field left out
        minari.create_dataset_from_buffers(dataset_id, buffers, **kwargs)


def make_cartpole_dataset(dataset_id: str, episodes: int = 4, seed: int = 0) -> None:
    """CartPole episodes from a seeded random policy, capped at 15 steps so that some end
    terminated and some truncated; created in MINARI_DATASETS_PATH."""
    import gymnasium as gym
    from minari.data_collector import EpisodeBuffer

    env = gym.make("CartPole-v1", max_episode_steps=15)
    rng = np.random.default_rng(seed)
    buffers = []
    for episode in range(episodes):
        observation, _ = env.reset(seed=seed + episode)
        observations, actions, rewards, terminations, truncations = [observation], [], [], [], []
        done = False
        while not done:
            action = int(rng.integers(2))
            observation, reward, terminated, truncated, _ = env.step(action)
            observations.append(observation)
            actions.append(action)
            rewards.append(reward)
            terminations.append(terminated)
            truncations.append(truncated)
            done = terminated or truncated
        buffers.append(
            EpisodeBuffer(
                seed=seed + episode,
                observations=np.array(observations),
                actions=np.array(actions),
                rewards=np.array(rewards),
                terminations=np.array(terminations),
                truncations=np.array(truncations),
            )
        )
    _create(dataset_id, buffers, env=env, algorithm_name="random", author="tests")


def make_dict_dataset(dataset_id: str) -> None:
    """A Dict observation space (float64 features, uint8 map), actions Discrete(3, start=1)
    and float64 rewards: values float32 cannot hold exactly."""
    from gymnasium import spaces
    from minari.data_collector import EpisodeBuffer

    rng = np.random.default_rng(1)
    observation_space = spaces.Dict(
        {
            "features": spaces.Box(-10.0, 10.0, shape=(3,), dtype=np.float64),
            "map": spaces.Box(0, 255, shape=(2, 4, 4), dtype=np.uint8),
        }
    )
    buffers = []
    for steps in (5, 7):
        terminations = np.zeros(steps, dtype=bool)
        terminations[-1] = True
        buffers.append(
            EpisodeBuffer(
                observations={
                    "features": rng.normal(size=(steps + 1, 3)),
                    "map": rng.integers(0, 256, size=(steps + 1, 2, 4, 4), dtype=np.uint8),
                },
                actions=rng.integers(1, 4, size=steps),
                rewards=rng.normal(size=steps),
                terminations=terminations,
                truncations=np.zeros(steps, dtype=bool),
            )
        )
    _create(
        dataset_id,
        buffers,
        observation_space=observation_space,
        action_space=spaces.Discrete(3, start=1),
    )


def load(dataset_id: str) -> Any:
    import minari

    return minari.load_dataset(dataset_id)


def assert_same_episodes(left: Any, right: Any) -> None:
    """Every Minari array identical, dtype included, episode by episode."""
    assert left.total_episodes == right.total_episodes
    for mine, theirs in zip(left.iterate_episodes(), right.iterate_episodes(), strict=True):
        for name in MINARI_FIELDS:
            ours, original = getattr(mine, name), getattr(theirs, name)
            if isinstance(original, dict):
                assert set(ours) == set(original)
                pairs = [(ours[key], original[key]) for key in original]
            else:
                pairs = [(ours, original)]
            for got, want in pairs:
                assert got.dtype == want.dtype, name
                np.testing.assert_array_equal(got, want, err_msg=name)


# ------------------------------------------------------------------------------ import


def test_import_writes_one_trajectory_per_episode_with_every_array(minari_root, tmp_path):
    make_cartpole_dataset("cartpole/random-v0")
    summary = import_minari("cartpole/random-v0", tmp_path / "out", data_path=minari_root)
    source = load("cartpole/random-v0")
    dataset = ReplayDataset(tmp_path / "out")
    assert summary.episodes == dataset.num_trajectories == source.total_episodes == 4
    assert summary.transitions == source.total_steps
    for trajectory, episode in zip(dataset.trajectories(), source, strict=True):
        steps = len(episode)
        assert trajectory.features.dtype == np.float32
        np.testing.assert_array_equal(trajectory.features, episode.observations[:-1])
        np.testing.assert_array_equal(
            trajectory.metadata["final_observation"]["features"], episode.observations[-1]
        )
        np.testing.assert_array_equal(trajectory.actions, episode.actions)
        np.testing.assert_array_equal(trajectory.rewards, episode.rewards)
        np.testing.assert_array_equal(trajectory.extras["terminated"], episode.terminations)
        np.testing.assert_array_equal(trajectory.extras["truncated"], episode.truncations)
        np.testing.assert_array_equal(trajectory.dones, episode.terminations | episode.truncations)
        np.testing.assert_array_equal(trajectory.old_log_probs, np.zeros(steps))
        np.testing.assert_array_equal(trajectory.value_preds, np.zeros(steps + 1))
        assert trajectory.metadata["seed"] == episode.id
        assert trajectory.metadata["action_dim"] == 2
    assert dataset.source.metadata["source"] == "minari"
    assert dataset.source.metadata["dataset_id"] == "cartpole/random-v0"
    assert "CartPole-v1" in dataset.source.metadata["env_spec"]


def test_cartpole_fixture_has_both_episode_endings(minari_root):
    make_cartpole_dataset("cartpole/random-v0")
    endings = {
        (bool(e.terminations[-1]), bool(e.truncations[-1])) for e in load("cartpole/random-v0")
    }
    assert endings == {(True, False), (False, True)}


def test_dict_observations_become_features_and_map(minari_root, tmp_path):
    make_dict_dataset("grid/dict-v0")
    import_minari("grid/dict-v0", tmp_path / "out", data_path=minari_root)
    dataset = ReplayDataset(tmp_path / "out")
    for trajectory, episode in zip(dataset.trajectories(), load("grid/dict-v0"), strict=True):
        assert trajectory.map is not None
        assert trajectory.map.shape == (len(episode), 2, 4, 4)
        np.testing.assert_array_equal(trajectory.map, episode.observations["map"][:-1])
        # float64 values float32 cannot hold are kept exactly beside the float32 copies
        np.testing.assert_array_equal(
            trajectory.extras["features_exact"], episode.observations["features"][:-1]
        )
        np.testing.assert_array_equal(trajectory.extras["rewards_exact"], episode.rewards)
        assert "map_exact" not in trajectory.extras  # uint8 survives float32 as is
        # Townlet action ids start at 0: Discrete(3, start=1) is shifted down by one
        np.testing.assert_array_equal(trajectory.actions, episode.actions - 1)


def test_import_reads_minari_datasets_path_when_no_data_path(minari_root, tmp_path):
    make_cartpole_dataset("cartpole/random-v0", episodes=1)
    assert import_minari("cartpole/random-v0", tmp_path / "out").episodes == 1


def test_missing_local_dataset_names_id_folder_and_download_command(minari_root, tmp_path):
    with pytest.raises(DataError) as caught:
        import_minari("cartpole/absent-v0", tmp_path / "out", data_path=minari_root)
    message = str(caught.value)
    assert "cartpole/absent-v0" in message
    assert str(minari_root / "cartpole" / "absent-v0") in message
    assert "minari download cartpole/absent-v0" in message
    assert not (tmp_path / "out").exists()


def test_malformed_dataset_id_is_explained(minari_root, tmp_path):
    with pytest.raises(DataError, match=r"\[namespace/\]name-vN"):
        import_minari("no version", tmp_path / "out", data_path=minari_root)


# ------------------------------------------------------------------------------ export


@pytest.mark.parametrize(
    ("dataset_id", "make"),
    [("cartpole/random-v0", make_cartpole_dataset), ("grid/dict-v0", make_dict_dataset)],
)
def test_import_then_export_gives_identical_minari_arrays(minari_root, tmp_path, dataset_id, make):
    make(dataset_id)
    import_minari(dataset_id, tmp_path / "out", data_path=minari_root)
    summary = export_minari(tmp_path / "out", "roundtrip/back-v0", data_path=minari_root)
    original, back = load(dataset_id), load("roundtrip/back-v0")
    assert summary.location == minari_root / "roundtrip" / "back-v0"
    assert summary.repeated_final_observations == 0
    assert_same_episodes(back, original)
    assert back.observation_space == original.observation_space
    assert back.action_space == original.action_space
    assert back.env_spec == original.env_spec


def test_round_trip_keeps_episode_seeds(minari_root, tmp_path):
    make_cartpole_dataset("cartpole/random-v0", episodes=2, seed=7)
    import_minari("cartpole/random-v0", tmp_path / "out", data_path=minari_root)
    export_minari(tmp_path / "out", "roundtrip/back-v0", data_path=minari_root)
    seeds = [m["seed"] for m in load("roundtrip/back-v0").storage.get_episode_metadata([0, 1])]
    assert seeds == [7, 8]


def _townlet_dataset(directory: Path) -> list[Any]:
    """Three trajectories as a capture writes them: maps, terminated/truncated extras."""
    writer = DatasetWriter(directory, flush_interval=0)
    written = []
    for seed, steps in enumerate((4, 6, 5)):
        arrays = make_arrays(steps=steps, seed=seed)
        arrays["terminated"] = arrays["dones"].copy()
        arrays["truncated"] = np.zeros(steps, dtype=bool)
        trajectory = build_trajectory(arrays, {"action_dim": 4})
        writer.add(trajectory)
        written.append(trajectory)
    return written


def test_townlet_dataset_survives_export_and_import(minari_root, tmp_path):
    written = _townlet_dataset(tmp_path / "townlet")
    summary = export_minari(tmp_path / "townlet", "townlet/capture-v0", data_path=minari_root)
    assert (summary.episodes, summary.transitions) == (3, 15)
    import_minari("townlet/capture-v0", tmp_path / "again", data_path=minari_root)
    again = list(ReplayDataset(tmp_path / "again").trajectories())
    for before, after in zip(written, again, strict=True):
        for name in ("features", "map", "actions", "rewards", "dones"):
            np.testing.assert_array_equal(getattr(after, name), getattr(before, name))
            assert getattr(after, name).dtype == getattr(before, name).dtype
        for name in ("terminated", "truncated"):
            np.testing.assert_array_equal(after.extras[name], before.extras[name])
        assert not {"features_exact", "map_exact", "rewards_exact"} & set(after.extras)
    assert load("townlet/capture-v0").action_space.n == 4  # declared, though unseen


def test_export_without_final_observation_repeats_the_last_and_says_so(minari_root, tmp_path):
    written = _townlet_dataset(tmp_path / "townlet")
    summary = export_minari(tmp_path / "townlet", "townlet/capture-v0", data_path=minari_root)
    exported = load("townlet/capture-v0")
    assert summary.repeated_final_observations == 3
    for trajectory, episode in zip(written, exported, strict=True):
        np.testing.assert_array_equal(episode.observations["map"][-1], trajectory.map[-1])
        np.testing.assert_array_equal(episode.observations["map"][:-1], trajectory.map)
    episode_meta = exported.storage.get_episode_metadata(range(3))
    assert [m["townlet_final_observation"] for m in episode_meta] == ["repeated_last"] * 3
    assert (
        "3 of 3 episodes had no stored final observation"
        in exported.storage.metadata["description"]
    )


def test_export_records_the_env_named_with_env_id(minari_root, tmp_path):
    _townlet_dataset(tmp_path / "townlet")
    export_minari(
        tmp_path / "townlet", "townlet/capture-v0", data_path=minari_root, env_id="CartPole-v1"
    )
    assert load("townlet/capture-v0").env_spec.id == "CartPole-v1"


def test_export_refuses_unknown_env_id(minari_root, tmp_path):
    _townlet_dataset(tmp_path / "townlet")
    with pytest.raises(ConfigError, match="NoSuchEnv-v0"):
        export_minari(
            tmp_path / "townlet", "townlet/capture-v0", data_path=minari_root, env_id="NoSuchEnv-v0"
        )
    assert not (minari_root / "townlet" / "capture-v0").exists()


def test_export_refuses_an_existing_dataset_id(minari_root, tmp_path):
    make_cartpole_dataset("cartpole/random-v0", episodes=1)
    import_minari("cartpole/random-v0", tmp_path / "out", data_path=minari_root)
    with pytest.raises(DataError, match="already exists") as caught:
        export_minari(tmp_path / "out", "cartpole/random-v0", data_path=minari_root)
    assert "minari delete cartpole/random-v0" in str(caught.value)
    assert load("cartpole/random-v0").total_episodes == 1  # untouched


def test_failed_export_leaves_no_half_written_dataset(minari_root, tmp_path):
    writer = DatasetWriter(tmp_path / "townlet", flush_interval=0)
    for features in (3, 5):  # two observation shapes cannot share one Minari space
        writer.add(build_trajectory(make_arrays(features=features, map_shape=None)))
    with pytest.raises(DataError, match="one observation space"):
        export_minari(tmp_path / "townlet", "townlet/mixed-v0", data_path=minari_root)
    assert not (minari_root / "townlet" / "mixed-v0").exists()


# ------------------------------------------------------------------------------ no extra


@pytest.mark.parametrize(
    "call",
    [
        lambda tmp: import_minari("cartpole/random-v0", tmp / "out"),
        lambda tmp: export_minari(tmp / "townlet", "cartpole/back-v0"),
    ],
    ids=["import", "export"],
)
def test_missing_minari_package_names_the_extra(monkeypatch, tmp_path, call):
    monkeypatch.setitem(sys.modules, "minari", None)  # `import minari` now raises ImportError
    with pytest.raises(ConfigError) as caught:
        call(tmp_path)
    assert str(caught.value) == MINARI_HINT
    assert "pip install 'townlet-core[minari]'" in str(caught.value)
