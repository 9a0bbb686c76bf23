"""`CEMConfig`: the `cem:` section of a run config. Each field's description is its documentation
(`townlet strategies show cem` prints them), and every field has a default so that
`townlet train --strategy cem` solves CartPole-v1 with no config file.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class CEMConfig(BaseModel):
    """Settings of one cross-entropy-method run."""

    model_config = ConfigDict(extra="forbid")

    env_id: str = Field(
        "CartPole-v1",
        min_length=1,
        description=(
            "Gymnasium environment id; needs a Discrete action space and a flat Box "
            "observation space."
        ),
    )
    iterations: int = Field(
        50,
        ge=1,
        description="Most CEM iterations (generations) to run; fewer if stop_return is reached.",
    )
    population: int = Field(
        48, ge=2, description="Candidate policies sampled and scored per iteration."
    )
    elite_fraction: float = Field(
        0.2,
        gt=0,
        le=1,
        description=(
            "Share of the population, the best-scoring, whose mean and spread become the "
            "next sampling distribution (at least one candidate)."
        ),
    )
    initial_std: float = Field(
        1.0, gt=0, description="Standard deviation of every policy parameter at the start."
    )
    extra_std: float = Field(
        0.7,
        ge=0,
        description=(
            "Exploration noise added (in quadrature) to the sampling spread, so that the "
            "distribution does not collapse onto an early, mediocre elite."
        ),
    )
    extra_std_decay: float = Field(
        0.95,
        gt=0,
        le=1,
        description="Factor extra_std is multiplied by after every iteration.",
    )
    episodes_per_candidate: int = Field(
        1,
        ge=1,
        description=(
            "Episodes each candidate is scored on (its return is their mean); every candidate "
            "of an iteration sees the same episode seeds."
        ),
    )
    max_episode_steps: int | None = Field(
        None,
        ge=1,
        description=(
            "Truncate episodes after this many steps; null keeps the environment's registered "
            "limit (500 for CartPole-v1)."
        ),
    )
    stop_return: float | None = Field(
        500.0,
        description=(
            "Stop early once the elite mean return reaches this and the mean policy also "
            "reaches it on stop_check_episodes fresh episodes; null runs every iteration. "
            "500 is CartPole-v1's maximum."
        ),
    )
    stop_check_episodes: int = Field(
        5,
        ge=1,
        description="Episodes of the mean policy that must all reach stop_return to stop early.",
    )
    eval_episodes: int = Field(
        20,
        ge=1,
        description=(
            "Greedy episodes of the final mean policy that measure the result, on fixed seeds "
            "that training never uses."
        ),
    )
    target_return: float | None = Field(
        None,
        description=(
            "Acceptance: the run is 'failed' if the evaluation mean return is below this; "
            "null accepts any result."
        ),
    )
