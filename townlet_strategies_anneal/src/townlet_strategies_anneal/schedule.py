"""Anneal's run: a schedule of strategies by name, each stage guarded, the last accepted
checkpoint handed on as the next stage's warm start, and a PASS/HOLD/FAIL verdict.

Torch-free: every stage is another strategy, reached only through `context.run_strategy`,
so bc and ppo can be swapped for any installed strategy. The promotion ledger is written
after the run is committed (`promotion.record_verdict`), never from here.
"""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path
from typing import Any

from townlet_core import TrainingContext, UnknownStrategyError
from townlet_core.atomic import atomic_write_json
from townlet_core.dto import AnnealStageResultDTO, AnnealSummaryDTO
from townlet_core.errors import ConfigError
from townlet_strategies_anneal.config import AnnealConfig, Stage
from townlet_strategies_anneal.judging import (
    PERSISTED_METRICS,
    RETURN_METRIC,
    Judgement,
    is_behaviour_cloning,
    judge,
    verdict,
)
from townlet_strategies_anneal.promotion import check_ledger
from townlet_strategies_anneal.telemetry import StageTelemetry

RESULTS_FILE = "anneal_results.json"
FINAL_CHECKPOINT = "checkpoint"
#: Baselines by label (dataset or environment), then by stage strategy, then by metric.
Baselines = dict[str, dict[str, dict[str, float]]]


def ordered(schedule: list[Stage]) -> list[Stage]:
    """Stages by cycle; stages of one cycle keep the order they were given in."""
    return sorted(schedule, key=lambda stage: stage.cycle)


def stage_name(index: int, stage: Stage) -> str:
    return f"{index:02d}-cycle{stage.cycle}-{stage.strategy}"


def prepare(context: TrainingContext, config: AnnealConfig) -> None:
    """Validate the whole schedule before anything trains: no cycle of runs by name, every
    strategy installed (else one error naming every missing one, its stage and its install
    hint), every stage's overrides valid for that strategy's own model (and its own
    `prepare` checks passed), and a ledger location that can take the verdict."""
    _refuse_cycles(context, config)
    missing: list[str] = []
    start = context.warm_start or config.init_checkpoint
    for index, stage in enumerate(ordered(config.schedule)):
        name = stage_name(index, stage)
        try:
            # Stage one starts from the given checkpoint (if any); a later stage from the
            # checkpoint of the stage before it, not written yet.
            context.check_strategy(
                stage.strategy,
                stage.overrides,
                stage=name,
                warm_start=start if index == 0 else None,
                warm_start_pending=index > 0,
            )
        except UnknownStrategyError as exc:
            missing.append(f"stage {name}: {exc}")
    if missing:
        raise UnknownStrategyError(
            f"anneal's schedule names strategies that are not installed: {'; '.join(missing)}"
        )
    check_ledger(context, config)


def _refuse_cycles(context: TrainingContext, config: AnnealConfig) -> None:
    """Refuse a run that would contain itself: this anneal inside another anneal (through
    a composing strategy: anneal -> x -> anneal), or a stage naming a strategy this run is
    already a stage of. Either would nest run folders without end. Found by name, here,
    before this run writes anything (the config refuses a stage naming anneal outright)."""
    chain: list[str] = []
    current: TrainingContext | None = context
    while current is not None:
        chain.insert(0, current.spec.name)
        current = current.parent
    if context.spec.name in chain[:-1]:
        raise ConfigError(
            f"anneal: runs would contain themselves without end ({' -> '.join(chain)}); "
            "do not run anneal inside a stage of anneal"
        )
    for index, stage in enumerate(ordered(config.schedule)):
        if stage.strategy in chain:
            raise ConfigError(
                f"anneal: stage {stage_name(index, stage)} runs '{stage.strategy}', which this "
                f"run is already a stage of ({' -> '.join([*chain, stage.strategy])}), so runs "
                "would contain themselves without end; name another strategy"
            )


