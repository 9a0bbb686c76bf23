"""`AnnealStrategy`: run a schedule of strategies by name, guard each stage, keep the last
good checkpoint, give a PASS/HOLD/FAIL verdict and record it in the promotion ledger.

Torch-free: every stage is another strategy, reached only through the registry
(`context.run_strategy`), so bc and ppo can be swapped for any installed strategy.
"""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path
from typing import Any

from townlet_core import TrainingContext
from townlet_core.atomic import atomic_write_json
from townlet_core.dto import AnnealStageResultDTO, AnnealSummaryDTO, TrainingResultDTO
from townlet_core.promotion import LEDGER_FILE, PromotionLedger
from townlet_strategies_anneal.config import AnnealConfig, Stage
from townlet_strategies_anneal.judging import (
    PERSISTED_METRICS,
    RETURN_METRIC,
    Judgement,
    is_behaviour_cloning,
    judge,
    verdict,
)

RESULTS_FILE = "anneal_results.json"
FINAL_CHECKPOINT = "checkpoint"


def ordered(schedule: list[Stage]) -> list[Stage]:
    """Stages by cycle; stages of one cycle keep the order they were given in."""
    return sorted(schedule, key=lambda stage: stage.cycle)


def stage_name(index: int, stage: Stage) -> str:
    return f"{index:02d}-cycle{stage.cycle}-{stage.strategy}"


def _label(result: TrainingResultDTO) -> str | None:
    """The dataset or environment a stage trained on: its baselines' key."""
    data = result.model_dump()
    if data.get("dataset"):
        path = Path(str(data["dataset"]))
        return path.name if path.suffix == "" else path.stem
    env = data.get("env_id") or data.get("eval_env")
    return str(env) if env else None


