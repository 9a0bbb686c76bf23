"""`AnnealConfig`: the `anneal:` section. The default schedule is the built-in task: clone
the scripted CartPole expert, then fine-tune with PPO, every stage guarded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from townlet_strategies_anneal.guardrails import DEFAULT_GUARDRAILS, Guardrail

#: The strategy name anneal registers under (a stage may not name it).
SELF = "anneal"


class Stage(BaseModel):
    """One step of the schedule: a strategy run with its own config overrides."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    cycle: int = Field(0, ge=0, description="Stages run in cycle order (ties keep their order).")
    strategy: str = Field(
        description="Any installed strategy, by name (bc, ppo, cem, ...), except anneal."
    )
    overrides: dict[str, Any] = Field(
        default_factory=dict,
        description="That strategy's config for this stage, validated by its own model.",
    )

    @field_validator("strategy")
    @classmethod
    def _not_anneal(cls, strategy: str) -> str:
        """A stage running anneal would run the same schedule again inside itself, and so
        on without end (each in a folder inside the last)."""
        if strategy == SELF:
            raise PydanticCustomError(
                "anneal_itself",
                "anneal cannot run itself as a stage (the stage would run this schedule "
                "again inside itself, without end); name another strategy",
            )
        return strategy


def default_schedule() -> list[Stage]:
    return [
        Stage(
            cycle=0,
            strategy="bc",
            overrides={"capture": {"env": "CartPole-v1", "episodes": 10}, "epochs": 20},
        ),
        Stage(
            cycle=1,
            strategy="ppo",
            overrides={
                "env": "CartPole-v1",
                "total_timesteps": 8192,
                "learning_rate": 1e-4,
                "eval_every": None,
                "stop_return": None,
            },
        ),
    ]


class AnnealConfig(BaseModel):
    """A schedule of stages, the BC gate, the guardrails and the promotion ledger."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    schedule: list[Stage] = Field(
        default_factory=default_schedule,
        min_length=1,
        description="Stages to run; each starts from the last accepted checkpoint.",
    )
    accuracy_threshold: float = Field(
        0.9,
        ge=0,
        le=1.01,
        description="BC gate: a behaviour-cloning stage below this validation accuracy fails, "
        "is rolled back, and stops the schedule.",
    )
    guardrails: list[Guardrail] = Field(
        default_factory=lambda: list(DEFAULT_GUARDRAILS),
        description="Checks of each PPO-like stage against baselines: (metric, direction, "
        "tolerance). eval_mean_return is checked against the warm-start policy's return.",
    )
    init_checkpoint: Path | None = Field(
        None, description="Checkpoint the first stage starts from (default: none)."
    )
    required_passes: int = Field(
        2, ge=1, le=10, description="Consecutive PASS runs that make the candidate ready."
    )
    ledger: Path | None = Field(
        None, description="Promotion ledger; default RUNS_ROOT/promotion.sqlite."
    )