def run(context: TrainingContext, config: AnnealConfig) -> AnnealSummaryDTO:
    """Run the schedule; the summary's checkpoint is the last accepted stage's policy."""
    baselines = load_baselines(context.state.get("baselines", {}))
    # A warm start handed in by a composing run, else the configured one, starts stage one.
    last_good: Path | None = context.warm_start or config.init_checkpoint
    last_return: float | None = None
    last_bc: dict[str, Any] = {}
    stages: list[AnnealStageResultDTO] = []
    labels: list[str] = []
    stop_reason: str | None = None
    schedule = ordered(config.schedule)
    for index, stage in enumerate(schedule):
        name = stage_name(index, stage)
        label = str(stage.overrides.get("env") or stage.overrides.get("dataset") or "")
        telemetry = StageTelemetry(
            cycle=stage.cycle,
            strategy=stage.strategy,
            label=label,
            bc_accuracy=last_bc.get("accuracy"),
            bc_threshold=config.accuracy_threshold,
            bc_passed=last_bc.get("passed", True),
            guardrails=config.guardrails,
            baselines=baselines.get(label, {}).get(stage.strategy, {}),
        )
        result = context.run_strategy(
            stage.strategy, stage.overrides, stage=name, warm_start=last_good, annotate=telemetry
        )
        data = result.model_dump(mode="json")
        label = _label(data) or label or stage.strategy
        labels.append(label)
        known = baselines.setdefault(label, {}).setdefault(stage.strategy, {})
        stage_dir = Path("stages") / name
        judgement = judge(
            data,
            threshold=config.accuracy_threshold,
            guardrails=config.guardrails,
            baselines={**known, RETURN_METRIC: last_return},
            during=telemetry.evaluations,
        )
        own = str(stage_dir / result.checkpoint) if result.checkpoint is not None else None
        record = _stage_record(index, stage, stage_dir, data, judgement, last_good, own, config)
        if telemetry.evaluations:  # the lowest return the stage's evaluations saw
            lowest = min(line[RETURN_METRIC] for line in telemetry.evaluations)
            record.metrics[LOWEST_RETURN] = lowest
        stages.append(record)
        context.log(f"townlet: anneal stage {name}: {judgement.outcome}")
        if is_behaviour_cloning(data):
            last_bc = {"accuracy": judgement.accuracy, "passed": judgement.passed}
        if "loss_total" in data:  # the original updated baselines after every PPO stage
            known.update(_persisted(data))
        if judgement.outcome == "rolled_back":
            context.log(
                f"townlet: anneal: {name} below accuracy {config.accuracy_threshold}; "
                f"rolled back to {last_good or 'no checkpoint'} and stopped"
            )
            break
        if not judgement.accepted:
            continue
        if own is None:  # never train the next stage from scratch, never ship no policy
            stop_reason = f"no_checkpoint_from_stage_{name}"
            context.log(
                f"townlet: anneal: stage {name} ({stage.strategy}) was accepted but its "
                "result names no checkpoint (TrainingResultDTO.checkpoint), so there is no "
                "policy to hand on or promote; stopped"
            )
            break
        last_good = context.run_dir / own
        if isinstance(data.get(RETURN_METRIC), (int, float)):
            last_return = float(data[RETURN_METRIC])
    status, reasons = verdict(stages)
    if stop_reason is not None and status == "PASS":
        status = "HOLD"
    if stop_reason is not None:
        reasons.append(stop_reason)
    _write_results(context, stages)
    context.state["baselines"] = baselines
    return AnnealSummaryDTO(
        **context.run_fields(device=_device(stages)),
        checkpoint=_keep_final(context, last_good),
        artifacts={"anneal_results": RESULTS_FILE},
        anneal_status=status,
        reasons=reasons,
        label=labels[0],
        stages=stages,
        baselines=baselines,
        final_eval_mean_return=last_return,
    )


#: The stage metric recording the lowest evaluation return seen during a stage.
LOWEST_RETURN = "eval_mean_return_lowest"


