"""`BCConfig`: the `bc:` section of a run config (torch-free; descriptions are the docs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from townlet_core.checkpoints import NetworkSpec
from townlet_core.envs.settings import EnvSettings, VectorMode, WrapperSpec

ENV_KWARGS_HELP = "Keyword arguments to gymnasium.make (or the module:Class) for {what}."
WRAPPERS_HELP = (
    "Wrappers applied in order to each sub-env of {what}, each {{wrapper: module:Class, "
    "kwargs: {{...}}}} (e.g. gymnasium.wrappers:FrameStackObservation with {{stack_size: 4}})."
)


MASK_KEY_HELP = (
    "Discrete and MultiDiscrete actions: read the action mask from this key of a Dict "
    "observation (it is then no feature); unset: from info['action_mask'] when the env "
    "gives one."
)


class CaptureSpec(BaseModel):
    """Record demonstrations before training (used when no `dataset` is given)."""

    model_config = ConfigDict(extra="forbid")

    env: str = Field("CartPole-v1", description="Gymnasium environment id to record.")
    env_kwargs: dict[str, Any] = Field(
        default_factory=dict, description=ENV_KWARGS_HELP.format(what="the capture")
    )
    wrappers: list[WrapperSpec] = Field(
        default_factory=list, description=WRAPPERS_HELP.format(what="the capture")
    )
    policy: str = Field(
        "scripted",
        description="Who acts: scripted (the built-in expert), random, module:factory, a "
        "checkpoint path, or warm_start (the checkpoint this run starts from: inside an "
        "anneal schedule, the current policy).",
    )
    labels: str | None = Field(
        None,
        min_length=1,
        description="Who labels the recorded actions: null = the acting policy; scripted = "
        "the environment's built-in expert (DAgger-style relabelling: the acting policy's "
        "states, the expert's actions); also random, module:factory or a checkpoint path.",
    )
    episodes: int = Field(10, ge=1, description="Episodes to record.")
    num_envs: int = Field(4, ge=1, description="Environments stepped together.")
    vector: VectorMode = Field(
        "sync",
        description="Step them in this process (sync), each in a worker process (async), or "
        "async when one env step costs 1 ms or more (auto); the same data either way.",
    )
    max_episode_steps: int | None = Field(None, ge=1, description="Cut episodes at this length.")
    seed: int | None = Field(None, ge=0, description="Capture seed; default: the run seed.")
    action_mask_key: str | None = Field(None, min_length=1, description=MASK_KEY_HELP)

    def env_settings(self) -> EnvSettings:
        """The environment the demonstrations are recorded in."""
        return EnvSettings(
            id=self.env,
            kwargs=self.env_kwargs,
            wrappers=tuple(self.wrappers),
            max_episode_steps=self.max_episode_steps,
            action_mask_key=self.action_mask_key,
        )


class BCConfig(BaseModel):
    """Behaviour cloning: the negative log-likelihood of the expert's actions (Discrete,
    Box, MultiDiscrete or MultiBinary)."""

    model_config = ConfigDict(extra="forbid")

    dataset: Path | None = Field(
        None, description="Demonstrations: a manifest, capture folder or .npz sample."
    )
    capture: CaptureSpec | None = Field(
        None, description="Record demonstrations first (when dataset is not set)."
    )
    strict_paths: bool = Field(
        False,
        description="Look for the manifest's relative entries beside the manifest only. By "
        "default an entry not found there is looked for in the working directory (the "
        "original tools' rule), with a warning naming it.",
    )
    val_fraction: float = Field(
        0.2,
        ge=0.0,
        lt=1.0,
        description="Share of trajectories held out for validation (0 turns it off).",
    )
    epochs: int = Field(20, ge=1, description="Passes over the training split.")
    batch_size: int = Field(64, ge=1, description="Transitions per gradient step.")
    learning_rate: float = Field(1e-3, gt=0.0, description="Adam learning rate.")
    weight_decay: float = Field(0.0, ge=0.0, description="Adam weight decay.")
    lr_schedule: Literal["constant", "linear", "cosine"] = Field(
        "constant", description="Learning-rate schedule over the epochs."
    )
    early_stopping_patience: int | None = Field(
        5,
        ge=1,
        description="Stop after this many epochs without a better validation loss and keep "
        "the best weights (null: never stop early).",
    )
    network: NetworkSpec = Field(default_factory=NetworkSpec, description="Policy network.")
    normalize_observations: bool = Field(
        False,
        description="Normalise observation features by the training split's mean and "
        "variance, set once before training and saved in the checkpoint's weights (so PPO "
        "warm starts, evaluate and capture read them). Same as network.normalize_observations; "
        "a warm start keeps the statistics it was trained with.",
    )
    torch_threads: int | None = Field(
        1,
        ge=1,
        description="Intra-op CPU threads while training (null: torch's default). One is "
        "fastest for small networks and robust on busy machines.",
    )
    streaming: bool = Field(
        False,
        description="Leave the trajectories on disk and read them one at a time on every "
        "pass (datasets larger than memory); batches are shuffled through a bounded buffer "
        "and each epoch reads the data again.",
    )
    use_action_masks: bool = Field(
        True,
        description="Where the dataset records action masks (`action_masks`), train under "
        "them: the loss is the masked policy's, so illegal actions get no probability "
        "(Discrete and MultiDiscrete). False ignores the recorded masks.",
    )
    eval_env: str | None = Field(
        None,
        description="Evaluate the cloned policy greedily here after training; default: the "
        "captured environment, if demonstrations were captured.",
    )
    eval_env_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description=ENV_KWARGS_HELP.format(what="bc.eval_env (which it needs)"),
    )
    eval_wrappers: list[WrapperSpec] = Field(
        default_factory=list, description=WRAPPERS_HELP.format(what="bc.eval_env (which it needs)")
    )
    eval_action_mask_key: str | None = Field(
        None, min_length=1, description=MASK_KEY_HELP + " For bc.eval_env (which it needs)."
    )
    eval_episodes: int = Field(20, ge=1, description="Evaluation episodes.")
    accept_val_accuracy: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="If set, a run whose validation accuracy is below it ends 'failed' "
        "(accuracy per action dimension for MultiDiscrete and MultiBinary; Box actions have "
        "no accuracy, so it cannot be set for them).",
    )

    @model_validator(mode="after")
    def _eval_settings_need_an_eval_env(self) -> BCConfig:
        """Without bc.eval_env the evaluation runs in the capture environment, with the
        capture's settings: settings for an evaluation environment nobody named would be
        ignored."""
        if self.eval_env is None and (
            self.eval_env_kwargs or self.eval_wrappers or self.eval_action_mask_key
        ):
            raise ValueError(
                "bc.eval_env_kwargs, bc.eval_wrappers and bc.eval_action_mask_key need "
                "bc.eval_env; set it, or set bc.capture.env_kwargs, bc.capture.wrappers and "
                "bc.capture.action_mask_key to evaluate in the capture environment"
            )
        return self

    def network_spec(self) -> NetworkSpec:
        """The network a fresh run builds: `network`, normalising observations when either
        switch asks for it."""
        if self.normalize_observations and not self.network.normalize_observations:
            return self.network.model_copy(update={"normalize_observations": True})
        return self.network

    def eval_env_settings(self) -> EnvSettings | None:
        """Where the cloned policy is evaluated: bc.eval_env with its own settings, else the
        capture environment with the capture's kwargs and wrappers (its episode limit is
        the capture's budget, not the evaluation's), else nowhere."""
        if self.eval_env is not None:
            return EnvSettings(
                id=self.eval_env,
                kwargs=self.eval_env_kwargs,
                wrappers=tuple(self.eval_wrappers),
                action_mask_key=self.eval_action_mask_key,
            )
        if self.capture is not None and self.dataset is None:
            return self.capture.env_settings().spaces_key()
        return None
