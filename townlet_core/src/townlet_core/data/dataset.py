"""Datasets over Townlet samples: trajectory batches and shuffled transition batches.

`ReplayDataset` groups trajectories by their exact shape signature so a batch never mixes
shapes (the original's rule), loads each sample once (or, streaming, reads only the `.npz`
headers up front and the arrays when a batch needs them), and re-draws its shuffle every
epoch from `(seed, epoch)`. `TransitionLoader` flattens trajectories into per-step batches
for supervised learning, from contiguous in-memory arrays or streamed one trajectory at a
time. Where samples hold action masks, both carry them (`action_masks`, see
`townlet_core.data.masks`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from townlet_core.data.action_space import DISCRETE, ActionSpace
from townlet_core.data.actions import ActionCount
from townlet_core.data.manifest import DatasetSource, SampleEntry, Warn, open_source
from townlet_core.data.masks import MaskCount
from townlet_core.data.npz import read_array_info, read_sample
from townlet_core.data.stats import aggregate_baseline, conflict_stats, sample_metrics
from townlet_core.data.trajectory import MASKS, TRAINING_ARRAYS, Trajectory, shape_signature
from townlet_core.errors import DataError

Signature = tuple[tuple[str, tuple[int, ...]], ...]


@dataclass(frozen=True)
class ReplayBatch:
    """B trajectories of equal shape stacked on a new leading axis."""

    features: np.ndarray  # (B, T, F)
    actions: np.ndarray  # (B, T) discrete ids, or (B, T, A) float / integer vectors
    old_log_probs: np.ndarray  # (B, T)
    value_preds: np.ndarray  # (B, T) or (B, T + 1)
    rewards: np.ndarray  # (B, T)
    dones: np.ndarray  # (B, T)
    map: np.ndarray | None  # (B, T, C, H, W)
    extras: dict[str, np.ndarray]
    metadata: dict[str, Any]

    @property
    def batch_size(self) -> int:
        return int(self.actions.shape[0])

    @property
    def timesteps(self) -> int:
        return int(self.actions.shape[1])

    @property
    def action_masks(self) -> np.ndarray | None:
        """(B, T, W) bool, the actions each step allowed; None when the samples hold none."""
        return self.extras.get(MASKS)

    def conflict_stats(self) -> dict[str, float]:
        return conflict_stats(self.features, self.metadata.get("feature_names"))


def stack(
    trajectories: Sequence[Trajectory], metrics: Sequence[Mapping[str, float]]
) -> ReplayBatch:
    first = trajectories[0]
    meta = first.metadata
    metadata: dict[str, Any] = {
        key: meta[key]
        for key in ("feature_names", "map_shape", "training_arrays", "action_dim", "action_lookup")
        if key in meta
    }
    metadata["timesteps"] = first.timesteps
    metadata["value_pred_steps"] = int(first.value_preds.shape[0])
    metadata["metrics"] = [dict(m) for m in metrics]
    metadata["sources"] = [str(t.source) if t.source else None for t in trajectories]
    return ReplayBatch(
        features=np.stack([t.features for t in trajectories]),
        actions=np.stack([t.actions for t in trajectories]),
        old_log_probs=np.stack([t.old_log_probs for t in trajectories]),
        value_preds=np.stack([t.value_preds for t in trajectories]),
        rewards=np.stack([t.rewards for t in trajectories]),
        dones=np.stack([t.dones for t in trajectories]),
        map=_stack_maps(trajectories),
        extras={k: np.stack([t.extras[k] for t in trajectories]) for k in first.extras},
        metadata=metadata,
    )


def _stack_maps(trajectories: Sequence[Trajectory]) -> np.ndarray | None:
    maps = [t.map for t in trajectories if t.map is not None]
    return np.stack(maps) if maps else None


def _header_signature(entry: SampleEntry) -> Signature:
    info = read_array_info(entry.sample)
    shapes = {name: shape for name, (shape, _dtype) in info.items()}
    # normalise the 1-sample promotions the loader applies, so signatures match loaded data
    if "features" in shapes and len(shapes["features"]) == 1:
        shapes["features"] = (1, *shapes["features"])
    if "map" in shapes and len(shapes["map"]) == 3:
        shapes["map"] = (1, *shapes["map"])
    for name in TRAINING_ARRAYS:
        if name in shapes and len(shapes[name]) == 0:
            shapes[name] = (1,)
    return shape_signature(shapes)


@dataclass
class _Buckets:
    order: list[Signature] = field(default_factory=list)
    members: dict[Signature, list[int]] = field(default_factory=dict)

    def add(self, signature: Signature, index: int) -> None:
        if signature not in self.members:
            self.members[signature] = []
            self.order.append(signature)
        self.members[signature].append(index)


class ReplayDataset:
    """Trajectories from a manifest, capture directory or sample, iterated in batches."""

    def __init__(
        self,
        source: DatasetSource | Path | str,
        *,
        batch_size: int = 1,
        shuffle: bool = False,
        seed: int | None = None,
        drop_last: bool = False,
        streaming: bool = False,
        strict_paths: bool = False,
        warn: Warn | None = None,
        _subset: Sequence[int] | None = None,
        _loaded: Sequence[Trajectory] | None = None,
    ) -> None:
        """`source` is a `DatasetSource` or a path for `open_source` (with `strict_paths`
        and `warn`, see `read_manifest`)."""
        if batch_size < 1:
            raise DataError(f"batch_size must be at least 1, got {batch_size}")
        self.source = (
            source
            if isinstance(source, DatasetSource)
            else open_source(source, strict_paths=strict_paths, warn=warn)
        )
        indices = list(range(len(self.source.entries))) if _subset is None else list(_subset)
        self._source_indices = indices
        self.entries: list[SampleEntry] = [self.source.entries[i] for i in indices]
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.streaming = streaming
        self.epoch = 0
        self._trajectories: list[Trajectory] | None = None
        self._metrics: list[dict[str, float]] | None = None
        self._action_space: ActionSpace | None = None
        if not streaming:
            self._trajectories = (
                list(_loaded) if _loaded is not None else [self._load(e) for e in self.entries]
            )
            signatures = [t.signature for t in self._trajectories]
        else:
            signatures = [_header_signature(entry) for entry in self.entries]
        self._buckets = _Buckets()
        for index, signature in enumerate(signatures):
            self._buckets.add(signature, index)
        self._buckets.order.sort()

    # ------------------------------------------------------------------ basics

    @property
    def label(self) -> str:
        return self.source.label

    def __len__(self) -> int:
        """Number of batches one epoch yields."""
        rounding = math.floor if self.drop_last else math.ceil
        return sum(
            int(rounding(len(members) / self.batch_size))
            for members in self._buckets.members.values()
        )

    @property
    def num_trajectories(self) -> int:
        return len(self.entries)

    def _load(self, entry: SampleEntry) -> Trajectory:
        trajectory = read_sample(entry.sample, entry.meta)
        for key, value in entry.extra.items():
            trajectory.metadata.setdefault(f"manifest_{key}", value)
        return trajectory

    def trajectory(self, index: int) -> Trajectory:
        """Trajectory `index` (loaded now when streaming)."""
        if self._trajectories is not None:
            return self._trajectories[index]
        return self._load(self.entries[index])

    def trajectories(self) -> Iterator[Trajectory]:
        """Every trajectory in manifest order (streamed one at a time when streaming)."""
        for index in range(len(self.entries)):
            yield self.trajectory(index)

    # ------------------------------------------------------------------ iteration

    def _rng(self, epoch: int) -> np.random.Generator:
        return np.random.default_rng([self.seed if self.seed is not None else 0, epoch])

    def __iter__(self) -> Iterator[ReplayBatch]:
        epoch = self.epoch
        self.epoch += 1
        rng = self._rng(epoch) if self.shuffle else None
        metrics = self.sample_metrics() if not self.streaming else None
        for signature in self._buckets.order:
            members = list(self._buckets.members[signature])
            if rng is not None:
                rng.shuffle(members)
            for start in range(0, len(members), self.batch_size):
                chunk = members[start : start + self.batch_size]
                if self.drop_last and len(chunk) < self.batch_size:
                    continue
                trajectories = [self.trajectory(i) for i in chunk]
                chunk_metrics = (
                    [metrics[i] for i in chunk]
                    if metrics is not None
                    else [self._metrics_for(i, t) for i, t in zip(chunk, trajectories, strict=True)]
                )
                yield stack(trajectories, chunk_metrics)

    # ------------------------------------------------------------------ metrics

    def _metrics_for(self, index: int, trajectory: Trajectory) -> dict[str, float]:
        stored = trajectory.metadata.get("metrics")
        if isinstance(stored, Mapping) and stored:
            return {k: float(v) for k, v in stored.items() if isinstance(v, (int, float))}
        mapped = self.source.metrics_map.get(self.entries[index].sample.name)
        if mapped:
            return {k: float(v) for k, v in mapped.items() if isinstance(v, (int, float))}
        return sample_metrics(trajectory)

    def scan(self, visit: Callable[[Trajectory], None] | None = None) -> None:
        """One pass over every trajectory (each read once, also when streaming) that fills
        the per-sample metrics and the action count; `visit` sees each trajectory too."""
        metrics: list[dict[str, float]] = []
        actions = ActionCount()
        masks = MaskCount()
        for index, trajectory in enumerate(self.trajectories()):
            metrics.append(self._metrics_for(index, trajectory))
            actions.add(trajectory)
            masks.add(trajectory)
            if visit is not None:
                visit(trajectory)
        masks.check_space(actions.action_space, str(self.source.path))
        self._metrics = metrics
        self._action_space = actions.action_space

    def sample_metrics(self) -> list[dict[str, float]]:
        """Per-sample metrics: stored in the sidecar, else the capture's metrics file, else
        computed from the arrays."""
        if self._metrics is None:
            self.scan()
        assert self._metrics is not None
        return self._metrics

    @property
    def baseline_metrics(self) -> dict[str, float]:
        return aggregate_baseline(self.sample_metrics())

    @property
    def transitions(self) -> int:
        return sum(int(dict(sig)["actions"][0]) for sig in self._signatures())

    def _signatures(self) -> list[Signature]:
        by_index: dict[int, Signature] = {}
        for signature, members in self._buckets.members.items():
            for index in members:
                by_index[index] = signature
        return [by_index[i] for i in range(len(self.entries))]

    @property
    def action_space(self) -> ActionSpace:
        """The dataset's action space: declared in the samples' metadata where they declare
        it, else inferred from the actions' dtype and shape; samples that disagree, ids at or
        above a declared count and counts above `TOWNLET_MAX_ACTIONS` raise DataError
        (`townlet_core.data.actions`)."""
        if self._action_space is None:
            self.scan()
        assert self._action_space is not None
        return self._action_space

    @property
    def action_kind(self) -> str:
        """`discrete`, `box`, `multi_discrete` or `multi_binary`."""
        return self.action_space.kind

    @property
    def action_mask_width(self) -> int | None:
        """W, the entries of each step's action mask, when any sample holds `action_masks`
        (else None). Read from the shapes alone (no sample is loaded); the masks themselves
        are checked with the actions by `scan` (`action_space` runs it) and by
        `townlet_core.data.validation`."""
        widths = {dict(sig)[MASKS][1] for sig in self._buckets.members if MASKS in dict(sig)}
        if len(widths) > 1:
            raise DataError(
                f"{self.source.path}: samples' action masks differ in width ({sorted(widths)}); "
                "one dataset has one action space: keep them apart"
            )
        return widths.pop() if widths else None

    @property
    def action_dim(self) -> int:
        """The number of discrete actions: from the metadata when samples declare it (the
        original dropped it), else inferred from the largest action id; the larger when both
        exist. A DataError for other action kinds, which have no number of actions to size a
        categorical head with (read `action_space` instead)."""
        space = self.action_space
        if space.kind != DISCRETE:
            raise DataError(
                f"{self.source.path}: the actions are {space.describe()}, which has no number "
                "of actions; a trainer of discrete policies cannot use this dataset (read "
                "action_space for continuous or vector actions)"
            )
        assert space.n is not None
        return space.n

    # ------------------------------------------------------------------ splitting

    def split(self, val_fraction: float, seed: int = 0) -> tuple[ReplayDataset, ReplayDataset]:
        """Train and validation datasets, split by whole trajectory (never by step).

        Each side gets at least one trajectory when there are two or more.
        """
        if not 0.0 < val_fraction < 1.0:
            raise DataError(f"val_fraction must be between 0 and 1, got {val_fraction}")
        count = len(self.entries)
        if count < 2:
            raise DataError(
                f"{self.source.path}: a validation split needs at least 2 trajectories, found "
                f"{count}; add data or turn the validation split off"
            )
        order = np.random.default_rng(seed).permutation(count)
        n_val = min(count - 1, max(1, round(count * val_fraction)))
        val_idx, train_idx = sorted(order[:n_val].tolist()), sorted(order[n_val:].tolist())
        return self._subset(train_idx), self._subset(val_idx)

    def shard(self, rank: int, ranks: int) -> ReplayDataset:
        """Rank `rank`'s share of the trajectories for data-parallel training: every
        `ranks`-th one from the `rank`-th (whole trajectories, in manifest order)."""
        if not 0 <= rank < ranks:
            raise ValueError(f"rank {rank} is not one of {ranks} ranks")
        return self._subset(range(rank, len(self.entries), ranks))

    def _subset(self, indices: Sequence[int]) -> ReplayDataset:
        base = [self._source_indices[i] for i in indices]
        loaded = (
            [self._trajectories[i] for i in indices] if self._trajectories is not None else None
        )
        return ReplayDataset(
            self.source,
            batch_size=self.batch_size,
            shuffle=self.shuffle,
            seed=self.seed,
            drop_last=self.drop_last,
            streaming=self.streaming,
            _subset=base,
            _loaded=loaded,
        )


@dataclass(frozen=True)
class TransitionBatch:
    """B independent steps (for supervised learning): observation, action and the rest."""

    features: np.ndarray  # (B, F)
    map: np.ndarray | None  # (B, C, H, W)
    actions: np.ndarray  # (B,) discrete ids, or (B, A) float / integer vectors
    rewards: np.ndarray  # (B,)
    dones: np.ndarray  # (B,)
    old_log_probs: np.ndarray  # (B,)
    #: (B, W) bool, the actions each step allowed; None when the dataset holds no masks.
    action_masks: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.actions.shape[0])


_STEP_FIELDS = ("features", "map", "actions", "rewards", "dones", "old_log_probs", MASKS)


def _step_arrays(trajectory: Trajectory, mask_width: int | None) -> dict[str, np.ndarray | None]:
    """One trajectory's per-step arrays; with `mask_width` (the dataset holds masks) its
    masks, all-allowed where this sample has none."""
    masks = trajectory.action_masks
    if mask_width is not None and masks is None:
        masks = np.ones((trajectory.timesteps, mask_width), dtype=np.bool_)
    return {
        "features": trajectory.features,
        "map": trajectory.map,
        "actions": trajectory.actions,  # (T,) ids or (T, A) vectors, dtype kept
        "rewards": trajectory.rewards.reshape(trajectory.timesteps, -1)[:, 0],
        "dones": trajectory.dones.reshape(trajectory.timesteps, -1)[:, 0],
        "old_log_probs": trajectory.old_log_probs.reshape(trajectory.timesteps, -1)[:, 0],
        MASKS: masks if mask_width is not None else None,
    }


class TransitionLoader:
    """Shuffled batches of single steps drawn from every trajectory of a dataset.

    In memory, the trajectories are concatenated once into contiguous arrays and each epoch
    is one permutation of them. Streaming, trajectories are read one at a time in a shuffled
    order and steps are permuted within each, so memory holds at most one trajectory, the
    previous one's leftover (less than a batch) and the batch being built.

    Streaming with `shuffle_buffer=N` (at least `batch_size`; ignored in memory or without
    `shuffle`) is a block shuffle: steps from the shuffled trajectories fill a buffer of N
    transitions, the full buffer is permuted and emptied batch by batch, and the leftover
    (less than a batch) starts the next block. A batch then mixes the several trajectories a
    block spans instead of coming mostly from one; memory holds the buffer, its permutation,
    one trajectory and one batch.
    """

    def __init__(
        self,
        dataset: ReplayDataset,
        *,
        batch_size: int = 256,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        shuffle_buffer: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise DataError(f"batch_size must be at least 1, got {batch_size}")
        if shuffle_buffer is not None and shuffle_buffer < batch_size:
            raise DataError(
                f"shuffle_buffer ({shuffle_buffer}) must hold at least one batch "
                f"({batch_size} transitions); raise it or leave it unset"
            )
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.shuffle_buffer = shuffle_buffer
        self.epoch = 0
        self._check_uniform_observations()
        self.mask_width = dataset.action_mask_width
        self._arrays: dict[str, np.ndarray | None] | None = None
        if not dataset.streaming:
            self._arrays = self._concatenate()

    def _check_uniform_observations(self) -> None:
        shapes = set()
        for signature in self.dataset._buckets.members:
            parts = dict(signature)
            shapes.add((parts["features"][1:], parts.get("map", (0,))[1:]))
        if len(shapes) > 1:
            raise DataError(
                f"{self.dataset.source.path}: trajectories have different observation shapes "
                f"({sorted(shapes)}); transitions can only be batched from one shape"
            )

    def _concatenate(self) -> dict[str, np.ndarray | None]:
        parts = [_step_arrays(t, self.mask_width) for t in self.dataset.trajectories()]
        out: dict[str, np.ndarray | None] = {}
        for name in _STEP_FIELDS:
            values = [p[name] for p in parts]
            out[name] = None if values[0] is None else np.concatenate(values)  # type: ignore[arg-type]
        return out

    def arrays(self) -> dict[str, np.ndarray | None]:
        """All transitions as contiguous arrays (in-memory datasets only), e.g. to move them
        to a training device once."""
        if self._arrays is None:
            raise DataError("arrays() needs an in-memory dataset; streaming loads on demand")
        return dict(self._arrays)

    @property
    def transitions(self) -> int:
        if self._arrays is not None:
            actions = self._arrays["actions"]
            assert actions is not None
            return int(actions.shape[0])
        return self.dataset.transitions

    def __len__(self) -> int:
        rounding = math.floor if self.drop_last else math.ceil
        return int(rounding(self.transitions / self.batch_size))

    def _rng(self, epoch: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, epoch])

    def __iter__(self) -> Iterator[TransitionBatch]:
        epoch = self.epoch
        self.epoch += 1
        rng = self._rng(epoch)
        if self._arrays is not None:
            yield from self._iter_memory(rng)
        elif self.shuffle and self.shuffle_buffer is not None:
            yield from self._iter_block_shuffled(rng, self.shuffle_buffer)
        else:
            yield from self._iter_streaming(rng)

    @staticmethod
    def _take(arrays: Mapping[str, np.ndarray | None], index: np.ndarray) -> TransitionBatch:
        def pick(name: str) -> np.ndarray:
            value = arrays[name]
            assert value is not None
            picked: np.ndarray = value[index]
            return picked

        map_array, masks = arrays["map"], arrays[MASKS]
        return TransitionBatch(
            features=pick("features"),
            map=None if map_array is None else map_array[index],
            actions=pick("actions"),
            rewards=pick("rewards"),
            dones=pick("dones"),
            old_log_probs=pick("old_log_probs"),
            action_masks=None if masks is None else masks[index],
        )

    def _iter_memory(self, rng: np.random.Generator) -> Iterator[TransitionBatch]:
        assert self._arrays is not None
        total = self.transitions
        order = rng.permutation(total) if self.shuffle else np.arange(total)
        for start in range(0, total, self.batch_size):
            index = order[start : start + self.batch_size]
            if self.drop_last and len(index) < self.batch_size:
                return
            yield self._take(self._arrays, index)

    def _iter_streaming(self, rng: np.random.Generator) -> Iterator[TransitionBatch]:
        """Hold one trajectory and one batch under construction, nothing more.

        Steps are copied straight into a preallocated batch buffer (a batch may span
        trajectories), and each trajectory is released before the next is read.
        """
        size = self.batch_size
        order = self._trajectory_order(rng)
        buffer: dict[str, np.ndarray] | None = None
        filled = 0
        for position in range(len(order)):  # not order.tolist(): an int object each adds up
            arrays, perm = self._trajectory_steps(int(order[position]), rng)
            steps = len(perm)
            offset = 0
            while offset < steps:
                if buffer is None:
                    buffer = {k: np.empty((size, *v.shape[1:]), v.dtype) for k, v in arrays.items()}
                    filled = 0
                take = min(size - filled, steps - offset)
                _copy_steps(arrays, perm[offset : offset + take], buffer, filled)
                filled += take
                offset += take
                if filled == size:
                    yield _batch_from(buffer, size)
                    buffer = None
            del arrays, perm  # release this trajectory before reading the next
        if buffer is not None and filled and not (self.drop_last and filled < size):
            yield _batch_from(buffer, filled)

    def _iter_block_shuffled(
        self, rng: np.random.Generator, capacity: int
    ) -> Iterator[TransitionBatch]:
        """Fill a buffer of `capacity` steps, permute it, empty it batch by batch; repeat.

        Each batch is gathered into arrays of its own, so the buffer is reused; a block's
        leftover (less than a batch) moves to the front of the buffer and the next block fills
        in behind it. The last block, when the trajectories run out, is permuted and emptied
        whole (its final batch may be short).
        """
        order = self._trajectory_order(rng)
        pool: dict[str, np.ndarray] | None = None
        filled = 0
        for position in range(len(order)):
            arrays, perm = self._trajectory_steps(int(order[position]), rng)
            if pool is None:
                pool = {k: np.empty((capacity, *v.shape[1:]), v.dtype) for k, v in arrays.items()}
            offset = 0
            while offset < len(perm):
                take = min(capacity - filled, len(perm) - offset)
                _copy_steps(arrays, perm[offset : offset + take], pool, filled)
                filled += take
                offset += take
                if filled == capacity:
                    block = _permutation(rng, capacity)
                    whole = capacity - capacity % self.batch_size
                    yield from self._batches_of(pool, block[:whole])
                    leftover = block[whole:]
                    for values in pool.values():
                        values[: len(leftover)] = values[leftover]
                    filled = len(leftover)
                    del block, leftover
            del arrays, perm  # release this trajectory before reading the next
        if pool is not None and filled:
            yield from self._batches_of(pool, _permutation(rng, filled))

    def _batches_of(
        self, pool: Mapping[str, np.ndarray], index: np.ndarray
    ) -> Iterator[TransitionBatch]:
        """Batches of the rows `index` of `pool`, in that order, each copied out of it."""
        for start in range(0, len(index), self.batch_size):
            rows = index[start : start + self.batch_size]
            if self.drop_last and len(rows) < self.batch_size:
                return
            yield _batch_from({k: v[rows] for k, v in pool.items()}, len(rows))

    def _trajectory_order(self, rng: np.random.Generator) -> np.ndarray:
        """The order trajectories are read in this epoch (shuffled when `shuffle`)."""
        count = self.dataset.num_trajectories
        order = np.arange(count, dtype=np.int32 if count < 2**31 else np.int64)
        if self.shuffle:
            rng.shuffle(order)
        return order

    def _trajectory_steps(
        self, index: int, rng: np.random.Generator
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Trajectory `index` read now as per-step arrays, and the order to take its steps in
        (permuted when `shuffle`)."""
        parts = _step_arrays(self.dataset.trajectory(index), self.mask_width)
        arrays = {k: v for k, v in parts.items() if v is not None}
        steps = int(arrays["actions"].shape[0])
        perm = _permutation(rng, steps) if self.shuffle else np.arange(steps, dtype=np.int32)
        return arrays, perm


def _permutation(rng: np.random.Generator, count: int) -> np.ndarray:
    """A shuffled `arange(count)` as int32: half the bytes of numpy's default index."""
    order = np.arange(count, dtype=np.int32)
    rng.shuffle(order)
    return order


def _copy_steps(
    arrays: Mapping[str, np.ndarray], index: np.ndarray, buffer: Mapping[str, np.ndarray], at: int
) -> None:
    """Copy the steps `index` of every array into `buffer` rows `at...` (no temporaries)."""
    for name, values in arrays.items():
        np.take(values, index, axis=0, out=buffer[name][at : at + len(index)], mode="clip")


def _batch_from(buffer: Mapping[str, np.ndarray], length: int) -> TransitionBatch:
    map_array, masks = buffer.get("map"), buffer.get(MASKS)
    return TransitionBatch(
        features=buffer["features"][:length],
        map=None if map_array is None else map_array[:length],
        actions=buffer["actions"][:length],
        rewards=buffer["rewards"][:length],
        dones=buffer["dones"][:length],
        old_log_probs=buffer["old_log_probs"][:length],
        action_masks=None if masks is None else masks[:length],
    )
