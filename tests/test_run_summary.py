"""What `townlet train` prints when a run ends: a summary read at a glance (what was trained
on what, the greedy return, steps and their rate, the checkpoint, the next commands), the
strategy's own lines through `summary_lines()`, anneal's stage table unchanged."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from townlet_core.cli.summary import format_summary
from townlet_core.dto import (
    TELEMETRY_FIELDS,
    AnnealStageResultDTO,
    AnnealSummaryDTO,
    BCTrainingResultDTO,
    PPOTrainingResultDTO,
    TrainingResultDTO,
)

START = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
RUN = Path("runs/demo")


def _run_fields(strategy: str, seconds: float = 2.5) -> dict[str, object]:
    return {
        "strategy": strategy,
        "strategy_version": "0.1.0",
        "seed": 3,
        "device": "cpu",
        "started_at": START,
        "finished_at": START + timedelta(seconds=seconds),
        "duration_sec": seconds,
    }


def _ppo(**overrides: object) -> PPOTrainingResultDTO:
    fields: dict[str, object] = dict.fromkeys(TELEMETRY_FIELDS, 1)
    fields.update(
        _run_fields("ppo"),
        data_mode="rollout",
        clip_fraction=0.15,
        reward_advantage_corr=0.5,
        clip_fraction_max=0.3,
        epoch=16,
        transitions=256,
        loss_total=0.638,
        loss_entropy=0.583,
        kl_divergence=0.0012,
        approx_kl=0.0034,
        explained_variance=0.93,
        env_id="CartPole-v1",
        env_steps=4096,
        updates_run=16,
        total_updates=16,
        eval_episodes=20,
        eval_mean_return=36.8,
        eval_std_return=5.02,
        best_eval_mean_return=40.25,
        best_checkpoint="checkpoint-best",
        checkpoint="checkpoint",
    )
    fields.update(overrides)
    return PPOTrainingResultDTO(**fields)


def _bc(**overrides: object) -> BCTrainingResultDTO:
    fields: dict[str, object] = {
        **_run_fields("bc", seconds=2.0),
        "manifest": "demos",
        "accuracy": 0.9431,
        "val_accuracy": 0.912,
        "loss": 0.1834,
        "val_loss": 0.18,
        "learning_rate": 1e-3,
        "batch_size": 64,
        "epochs": 20,
        "epochs_run": 12,
        "samples": 2000,
        "val_samples": 500,
        "action_dim": 2,
        "checkpoint": "checkpoint",
        "eval_env": "CartPole-v1",
        "eval_episodes": 20,
        "eval_mean_return": 500.0,
        "eval_std_return": 0.0,
    }
    fields.update(overrides)
    return BCTrainingResultDTO(**fields)


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    """runs/demo under tmp_path (the working directory) with a Townlet checkpoint folder."""
    monkeypatch.chdir(tmp_path)
    (RUN / "checkpoint").mkdir(parents=True)
    (RUN / "checkpoint" / "checkpoint.json").write_text("{}")
    return RUN


def test_a_ppo_run_ends_with_what_it_trained_its_return_steps_and_next_commands(run_dir):
    assert format_summary(_ppo(), run_dir).splitlines() == [
        "ppo 0.1.0 succeeded in 2.5s (seed 3, device cpu)",
        "  trained on:    CartPole-v1",
        "  return:        36.8 ± 5.0 over 20 greedy episodes",
        "  best:          40.2 at an evaluation during training (checkpoint-best)",
        "  steps:         4,096 env steps, 1,638 steps/s",
        "  updates:       16 of 16",
        "  last update:   loss 0.638, entropy 0.583, KL 0.0034, clip 0.15, explained var 0.93",
        "  checkpoint:    runs/demo/checkpoint",
        "  run directory: runs/demo",
        "  next:          townlet evaluate runs/demo/checkpoint --env CartPole-v1",
        "                 townlet report runs/demo",
        "                 townlet export runs/demo/checkpoint --format onnx -o policy.onnx",
    ]


def test_a_bc_run_counts_transitions_and_epochs_and_its_fit(run_dir):
    assert format_summary(_bc(), run_dir).splitlines() == [
        "bc 0.1.0 succeeded in 2.0s (seed 3, device cpu)",
        "  trained on:    demos",
        "  return:        500.0 ± 0.0 over 20 greedy episodes of CartPole-v1",
        "  steps:         2,000 (+500 held out) × 12 of 20 epochs = 24,000 transitions, "
        "12,000 transitions/s",
        "  accuracy:      0.943 train, 0.912 held out",
        "  loss:          0.183 train, 0.180 held out",
        "  checkpoint:    runs/demo/checkpoint",
        "  run directory: runs/demo",
        "  next:          townlet evaluate runs/demo/checkpoint --env CartPole-v1",
        "                 townlet report runs/demo",
        "                 townlet export runs/demo/checkpoint --format onnx -o policy.onnx",
    ]


def test_bc_without_an_evaluation_says_how_to_get_one():
    lines = _bc(eval_env=None, eval_episodes=None, eval_mean_return=None).summary_lines()
    assert "return: not evaluated (set bc.eval_env)" in lines


def test_bc_on_box_actions_reports_the_action_error():
    lines = _bc(accuracy=None, val_accuracy=None, action_mse=0.0123, val_action_mse=0.02)
    assert "action mse: 0.0123 train, 0.02 held out" in lines.summary_lines()
    assert not any(line.startswith("accuracy") for line in lines.summary_lines())


def test_a_resumed_ppo_run_rates_only_the_steps_this_process_took(run_dir):
    result = _ppo(updates_run=8, resumed_from_update=8, duration_sec=2.0)
    lines = result.summary_lines()
    assert "steps: 4,096 env steps, 1,024 steps/s" in lines
    assert "updates: 16 of 16 (resumed after update 8)" in lines


def test_a_ppo_run_stopped_early_says_so():
    lines = _ppo(epoch=9, updates_run=9, stopped_early=True).summary_lines()
    assert "updates: 9 of 16 (stopped early: stop_return reached)" in lines


def test_ppo_on_replay_data_was_not_evaluated_and_is_evaluated_without_an_env(run_dir):
    result = _ppo(
        data_mode="replay",
        env_id=None,
        dataset="replays/manifest.json",
        env_steps=0,
        eval_episodes=None,
        eval_mean_return=None,
        eval_std_return=None,
        best_eval_mean_return=None,
        best_checkpoint=None,
        approx_kl=None,
        explained_variance=None,
    )
    text = format_summary(result, run_dir)
    assert "  trained on:    replays/manifest.json\n" in text
    assert "  return:        not evaluated (no environment to evaluate in)\n" in text
    assert "steps:" not in text
    assert "KL 0.0012, clip 0.15\n" in text  # the update's own KL; no explained variance
    assert "  next:          townlet evaluate runs/demo/checkpoint\n" in text


def test_the_best_return_is_left_out_when_it_is_the_final_one():
    lines = _ppo(best_eval_mean_return=36.8).summary_lines()
    assert not any(line.startswith("best:") for line in lines)


def test_a_failed_run_says_why_first():
    failed = _ppo(status="failed", status_reason="evaluation mean return 36.80 is below 100")
    assert format_summary(failed, None).splitlines()[0] == (
        "ppo 0.1.0 FAILED: evaluation mean return 36.80 is below 100 in 2.5s (seed 3, device cpu)"
    )


def test_a_third_party_result_gets_the_standard_summary_with_no_code(run_dir):
    """cem declares the conventional fields and no summary method of its own."""
    from townlet_example_cem.result import CEMResultDTO

    (run_dir / "policy.npz").write_bytes(b"")
    result = CEMResultDTO(
        **_run_fields("cem", seconds=0.4),
        checkpoint="policy.npz",
        env_id="CartPole-v1",
        iterations_run=5,
        stopped_early=False,
        env_steps=15344,
        best_return=500.0,
        final_elite_mean_return=480.0,
        eval_episodes=20,
        eval_mean_return=411.75,
        eval_std_return=47.44,
        eval_min_return=300.0,
        eval_max_return=500.0,
    )
    assert "summary_lines" not in vars(CEMResultDTO)
    assert format_summary(result, run_dir).splitlines() == [
        "cem 0.1.0 succeeded in 0.4s (seed 3, device cpu)",
        "  trained on:    CartPole-v1",
        "  return:        411.8 ± 47.4 over 20 greedy episodes",
        "  steps:         15,344 env steps, 38,360 steps/s",
        "  checkpoint:    runs/demo/policy.npz",
        "  run directory: runs/demo",
        # policy.npz is cem's own format: evaluate and export read Townlet checkpoints
        "  next:          townlet report runs/demo",
    ]


def test_a_result_without_conventional_fields_still_says_where_it_is():
    class Plain(TrainingResultDTO):
        score: float

    result = Plain(**_run_fields("plain"), score=1.0)
    assert result.summary_lines() == []
    assert format_summary(result, Path("runs/p")).splitlines() == [
        "plain 0.1.0 succeeded in 2.5s (seed 3, device cpu)",
        "  run directory: runs/p",
        "  next:          townlet report runs/p",
    ]


def test_a_path_with_a_space_is_quoted_in_the_next_commands(tmp_path):
    run = tmp_path / "my runs" / "r"
    (run / "checkpoint").mkdir(parents=True)
    (run / "checkpoint" / "checkpoint.json").write_text("{}")
    text = format_summary(_ppo(), run)
    assert f"townlet report '{run}'" in text
    assert f"townlet evaluate '{run / 'checkpoint'}' --env CartPole-v1" in text


def test_anneal_prints_its_stage_table_as_before():
    stages = [
        AnnealStageResultDTO(
            index=0,
            cycle=0,
            strategy="bc",
            stage_dir="stages/00-cycle0-bc",
            outcome="accepted",
            accepted=True,
            accuracy=0.91,
            threshold=0.75,
            passed=True,
        ),
        AnnealStageResultDTO(
            index=1,
            cycle=1,
            strategy="ppo",
            stage_dir="stages/01-cycle1-ppo",
            outcome="accepted",
            accepted=True,
            metrics={"loss_total": 0.52, "eval_mean_return": 231.4},
        ),
    ]
    result = AnnealSummaryDTO(
        **_run_fields("anneal", seconds=90.0),
        anneal_status="PASS",
        label="LunarLander-v3",
        stages=stages,
        checkpoint="checkpoint",
        final_eval_mean_return=231.4,
    )
    assert format_summary(result, Path("runs/anneal-x")).splitlines() == [
        "anneal 0.1.0 succeeded in 90.0s (seed 3, device cpu)",
        "  run directory: runs/anneal-x",
        "anneal PASS on LunarLander-v3",
        "  00-cycle0-bc: accepted, accuracy 0.910 (gate 0.75)",
        "  01-cycle1-ppo: accepted, loss_total 0.52, eval_mean_return 231.4",
        "  final policy: checkpoint (greedy mean return 231.4)",
    ]


# --- through the CLI --------------------------------------------------------------------


@pytest.fixture
def townlet_good(site, monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TOWNLET_LOAD_PLUGINS", "good-strategy")
    from townlet_core.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_a_strategy_adds_its_own_line_through_summary_lines(townlet_good):
    code, out, _ = townlet_good("train", "-s", "good", "--run-dir", "r", "--set", "good.steps=5")
    assert code == 0
    lines = out.splitlines()
    estimate = json.loads(Path("r/result.json").read_text())["estimate"]
    assert lines[1:] == [
        f"  estimate:      {estimate:.3f} from 5",
        "  run directory: r",
        "  next:          townlet report r",
    ]


def test_json_is_still_the_whole_result_dto(townlet_good):
    code, out, _ = townlet_good("train", "-s", "good", "--run-dir", "r", "--json", "-q")
    assert code == 0
    assert json.loads(out) == json.loads(Path("r/result.json").read_text())
    assert out.startswith("{\n  ")  # indented JSON and nothing else


@pytest.mark.slow
def test_a_real_ppo_run_ends_with_the_summary(townlet_in_tmp, tmp_path):
    code, out, _ = townlet_in_tmp(
        "train", "-s", "ppo", "--set", "ppo.total_timesteps=1024", "--seed", "1", "--run-dir", "r"
    )
    assert code == 0
    labels = [line.split(":")[0].strip() for line in out.splitlines()[1:]]
    assert labels == [
        "trained on",
        "return",
        *(["best"] if "  best:" in out else []),
        "steps",
        "updates",
        "last update",
        "checkpoint",
        "run directory",
        "next",
        "townlet report r",
        "townlet export r/checkpoint --format onnx -o policy.onnx",
    ]
    assert "  next:          townlet evaluate r/checkpoint --env CartPole-v1\n" in out
    assert len(out.splitlines()) < 15  # not the ~60 fields of result.json
