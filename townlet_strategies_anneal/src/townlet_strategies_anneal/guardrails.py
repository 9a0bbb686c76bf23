"""Guardrails: is a metric still within tolerance of its baseline? (torch-free, pure)

A guardrail names a metric, a direction (`both`: moving either way; `drop`: falling;
`rise`: rising) and a relative tolerance. It fires when the value leaves the band around
the baseline; it cannot fire without a usable baseline (none yet, zero, or the metric
missing from the data), as the original Townlet trainer behaved.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Direction = Literal["both", "drop", "rise"]


class Guardrail(BaseModel):
    """One check of a stage metric against its baseline."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str = Field(description="Metric of the stage's result, e.g. loss_total.")
    direction: Direction = Field(description="both, drop or rise.")
    tolerance: float = Field(ge=0, description="Allowed change, relative to |baseline|.")
    name: str | None = Field(None, description="Flag name; default: the metric's.")

    @property
    def flag(self) -> str:
        return self.name or self.metric

    def fires(self, value: float | None, baseline: float | None) -> bool:
        """True when `value` left the tolerance band around `baseline` in `direction`."""
        if value is None or baseline is None or not math.isfinite(value):
            return False
        if not math.isfinite(baseline) or baseline == 0:
            return False
        change = (value - baseline) / abs(baseline)
        if self.direction == "drop":
            return change < -self.tolerance
        if self.direction == "rise":
            return change > self.tolerance
        return abs(change) > self.tolerance


#: The original Townlet meaning: total loss moving more than 10% either way; queue-conflict
#: events or intensity dropping more than 15%; plus the evaluation return dropping more than
#: 5% below the baseline (for anneal: the warm-start policy's return).
DEFAULT_GUARDRAILS: tuple[Guardrail, ...] = (
    Guardrail(metric="loss_total", direction="both", tolerance=0.10, name="loss"),
    Guardrail(metric="queue_conflict_events", direction="drop", tolerance=0.15, name="queue"),
    Guardrail(
        metric="queue_conflict_intensity_sum", direction="drop", tolerance=0.15, name="intensity"
    ),
    Guardrail(metric="eval_mean_return", direction="drop", tolerance=0.05, name="return"),
)


def check(
    guardrails: Sequence[Guardrail],
    values: Mapping[str, float | None],
    baselines: Mapping[str, float | None],
) -> dict[str, bool]:
    """Each guardrail's flag (True = fired) for these values and baselines."""
    return {g.flag: g.fires(values.get(g.metric), baselines.get(g.metric)) for g in guardrails}
