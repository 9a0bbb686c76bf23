"""Anneal's after-commit step: record the committed verdict in the promotion ledger.

Runs only once `result.json` is committed (`StrategySpec.after_commit`; run.json's final state
is written after it), so the ledger never holds a PASS for a run that ended in an error. The
ledger's location is checked in `prepare` (`check_ledger`), before anything trains. The
ledger counts evidence, not repetitions: each verdict carries its lineage (the schedule, per
label) and an evidence fingerprint of the run's seed, config and code versions; see
docs/promotion.md.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from townlet_core import TrainingContext
from townlet_core.dto import AnnealSummaryDTO, TrainingResultDTO
from townlet_core.promotion import LEDGER_FILE, PromotionLedger, evidence_fingerprint
from townlet_core.runtime.run_dir import RunDirectory
from townlet_strategies_anneal.config import AnnealConfig

#: Settings that say where a run lives, not what it is: left out of its evidence.
_PLACE_SETTINGS = ("run_dir", "runs_root")


def lineage(label: str, config: AnnealConfig) -> str:
    """The candidate lineage: the label the schedule trains on and a digest of the schedule
    (stages, gate and guardrails), so a different schedule keeps a streak of its own."""
    judged = config.model_dump(
        mode="json", include={"schedule", "accuracy_threshold", "guardrails"}
    )
    digest = hashlib.sha256(json.dumps(judged, sort_keys=True).encode()).hexdigest()[:10]
    return f"{label}/{digest}"


def evidence(context: TrainingContext) -> str:
    """Fingerprint of what makes this run a repeat of another: seed, config, code (read from
    the top-level run's `config.json`; anneal may itself be a stage of another run)."""
    top = context
    while top.parent is not None:
        top = top.parent
    snapshot = RunDirectory(top.run_dir).read_snapshot()
    config = {k: v for k, v in snapshot["config"].items() if k not in _PLACE_SETTINGS}
    if isinstance(config.get("anneal"), dict):
        config["anneal"] = {k: v for k, v in config["anneal"].items() if k != "ledger"}
    return evidence_fingerprint(snapshot["seed"], config, snapshot.get("versions", {}))


def ledger_path(context: TrainingContext, config: AnnealConfig) -> Path:
    """The ledger this run records its verdict in (`anneal.ledger`, else the runs root's)."""
    return config.ledger or context.config.run.runs_root / LEDGER_FILE


def check_ledger(context: TrainingContext, config: AnnealConfig) -> None:
    """Refuse a ledger path that cannot take the verdict, before anything trains."""
    PromotionLedger.check_location(ledger_path(context, config))


def record_verdict(
    context: TrainingContext, config: AnnealConfig, result: TrainingResultDTO
) -> AnnealSummaryDTO:
    """Record the run's verdict; return the summary with the ledger's view of it."""
    assert isinstance(result, AnnealSummaryDTO)
    ledger = PromotionLedger(ledger_path(context, config), required_passes=config.required_passes)
    candidate: dict[str, Any] = {
        "run_dir": str(context.run_dir),
        "checkpoint": str(context.run_dir / result.checkpoint) if result.checkpoint else None,
        "cycle": result.stages[-1].cycle,
        "strategy": result.stages[-1].strategy,
        "eval_mean_return": result.final_eval_mean_return,
        "seed": result.seed,
    }
    snapshot = ledger.record_evaluation(
        result.anneal_status,
        candidate,
        lineage=lineage(result.label, config),
        evidence=evidence(context),
    )
    promotion = {k: v for k, v in snapshot.items() if k != "history"}
    context.log(f"townlet: anneal {result.anneal_status}; {describe(promotion)}")
    return result.model_copy(update={"promotion": promotion})


def describe(promotion: dict[str, Any]) -> str:
    """One line on what the ledger made of the verdict."""
    streak = f"pass streak {promotion.get('pass_streak')} of {promotion.get('required_passes')}"
    if promotion.get("refused"):
        return f"not counted ({promotion['refused']}); {streak}"
    if promotion.get("repeat_of"):
        repeat = promotion["repeat_of"]
        return f"a repeat of {repeat} (same seed, config and code), not counted; {streak}"
    return streak
