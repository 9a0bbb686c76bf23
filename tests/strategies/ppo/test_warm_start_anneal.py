"""A warm start PPO improves instead of forgetting: the critic warm-up (issue 12).

Every run here starts from a weak CartPole clone (BC on 4 expert episodes, 3 epochs: its
greedy return is about 100 of 500, so its episodes end and its returns vary from state to
state: there is a value function worth fitting).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from townlet_core.checkpoints import NetworkSpec, ObservationSpec
from townlet_core.data.action_space import BOX, DISCRETE, ActionSpace
from townlet_core.errors import ConfigError
from townlet_core.nn import build_network, load_checkpoint

from .conftest import QUICK, assert_same_weights, metric_lines

#: A weak clone: few demonstrations, few epochs.
WEAK_BC: dict[str, Any] = {
    "capture": {"episodes": 4, "max_episode_steps": 200},
    "epochs": 3,
    "eval_episodes": 2,
}
#: Six updates of 8 x 64 steps: enough to fit a critic in four.
FINE_TUNE: dict[str, Any] = {
    "num_envs": 8,
    "num_steps": 64,
    "minibatch_size": 128,
    "update_epochs": 10,
    "total_timesteps": 512 * 6,
    "eval_every": None,
    "eval_episodes": 2,
    "stop_return": None,
    "max_episode_steps": 200,
}


@pytest.fixture
def weak_clone(townlet_train: Any, tmp_path: Path) -> str:
    """The checkpoint of a weak BC clone of the CartPole expert."""
    townlet_train("bc", WEAK_BC, name="bc")
    return str(tmp_path / "bc" / "checkpoint")


def _actor_and_critic(state: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    """A checkpoint's tensors split into what the policy reads and what only the value does."""
    critic = {k: v for k, v in state.items() if k.startswith(("critic_body.", "value_head."))}
    actor = {k: v for k, v in state.items() if k not in critic}
    return actor, critic


# ---------------------------------------------------------------------- critic warm-up


def test_warm_up_fits_the_critic_before_ppo_moves_the_policy(train_ppo, weak_clone, tmp_path):
    """The explained variance of the critic on the first rollout PPO trains on (the first
    `ppo` line's: the values are predicted before that update), seed 0: -0.02 without a
    warm-up (BC never trained the critic), 0.92 after four warm-up rollouts."""
    section = {**FINE_TUNE, "init_checkpoint": weak_clone}
    train_ppo({**section, "critic_warmup_rollouts": 0}, name="naive")
    warmed = train_ppo({**section, "critic_warmup_rollouts": 4}, name="warmed")
    naive_lines, warm_lines = metric_lines(tmp_path / "naive"), metric_lines(tmp_path / "warmed")
    assert [line["phase"] for line in warm_lines] == ["critic_warmup"] * 4 + ["ppo"] * 2
    assert {line["phase"] for line in naive_lines} == {"ppo"}
    first_ppo = next(line for line in warm_lines if line["phase"] == "ppo")
    assert first_ppo["explained_variance"] > 0.5
    assert abs(naive_lines[0]["explained_variance"]) < 0.1
    # the warm-up's rollouts are part of the budget: six rollouts in all, as without it
    assert warmed.env_steps == 512 * 6 and warmed.updates_run == 6


def test_warm_up_leaves_the_actor_bit_identical(train_ppo, weak_clone, tmp_path):
    train_ppo(
        {**FINE_TUNE, "init_checkpoint": weak_clone, "critic_warmup_rollouts": 2,
         "checkpoint_every": 1, "keep_checkpoints": 10},
        name="ppo",
    )  # fmt: skip
    clone = load_checkpoint(weak_clone)[0].state_dict()
    warmed = load_checkpoint(tmp_path / "ppo" / "checkpoints" / "update-000002")[0].state_dict()
    clone_actor, clone_critic = _actor_and_critic(clone)
    warm_actor, warm_critic = _actor_and_critic(warmed)
    for name, tensor in clone_actor.items():
        assert torch.equal(warm_actor[name], tensor), name
    assert any(not torch.equal(warm_critic[k], v) for k, v in clone_critic.items())
    # ... and PPO moves the policy afterwards
    final = load_checkpoint(tmp_path / "ppo" / "checkpoint")[0].state_dict()
    assert not torch.equal(final["policy_head.weight"], clone["policy_head.weight"])


