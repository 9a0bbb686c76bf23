"""`BCTrainingResultDTO`: what a behaviour-cloning run reports.

Keeps the original Townlet fields (mode, manifest, accuracy, loss, learning_rate,
batch_size, epochs, weight_decay, device, duration_sec) with their bounds, and adds what the
original never produced: held-out validation numbers, the epochs actually run, the
checkpoint, and the greedy return of the cloned policy when an environment was given.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from townlet_core.dto import summary
from townlet_core.dto.base import TrainingResultDTO


class BCTrainingResultDTO(TrainingResultDTO):
    """Behaviour cloning result. `accuracy`/`loss` are on the training split after training
    (loss: mean over samples, not the last mini-batch); `val_*` on the held-out split."""

    mode: Literal["bc"] = "bc"
    manifest: str = Field(description="The demonstrations trained on (dataset path).")
    accuracy: float | None = Field(
        ge=0.0,
        le=1.0,
        description="Training-split accuracy (exact match per action dimension for "
        "MultiDiscrete and MultiBinary); None for continuous (Box) actions, which report "
        "action_mse instead.",
    )
    loss: float = Field(
        allow_inf_nan=False,
        description="Training-split mean negative log-likelihood of the recorded actions (the "
        "cross-entropy for discrete actions, never negative; for continuous actions a "
        "density's, which goes below 0 as the clone grows confident).",
    )
    val_accuracy: float | None = Field(None, ge=0.0, le=1.0)
    action_mse: float | None = Field(
        None,
        ge=0.0,
        allow_inf_nan=False,
        description="Box actions: mean squared error of the greedy action (the Gaussian's mean) "
        "against the recorded one, on the training split.",
    )
    val_action_mse: float | None = Field(None, ge=0.0, allow_inf_nan=False)
    val_loss: float | None = Field(None, allow_inf_nan=False)
    learning_rate: float = Field(gt=0.0)
    batch_size: int = Field(gt=0)
    epochs: int = Field(gt=0, description="Epochs configured.")
    epochs_run: int = Field(gt=0, description="Epochs run (fewer after early stopping).")
    weight_decay: float | None = Field(None, ge=0.0)
    samples: int = Field(ge=0, description="Training transitions.")
    val_samples: int = Field(0, ge=0, description="Validation transitions.")
    action_dim: int = Field(gt=0)
    eval_env: str | None = None
    eval_episodes: int | None = Field(None, gt=0)
    eval_mean_return: float | None = None
    eval_std_return: float | None = Field(None, ge=0.0)
    eval_min_return: float | None = None
    eval_max_return: float | None = None
    eval_mean_length: float | None = Field(None, ge=0.0)

    def summary_lines(self) -> list[str]:
        """The dataset, the clone's greedy return, transitions times epochs and their rate,
        and the fit on the training and the held-out split."""
        recorded = "demonstrations" in self.artifacts
        lines = summary.trained_on(self.manifest, note="recorded by this run" if recorded else "")
        lines += summary.evaluation(self, env=self.eval_env, hint="set bc.eval_env")
        seen = self.samples * self.epochs_run
        epochs = (
            f"{self.epochs_run} of {self.epochs} epochs"
            if self.epochs_run < self.epochs
            else (f"{self.epochs_run} epochs")
        )
        rate = summary.throughput(seen, "transitions", seen, self.duration_sec, "transitions")
        held = f" (+{summary.count(self.val_samples)} held out)" if self.val_samples else ""
        lines.append(f"steps: {summary.count(self.samples)}{held} × {epochs} = {rate}")
        if self.accuracy is not None:
            lines.append(f"accuracy: {_pair(self.accuracy, self.val_accuracy, '.3f')}")
        if self.action_mse is not None:
            lines.append(f"action mse: {_pair(self.action_mse, self.val_action_mse, '.3g')}")
        lines.append(f"loss: {_pair(self.loss, self.val_loss, '.3f')}")
        return lines


def _pair(train: float, held_out: float | None, spec: str) -> str:
    """`0.970 train, 0.950 held out`."""
    text = f"{train:{spec}} train"
    return text + (f", {held_out:{spec}} held out" if held_out is not None else "")
