"""How anneal judges a finished stage, and the schedule's verdict. Pure functions.

- A behaviour-cloning stage (its result has a `mode` of "bc") passes the gate when its
  validation accuracy (training accuracy if it had no validation split) reaches the
  threshold; otherwise it is rolled back and the schedule stops.
- A stage that reports `loss_total` (PPO and the like) is checked by the guardrails against
  the baselines; any flag holds the stage (its checkpoint is not used further). The values
  checked are the stage's final ones and the evaluation returns it logged along the way
  (PPO's periodic evaluations, `eval_every`): a return that collapsed mid-stage fires the
  return guardrail even if it recovered by the end.
- Any other stage is accepted when its own run succeeded.

Verdict: FAIL if a gate failed, else HOLD if any guardrail fired, else PASS.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from townlet_core.dto import AnnealStageResultDTO, AnnealStatus
from townlet_strategies_anneal.guardrails import Guardrail, check

#: Metrics whose baselines persist across runs (per dataset or environment label).
PERSISTED_METRICS = ("loss_total", "queue_conflict_events", "queue_conflict_intensity_sum")
RETURN_METRIC = "eval_mean_return"


@dataclass
class Judgement:
    """One stage's outcome."""

    outcome: str  # accepted | held | rolled_back | failed
    accuracy: float | None = None
    passed: bool | None = None
    flags: dict[str, bool] = field(default_factory=dict)
    baselines: dict[str, float | None] = field(default_factory=dict)

    @property
    def accepted(self) -> bool:
        return self.outcome == "accepted"


def is_behaviour_cloning(result: Mapping[str, Any]) -> bool:
    return result.get("mode") == "bc"


def judge(
    result: Mapping[str, Any],
    *,
    threshold: float,
    guardrails: Sequence[Guardrail],
    baselines: Mapping[str, float | None],
    during: Sequence[Mapping[str, Any]] = (),
) -> Judgement:
    """Judge one stage's result (its DTO as a mapping); `during` are the values the stage
    logged along the way (its metrics lines), each checked by the guardrails as well."""
    if is_behaviour_cloning(result):
        accuracy = result.get("val_accuracy")
        if accuracy is None:
            accuracy = result.get("accuracy")
        if accuracy is None and result.get("action_mse") is not None:
            # a clone of continuous actions has no accuracy to gate on: it counts as its
            # status says, and its action_mse is in the stage's metrics
            succeeded = result.get("status") == "succeeded"
            return Judgement(outcome="accepted" if succeeded else "failed")
        passed = accuracy is not None and float(accuracy) >= threshold
        return Judgement(
            outcome="accepted" if passed else "rolled_back",
            accuracy=None if accuracy is None else float(accuracy),
            passed=passed,
        )
    if "loss_total" in result:
        used = {g.metric: baselines.get(g.metric) for g in guardrails}
        flags = check(guardrails, result, used)
        for line in during:
            fired = check(guardrails, line, used)
            flags = {flag: flags[flag] or fired[flag] for flag in flags}
        held = any(flags.values()) or result.get("status") != "succeeded"
        return Judgement(outcome="held" if held else "accepted", flags=flags, baselines=used)
    succeeded = result.get("status") == "succeeded"
    return Judgement(outcome="accepted" if succeeded else "failed")


def verdict(stages: Sequence[AnnealStageResultDTO]) -> tuple[AnnealStatus, list[str]]:
    """The schedule's status and the reasons, e.g. ['loss_flag_cycle_1']."""
    status: AnnealStatus = "PASS"
    reasons: list[str] = []
    for stage in stages:
        if stage.passed is False:
            return "FAIL", [*reasons, f"bc_stage_failed_cycle_{stage.cycle}"]
        if stage.outcome == "failed":
            return "FAIL", [*reasons, f"{stage.strategy}_stage_failed_cycle_{stage.cycle}"]
        for flag, fired in stage.flags.items():
            if fired:
                status = "HOLD"
                reasons.append(f"{flag}_flag_cycle_{stage.cycle}")
    return status, reasons