@pytest.mark.parametrize("shared_trunk", [False, True])
@pytest.mark.parametrize("kind", [DISCRETE, BOX])
def test_a_value_only_update_moves_no_parameter_the_policy_reads(shared_trunk, kind):
    """Directly on the update: a stacked actor/critic body (only its critic half may move),
    a shared trunk (only the value head may), a Gaussian's log std (never)."""
    import numpy as np

    from townlet_strategies_ppo import critic_warmup
    from townlet_strategies_ppo.config import PPOConfig
    from townlet_strategies_ppo.update import Batch, ppo_update

    space = ActionSpace(DISCRETE, (), n=3) if kind == DISCRETE else ActionSpace(
        BOX, (2,), low=(-1.0, -1.0), high=(1.0, 1.0)
    )  # fmt: skip
    network = build_network(
        NetworkSpec(shared_trunk=shared_trunk), ObservationSpec(features_dim=4), space.count,
        seed=0, action_space=space,
    )  # fmt: skip
    rows = 64
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(rows, 4, generator=generator)
    with torch.no_grad():
        params, values = network(features)
        actions = network.distribution.sample(params, generator)
        log_probs = network.distribution.log_prob(params, actions)
    returns = 10 * torch.randn(rows, generator=generator)
    batch = Batch(features, None, actions, log_probs, values, returns - values, returns, returns)
    before = {k: v.clone() for k, v in network.state_dict().items()}
    critic = critic_warmup.critic_only(network)
    optimizer = critic_warmup.make_warmup_optimizer(critic, 1e-2)
    config = PPOConfig(update_epochs=5, minibatch_size=16, num_envs=4, num_steps=16)
    ppo_update(network, optimizer, batch, config, 0.2, np.random.default_rng(0), value_only=critic)
    after = network.state_dict()
    actor, critic_part = _actor_and_critic(before)
    for name, tensor in actor.items():
        assert torch.equal(after[name], tensor), name
    assert any(not torch.equal(after[k], v) for k, v in critic_part.items())
    assert not torch.equal(after["value_head.weight"], before["value_head.weight"])


def test_auto_warms_up_a_live_warm_start_only():
    from townlet_strategies_ppo.config import PPOConfig
    from townlet_strategies_ppo.critic_warmup import warmup_rollouts

    config = PPOConfig()
    assert warmup_rollouts(config, warm_start=True, total_updates=234) == 4
    assert warmup_rollouts(config, warm_start=True, total_updates=6) == 1  # a quarter at most
    assert warmup_rollouts(config, warm_start=True, total_updates=3) == 0
    assert warmup_rollouts(config, warm_start=False, total_updates=234) == 0
    explicit = PPOConfig(critic_warmup_rollouts=2)
    assert warmup_rollouts(explicit, warm_start=False, total_updates=234) == 2


def test_a_default_warm_start_warms_up_and_a_fresh_run_does_not(train_ppo, weak_clone, tmp_path):
    train_ppo({**QUICK, "init_checkpoint": weak_clone}, name="warm")
    train_ppo(QUICK, name="fresh")
    assert [line["phase"] for line in metric_lines(tmp_path / "warm")] == ["critic_warmup"] + [
        "ppo"
    ] * 5
    assert {line["phase"] for line in metric_lines(tmp_path / "fresh")} == {"ppo"}


def test_a_warm_up_as_long_as_the_run_is_refused(train_ppo):
    with pytest.raises(ConfigError, match=r"critic_warmup_rollouts 6 leaves no PPO update"):
        train_ppo({**QUICK, "critic_warmup_rollouts": 6})


def test_resume_inside_the_warm_up_equals_an_uninterrupted_run(
    interrupted_and_resumed, weak_clone, tmp_path
):
    """Stopped after update 2 of a four-update warm-up: the resume continues the warm-up's
    own optimiser, then PPO, exactly."""
    section = {**QUICK, "init_checkpoint": weak_clone, "critic_warmup_rollouts": 4}
    resumed, state_before = interrupted_and_resumed(section, seed=3)
    assert state_before == "interrupted" and resumed.resumed_from_update == 2
    assert_same_weights(tmp_path / "whole" / "checkpoint", tmp_path / "parts" / "checkpoint")
    assert metric_lines(tmp_path / "whole") == metric_lines(tmp_path / "parts")
