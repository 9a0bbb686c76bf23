"""PPO with one policy shared by every agent of a PettingZoo env (a row per agent).

The town (`townlet/Town-v0`) at size 5 is crowded: three random walkers push into each
other's queue about 8 times each an episode there, so conflicts can fall as the policy
learns, and a random policy's per-agent return (about 27) sits far below the scripted
expert's (about 116).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from townlet_core.envs.evaluation import evaluate_policy
from townlet_core.envs.groups import grouped
from townlet_core.envs.settings import EnvSettings
from townlet_core.envs.town import parallel_env, town_expert

CROWDED = {"size": 5}
#: One group (agent_0) trains; the town's other agents act by the scripted expert.
town_first = grouped(parallel_env, agents=["agent_0"], others=town_expert())


def _lines(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_parameter_sharing_ppo_learns_the_crowded_town(train_ppo: Any, tmp_path: Path) -> None:
    section = {
        "env": "townlet/Town-v0",
        "env_kwargs": CROWDED,
        "num_envs": 12,  # four towns of three agents
        "num_steps": 128,
        "total_timesteps": 12 * 128 * 32,
        "update_epochs": 4,
        "minibatch_size": 512,
        "eval_every": None,
        "eval_episodes": 12,
        "stop_return": None,
    }
    result = train_ppo(section, seed=0)
    random = evaluate_policy(
        EnvSettings(id="townlet/Town-v0", kwargs=CROWDED), "random", episodes=12, seed=1
    )
    assert random.mean_return < 40  # measured: 26.8
    assert result.eval_mean_return is not None
    assert result.eval_mean_return > random.mean_return + 30  # measured: 77.0
    conflicts = [line["queue_conflict_events"] for line in _lines(tmp_path / "run")]
    first, last = np.mean(conflicts[:3]), np.mean(conflicts[-3:])
    assert first > 20  # measured: 65 an update of 1,536 agent-steps, falling to 9
    assert last < first / 3


def test_live_social_counters_equal_the_events_the_env_emitted(
    train_ppo: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every event the training envs emitted is in metrics.jsonl, and nothing else: counted
    independently at the env's boundary (agents leave the town when rested, so inactive
    rows are met too)."""
    from townlet_strategies_ppo import trainer

    emitted: list[dict[str, float]] = []
    build = trainer.make_vector_env

    def recording(*args: Any, **kwargs: Any) -> tuple[Any, str]:
        env, how = build(*args, **kwargs)
        step = env.step

        def counted(actions: Any) -> Any:
            out = step(actions)
            info = out[-1]
            emitted.append(
                {
                    key: float(np.asarray(info[key])[np.asarray(info[f"_{key}"])].sum())
                    for key in ("queue_conflict_events", "queue_conflict_intensity_sum")
                    if key in info
                }
            )
            return out

        env.step = counted
        return env, how

    monkeypatch.setattr(trainer, "make_vector_env", recording)
    section = {
        "env": "townlet/Town-v0",
        "env_kwargs": {**CROWDED, "leave_when_rested": True, "max_steps": 60},
        "num_envs": 6,
        "num_steps": 40,
        "minibatch_size": 120,
        "update_epochs": 2,
        "total_timesteps": 6 * 40 * 4,
        "eval_every": None,
        "eval_episodes": 2,
        "stop_return": None,
    }
    train_ppo(section, seed=3)
    lines = _lines(tmp_path / "run")
    assert len(emitted) == 4 * 40
    events = sum(step.get("queue_conflict_events", 0.0) for step in emitted)
    intensity = sum(step.get("queue_conflict_intensity_sum", 0.0) for step in emitted)
    assert events > 0  # random-ish agents in a crowded town do push
    assert sum(line["queue_conflict_events"] for line in lines) == events
    assert sum(line["queue_conflict_intensity_sum"] for line in lines) == pytest.approx(intensity)
    per_update = [
        sum(step.get("queue_conflict_events", 0.0) for step in emitted[i : i + 40])
        for i in range(0, len(emitted), 40)
    ]
    assert [line["queue_conflict_events"] for line in lines] == per_update
    # the town's per-agent action masks were read and trained under
    assert all(0 < line["action_blocked_ratio"] < 1 for line in lines)


def test_num_envs_that_splits_a_town_is_refused_before_training(train_ppo: Any) -> None:
    from townlet_core.errors import ConfigError

    with pytest.raises(ConfigError, match="3 agents a world.*multiple of 3"):
        train_ppo({"env": "townlet/Town-v0", "num_envs": 8, "num_steps": 32})


@pytest.mark.slow
def test_a_pettingzoo_env_nobody_here_wrote_trains_with_parameter_sharing(
    train_ppo: Any,
) -> None:
    """PettingZoo's multi-particle `simple_spread` (mpe2): three agents cover three
    landmarks. A uniform random policy scores -26.9 (60 episodes, per-episode spread 8.7);
    96k agent-steps of shared-policy PPO about -19.5 (measured: -19.5 at 92k)."""
    env = "mpe2.simple_spread_v3:parallel_env"
    section = {
        "env": env,
        "num_envs": 24,  # eight worlds of three agents
        "num_steps": 50,
        "total_timesteps": 24 * 50 * 80,
        "update_epochs": 10,
        "learning_rate": 3e-4,
        "gamma": 0.95,
        "gae_lambda": 0.95,
        "ent_coef": 0.01,
        "normalize_observations": True,
        "eval_every": None,
        "eval_episodes": 60,
        "stop_return": None,
    }
    result = train_ppo(section, seed=0)
    random = evaluate_policy(env, "random", episodes=60, seed=1, num_envs=12)
    assert result.eval_mean_return is not None
    # the standard error of the difference of two 60-episode means is about 1.6
    assert result.eval_mean_return > random.mean_return + 4.0


def test_a_town_run_resumes_exactly(interrupted_and_resumed: Any, tmp_path: Path) -> None:
    """The worlds are snapshotted with the checkpoint (plain data: positions, needs, the
    generators), so a resume continues their episodes, agents that left included."""
    from .conftest import assert_same_weights, metric_lines

    section = {
        "env": "townlet/Town-v0",
        "env_kwargs": {**CROWDED, "leave_when_rested": True, "max_steps": 50},
        "num_envs": 6,
        "num_steps": 16,
        "minibatch_size": 48,
        "update_epochs": 2,
        "total_timesteps": 6 * 16 * 6,
        "eval_every": None,
        "eval_episodes": 2,
        "stop_return": None,
        "checkpoint_every": 1,
    }
    resumed, state_before = interrupted_and_resumed(section, seed=5)
    assert state_before == "interrupted"
    assert resumed.resumed_from_update == 2 and resumed.updates_run == 4
    assert_same_weights(tmp_path / "whole" / "checkpoint", tmp_path / "parts" / "checkpoint")
    assert metric_lines(tmp_path / "whole") == metric_lines(tmp_path / "parts")


def test_ppo_trains_one_group_against_the_others_fixed_policy(train_ppo: Any) -> None:
    """A row per world: only agent_0 is trained, the expert moves the others."""
    result = train_ppo(
        {
            "env": f"{__name__}:town_first",
            "env_kwargs": {"size": 7},
            "num_envs": 4,
            "num_steps": 32,
            "minibatch_size": 64,
            "update_epochs": 2,
            "total_timesteps": 4 * 32 * 2,
            "eval_every": None,
            "eval_episodes": 2,
            "stop_return": None,
        }
    )
    assert result.status == "succeeded" and result.env_steps == 256
    assert result.eval_episodes == 2