class AnnealStrategy:
    """Behaviour-cloning warm start, PPO fine-tuning, guardrails, verdict, promotion."""

    name = "anneal"
    requires_torch = False

    def prepare(self, context: TrainingContext, config: AnnealConfig) -> None:
        """Validate the whole schedule before anything trains: every strategy installed (else
        its install hint), every stage's overrides valid for that strategy's own model."""
        for index, stage in enumerate(ordered(config.schedule)):
            context.check_strategy(stage.strategy, stage.overrides, stage=stage_name(index, stage))

    def run(self, context: TrainingContext, config: AnnealConfig) -> AnnealSummaryDTO:
        baselines: dict[str, dict[str, float | None]] = {
            label: dict(values) for label, values in context.state.get("baselines", {}).items()
        }
        last_good: Path | None = config.init_checkpoint
        last_return: float | None = None
        last_bc: dict[str, Any] = {}
        stages: list[AnnealStageResultDTO] = []
        labels: list[str] = []
        for index, stage in enumerate(ordered(config.schedule)):
            name = stage_name(index, stage)
            label = str(stage.overrides.get("env") or stage.overrides.get("dataset") or "")
            known = baselines.get(label, {})
            result = context.run_strategy(
                stage.strategy,
                stage.overrides,
                stage=name,
                warm_start=last_good,
                extras={"anneal": self._telemetry(config, stage, label, last_bc, known)},
            )
            data = result.model_dump(mode="json")
            label = _label(result) or label or stage.strategy
            labels.append(label)
            known = baselines.setdefault(label, {})
            judgement = judge(
                data,
                threshold=config.accuracy_threshold,
                guardrails=config.guardrails,
                baselines={**known, RETURN_METRIC: last_return},
            )
            stage_dir = Path("stages") / name
            checkpoint = data.get("checkpoint")
            own_checkpoint = str(stage_dir / checkpoint) if isinstance(checkpoint, str) else None
            record = self._stage_record(
                index, stage, name, data, judgement, last_good, own_checkpoint, config
            )
            stages.append(record)
            context.log(f"townlet: anneal stage {name}: {judgement.outcome}")
            if is_behaviour_cloning(data):
                last_bc = {"accuracy": judgement.accuracy, "passed": judgement.passed}
            if "loss_total" in data:  # the original updated baselines after every PPO stage
                for metric in PERSISTED_METRICS:
                    value = data.get(metric)
                    if isinstance(value, (int, float)) and not (
                        metric != "loss_total" and value == 0
                    ):
                        known[metric] = float(value)
            if judgement.accepted:
                if own_checkpoint is not None:
                    last_good = context.run_dir / own_checkpoint
                if isinstance(data.get(RETURN_METRIC), (int, float)):
                    last_return = float(data[RETURN_METRIC])
            if judgement.outcome == "rolled_back":
                context.log(
                    f"townlet: anneal: {name} below accuracy {config.accuracy_threshold}; "
                    f"rolled back to {last_good or 'no checkpoint'} and stopped"
                )
                break
        status, reasons = verdict(stages)
        final = self._keep_final(context, last_good)
        atomic_write_json(
            context.run_dir / RESULTS_FILE, [s.model_dump(mode="json") for s in stages]
        )
        context.state["baselines"] = baselines
        ledger = PromotionLedger(
            config.ledger or context.config.run.runs_root / LEDGER_FILE,
            required_passes=config.required_passes,
        )
        snapshot = ledger.record_evaluation(
            status,
            {
                "run_dir": str(context.run_dir),
                "checkpoint": str(context.run_dir / final) if final else None,
                "cycle": stages[-1].cycle,
                "strategy": stages[-1].strategy,
                "eval_mean_return": last_return,
            },
        )
        context.log(
            f"townlet: anneal {status}"
            + (f" ({', '.join(reasons)})" if reasons else "")
            + f"; pass streak {snapshot['pass_streak']} of {snapshot['required_passes']}"
        )
        return AnnealSummaryDTO(
            **context.run_fields(device=self._device(stages)),
            artifacts={"anneal_results": RESULTS_FILE} | ({"checkpoint": final} if final else {}),
            anneal_status=status,
            reasons=reasons,
            label=labels[0],
            stages=stages,
            baselines=baselines,
            final_checkpoint=final,
            final_eval_mean_return=last_return,
            promotion={k: v for k, v in snapshot.items() if k != "history"},
        )

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _telemetry(
        config: AnnealConfig,
        stage: Stage,
        label: str,
        last_bc: dict[str, Any],
        known: dict[str, Any],
    ) -> dict[str, Any]:
        """The `anneal_*` fields a PPO stage adds to each telemetry line (original names),
        with what it needs to compute the guardrail flags line by line."""
        return {
            "anneal_cycle": stage.cycle,
            "anneal_stage": stage.strategy,
            "anneal_dataset": label,
            "anneal_bc_accuracy": last_bc.get("accuracy"),
            "anneal_bc_threshold": config.accuracy_threshold,
            "anneal_bc_passed": last_bc.get("passed", True),
            "anneal_loss_baseline": known.get("loss_total"),
            "anneal_queue_baseline": known.get("queue_conflict_events"),
            "anneal_intensity_baseline": known.get("queue_conflict_intensity_sum"),
            "_guardrails": [g.model_dump() for g in config.guardrails if g.metric != RETURN_METRIC],
            "_baselines": dict(known),
        }

    @staticmethod
    def _stage_record(
        index: int,
        stage: Stage,
        name: str,
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
            stage_dir=str(Path("stages") / name),
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

    @staticmethod
    def _keep_final(context: TrainingContext, last_good: Path | None) -> str | None:
        """Copy the last accepted checkpoint to RUN_DIR/checkpoint (atomically): a failed
        or held stage's weights never become the run's policy."""
        if last_good is None or not last_good.exists():
            return None
        target = context.run_dir / FINAL_CHECKPOINT
        staged = context.run_dir / f".{FINAL_CHECKPOINT}.tmp-{secrets.token_hex(4)}"
        shutil.copytree(last_good, staged)
        staged.rename(target)
        return FINAL_CHECKPOINT

    @staticmethod
    def _device(stages: list[AnnealStageResultDTO]) -> str:
        devices = [str(s.result.get("device")) for s in stages if s.result.get("device")]
        return devices[-1] if devices else "cpu"
