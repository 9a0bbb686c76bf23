"""How behaviour cloning holds a split of the data: in memory (`Split`) or on disk
(`StreamedSplit`, `bc.streaming`).

In memory each split is moved to the training device once and every epoch permutes it
whole. Streamed, the trajectories stay on disk and every pass reads them one at a time, so
memory holds a bounded shuffle buffer, one trajectory and a batch, never the dataset.

Actions are moved in the dtype the network's action distribution trains with
(`ActionDistribution.action_dtype`): int64 ids or choices for Discrete and MultiDiscrete,
float32 for Box and for MultiBinary switches (stored as 0/1 integers on disk). Where the
dataset records action masks (`action_masks`, (T, W) booleans) and they are wanted, each
split carries them beside the actions; steps of samples without masks allow everything.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from townlet_core.data import ReplayDataset, TransitionLoader
from townlet_core.data.trajectory import MASKS

#: Streaming: transitions in the block-shuffle buffer (at least one batch).
STREAM_SHUFFLE_BUFFER = 8192
#: Transitions per forward pass when scoring a split (and per read when streaming one).
SCORE_BATCH = 8192


@dataclass
class Split:
    """One split's transitions as tensors on the training device."""

    features: torch.Tensor
    map: torch.Tensor | None
    actions: torch.Tensor
    #: (rows, W) bool, the actions each step allowed; None: every action was.
    masks: torch.Tensor | None = None

    @property
    def size(self) -> int:
        return int(self.actions.shape[0])

    @property
    def nbytes(self) -> int:
        return sum(
            t.nbytes for t in (self.features, self.map, self.actions, self.masks) if t is not None
        )

    def rows(self, index: torch.Tensor | slice) -> Split:
        return Split(
            features=self.features[index],
            map=None if self.map is None else self.map[index],
            actions=self.actions[index],
            masks=None if self.masks is None else self.masks[index],
        )

    def chunks(self, size: int) -> Iterator[Split]:
        """The split in order, `size` transitions at a time (views, no copies)."""
        for start in range(0, self.size, size):
            yield self.rows(slice(start, start + size))


def split_in_memory(
    dataset: ReplayDataset,
    device: torch.device,
    action_dtype: torch.dtype = torch.int64,
    use_masks: bool = True,
) -> Split:
    """Every transition of `dataset` as one `Split` on `device` (with its masks, if any and
    `use_masks`)."""
    arrays = TransitionLoader(dataset, shuffle=False).arrays()
    masks = arrays.get(MASKS) if use_masks else None
    return _split_of(
        arrays["features"], arrays["map"], arrays["actions"], masks, device, action_dtype
    )


def _split_of(
    features: np.ndarray | None,
    map_array: np.ndarray | None,
    actions: np.ndarray | None,
    masks: np.ndarray | None,
    device: torch.device,
    action_dtype: torch.dtype,
) -> Split:
    assert features is not None and actions is not None
    return Split(
        features=torch.from_numpy(features).to(device),
        map=None if map_array is None else torch.from_numpy(map_array).to(device),
        actions=torch.from_numpy(actions).to(device, dtype=action_dtype),
        masks=None if masks is None else torch.from_numpy(masks).to(device, dtype=torch.bool),
    )


@dataclass
class StreamedSplit:
    """One split left on disk (`bc.streaming`), read a trajectory at a time on every pass.

    Design: the validation split is chosen by whole trajectory, exactly as in memory (the
    same trajectories for the same seed), so no pass needs more than the trajectory at hand.
    A training epoch reads the trajectories in an order shuffled from (seed, epoch), permutes
    each one's steps, and block-shuffles them through a buffer of `shuffle_buffer`
    transitions, so a batch mixes the several trajectories a block spans (see
    `TransitionLoader`). That is a weaker shuffle than the in-memory permutation of the whole
    split when the split is larger than the buffer, and equal to it when it is not.

    Cost: every epoch reads the training split once and the validation split once more (for
    `val_loss`); the per-epoch training accuracy uses a fixed sample of training transitions
    gathered in one pass up front and kept in memory.
    """

    dataset: ReplayDataset
    device: torch.device
    seed: int
    shuffle_buffer: int = STREAM_SHUFFLE_BUFFER
    action_dtype: torch.dtype = torch.int64
    use_masks: bool = True

    @property
    def size(self) -> int:
        return self.dataset.transitions

    def shuffled(self, batch_size: int, epoch: int) -> Iterator[Split]:
        """Epoch `epoch`'s training batches, shuffled from (seed, epoch)."""
        loader = TransitionLoader(
            self.dataset,
            batch_size=batch_size,
            seed=self.seed,
            shuffle_buffer=max(batch_size, self.shuffle_buffer),
        )
        loader.epoch = epoch
        return self._on_device(loader)

    def chunks(self, size: int) -> Iterator[Split]:
        """The split in manifest order, `size` transitions at a time."""
        return self._on_device(TransitionLoader(self.dataset, batch_size=size, shuffle=False))

    def sample(self, count: int, seed: int) -> Split:
        """The same `count` transitions `sample_of` draws from the split in memory (in
        order)."""
        if self.size <= count:
            wanted = np.arange(self.size)
        else:
            wanted = np.sort(np.random.default_rng(seed).choice(self.size, count, replace=False))
        parts, start = [], 0
        for chunk in self.chunks(SCORE_BATCH):
            low, high = np.searchsorted(wanted, [start, start + chunk.size])
            if high > low:
                index = torch.from_numpy(wanted[low:high] - start).to(self.device)
                parts.append(chunk.rows(index))
            start += chunk.size
        maps = [p.map for p in parts if p.map is not None]
        masks = [p.masks for p in parts if p.masks is not None]
        return Split(
            features=torch.cat([p.features for p in parts]),
            map=torch.cat(maps) if maps else None,
            actions=torch.cat([p.actions for p in parts]),
            masks=torch.cat(masks) if masks else None,
        )

    def _on_device(self, loader: TransitionLoader) -> Iterator[Split]:
        for batch in loader:
            masks = batch.action_masks if self.use_masks else None
            yield _split_of(
                batch.features, batch.map, batch.actions, masks, self.device, self.action_dtype
            )


def sample_of(split: Split | StreamedSplit, count: int, seed: int) -> Split:
    """`count` transitions of `split` drawn from `seed` (the whole split when smaller)."""
    if isinstance(split, StreamedSplit):
        return split.sample(count, seed)
    if split.size <= count:
        return split
    rows = torch.from_numpy(np.random.default_rng(seed).choice(split.size, count, replace=False))
    return split.rows(rows.to(split.actions.device))
