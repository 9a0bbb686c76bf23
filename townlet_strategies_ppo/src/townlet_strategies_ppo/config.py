"""`PPOConfig`: the `ppo:` section of a run config (torch-free; descriptions are the docs).

The defaults are RL Zoo's tuned CartPole-v1 settings (8 envs x 32 steps, batch 256, 20
epochs, gamma 0.98, lambda 0.8, learning rate 1e-3 and clip 0.2 both decaying linearly, no
entropy bonus): `townlet train --strategy ppo` balances the pole within 60,000 steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from townlet_core.checkpoints import NetworkSpec
from townlet_core.envs.settings import EnvSettings, VectorMode, WrapperSpec
from townlet_core.envs.spaces import ActionMapping

Schedule = Literal["constant", "linear"]
BCWeightSchedule = Literal["constant", "linear", "exponential"]


class PPOConfig(BaseModel):
    """Proximal policy optimisation on live rollouts (env) or replay data (dataset)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    # --- what to learn from
    env: str = Field("CartPole-v1", description="Gymnasium id or module:Class to act in.")
    env_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword arguments to gymnasium.make (or the module:Class), e.g. "
        "{sutton_barto_reward: true}; used for rollouts and evaluation alike.",
    )
    wrappers: list[WrapperSpec] = Field(
        default_factory=list,
        description="Wrappers applied in order to each sub-env before vectorising, each "
        "{wrapper: module:Class, kwargs: {...}}, e.g. gymnasium.wrappers:FrameStackObservation "
        "with {stack_size: 4}; naming one imports it, so only config and CLI options name them.",
    )
    dataset: Path | None = Field(
        None,
        description="Train on this Townlet replay dataset (its stored old_log_probs and "
        "value_preds) instead of live rollouts.",
    )
    recompute_old: bool = Field(
        False,
        description="Replay mode: recompute old log-probs and values with the current "
        "network before each update phase (the data's behaviour policy is often unrelated).",
    )
    init_checkpoint: Path | None = Field(
        None, description="Warm-start from this checkpoint (e.g. a BC run's checkpoint)."
    )
    # --- actions and normalisation
    action_mapping: ActionMapping = Field(
        "clip",
        description="Box actions only: how a sampled action reaches the env, clipped to its "
        "bounds (CleanRL, SB3) or squashed into them through tanh; the log-probability is "
        "that of the sampled action either way. Recorded in the checkpoint (a warm start "
        "that does not set it keeps the checkpoint's).",
    )
    action_mask_key: str | None = Field(
        None,
        min_length=1,
        description="Discrete and MultiDiscrete actions: read the action mask from this key "
        "of a Dict observation (it is then no observation feature); unset: from "
        "info['action_mask'] when the env gives one. Masked actions are never sampled and "
        "are left out of the update's log-probabilities and entropy.",
    )
    normalize_observations: bool = Field(
        False,
        description="Normalise the features by their running mean and variance (SB3's "
        "VecNormalize): updated with every observation of the rollouts, frozen for "
        "evaluation, kept in the network's weights (so checkpoints, resume, warm starts, "
        "evaluate and capture carry them). Either this or ppo.network.normalize_observations "
        "turns it on.",
    )
    normalize_rewards: bool = Field(
        False,
        description="Divide rewards by the running standard deviation of the discounted "
        "return (gamma: ppo.gamma) before GAE; reported episode returns stay raw. Its "
        "statistics are saved in checkpoints (extra.reward_scaler) and the training state.",
    )
    # --- how much
    total_timesteps: int = Field(
        60_000, ge=1, description="Live mode: environment steps to collect in all."
    )
    replay_updates: int = Field(
        10, ge=1, description="Replay mode: update phases over the whole dataset."
    )
    num_envs: int = Field(8, ge=1, description="Environments stepped together.")
    vector: VectorMode = Field(
        "sync",
        description="Step the environments in this process (sync), each in a worker process "
        "(async: Gymnasium's AsyncVectorEnv, observations in shared memory), or async when "
        "one env step costs 1 ms or more and the machine has several cores (auto). The "
        "same seed steps the same transitions either way; async envs are not snapshotted, "
        "so a resume restarts their episodes.",
    )
    num_steps: int = Field(32, ge=1, description="Steps per environment per rollout.")
    max_episode_steps: int | None = Field(None, ge=1, description="Cut episodes at this length.")
    # --- the update
    update_epochs: int = Field(20, ge=1, description="Passes over each batch per update.")
    minibatch_size: int = Field(256, ge=1, description="Transitions per gradient step.")
    learning_rate: float = Field(1e-3, gt=0, description="Adam learning rate (eps 1e-5).")
    lr_schedule: Schedule = Field("linear", description="constant, or linear decay to 0.")
    clip_range: float = Field(0.2, gt=0, le=1, description="Surrogate clipping epsilon.")
    clip_schedule: Schedule = Field("linear", description="constant, or linear decay to 0.")
    value_clip: float | None = Field(
        None,
        gt=0,
        description="Clip value predictions to within this of the old ones (the original "
        "Townlet trainer used 0.2; null: unclipped value loss).",
    )
    gamma: float = Field(0.98, ge=0, le=1, description="Discount factor.")
    gae_lambda: float = Field(0.8, ge=0, le=1, description="GAE lambda.")
    advantage_normalization: Literal["minibatch", "batch", "none"] = Field(
        "minibatch",
        description="Normalise advantages per mini-batch, per batch (as the original), or not.",
    )
    ent_coef: float = Field(0.0, ge=0, description="Entropy bonus coefficient.")
    vf_coef: float = Field(0.5, ge=0, description="Value loss coefficient.")
    max_grad_norm: float | None = Field(
        0.5, gt=0, description="Clip the global gradient norm to this (null: no clipping)."
    )
    target_kl: float | None = Field(
        None, gt=0, description="Stop an update's epochs once the approximate KL exceeds this."
    )
    # --- a warm start (ppo.init_checkpoint, or a composed stage after BC)
    critic_warmup_rollouts: Annotated[int, Field(ge=0)] | Literal["auto"] = Field(
        "auto",
        description="Rollouts at the start of the run that fit only the value function "
        "(the policy does not move), so a warm-started policy is not trained against a "
        "random critic. auto: 4 when the run warm-starts live (at most a quarter of its "
        "updates), else 0; 0 turns it off. Their environment steps count toward "
        "total_timesteps (replay mode: their passes toward replay_updates).",
    )
    critic_warmup_epochs: int | None = Field(
        None, ge=1, description="Passes over each warm-up rollout (null: update_epochs)."
    )
    critic_warmup_learning_rate: float | None = Field(
        None,
        gt=0,
        description="The warm-up's constant Adam rate (null: 10 x learning_rate, so a fresh "
        "critic reaches the scale of the returns within a few rollouts).",
    )
    bc_weight: float = Field(
        0.0,
        ge=0,
        description="Weight of a behaviour-cloning term, KL(pi_init || pi) on each batch's "
        "states, pi_init the policy the run started from (ppo.init_checkpoint or the "
        "warm start a composing strategy hands it): keeps fine-tuning close to the clone. 0: off.",
    )
    bc_weight_schedule: BCWeightSchedule = Field(
        "constant",
        description="How bc_weight changes over the PPO updates: constant, linear to "
        "bc_weight_final at the last update, or exponential (geometric) to bc_weight_final.",
    )
    bc_weight_final: float = Field(
        0.0,
        ge=0,
        description="The BC term's weight at the last update (linear and exponential "
        "schedules; exponential needs it above 0).",
    )
    network: NetworkSpec = Field(default_factory=NetworkSpec, description="Policy network.")
    torch_threads: int | None = Field(
        1, ge=1, description="Intra-op CPU threads (null: torch's default)."
    )
    # --- evaluation, checkpoints, telemetry
    eval_every: int | None = Field(
        8,
        ge=1,
        description="Live mode: greedy evaluation every this many updates (null: end only).",
    )
    eval_episodes: int = Field(20, ge=1, description="Episodes per evaluation.")
    stop_return: float | None = Field(
        475.0,
        description="Live mode: stop once an evaluation's mean return reaches this "
        "(null: always use the whole budget).",
    )
    checkpoint_every: int = Field(
        10, ge=1, description="Updates between resumable checkpoints (kept: keep_checkpoints)."
    )
    keep_checkpoints: int = Field(3, ge=1, description="Periodic checkpoints kept on disk.")
    log_frequency: int = Field(1, ge=1, description="Write every Nth update's telemetry line.")
    max_log_entries: int | None = Field(
        None, ge=1, description="Rotate metrics.jsonl to .1, .2, ... after this many lines."
    )
    accept_return: float | None = Field(
        None, description="If set, a final evaluation below this ends the run 'failed'."
    )

    def env_settings(self) -> EnvSettings:
        """The environment rollouts and evaluations build: env, env_kwargs, wrappers,
        max_episode_steps and the mask key together, so the two never differ."""
        return EnvSettings(
            id=self.env,
            kwargs=self.env_kwargs,
            wrappers=tuple(self.wrappers),
            max_episode_steps=self.max_episode_steps,
            action_mask_key=self.action_mask_key,
        )

    def network_spec(self) -> NetworkSpec:
        """The network a fresh run builds: `network`, normalising its observations when
        either `normalize_observations` or `network.normalize_observations` says so."""
        if self.normalize_observations and not self.network.normalize_observations:
            return self.network.model_copy(update={"normalize_observations": True})
        return self.network

    @model_validator(mode="after")
    def _env_settings_need_an_env(self) -> PPOConfig:
        """Replay mode steps no environment: its env settings would be silently ignored."""
        if self.dataset is not None and (self.env_kwargs or self.wrappers):
            raise ValueError(
                "ppo.env_kwargs and ppo.wrappers apply to live rollouts, but ppo.dataset "
                "trains on replay data; remove them, or remove ppo.dataset"
            )
        live_only = [
            name
            for name, used in (
                ("ppo.action_mask_key", self.action_mask_key is not None),
                ("ppo.normalize_observations", self.network_spec().normalize_observations),
                ("ppo.normalize_rewards", self.normalize_rewards),
                ("ppo.action_mapping", self.action_mapping != "clip"),
            )
            if used
        ]
        if self.dataset is not None and live_only:
            raise ValueError(
                f"{', '.join(live_only)} apply to live rollouts (masks, statistics and "
                "actions come from the env), but ppo.dataset trains on replay data; remove "
                "them, or remove ppo.dataset"
            )
        return self

    def total_updates(self) -> int:
        """Updates the run makes: one per rollout of the budget, or replay_updates."""
        if self.dataset is not None:
            return self.replay_updates
        return max(1, self.total_timesteps // (self.num_envs * self.num_steps))

    @model_validator(mode="after")
    def _warm_start_settings_fit(self) -> PPOConfig:
        """A warm-up as long as the run would leave no PPO update, or a geometric decay to 0
        (which never gets there), is refused. (A schedule with bc_weight 0 is not: a run's
        recorded config, which a resume reads, spells every field out.)"""
        rollouts = self.critic_warmup_rollouts
        if isinstance(rollouts, int) and rollouts >= self.total_updates():
            raise ValueError(
                f"ppo.critic_warmup_rollouts {rollouts} leaves no PPO update of the run's "
                f"{self.total_updates()}; lower it, or raise total_timesteps (replay_updates)"
            )
        if (
            self.bc_weight > 0
            and self.bc_weight_schedule == "exponential"
            and (self.bc_weight_final <= 0)
        ):
            raise ValueError(
                "ppo.bc_weight_schedule exponential decays geometrically to "
                "ppo.bc_weight_final, which must be above 0 (e.g. 0.01); or use linear"
            )
        return self

    @model_validator(mode="after")
    def _batch_fits(self) -> PPOConfig:
        if self.dataset is None and self.minibatch_size > self.num_envs * self.num_steps:
            raise ValueError(
                f"minibatch_size {self.minibatch_size} exceeds the rollout batch "
                f"{self.num_envs * self.num_steps} (num_envs x num_steps)"
            )
        return self

    @model_validator(mode="after")
    def _rollout_fits_the_budget(self) -> PPOConfig:
        """Live mode always collects at least one whole rollout: one larger than the budget
        would silently collect many times what total_timesteps says."""
        rollout = self.num_envs * self.num_steps
        if self.dataset is None and rollout > self.total_timesteps:
            raise PydanticCustomError(
                "rollout_over_budget",
                "one rollout (num_envs {envs} x num_steps {steps} = {rollout} steps) is more "
                "than total_timesteps {total}; set total_timesteps to at least {rollout}, or "
                "lower num_envs or num_steps",
                {
                    "envs": self.num_envs,
                    "steps": self.num_steps,
                    "rollout": rollout,
                    "total": self.total_timesteps,
                },
            )
        return self
