"""`CEMResultDTO`: what a `cem` run returns (printed by `townlet train`, saved as result.json)."""

from __future__ import annotations

from pydantic import Field

from townlet_core import TrainingResultDTO


class CEMResultDTO(TrainingResultDTO):
    """The base run facts plus the search's and the final evaluation's numbers."""

    env_id: str = Field(description="Gymnasium environment the policy was trained on.")
    iterations_run: int = Field(ge=0, description="CEM iterations actually run.")
    stopped_early: bool = Field(description="Whether stop_return ended the search early.")
    env_steps: int = Field(ge=0, description="Environment steps taken while training.")
    best_return: float = Field(description="Best return any sampled candidate scored.")
    final_elite_mean_return: float = Field(
        description="Mean return of the last iteration's elite candidates."
    )
    eval_episodes: int = Field(ge=1, description="Greedy evaluation episodes of the mean policy.")
    eval_mean_return: float = Field(description="Mean return over the evaluation episodes.")
    eval_std_return: float = Field(ge=0, description="Standard deviation of those returns.")
    eval_min_return: float = Field(description="Lowest evaluation return.")
    eval_max_return: float = Field(description="Highest evaluation return.")
    target_return: float | None = Field(
        None, description="The acceptance threshold the run was held to, if any."
    )
