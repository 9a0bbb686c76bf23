"""Writing datasets: the same format back, atomically, and readable after an interruption."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from townlet_core.data import (
    DatasetWriter,
    ReplayDataset,
    build_trajectory,
    read_sample,
    write_sample,
)
from townlet_core.errors import DataError

from .conftest import make_arrays


def test_fixture_sample_round_trips_unchanged(fixtures_dir, tmp_path):
    original = read_sample(fixtures_dir / "queue_conflict_capture" / "rollout_sample_anna_001.npz")
    path, _meta = write_sample(tmp_path, "copy", original)
    again = read_sample(path)
    for name, array in original.arrays().items():
        np.testing.assert_array_equal(again.arrays()[name], array)
        assert again.arrays()[name].dtype == array.dtype
    assert again.metadata == original.metadata


def test_writer_keeps_a_readable_dataset_after_each_trajectory(tmp_path):
    writer = DatasetWriter(tmp_path / "out", metadata={"env_id": "Toy-v0"}, flush_interval=0)
    for index in range(3):
        writer.add(build_trajectory(make_arrays(seed=index)))
        dataset = ReplayDataset(tmp_path / "out")
        assert dataset.num_trajectories == index + 1
    assert dataset.source.metadata == {"env_id": "Toy-v0"}
    assert dataset.sample_metrics()[0]["timesteps"] == 5.0
    leftovers = [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_manifest_rewrites_are_throttled_and_completed_on_close(tmp_path):
    with DatasetWriter(tmp_path / "out", flush_interval=3600) as writer:
        for index in range(4):
            writer.add(build_trajectory(make_arrays(seed=index)))
        assert ReplayDataset(tmp_path / "out").num_trajectories == 1  # listed at the first add
    assert ReplayDataset(tmp_path / "out").num_trajectories == 4


def test_interrupted_write_leaves_previous_trajectories_intact(tmp_path, monkeypatch):
    writer = DatasetWriter(tmp_path / "out")
    writer.add(build_trajectory(make_arrays(seed=0)))

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez_compressed", interrupted)
    with pytest.raises(KeyboardInterrupt):
        writer.add(build_trajectory(make_arrays(seed=1)))
    monkeypatch.undo()
    dataset = ReplayDataset(tmp_path / "out")
    assert dataset.num_trajectories == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "manifest.json",
        "traj_00000.json",
        "traj_00000.npz",
    ]


def test_writer_refuses_a_folder_that_already_holds_a_dataset(tmp_path):
    DatasetWriter(tmp_path).add(build_trajectory(make_arrays()))
    with pytest.raises(DataError, match="already holds a dataset"):
        DatasetWriter(tmp_path)


finite = st.floats(-1e6, 1e6, allow_nan=False, width=32)


@st.composite
def trajectories(draw):
    steps = draw(st.integers(1, 12))
    features = draw(st.integers(1, 5))
    with_map = draw(st.booleans())
    arrays = {
        "features": draw(hnp.arrays(np.float32, (steps, features), elements=finite)),
        "actions": draw(hnp.arrays(np.int64, steps, elements=st.integers(0, 9))),
        "old_log_probs": draw(hnp.arrays(np.float32, steps, elements=finite)),
        "value_preds": draw(
            hnp.arrays(np.float32, steps + draw(st.integers(0, 1)), elements=finite)
        ),
        "rewards": draw(hnp.arrays(np.float32, steps, elements=finite)),
        "dones": draw(hnp.arrays(np.bool_, steps)),
    }
    if with_map:
        arrays["map"] = draw(hnp.arrays(np.float32, (steps, 2, 2, 2), elements=finite))
    metadata = draw(
        st.dictionaries(
            st.text(min_size=1, max_size=5), st.integers() | st.text(max_size=5), max_size=3
        )
    )
    return arrays, metadata


@settings(max_examples=60, deadline=None)
@given(trajectories(), st.booleans())
def test_reader_and_writer_round_trip_any_valid_trajectory(tmp_path_factory, drawn, compress):
    arrays, metadata = drawn
    original = build_trajectory(arrays, metadata)
    directory = tmp_path_factory.mktemp("rt")
    path, _meta = write_sample(directory, "x", original, compress=compress)
    again = read_sample(path)
    assert again.arrays().keys() == original.arrays().keys()
    for name, array in original.arrays().items():
        np.testing.assert_array_equal(again.arrays()[name], array)
        assert again.arrays()[name].dtype == array.dtype
    assert again.metadata == original.metadata
