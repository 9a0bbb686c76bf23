"""`TransitionLoader(shuffle_buffer=N)`: streamed batches block-shuffled through N steps."""

from __future__ import annotations

import json
import tracemalloc
from collections import Counter

import numpy as np
import pytest

from townlet_core.data import ReplayDataset, TransitionLoader
from townlet_core.errors import DataError

from .conftest import make_arrays, save_sample


def _manifest(folder, lengths, **kwargs):
    """One sample per length; each step's action is its trajectory's index."""
    names = []
    for index, steps in enumerate(lengths):
        arrays = make_arrays(steps=steps, seed=index, actions=1, **kwargs)
        arrays["actions"][:] = index
        names.append(save_sample(folder, f"t{index:03d}", arrays).name)
    (folder / "m.json").write_text(json.dumps(names))
    return folder / "m.json"


def _loader(manifest, **kwargs):
    return TransitionLoader(ReplayDataset(manifest, streaming=True), **kwargs)


@pytest.mark.parametrize("buffer", [8, 20, 37, 1000])
def test_every_step_comes_once_per_epoch_whatever_the_buffer(tmp_path, buffer):
    lengths = [7, 9, 11, 13, 5, 15]
    loader = _loader(_manifest(tmp_path, lengths), batch_size=8, seed=1, shuffle_buffer=buffer)
    for _ in range(2):
        batches = list(loader)
        assert [len(b) for b in batches[:-1]] == [8] * (len(batches) - 1)
        assert len(batches) == len(loader) == 8  # ceil(60 / 8)
        counts = Counter(np.concatenate([b.actions for b in batches]).tolist())
        assert counts == dict(enumerate(lengths))
        assert all(b.map is not None and b.map.shape[1:] == (2, 3, 3) for b in batches)


def test_drop_last_drops_only_the_final_short_batch(tmp_path):
    loader = _loader(
        _manifest(tmp_path, [10, 10, 10]), batch_size=8, shuffle_buffer=12, drop_last=True
    )
    assert [len(b) for b in loader] == [8, 8, 8]


def test_a_batch_mixes_the_trajectories_its_block_spans(tmp_path):
    manifest = _manifest(tmp_path, [40] * 10)
    spans = {}
    for buffer in (None, 200):
        batches = list(_loader(manifest, batch_size=8, seed=0, shuffle_buffer=buffer))
        spans[buffer] = [len(set(b.actions.tolist())) for b in batches]
    assert max(spans[None]) == 1  # one trajectory at a time (40 steps: five whole batches)
    # A block spans five trajectories: 8 draws from them hit about 4.2 distinct ones.
    assert np.mean(spans[200]) >= 3.5


def test_the_shuffle_is_drawn_from_seed_and_epoch(tmp_path):
    manifest = _manifest(tmp_path, [30, 30, 30])

    def epochs(seed):
        loader = _loader(manifest, batch_size=8, seed=seed, shuffle_buffer=40)
        return [np.concatenate([b.features for b in loader]) for _ in range(2)]

    first, second = epochs(3)
    again = epochs(3)
    assert np.array_equal(first, again[0]) and np.array_equal(second, again[1])
    assert not np.array_equal(first, second)
    assert not np.array_equal(first, epochs(4)[0])


def test_without_shuffle_the_buffer_changes_nothing(tmp_path):
    manifest = _manifest(tmp_path, [5, 6, 7])
    plain = [b.actions.tolist() for b in _loader(manifest, batch_size=4, shuffle=False)]
    buffered = _loader(manifest, batch_size=4, shuffle=False, shuffle_buffer=8)
    assert [b.actions.tolist() for b in buffered] == plain


def test_a_buffer_smaller_than_a_batch_is_refused(tmp_path):
    with pytest.raises(DataError, match=r"shuffle_buffer \(4\) must hold at least one batch"):
        _loader(_manifest(tmp_path, [5]), batch_size=8, shuffle_buffer=4)


def test_memory_holds_the_buffer_not_the_dataset(tmp_path):
    steps, buffer, batch = 50, 256, 32
    manifest = _manifest(tmp_path, [steps] * 200, features=8, map_shape=None)
    total = sum(a.nbytes for a in make_arrays(steps, 8, None).values()) * 200
    loader = _loader(manifest, batch_size=batch, seed=0, shuffle_buffer=buffer)
    tracemalloc.start()
    try:
        seen = sum(len(b) for b in loader)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seen == steps * 200
    assert peak <= total / 10, (peak, total)
