"""When behaviour cloning has diverged, and how an epoch's losses are kept to tell.

A learning rate far too high (1e30 was tried) used to "succeed" with a loss of 1e31; now a
mini-batch loss that is NaN, infinite or far above the run's first one stops the run with
TrainingDivergedError before a checkpoint is saved, as PPO stops.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from townlet_core.errors import TrainingDivergedError

#: Divergence: a mini-batch loss above DIVERGENCE_FACTOR x the run's first mini-batch loss
#: + DIVERGENCE_MARGIN nats (or NaN/inf) stops the run. A healthy cross-entropy starts
#: near ln(actions) and falls; a batch mean of 100 nats above that means the demonstrated
#: actions get probability below e^-100 on average, which only exploding weights produce.
#: The margin keeps a warm start that already fits (first loss near 0) from tripping on
#: ordinary noise. A Gaussian NLL (Box actions) is a density's and can start below 0 (a
#: warm start with a small learned std): the factor then applies to 0, not to the negative
#: loss (which would put the limit below every healthy loss), so the limit is 100 nats:
#: recorded actions a density of e^-100 on average, which again only divergence produces.
DIVERGENCE_FACTOR = 100.0
DIVERGENCE_MARGIN = 100.0
#: Per-batch losses kept as tensors are stacked this many at a time (bounded memory).
_LOSS_CHUNK = 1024


def divergence_limit(reference: float) -> float:
    """DIVERGENCE_FACTOR x max(`reference`, 0) + DIVERGENCE_MARGIN (see the constants)."""
    return DIVERGENCE_FACTOR * max(reference, 0.0) + DIVERGENCE_MARGIN


def first_diverged(losses: np.ndarray, reference: float) -> int | None:
    """Index of the first mini-batch loss that is NaN/inf or above the divergence limit
    (`divergence_limit`), or None when all are healthy."""
    limit = divergence_limit(reference)
    bad = ~np.isfinite(losses) | (losses > limit)
    return int(np.argmax(bad)) if bad.any() else None


class LossTrace:
    """The mini-batch losses of one epoch, kept on the device without a sync per step.

    Converting each step's loss to a Python number costs a few percent of a small
    network's step; instead the detached losses are stacked a chunk at a time and read
    once at the end of the epoch, for the mean and the divergence check.
    """

    def __init__(self) -> None:
        self._pending: list[torch.Tensor] = []
        self._chunks: list[torch.Tensor] = []
        self._sizes: list[int] = []

    def add(self, loss: torch.Tensor, size: int) -> None:
        self._pending.append(loss)
        self._sizes.append(size)
        if len(self._pending) == _LOSS_CHUNK:
            self._chunks.append(torch.stack(self._pending))
            self._pending = []

    def losses(self) -> np.ndarray:
        """Every batch's mean loss, in order (float64)."""
        if self._pending:
            self._chunks.append(torch.stack(self._pending))
            self._pending = []
        if not self._chunks:
            return np.zeros(0)
        return torch.cat(self._chunks).double().cpu().numpy()

    @property
    def rows(self) -> int:
        """The transitions the epoch trained on."""
        return sum(self._sizes)

    def mean(self, losses: np.ndarray) -> float:
        """The sample-weighted mean of `losses` (from `losses()`)."""
        return float(np.dot(losses, np.asarray(self._sizes, dtype=np.float64)) / sum(self._sizes))


def check_divergence(
    losses: np.ndarray, reference: float, epoch: int, source: Path, lr: float
) -> None:
    """Stop with TrainingDivergedError at the first diverged mini-batch of `epoch`."""
    bad = first_diverged(losses, reference)
    if bad is None:
        return
    limit = divergence_limit(reference)
    raise TrainingDivergedError(
        f"behaviour cloning diverged on {source} at epoch {epoch}, batch {bad + 1} of "
        f"{len(losses)}: loss {losses[bad]:.4g} (the first batch's was {reference:.4g}; a "
        f"loss is diverged when NaN, infinite or above {limit:.4g}); stopped before saving a "
        f"checkpoint. Lower bc.learning_rate (now {lr:g}) or check the data"
    )
