"""What anneal adds to every metrics line a stage writes: the original `anneal_*` fields.

Added by anneal itself, through the annotator it gives `context.run_strategy`, so it works
for any stage strategy (bc, ppo, cem, a third party's) and no stage strategy knows that
anneal exists. Flags are computed line by line from the same guardrails and baselines that
judge the stage at its end (the return guardrail is judged only then: it needs the stage's
final greedy evaluation).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from townlet_strategies_anneal.guardrails import Guardrail, check
from townlet_strategies_anneal.judging import RETURN_METRIC


class StageTelemetry:
    """The `anneal_*` fields of one stage; call it with each metrics line."""

    def __init__(
        self,
        *,
        cycle: int,
        strategy: str,
        label: str,
        bc_accuracy: float | None,
        bc_threshold: float,
        bc_passed: bool,
        guardrails: Sequence[Guardrail],
        baselines: Mapping[str, float | None],
    ) -> None:
        self.fields: dict[str, Any] = {
            "anneal_cycle": cycle,
            "anneal_stage": strategy,
            "anneal_dataset": label,
            "anneal_bc_accuracy": bc_accuracy,
            "anneal_bc_threshold": bc_threshold,
            "anneal_bc_passed": bc_passed,
            "anneal_loss_baseline": baselines.get("loss_total"),
            "anneal_queue_baseline": baselines.get("queue_conflict_events"),
            "anneal_intensity_baseline": baselines.get("queue_conflict_intensity_sum"),
        }
        self.guardrails = [g for g in guardrails if g.metric != RETURN_METRIC]
        self.baselines = dict(baselines)
        #: The stage's periodic evaluations, as its lines went by (with each line's
        #: data_mode): what the return guardrail checks for a collapse mid-stage. Held
        #: here rather than read back from the stage's metrics file, which only rank 0 of a
        #: data-parallel run writes.
        self.evaluations: list[dict[str, Any]] = []

    def __call__(self, line: dict[str, Any]) -> dict[str, Any]:
        if isinstance(line.get(RETURN_METRIC), (int, float)):
            self.evaluations.append(
                {RETURN_METRIC: line[RETURN_METRIC], "data_mode": line.get("data_mode")}
            )
        flags = check(self.guardrails, line, self.baselines)
        return {**self.fields, **{f"anneal_{flag}_flag": fired for flag, fired in flags.items()}}
