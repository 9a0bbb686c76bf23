"""`TrainingResultDTO`: the base every strategy's result subclasses.

Results cross process and version boundaries (printed with `--json`, written to
`result.json`, read back by promotion tooling), so they are frozen, reject unknown fields,
carry a `schema_version`, and round-trip through JSON unchanged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ResultStatus = Literal["succeeded", "failed"]


class TrainingResultDTO(BaseModel):
    """What every strategy run returns. Subclass it and add your strategy's fields.

    `status` is "failed" when the run finished but missed the strategy's own acceptance
    criteria (`townlet train` then exits 1); errors raise instead of returning a result.
    Build the run facts with `TrainingContext.run_fields()` rather than by hand.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: str = Field("1.0", description="Version of this result's JSON schema.")
    strategy: str = Field(description="Name of the strategy that produced the result.")
    strategy_version: str = Field(description="Version of the distribution providing it.")
    status: ResultStatus = Field("succeeded", description="'failed' = finished, not accepted.")
    status_reason: str | None = Field(None, description="Why the run is 'failed', if it is.")
    seed: int = Field(description="The seed the run was started with.")
    device: str = Field(description="Device the run used, e.g. 'cpu' or 'cuda:0'.")
    started_at: datetime = Field(description="When the run started (UTC).")
    finished_at: datetime = Field(description="When the run finished (UTC).")
    duration_sec: float = Field(ge=0, description="Wall time of the run in seconds.")
    checkpoint: str | None = Field(
        None,
        description="The policy checkpoint this run produced, relative to the run directory "
        "(a townlet-checkpoint folder for torch strategies, any file or folder otherwise); "
        "None when it produced none. A composing strategy (anneal) hands it on as the next "
        "stage's warm start and the promotion ledger records it as the candidate.",
    )
    artifacts: dict[str, str] = Field(
        default_factory=dict,
        description="Files the run produced, by role, as paths relative to the run directory.",
    )

    def accepted(self) -> bool:
        """Whether the run met its own acceptance criteria (`townlet train --exit-on-failure`
        exits 1 when not). Strategies with a richer verdict (anneal) override this."""
        return self.status == "succeeded"

    def summary_lines(self) -> list[str]:
        """What `townlet train` says about this result when the run ends, one `label: text`
        line each, between its first line (strategy, outcome, wall time, seed, device) and
        the checkpoint, run directory and next commands it adds itself. The full result
        stays in result.json and `--json`.

        The default (`townlet_core.dto.summary.standard_lines`) reads the conventional
        fields: `env_id` and/or `dataset`, `eval_mean_return`, `eval_std_return` and
        `eval_episodes` (the final greedy evaluation) and `env_steps`; a result with those
        needs no code. Override it to add the strategy's own figures, e.g.
        `return [*super().summary_lines(), f"elite: {self.elite_return:.1f}"]`.
        (Since townlet-core 0.1.)"""
        from townlet_core.dto.summary import standard_lines

        return standard_lines(self)

    def summary_text(self) -> list[str] | None:
        """Lines `townlet train` prints instead of the whole summary below its first line
        and the run directory (anneal's stage table); None: `summary_lines` and the rest."""
        return None

    @model_validator(mode="after")
    def _finished_after_started(self) -> TrainingResultDTO:
        if self.finished_at < self.started_at:
            raise ValueError("finished_at is earlier than started_at")
        if self.status == "failed" and not self.status_reason:
            raise ValueError("a 'failed' result must say why in status_reason")
        return self
