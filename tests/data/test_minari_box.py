"""Minari <-> Townlet for continuous (Box), MultiDiscrete and MultiBinary actions.

As in test_minari.py, every Minari dataset is built under `tmp_path` (MINARI_DATASETS_PATH
points there too), so nothing touches ~/.minari or the network. These fail, never skip,
without the `minari` extra.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from townlet_core.data import DatasetWriter, ReplayDataset, TransitionLoader, build_trajectory
from townlet_core.data.minari_io import export_minari, import_minari
from townlet_core.data.validation import require_valid_dataset
from townlet_core.errors import DataError

from .conftest import make_arrays
from .test_minari import assert_same_episodes, load


@pytest.fixture
def minari_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    return root


def _create(dataset_id: str, action_space: Any, actions: list[np.ndarray]) -> None:
    """A dataset of len(actions) episodes with float32 Box observations of width 2."""
    import minari
    from gymnasium import spaces
    from minari.data_collector import EpisodeBuffer

    rng = np.random.default_rng(0)
    buffers = []
    for episode, values in enumerate(actions):
        steps = len(values)
        terminations = np.zeros(steps, dtype=bool)
        terminations[-1] = episode % 2 == 0
        buffers.append(
            EpisodeBuffer(
                seed=episode,
                observations=rng.normal(size=(steps + 1, 2)).astype(np.float32),
                actions=values,
                rewards=rng.normal(size=steps),
                terminations=terminations,
                truncations=~terminations & (np.arange(steps) == steps - 1),
            )
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        minari.create_dataset_from_buffers(
            dataset_id,
            buffers,
            observation_space=spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32),
            action_space=action_space,
        )


def make_pendulum_like(dataset_id: str) -> list[np.ndarray]:
    """Box(-2, 2, (1,), float32) actions, as Pendulum-v1 has."""
    from gymnasium import spaces

    rng = np.random.default_rng(1)
    actions = [rng.uniform(-2, 2, size=(n, 1)).astype(np.float32) for n in (4, 6)]
    _create(dataset_id, spaces.Box(-2.0, 2.0, shape=(1,), dtype=np.float32), actions)
    return actions


def make_float64_box(dataset_id: str) -> list[np.ndarray]:
    """Box actions of shape (2, 2) in float64: values float32 cannot hold exactly."""
    from gymnasium import spaces

    rng = np.random.default_rng(2)
    actions = [rng.normal(size=(n, 2, 2)) for n in (3, 5)]
    low = np.array([[-1.0, -np.inf], [0.0, -5.0]])
    _create(dataset_id, spaces.Box(low, np.inf, shape=(2, 2), dtype=np.float64), actions)
    return actions


def make_multi_discrete(dataset_id: str) -> list[np.ndarray]:
    from gymnasium import spaces

    rng = np.random.default_rng(3)
    space = spaces.MultiDiscrete([3, 2], start=[1, 0])
    actions = [
        np.stack([rng.integers(1, 4, size=n), rng.integers(0, 2, size=n)], axis=1) for n in (4, 5)
    ]
    _create(dataset_id, space, actions)
    return actions


def make_multi_binary(dataset_id: str) -> list[np.ndarray]:
    from gymnasium import spaces

    rng = np.random.default_rng(4)
    actions = [rng.integers(0, 2, size=(n, 3)).astype(np.int8) for n in (4, 5)]
    _create(dataset_id, spaces.MultiBinary(3), actions)
    return actions


# ------------------------------------------------------------------------------ import


def test_box_actions_import_as_float_t_by_a_with_the_space_declared(minari_root, tmp_path):
    actions = make_pendulum_like("pendulum/box-v0")
    import_minari("pendulum/box-v0", tmp_path / "out", data_path=minari_root)
    summary = require_valid_dataset(tmp_path / "out", action_kinds=("box",))
    assert summary.as_dict()["action_space"] == {
        "kind": "box",
        "shape": [1],
        "low": [-2.0],
        "high": [2.0],
    }
    dataset = ReplayDataset(tmp_path / "out")
    for trajectory, want in zip(dataset.trajectories(), actions, strict=True):
        assert trajectory.actions.dtype == np.float32
        np.testing.assert_array_equal(trajectory.actions, want)
    batch = next(iter(TransitionLoader(dataset, batch_size=4, seed=0)))
    assert batch.actions.dtype == np.float32 and batch.actions.shape == (4, 1)


def test_box_actions_of_any_shape_are_flattened_and_exact_copies_kept(minari_root, tmp_path):
    actions = make_float64_box("robot/box64-v0")
    import_minari("robot/box64-v0", tmp_path / "out", data_path=minari_root)
    dataset = ReplayDataset(tmp_path / "out")
    space = dataset.action_space
    assert (space.kind, space.shape) == ("box", (4,))
    assert space.low == (-1.0, -np.inf, 0.0, -5.0) and space.high == (np.inf,) * 4
    for trajectory, want in zip(dataset.trajectories(), actions, strict=True):
        flat = want.reshape(len(want), 4)
        np.testing.assert_allclose(trajectory.actions, flat, rtol=1e-6)
        np.testing.assert_array_equal(trajectory.extras["actions_exact"], flat)


@pytest.mark.parametrize(
    ("make", "kind"),
    [(make_multi_discrete, "multi_discrete"), (make_multi_binary, "multi_binary")],
)
def test_vector_discrete_actions_import_as_integer_t_by_a(minari_root, tmp_path, make, kind):
    actions = make("vector/actions-v0")
    import_minari("vector/actions-v0", tmp_path / "out", data_path=minari_root)
    dataset = ReplayDataset(tmp_path / "out")
    assert dataset.action_kind == kind
    start = np.array([1, 0]) if kind == "multi_discrete" else 0
    for trajectory, want in zip(dataset.trajectories(), actions, strict=True):
        assert trajectory.actions.dtype == np.int64
        np.testing.assert_array_equal(trajectory.actions, want - start)  # ids from 0
    if kind == "multi_discrete":
        assert dataset.action_space.nvec == (3, 2)


def test_non_finite_box_actions_are_refused_naming_the_episode(minari_root, tmp_path):
    from gymnasium import spaces

    bad = np.zeros((3, 1), np.float32)
    bad[1, 0] = np.nan
    _create("pendulum/nan-v0", spaces.Box(-2.0, 2.0, shape=(1,)), [bad])
    with pytest.raises(DataError, match=r"episode 0: 'actions' has 1 NaN or infinite"):
        import_minari("pendulum/nan-v0", tmp_path / "out", data_path=minari_root)


def test_an_action_space_townlet_cannot_hold_is_refused_before_writing(minari_root, tmp_path):
    from gymnasium import spaces

    actions = [np.ones((3, 2, 2), np.int64)]
    _create("grid/md2d-v0", spaces.MultiDiscrete([[2, 2], [2, 2]]), actions)
    with pytest.raises(DataError, match=r"Townlet imports Discrete, Box \(float\)"):
        import_minari("grid/md2d-v0", tmp_path / "out", data_path=minari_root)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------ export


@pytest.mark.parametrize(
    "make", [make_pendulum_like, make_float64_box, make_multi_discrete, make_multi_binary]
)
def test_import_then_export_gives_identical_minari_arrays_and_spaces(minari_root, tmp_path, make):
    make("source/actions-v0")
    import_minari("source/actions-v0", tmp_path / "out", data_path=minari_root)
    export_minari(tmp_path / "out", "roundtrip/actions-v0", data_path=minari_root)
    original, back = load("source/actions-v0"), load("roundtrip/actions-v0")
    assert back.action_space == original.action_space
    assert_same_episodes(back, original)


def test_a_townlet_box_dataset_exports_with_its_declared_bounds(minari_root, tmp_path):
    from gymnasium import spaces

    writer = DatasetWriter(tmp_path / "townlet", flush_interval=0)
    rng = np.random.default_rng(5)
    written = []
    for seed in (0, 1):
        arrays = make_arrays(seed=seed, map_shape=None)
        arrays["actions"] = rng.uniform(-1, 1, size=(5, 2)).astype(np.float32)
        written.append(arrays["actions"])
        meta = {"action_space": {"kind": "box", "shape": [2], "low": [-1, None], "high": [1, 3]}}
        writer.add(build_trajectory(arrays, meta))
    writer.close()
    export_minari(tmp_path / "townlet", "townlet/box-v0", data_path=minari_root)
    exported = load("townlet/box-v0")
    assert exported.action_space == spaces.Box(
        np.array([-1.0, -np.inf], np.float32), np.array([1.0, 3.0], np.float32), dtype=np.float32
    )
    for episode, want in zip(exported.iterate_episodes(), written, strict=True):
        assert episode.actions.dtype == np.float32
        np.testing.assert_array_equal(episode.actions, want)


def test_a_townlet_box_dataset_without_bounds_exports_unbounded(minari_root, tmp_path):
    from gymnasium import spaces

    writer = DatasetWriter(tmp_path / "townlet", flush_interval=0)
    arrays = make_arrays(map_shape=None)
    arrays["actions"] = np.linspace(-3, 3, 15, dtype=np.float32).reshape(5, 3)
    writer.add(build_trajectory(arrays))
    writer.close()
    export_minari(tmp_path / "townlet", "townlet/free-v0", data_path=minari_root)
    assert load("townlet/free-v0").action_space == spaces.Box(-np.inf, np.inf, (3,), np.float32)


def test_a_townlet_multi_discrete_dataset_exports_its_nvec(minari_root, tmp_path):
    from gymnasium import spaces

    writer = DatasetWriter(tmp_path / "townlet", flush_interval=0)
    arrays = make_arrays(map_shape=None)
    arrays["actions"] = np.array([[0, 1], [2, 0], [1, 1], [0, 0], [2, 1]], np.int64)
    writer.add(build_trajectory(arrays))
    writer.close()
    export_minari(tmp_path / "townlet", "townlet/md-v0", data_path=minari_root)
    exported = load("townlet/md-v0")
    assert exported.action_space == spaces.MultiDiscrete([3, 2])
    np.testing.assert_array_equal(next(exported.iterate_episodes()).actions, arrays["actions"])
