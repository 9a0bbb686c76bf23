"""Behaviour cloning across ranks (`townlet train --strategy bc --nproc N`): what is shared out.

Every rank holds the same split (training and validation, chosen from the seed) and the
same weights; each trains on its own share of the training rows: every N-th row of the
split in memory, every N-th trajectory of a streamed one (so a rank reads only its share
from disk). `bc.batch_size` stays the run's total: a rank's mini-batch is about
`batch_size / N` of its rows, the ranks run the same number of mini-batches an epoch, and
gradients are averaged over the ranks before every step (`trainer._step`), so the ranks
hold identical weights throughout. What is measured on a whole split (the validation loss
and accuracy, the training sample's accuracy) is then the same on every rank, so early
stopping and the result agree without a word between them; the training loss is the mean
over every rank's rows.
"""

from __future__ import annotations

import itertools

import torch

from townlet_core.errors import ConfigError
from townlet_core.nn.distributed import Ranks
from townlet_strategies_bc.splits import Split, StreamedSplit


def shard(split: Split | StreamedSplit, ranks: Ranks) -> Split | StreamedSplit:
    """This rank's share of the training split (the split itself with one rank)."""
    if not ranks.world.distributed:
        return split
    rank, size = ranks.rank, ranks.size
    if isinstance(split, StreamedSplit):
        count = split.dataset.num_trajectories
        if count < size:
            raise ConfigError(
                f"bc.streaming shares whole trajectories out over the ranks, and the training "
                f"split has {count} for {size} ranks; use fewer ranks (--nproc), more data, or "
                "train in memory (bc.streaming: false)"
            )
        return StreamedSplit(
            split.dataset.shard(rank, size),
            split.device,
            split.seed,
            shuffle_buffer=split.shuffle_buffer,
            action_dtype=split.action_dtype,
            use_masks=split.use_masks,
        )
    if split.size < size:
        raise ConfigError(
            f"the training split has {split.size} transitions for {size} ranks; use fewer "
            "ranks (--nproc) or more data"
        )
    rows = torch.arange(rank, split.size, size, device=split.actions.device)
    return split.rows(rows)


def local_batch_size(batch_size: int, ranks: Ranks) -> int:
    """A rank's mini-batch: its share of the run's `batch_size` (at least one row)."""
    return max(1, batch_size // ranks.size)


def batch_bounds(rows: int, batch_size: int, ranks: Ranks) -> list[tuple[int, int]]:
    """(start, stop) of each mini-batch of a rank's `rows`: slices of `batch_size` in one
    process; across ranks as many near-equal ones as the rank that needs the most."""
    if not ranks.world.distributed:
        return [(start, min(start + batch_size, rows)) for start in range(0, rows, batch_size)]
    local = local_batch_size(batch_size, ranks)
    count = ranks.max(max(1, -(-rows // local)))
    edges = [round(i * rows / count) for i in range(count + 1)]
    return list(itertools.pairwise(edges))


def streamed_batch_count(rows: int, batch_size: int, ranks: Ranks) -> int | None:
    """How many of its streamed mini-batches a rank trains on per epoch: as many as the rank
    with the fewest has (None with one rank: all of them)."""
    if not ranks.world.distributed:
        return None
    local = local_batch_size(batch_size, ranks)
    return -ranks.max(-max(1, -(-rows // local)))


def mean_loss(loss: float, rows: int, ranks: Ranks) -> float:
    """The epoch's training loss over every rank's rows (this rank's `loss` on `rows`)."""
    if not ranks.world.distributed:
        return loss
    total, count = ranks.sum([loss * rows, float(rows)])
    return total / max(count, 1.0)
