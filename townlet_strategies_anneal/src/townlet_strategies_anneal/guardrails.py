"""Guardrails: is a metric still within tolerance of its baseline? (torch-free, pure)

A guardrail names a metric, a direction (`both`: moving either way; `drop`: falling;
`rise`: rising), a relative tolerance and an absolute margin. It fires when the value leaves
the band around the baseline, whose half-width is the larger of tolerance x |baseline| and
the margin; it cannot fire without a usable baseline (none yet, the metric missing from the
data, or zero with no margin), as the original Townlet trainer behaved.

Why a margin: a relative band means nothing for a metric that crosses zero or is measured
with noise. A LunarLander clone's greedy return over 20 episodes is, say, 40 +- 30 (the
standard error): 5% of it is 2 points, so the return guardrail would fire on the noise of
the evaluation alone. The margin says how large a drop must be, in the metric's own units,
before it counts (ADR 0010).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Direction = Literal["both", "drop", "rise"]
DataMode = Literal["any", "replay", "rollout"]


class Guardrail(BaseModel):
    """One check of a stage metric against its baseline."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str = Field(description="Metric of the stage's result, e.g. loss_total.")
    direction: Direction = Field(description="both, drop or rise.")
    tolerance: float = Field(ge=0, description="Allowed change, relative to |baseline|.")
    margin: float = Field(
        0.0,
        ge=0,
        description="Allowed change in the metric's own units: the band is the larger of "
        "tolerance x |baseline| and this (e.g. about two standard errors of an evaluation).",
    )
    data: DataMode = Field(
        "any",
        description="Check only stages trained on this kind of data (their data_mode): "
        "replay datasets, live rollouts, or any.",
    )
    name: str | None = Field(None, description="Flag name; default: the metric's.")

    @property
    def flag(self) -> str:
        return self.name or self.metric

    def applies(self, values: Mapping[str, Any]) -> bool:
        """Whether these values (a result or a metrics line) are of the data it checks."""
        return self.data == "any" or values.get("data_mode") == self.data

    def band(self, baseline: float) -> float:
        """How far the value may move from `baseline` before the guardrail fires."""
        return max(self.tolerance * abs(baseline), self.margin)

    def fires(self, value: float | None, baseline: float | None) -> bool:
        """True when `value` left the tolerance band around `baseline` in `direction`."""
        if value is None or baseline is None or not math.isfinite(value):
            return False
        if not math.isfinite(baseline) or (baseline == 0 and self.margin == 0):
            return False
        allowed = self.band(baseline)
        change = value - baseline
        if self.direction == "drop":
            return change < -allowed
        if self.direction == "rise":
            return change > allowed
        return abs(change) > allowed


#: The original Townlet meaning: total loss moving more than 10% either way, on replay data
#: (the original's PPO stages in anneal always trained on a replay dataset, where the same
#: data gives comparable losses; on live rollouts one update's loss differs about 2x between
#: seeds and even between neighbouring updates, ADR 0010); queue-conflict events or
#: intensity dropping more than 15%; plus the evaluation return dropping below the baseline
#: (for anneal: the warm-start policy's return) by more than 5% of it or 80, whichever is
#: more: 80 is about two standard errors of the difference of two 20-episode evaluations of
#: the default task's LunarLander clones (per-episode spread 105-180), so the noise of an
#: evaluation alone does not hold a run (ADR 0010).
DEFAULT_GUARDRAILS: tuple[Guardrail, ...] = (
    Guardrail(metric="loss_total", direction="both", tolerance=0.10, data="replay", name="loss"),
    Guardrail(metric="queue_conflict_events", direction="drop", tolerance=0.15, name="queue"),
    Guardrail(
        metric="queue_conflict_intensity_sum", direction="drop", tolerance=0.15, name="intensity"
    ),
    Guardrail(
        metric="eval_mean_return", direction="drop", tolerance=0.05, margin=80.0, name="return"
    ),
)


def check(
    guardrails: Sequence[Guardrail],
    values: Mapping[str, Any],
    baselines: Mapping[str, float | None],
) -> dict[str, bool]:
    """Each guardrail's flag (True = fired) for these values and baselines; a guardrail
    for another kind of data (`Guardrail.data`) is reported and never fires."""
    return {
        g.flag: g.applies(values) and g.fires(values.get(g.metric), baselines.get(g.metric))
        for g in guardrails
    }
