"""Anneal results: one DTO per stage and the summary of the whole schedule."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from townlet_core.dto.base import TrainingResultDTO

AnnealStatus = Literal["PASS", "HOLD", "FAIL"]
StageOutcome = Literal["accepted", "held", "rolled_back", "failed"]


class AnnealStageResultDTO(BaseModel):
    """What one stage did and how the guardrails judged it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    index: int = Field(ge=0, description="Position in the schedule (after sorting by cycle).")
    cycle: int = Field(ge=0)
    strategy: str
    stage_dir: str = Field(description="The stage's folder, relative to the run directory.")
    outcome: StageOutcome
    accepted: bool = Field(description="Its checkpoint became the one later stages start from.")
    rolled_back: bool = False
    warm_start: str | None = Field(None, description="Checkpoint the stage started from.")
    checkpoint: str | None = Field(None, description="The stage's own checkpoint, if any.")
    # BC gate
    accuracy: float | None = Field(None, ge=0, le=1)
    threshold: float | None = Field(None, ge=0, description="The gate (above 1 fails every stage).")
    passed: bool | None = None
    # guardrails
    flags: dict[str, bool] = Field(default_factory=dict)
    baselines: dict[str, float | None] = Field(default_factory=dict)
    metrics: dict[str, float | None] = Field(default_factory=dict)
    result: dict[str, Any] = Field(default_factory=dict, description="The stage's result DTO.")


class AnnealSummaryDTO(TrainingResultDTO):
    """The schedule's verdict, its stages, the baselines and the promotion ledger's view."""

    anneal_status: AnnealStatus
    reasons: list[str] = Field(default_factory=list, description="e.g. loss_flag_cycle_1.")
    label: str = Field(description="Dataset or environment label the baselines belong to.")
    stages: list[AnnealStageResultDTO]
    baselines: dict[str, dict[str, dict[str, float]]] = Field(
        default_factory=dict, description="Baselines by label, then stage strategy, then metric."
    )
    final_eval_mean_return: float | None = None
    promotion: dict[str, Any] = Field(default_factory=dict, description="Ledger snapshot.")

    def accepted(self) -> bool:
        return self.anneal_status == "PASS"

    def summary_text(self) -> list[str]:
        """Stage by stage, then the verdict and the ledger (what `townlet train` prints)."""
        lines = [
            f"anneal {self.anneal_status} on {self.label}"
            + (f" ({', '.join(self.reasons)})" if self.reasons else "")
        ]
        for stage in self.stages:
            parts = [f"  {stage.stage_dir.rsplit('/', 1)[-1]}: {stage.outcome}"]
            if stage.accuracy is not None:
                parts.append(f"accuracy {stage.accuracy:.3f} (gate {stage.threshold})")
            for key in ("loss_total", "eval_mean_return"):
                value = stage.metrics.get(key)
                if value is not None:
                    parts.append(f"{key} {value:.4g}")
            fired = [flag for flag, on in stage.flags.items() if on]
            if fired:
                parts.append(f"flags: {', '.join(fired)}")
            lines.append(", ".join(parts))
        if self.checkpoint:
            returned = (
                f" (greedy mean return {self.final_eval_mean_return:.1f})"
                if self.final_eval_mean_return is not None
                else ""
            )
            lines.append(f"  final policy: {self.checkpoint}{returned}")
        promotion = self.promotion
        if promotion:
            note = ""
            if promotion.get("refused"):
                note = f" (this {self.anneal_status} not counted: {promotion['refused']})"
            elif promotion.get("repeat_of"):
                note = f" (this PASS repeats {promotion['repeat_of']}: not counted)"
            lines.append(
                f"  promotion [{promotion.get('lineage')}]: {promotion.get('state')}, pass "
                f"streak {promotion.get('pass_streak')} of {promotion.get('required_passes')}, "
                f"candidate ready: {'yes' if promotion.get('candidate_ready') else 'no'}{note}"
            )
        return lines
