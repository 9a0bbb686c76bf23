"""Composition by explicit contract: what anneal reads from a stage, and what it refuses.

Each test pins one finding of issue 9 and fails on the code before it: a stage that reports
its checkpoint only in `artifacts` silently restarted the next stage from scratch; a
torch-free schedule could promote a release without a policy; guardrail baselines were
shared across stage strategies; anneal needed bc and ppo installed whatever its schedule;
PPO computed anneal's telemetry for it; the ledger was written before the result was
committed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

import townlet_example_cem.plugin
import townlet_strategies_anneal.plugin
from townlet_core import (
    Orchestrator,
    SpecCollector,
    StrategyRegistry,
    StrategySpec,
    TrainingContext,
    TrainingResultDTO,
    hookimpl,
)
from townlet_core.dto import AnnealSummaryDTO
from townlet_core.errors import RunDirectoryError
from townlet_core.promotion import PromotionLedger
from townlet_core.runtime.metrics import read_metrics
from townlet_core.runtime.run_dir import RunDirectory

CEM = {"env_id": "CartPole-v1", "iterations": 3, "population": 8, "eval_episodes": 2}


class LossResultDTO(TrainingResultDTO):
    """A stage that reports a PPO-like loss (so anneal's guardrails judge it)."""

    loss_total: float


def run_policy_in_artifacts(context: TrainingContext, config: Any) -> TrainingResultDTO:
    """Saves a policy but names it only in `artifacts` (the finding's third-party stage)."""
    context.artifact_path("policy.bin").write_bytes(b"weights")
    return TrainingResultDTO(**context.run_fields(), artifacts={"policy": "policy.bin"})


def run_with_loss(loss: float) -> Any:
    def run(context: TrainingContext, config: Any) -> LossResultDTO:
        context.metrics.log({"step": 1, "loss_total": loss})
        context.artifact_path("policy.bin").write_bytes(b"weights")
        return LossResultDTO(**context.run_fields(), checkpoint="policy.bin", loss_total=loss)

    return run


run_loss_100 = run_with_loss(100.0)
run_loss_1 = run_with_loss(1.0)


class _Stages:
    @hookimpl
    def townlet_register_strategies(self, specs: SpecCollector) -> None:
        for name, run in [
            ("artifactonly", "run_policy_in_artifacts"),
            ("lossa", "run_loss_100"),
            ("lossb", "run_loss_1"),
        ]:
            specs.add(
                StrategySpec(
                    name=name,
                    summary="test stage",
                    config_model="tests.test_composition:EmptyConfig",
                    run=f"tests.test_composition:{run}",
                )
            )


class EmptyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


def orchestrator() -> Orchestrator:
    """anneal, cem and the test stages only: no bc, no ppo installed."""
    registry = StrategyRegistry(discover=False)
    registry.add_plugin(townlet_strategies_anneal.plugin, distribution="townlet-strategies-anneal")
    registry.add_plugin(townlet_example_cem.plugin, distribution="townlet-example-cem")
    registry.add_plugin(_Stages(), distribution="test-stages")
    return Orchestrator(registry, quiet=True, progress=False)


def anneal(
    tmp_path: Path, schedule: list[dict[str, Any]], *, name: str, seed: int | None = None
) -> AnnealSummaryDTO:
    result = orchestrator().run(
        "anneal",
        config={"runs_root": str(tmp_path / "runs"), "anneal": {"schedule": schedule}},
        run_dir=tmp_path / name,
        seed=seed,
    )
    assert isinstance(result, AnnealSummaryDTO)
    return result


def cem(cycle: int) -> dict[str, Any]:
    return {"cycle": cycle, "strategy": "cem", "overrides": CEM}


def test_a_stage_without_a_checkpoint_stops_the_schedule_with_its_name(tmp_path):
    result = anneal(
        tmp_path, [{"cycle": 0, "strategy": "artifactonly"}, cem(1)], name="run", seed=1
    )
    assert result.anneal_status == "HOLD"
    assert result.reasons == ["no_checkpoint_from_stage_00-cycle0-artifactonly"]
    assert [s.strategy for s in result.stages] == ["artifactonly"]  # cem never trained
    assert not (tmp_path / "run" / "stages" / "01-cycle1-cem").exists()
    assert result.checkpoint is None


def test_a_torch_free_schedule_hands_on_and_promotes_a_real_policy(tmp_path):
    first = anneal(tmp_path, [cem(0), cem(1)], name="one")
    assert first.anneal_status == "PASS"
    # the second cem stage started from the first one's policy, and the run keeps a copy
    assert first.stages[1].warm_start == str(tmp_path / "one" / first.stages[0].checkpoint)
    assert first.checkpoint == "checkpoint.npz"
    assert (tmp_path / "one" / "checkpoint.npz").read_bytes() == (
        tmp_path / "one" / str(first.stages[1].checkpoint)
    ).read_bytes()
    second = anneal(tmp_path, [cem(0), cem(1)], name="two")
    assert second.promotion["candidate_ready"] is True
    ledger = PromotionLedger(tmp_path / "runs" / "promotion.sqlite")
    release = ledger.promote()["current_release"]
    assert release["candidate"]["checkpoint"] == str(tmp_path / "two" / "checkpoint.npz")


def test_a_run_without_a_policy_is_never_a_candidate(tmp_path):
    result = anneal(tmp_path, [{"cycle": 0, "strategy": "artifactonly"}], name="run")
    assert result.anneal_status == "HOLD"
    assert result.promotion["candidate"] is None
    assert result.promotion["candidate_ready"] is False


def test_the_same_seed_config_and_code_twice_is_one_piece_of_evidence(tmp_path):
    first = anneal(tmp_path, [cem(0)], name="one", seed=5)
    repeat = anneal(tmp_path, [cem(0)], name="two", seed=5)
    assert (first.anneal_status, repeat.anneal_status) == ("PASS", "PASS")
    assert repeat.promotion["counted"] is False
    assert repeat.promotion["repeat_of"] == str(tmp_path / "one")
    assert repeat.promotion["pass_streak"] == 1 and not repeat.promotion["candidate_ready"]
    fresh = anneal(tmp_path, [cem(0)], name="three", seed=6)
    assert fresh.promotion["counted"] is True and fresh.promotion["candidate_ready"] is True


def test_streaks_are_kept_per_schedule(tmp_path):
    anneal(tmp_path, [cem(0)], name="one", seed=1)
    other = anneal(tmp_path, [cem(0), cem(1)], name="two", seed=2)
    assert other.anneal_status == "PASS"
    assert other.promotion["pass_streak"] == 1  # its own lineage, not the first schedule's
    assert (
        other.promotion["lineage"]
        != anneal(tmp_path, [cem(0)], name="x", seed=3).promotion["lineage"]
    )


def test_baselines_are_kept_per_stage_strategy(tmp_path):
    stages = [{"cycle": 0, "strategy": "lossa"}, {"cycle": 1, "strategy": "lossb"}]
    first = anneal(tmp_path, stages, name="one", seed=1)
    # lossb's loss (1) was not compared with lossa's (100)
    assert first.anneal_status == "PASS", first.reasons
    assert first.baselines["lossa"] == {"lossa": {"loss_total": 100.0}}
    second = anneal(tmp_path, stages, name="two", seed=2)
    assert second.stages[1].baselines["loss_total"] == 1.0  # lossb's own, from the first run


def test_anneal_runs_a_schedule_of_strategies_other_than_bc_and_ppo(tmp_path):
    # the registry here has neither bc nor ppo
    assert anneal(tmp_path, [cem(0)], name="run", seed=1).anneal_status == "PASS"


def test_anneal_adds_its_telemetry_to_any_stage_strategy(tmp_path):
    anneal(tmp_path, [cem(0)], name="run", seed=1)
    lines = read_metrics(tmp_path / "run" / "stages" / "00-cycle0-cem" / "metrics.jsonl")
    assert lines and all(line["anneal_stage"] == "cem" for line in lines)
    assert {"anneal_cycle", "anneal_loss_flag", "anneal_bc_passed"} <= set(lines[-1])


def test_ppo_does_not_know_anneal_exists():
    """PPO may report the original Townlet's `anneal_ratio` telemetry field (its BC term's
    weight ratio), and nothing else of anneal."""
    source = Path(__file__).resolve().parents[1] / "townlet_strategies_ppo" / "src"
    mentions = [
        str(path.relative_to(source))
        for path in source.rglob("*.py")
        if "anneal" in path.read_text(encoding="utf-8").lower().replace("anneal_ratio", "")
    ]
    assert mentions == []


def test_the_ledger_is_written_only_after_the_result_is_committed(tmp_path, monkeypatch):
    write_result = RunDirectory.write_result

    def fail_for_the_top_run(self: RunDirectory, result_json: str) -> None:
        if self.path == tmp_path / "run":
            raise OSError("disk full")
        write_result(self, result_json)

    monkeypatch.setattr(RunDirectory, "write_result", fail_for_the_top_run)
    with pytest.raises(RunDirectoryError, match="disk full"):
        anneal(tmp_path, [cem(0)], name="run", seed=1)
    status = json.loads(RunDirectory(tmp_path / "run").status_path.read_text())
    assert status["state"] == "error" and "disk full" in status["error"]
    ledger = tmp_path / "runs" / "promotion.sqlite"
    assert not ledger.exists() or PromotionLedger(ledger).lineages() == []
