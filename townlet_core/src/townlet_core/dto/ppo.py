"""`PPOTrainingResultDTO`: the last update's telemetry plus what the whole run did.

Telemetry field names and meanings are the original Townlet trainer's (version 1.2), so
existing readers keep working; dynamic `conflict.*` fields are the only extras allowed.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from townlet_core.dto import summary
from townlet_core.dto.base import TrainingResultDTO

TELEMETRY_VERSION = 1.2

#: The always-present telemetry keys of one update, in the original's order.
TELEMETRY_FIELDS = (
    "epoch", "updates", "transitions", "loss_policy", "loss_value", "loss_entropy",
    "loss_total", "clip_fraction", "adv_mean", "adv_std", "grad_norm", "kl_divergence",
    "telemetry_version", "lr", "steps", "adv_zero_std_batches", "adv_min_std",
    "clip_triggered_minibatches", "clip_fraction_max", "epoch_duration_sec", "data_mode",
    "cycle_id", "batch_entropy_mean", "batch_entropy_std", "grad_norm_max",
    "kl_divergence_max", "reward_advantage_corr", "rollout_ticks", "log_stream_offset",
    "queue_conflict_events", "queue_conflict_intensity_sum", "shared_meal_events",
    "late_help_events", "shift_takeover_events", "chat_success_events",
    "chat_failure_events", "chat_quality_mean",
)  # fmt: skip


class PPOTrainingResultDTO(TrainingResultDTO):
    """PPO result. Telemetry fields describe the last update (as the original returned)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    # --- the original telemetry (last update)
    epoch: int = Field(gt=0, description="1-based index of the last update.")
    updates: int = Field(ge=0, description="Gradient steps in the last update.")
    transitions: int = Field(ge=0, description="Transitions in the last update's batch.")
    loss_policy: float
    loss_value: float = Field(ge=0)
    loss_entropy: float = Field(
        description="Mean policy entropy (not scaled); a Gaussian's (Box actions) is a "
        "differential entropy, below 0 once its standard deviation is small."
    )
    loss_total: float
    clip_fraction: float = Field(ge=0, le=1)
    adv_mean: float
    adv_std: float = Field(ge=0)
    grad_norm: float = Field(ge=0, description="Mean global gradient norm before clipping.")
    kl_divergence: float
    telemetry_version: float = TELEMETRY_VERSION
    lr: float = Field(ge=0)
    steps: int = Field(ge=0, description="Transitions trained on, cumulative across runs.")
    adv_zero_std_batches: int = Field(0, ge=0)
    adv_min_std: float = Field(0.0, ge=0)
    clip_triggered_minibatches: int = Field(0, ge=0)
    clip_fraction_max: float = Field(0.0, ge=0, le=1)
    epoch_duration_sec: float = Field(ge=0)
    data_mode: Literal["replay", "rollout", "mixed"]
    cycle_id: int = Field(ge=0)
    batch_entropy_mean: float  # below 0 for a confident Gaussian policy, as loss_entropy
    batch_entropy_std: float = Field(ge=0)
    grad_norm_max: float = Field(ge=0)
    kl_divergence_max: float = Field(ge=0)
    reward_advantage_corr: float = Field(ge=-1, le=1)
    rollout_ticks: int = Field(ge=0)
    log_stream_offset: int = Field(ge=0)
    queue_conflict_events: float = Field(0.0, ge=0)
    queue_conflict_intensity_sum: float = Field(0.0, ge=0)
    shared_meal_events: float = Field(0.0, ge=0)
    late_help_events: float = Field(0.0, ge=0)
    shift_takeover_events: float = Field(0.0, ge=0)
    chat_success_events: float = Field(0.0, ge=0)
    chat_failure_events: float = Field(0.0, ge=0)
    chat_quality_mean: float = Field(0.0, ge=0)
    bc_weight: float = Field(
        0.0, ge=0, description="The BC term's weight in the last update (0: off)."
    )
    anneal_ratio: float = Field(
        0.0,
        ge=0,
        description="bc_weight over ppo.bc_weight (0: off); the original Townlet's name.",
    )
    bc_kl: float | None = Field(
        None, description="Mean KL(pi_init || pi) the BC term saw in the last update."
    )
    critic_warmup_updates: int = Field(
        0, ge=0, description="Value-only updates the run began with (critic warm-up)."
    )
    action_blocked_ratio: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Mean share of actions the action mask ruled out per step (masked runs).",
    )
    baseline_sample_count: float | None = Field(None, ge=0)
    baseline_reward_mean: float | None = None
    baseline_reward_sum: float | None = None
    baseline_reward_sum_mean: float | None = None
    baseline_log_prob_mean: float | None = None
    # --- live mode, last update
    episode_return_mean: float | None = None
    episode_length_mean: float | None = Field(None, ge=0)
    explained_variance: float | None = None
    approx_kl: float | None = None
    steps_per_second: float | None = Field(None, ge=0)
    rollout_sec: float | None = Field(None, ge=0)
    update_sec: float | None = Field(None, ge=0)
    # --- the run
    env_id: str | None = None
    dataset: str | None = None
    updates_run: int = Field(ge=0, description="Updates this run performed (after a resume too).")
    total_updates: int = Field(ge=0, description="Updates the run was configured for.")
    env_steps: int = Field(0, ge=0, description="Environment steps of the run (live mode).")
    stopped_early: bool = Field(False, description="Stopped on reaching stop_return.")
    resumed_from_update: int | None = Field(None, ge=0)
    best_checkpoint: str | None = None
    best_eval_mean_return: float | None = None
    eval_episodes: int | None = Field(None, gt=0)
    eval_mean_return: float | None = None
    eval_std_return: float | None = Field(None, ge=0)
    eval_min_return: float | None = None
    eval_max_return: float | None = None
    eval_mean_length: float | None = Field(None, ge=0)

    def summary_lines(self) -> list[str]:
        """What it trained on, the greedy return (and the best one, kept apart), env steps
        and their rate in this process, the updates, and the last update's losses."""
        lines = summary.trained_on(self.env_id, self.dataset)
        lines += summary.evaluation(self, hint="no environment to evaluate in")
        best = self.best_eval_mean_return
        if best is not None and self.best_checkpoint is not None and best != self.eval_mean_return:
            lines.append(
                f"best: {summary.number(best)} at an evaluation during training "
                f"({self.best_checkpoint})"
            )
        if self.env_steps:  # the same steps every update; a resume did the earlier ones
            here = self.env_steps * self.updates_run // max(self.epoch, 1)
            steps = summary.throughput(
                self.env_steps, "env steps", here, self.duration_sec, "steps"
            )
            lines.append(f"steps: {steps}")
        notes = []
        if self.stopped_early:
            notes.append("stopped early: stop_return reached")
        if self.resumed_from_update is not None:
            notes.append(f"resumed after update {self.resumed_from_update}")
        noted = f" ({'; '.join(notes)})" if notes else ""
        lines.append(f"updates: {self.epoch} of {self.total_updates}{noted}")
        kl = self.approx_kl if self.approx_kl is not None else self.kl_divergence
        last = [
            f"loss {summary.number(self.loss_total)}",
            f"entropy {summary.number(self.loss_entropy)}",
            f"KL {kl:.2g}",
            f"clip {self.clip_fraction:.2f}",
        ]
        if self.explained_variance is not None:
            last.append(f"explained var {self.explained_variance:.2f}")
        lines.append(f"last update: {', '.join(last)}")
        return lines

    @model_validator(mode="before")
    @classmethod
    def _only_conflict_extras(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = [
                key
                for key in data
                if key not in cls.model_fields and not str(key).startswith("conflict.")
            ]
            if unknown:
                raise ValueError(
                    f"unknown field(s) {', '.join(map(str, unknown))}; only 'conflict.*' "
                    "dynamic fields are allowed"
                )
        return data
