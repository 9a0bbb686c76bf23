"""Trajectory batches (bucketed by shape, reshuffled per epoch), splits and transition batches."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from townlet_core.data import ReplayDataset, TransitionLoader, aggregate_baseline
from townlet_core.errors import DataError

from .conftest import make_arrays, save_sample


def _manifest(tmp_path, lengths, **kwargs):
    names = []
    for index, steps in enumerate(lengths):
        arrays = make_arrays(steps=steps, seed=index, **kwargs)
        arrays["actions"][:] = index  # the action identifies the trajectory
        names.append(save_sample(tmp_path, f"t{index:02d}", arrays).name)
    (tmp_path / "m.json").write_text(json.dumps(names))
    return tmp_path / "m.json"


def test_batches_never_mix_shapes(tmp_path):
    dataset = ReplayDataset(_manifest(tmp_path, [8, 12]), batch_size=2)
    batches = list(dataset)
    assert len(dataset) == len(batches) == 2
    assert sorted(b.features.shape for b in batches) == [(1, 8, 3), (1, 12, 3)]


def test_len_counts_batches_per_bucket_with_and_without_drop_last(tmp_path):
    manifest = _manifest(tmp_path, [4, 4, 4, 6, 6])
    assert len(ReplayDataset(manifest, batch_size=2)) == 3  # ceil(3/2) + ceil(2/2)
    dropped = ReplayDataset(manifest, batch_size=2, drop_last=True)
    assert len(dropped) == 2
    assert [b.batch_size for b in dropped] == [2, 2]


def test_batch_carries_stacked_arrays_and_first_sample_metadata(fixtures_dir):
    dataset = ReplayDataset(fixtures_dir / "replay_samples" / "replay_manifest.json", batch_size=3)
    (batch,) = list(dataset)
    assert batch.map.shape == (3, 2, 4, 11, 11)
    assert batch.value_preds.shape == (3, 3)
    assert len(batch.metadata["feature_names"]) == 36
    assert len(batch.metadata["metrics"]) == 3
    stats = batch.conflict_stats()
    assert set(stats) == {
        "rivalry_max_mean",
        "rivalry_max_max",
        "rivalry_avoid_count_mean",
        "rivalry_avoid_count_max",
    }


def _order(dataset):
    return [int(b.actions[0, 0]) for b in dataset]


def test_shuffle_is_redrawn_every_epoch_and_reproducible_from_the_seed(tmp_path):
    manifest = _manifest(tmp_path, [5] * 12)
    first = ReplayDataset(manifest, shuffle=True, seed=3)
    epochs = [_order(first) for _ in range(3)]
    assert sorted(epochs[0]) == list(range(12))
    assert epochs[0] != epochs[1] != epochs[2]
    again = ReplayDataset(manifest, shuffle=True, seed=3)
    assert [_order(again) for _ in range(3)] == epochs
    assert _order(ReplayDataset(manifest, shuffle=True, seed=4)) != epochs[0]
    assert _order(ReplayDataset(manifest)) == list(range(12))


def test_streaming_yields_the_same_batches_without_loading_up_front(tmp_path, monkeypatch):
    manifest = _manifest(tmp_path, [4, 4, 7, 7, 7])
    in_memory = list(ReplayDataset(manifest, batch_size=2, shuffle=True, seed=1))
    loads = Counter()
    import townlet_core.data.dataset as module

    original = module.read_sample

    def counting(path, meta=None):
        loads[path.name] += 1
        return original(path, meta)

    monkeypatch.setattr(module, "read_sample", counting)
    streaming = ReplayDataset(manifest, batch_size=2, shuffle=True, seed=1, streaming=True)
    assert not loads  # construction reads only the .npz headers
    batches = list(streaming)
    assert all(count == 1 for count in loads.values()) and len(loads) == 5
    assert len(batches) == len(in_memory)
    for a, b in zip(batches, in_memory, strict=True):
        np.testing.assert_array_equal(a.features, b.features)
        np.testing.assert_array_equal(a.actions, b.actions)


def test_split_is_by_whole_trajectory_and_seeded(tmp_path):
    dataset = ReplayDataset(_manifest(tmp_path, [5] * 10))
    train, val = dataset.split(0.2, seed=7)
    train_ids = {int(t.actions[0]) for t in train.trajectories()}
    val_ids = {int(t.actions[0]) for t in val.trajectories()}
    assert (len(train_ids), len(val_ids)) == (8, 2)
    assert train_ids.isdisjoint(val_ids)
    again_train, _ = dataset.split(0.2, seed=7)
    assert {int(t.actions[0]) for t in again_train.trajectories()} == train_ids
    assert val.batch_size == dataset.batch_size


def test_split_needs_two_trajectories(tmp_path):
    dataset = ReplayDataset(_manifest(tmp_path, [5]))
    with pytest.raises(DataError, match="needs at least 2 trajectories, found 1"):
        dataset.split(0.2)


def test_action_dim_comes_from_metadata_when_declared(tmp_path):
    save_sample(tmp_path, "s", make_arrays(actions=2), meta={"action_dim": 6})
    assert ReplayDataset(tmp_path / "s.npz").action_dim == 6
    save_sample(tmp_path, "u", make_arrays(actions=2))
    assert ReplayDataset(tmp_path / "u.npz").action_dim == 2


def test_baseline_aggregation_sums_sum_and_total_keys_and_averages_the_rest():
    baseline = aggregate_baseline(
        [
            {"reward_sum": 2.0, "action_total": 10.0, "reward_mean": 1.0},
            {"reward_sum": 4.0, "action_total": 30.0, "reward_mean": 3.0, "only_here": 7.0},
        ]
    )
    assert baseline == {
        "sample_count": 2.0,
        "reward_sum": 6.0,
        "reward_sum_mean": 3.0,
        "action_total": 40.0,
        "action_total_mean": 20.0,
        "reward_mean": 2.0,
        "only_here": 7.0,
    }
    assert aggregate_baseline([]) == {}


def test_fixture_baseline_matches_the_original_metrics_file(fixtures_dir):
    dataset = ReplayDataset(fixtures_dir / "queue_conflict_capture")
    baseline = dataset.baseline_metrics
    assert baseline["sample_count"] == 3
    assert baseline["reward_sum"] == pytest.approx(-36.0)
    assert baseline["reward_sum_mean"] == pytest.approx(-12.0)


@pytest.mark.parametrize("streaming", [False, True])
def test_transition_loader_yields_every_step_once_per_epoch(tmp_path, streaming):
    manifest = _manifest(tmp_path, [7, 9, 11, 13])
    loader = TransitionLoader(
        ReplayDataset(manifest, streaming=streaming), batch_size=8, shuffle=True, seed=2
    )
    for _ in range(2):
        batches = list(loader)
        assert len(batches) == len(loader) == 5  # ceil(40 / 8)
        assert sum(len(b) for b in batches) == 40
        counts = Counter(np.concatenate([b.actions for b in batches]).tolist())
        assert counts == {0: 7, 1: 9, 2: 11, 3: 13}
        assert all(b.map.shape[1:] == (2, 3, 3) for b in batches)


def test_transition_loader_drop_last_and_reshuffle(tmp_path):
    manifest = _manifest(tmp_path, [10, 10])
    loader = TransitionLoader(ReplayDataset(manifest), batch_size=8, seed=0, drop_last=True)
    first = [b.features.copy() for b in loader]
    second = [b.features.copy() for b in loader]
    assert [len(b) for b in first] == [8, 8]
    assert not np.array_equal(first[0], second[0])


def test_transition_loader_refuses_mixed_observation_shapes(tmp_path):
    save_sample(tmp_path, "a", make_arrays(features=3))
    save_sample(tmp_path, "b", make_arrays(features=4))
    (tmp_path / "m.json").write_text('["a.npz", "b.npz"]')
    with pytest.raises(DataError, match="different observation shapes"):
        TransitionLoader(ReplayDataset(tmp_path / "m.json"))


def test_manifest_entry_fields_reach_trajectory_metadata(fixtures_dir):
    trajectory = next(ReplayDataset(fixtures_dir / "bc_idle_v1" / "manifest.json").trajectories())
    assert trajectory.metadata["manifest_accepted"] is True


def test_inspecting_a_streamed_dataset_reads_each_sample_once(tmp_path, monkeypatch):
    import townlet_core.data.dataset as module
    from townlet_core.data.report import inspect_dataset

    manifest = _manifest(tmp_path, [4, 5, 6])
    loads = Counter()
    original = module.read_sample

    def counting(path, meta=None):
        loads[path.name] += 1
        return original(path, meta)

    monkeypatch.setattr(module, "read_sample", counting)
    summary = inspect_dataset(manifest)
    assert summary["action_dim"] == 3 and summary["baseline_metrics"]["sample_count"] == 3
    assert sorted(loads.values()) == [1, 1, 1]