def load_baselines(saved: Any) -> Baselines:
    """Baselines from the carried state. Older state kept one level less (label -> metric)
    and only PPO stages wrote it: those values are read as PPO's."""
    baselines: Baselines = {}
    for label, saved_values in dict(saved or {}).items():
        if not isinstance(saved_values, dict):
            continue
        flat = all(isinstance(v, (int, float)) or v is None for v in saved_values.values())
        by_strategy = {"ppo": saved_values} if saved_values and flat else saved_values
        baselines[label] = {
            strategy: {m: float(v) for m, v in metrics.items() if isinstance(v, (int, float))}
            for strategy, metrics in by_strategy.items()
            if isinstance(metrics, dict)
        }
    return baselines


def _persisted(data: dict[str, Any]) -> dict[str, float]:
    """The metrics whose baselines persist. A zero queue count is kept: with the default
    guardrails (no margin) a zero baseline never fires, as in the original, while a
    guardrail with a margin (conflicts that rise from none) can use it."""
    return {
        metric: float(value)
        for metric in PERSISTED_METRICS
        if isinstance(value := data.get(metric), (int, float))
    }


def _label(data: dict[str, Any]) -> str | None:
    """The dataset or environment a stage trained on (from its result): its baselines' key."""
    if data.get("dataset"):
        path = Path(str(data["dataset"]))
        return path.name if path.suffix == "" else path.stem
    env = data.get("env_id") or data.get("eval_env")
    return str(env) if env else None


def _stage_record(
    index: int,
    stage: Stage,
    stage_dir: Path,
    data: dict[str, Any],
    judgement: Judgement,
    warm_start: Path | None,
    own_checkpoint: str | None,
    config: AnnealConfig,
) -> AnnealStageResultDTO:
    keep = (
        "loss_total",
        "loss_policy",
        "loss_value",
        "accuracy",
        "val_accuracy",
        "eval_mean_return",
        "queue_conflict_events",
        "queue_conflict_intensity_sum",
    )
    return AnnealStageResultDTO(
        index=index,
        cycle=stage.cycle,
        strategy=stage.strategy,
        stage_dir=str(stage_dir),
        outcome=judgement.outcome,
        accepted=judgement.accepted,
        rolled_back=judgement.outcome == "rolled_back",
        warm_start=str(warm_start) if warm_start else None,
        checkpoint=own_checkpoint,
        accuracy=judgement.accuracy,
        threshold=config.accuracy_threshold if judgement.passed is not None else None,
        passed=judgement.passed,
        flags=judgement.flags,
        baselines=judgement.baselines,
        metrics={k: data.get(k) for k in keep if isinstance(data.get(k), (int, float))},
        result=data,
    )


def _write_results(context: TrainingContext, stages: list[AnnealStageResultDTO]) -> None:
    """anneal_results.json; every rank of a data-parallel run judges, rank 0 writes."""
    if context.world.is_writer:
        records = [stage.model_dump(mode="json") for stage in stages]
        atomic_write_json(context.run_dir / RESULTS_FILE, records)


def _keep_final(context: TrainingContext, last_good: Path | None) -> str | None:
    """Copy the last accepted checkpoint (a folder or a file) into the run directory,
    atomically: a failed or held stage's weights never become the run's policy."""
    if last_good is None or not last_good.exists():
        return None
    target_name = FINAL_CHECKPOINT + ("" if last_good.is_dir() else last_good.suffix)
    if not context.world.is_writer:
        return target_name
    staged = context.run_dir / f".{target_name}.tmp-{secrets.token_hex(4)}"
    if last_good.is_dir():
        shutil.copytree(last_good, staged)
    else:
        shutil.copy2(last_good, staged)
    staged.rename(context.run_dir / target_name)
    return target_name


def _device(stages: list[AnnealStageResultDTO]) -> str:
    devices = [str(s.result.get("device")) for s in stages if s.result.get("device")]
    return devices[-1] if devices else "cpu"
