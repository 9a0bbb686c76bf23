"""A warm start PPO improves instead of forgetting (issue 12): the critic warm-up and the
BC term, a KL to the cloned policy with a decaying weight.

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
from townlet_core.data.action_space import BOX, DISCRETE, MULTI_BINARY, MULTI_DISCRETE, ActionSpace
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


# ---------------------------------------------------------------------- the BC term


def _clone_states(clone: str, steps: int = 1000) -> torch.Tensor:
    """States the clone visits (its own sampled actions, CartPole, seed 123)."""
    import gymnasium
    import numpy as np

    from townlet_core.nn import TorchPolicy

    policy = TorchPolicy(load_checkpoint(clone)[0], greedy=False)
    env = gymnasium.make("CartPole-v1", max_episode_steps=200)
    observation, _ = env.reset(seed=123)
    states = []
    for _ in range(steps):
        states.append(observation)
        observation, _, terminated, truncated, _ = env.step(
            int(policy(observation[None]).actions[0])
        )
        if terminated or truncated:
            observation, _ = env.reset()
    env.close()
    return torch.as_tensor(np.array(states), dtype=torch.float32)


def _mean_kl(clone: str, other: Path, states: torch.Tensor) -> float:
    """Mean KL(clone || other) over `states`."""
    from townlet_strategies_ppo.bc_term import kl_divergence

    a, b = load_checkpoint(clone)[0], load_checkpoint(other)[0]
    with torch.no_grad():
        kl = kl_divergence(a.distribution, a.logits(states), b.distribution, b.logits(states))
    return float(kl.mean())


def test_the_bc_term_keeps_ppo_close_to_the_clone(train_ppo, weak_clone, tmp_path):
    """A destabilising learning rate (0.03, constant) after a two-rollout warm-up; the mean
    KL(clone || policy) on 1,000 states the clone visits, after each of the first two PPO
    updates, seed 0: 0.029 and 0.158 with bc_weight 0, 0.005 and 0.011 with bc_weight 1
    (bound 0.02). At this rate the free run is chaotic: before the heads were stacked,
    which changed only the float rounding, it measured 0.068 and 0.058, and on another
    machine's CPU (16 threads, torch 2.11) one update's free KL was under twice the kept
    one's. So the free run is compared at its worst and in sum, not update by update, and
    the kept run against the fixed bound."""
    section = {
        **FINE_TUNE,
        "total_timesteps": 512 * 4,
        "init_checkpoint": weak_clone,
        "critic_warmup_rollouts": 2,
        "learning_rate": 0.03,
        "lr_schedule": "constant",
        "checkpoint_every": 1,
        "keep_checkpoints": 10,
    }
    train_ppo(section, name="free")
    kept = train_ppo({**section, "bc_weight": 1.0}, name="kept")
    states = _clone_states(weak_clone)

    def kls(run: str) -> list[float]:
        folder = tmp_path / run / "checkpoints"
        return [_mean_kl(weak_clone, folder / f"update-{u:06d}", states) for u in (3, 4)]

    free, close = kls("free"), kls("kept")
    assert max(close) < 0.02
    assert max(free) > 2 * max(close)
    assert sum(free) > 3 * sum(close)
    lines = metric_lines(tmp_path / "kept")
    assert [line["bc_weight"] for line in lines] == [0.0, 0.0, 1.0, 1.0]
    assert all(line["bc_kl"] < 0.05 for line in lines[2:])  # what the term saw, per update
    assert "bc_kl" not in lines[0] and kept.env_steps == 512 * 4


def test_the_schedule_of_the_bc_weight_is_in_every_line(train_ppo, weak_clone, tmp_path):
    """Six updates, one of them warm-up (auto): the five PPO updates go from 1 to 0."""
    schedule = {"bc_weight": 1.0, "bc_weight_schedule": "linear", "bc_weight_final": 0.0}
    train_ppo({**QUICK, "init_checkpoint": weak_clone, **schedule}, name="linear")
    lines = metric_lines(tmp_path / "linear")
    assert [line["phase"] for line in lines] == ["critic_warmup"] + ["ppo"] * 5
    expected = [0.0, 1.0, 0.75, 0.5, 0.25, 0.0]
    assert [line["bc_weight"] for line in lines] == pytest.approx(expected)
    assert [line["anneal_ratio"] for line in lines] == pytest.approx(expected)
    assert [("bc_kl" in line) for line in lines] == [False, True, True, True, True, False]
    train_ppo(QUICK, name="off")
    assert {
        (line["bc_weight"], line["anneal_ratio"]) for line in metric_lines(tmp_path / "off")
    } == {(0.0, 0.0)}


def test_the_weight_schedules():
    from townlet_strategies_ppo.bc_term import bc_weight, weight_ratio
    from townlet_strategies_ppo.config import PPOConfig

    constant = PPOConfig(bc_weight=0.5)
    assert [bc_weight(constant, u, 4) for u in range(4)] == [0.5] * 4
    linear = PPOConfig(bc_weight=2.0, bc_weight_schedule="linear", bc_weight_final=1.0)
    assert [bc_weight(linear, u, 3) for u in range(3)] == pytest.approx([2.0, 1.5, 1.0])
    exponential = PPOConfig(bc_weight=1.0, bc_weight_schedule="exponential", bc_weight_final=0.01)
    assert [bc_weight(exponential, u, 3) for u in range(3)] == pytest.approx([1.0, 0.1, 0.01])
    assert bc_weight(linear, 0, 1) == 2.0  # a single update has the initial weight
    assert weight_ratio(linear, 1.5) == 0.75 and weight_ratio(PPOConfig(), 0.0) == 0.0


def test_an_exponential_decay_to_zero_is_refused(train_ppo):
    exponential = {"bc_weight": 1.0, "bc_weight_schedule": "exponential"}
    with pytest.raises(ConfigError, match=r"to ppo.bc_weight_final, which must be above 0"):
        train_ppo({**QUICK, **exponential})


def test_a_bc_term_without_a_warm_start_is_refused_before_training(train_ppo, tmp_path):
    with pytest.raises(ConfigError, match=r"ppo.bc_weight: the BC term keeps the policy close"):
        train_ppo({**QUICK, "bc_weight": 1.0}, name="ppo")
    assert not (tmp_path / "ppo").exists()


# ---------------------------------------------------------------------- KL per action space


def _kl_cases() -> list[tuple[str, Any]]:
    return ["discrete", "masked", "multi_discrete", "multi_binary", "box"]


@pytest.mark.parametrize("case", _kl_cases())
def test_the_kl_of_each_action_space_matches_torch_distributions(case):
    """Our closed forms against torch.distributions' (which validate and are slower)."""
    from torch import distributions as td

    from townlet_core.nn.distributions import distribution_for
    from townlet_strategies_ppo.bc_term import kl_divergence

    g = torch.Generator().manual_seed(0)
    rows = 7
    mask = None
    if case in ("discrete", "masked"):
        space = ActionSpace(DISCRETE, (), n=4)
        p, q = torch.randn(rows, 4, generator=g), torch.randn(rows, 4, generator=g)
        if case == "masked":
            mask = torch.rand(rows, 4, generator=g) > 0.4
            mask[:, 0] = True
            fill = torch.tensor(-torch.inf)
            p_dist = td.Categorical(logits=torch.where(mask, p, fill))
            q_dist = td.Categorical(logits=torch.where(mask, q, fill))
            expected = (p_dist.probs * (p_dist.logits - q_dist.logits).nan_to_num(0.0)).sum(-1)
        else:
            expected = td.kl_divergence(td.Categorical(logits=p), td.Categorical(logits=q))
    elif case == "multi_discrete":
        space = ActionSpace(MULTI_DISCRETE, (2,), nvec=(3, 2))
        p, q = torch.randn(rows, 5, generator=g), torch.randn(rows, 5, generator=g)
        expected = sum(
            td.kl_divergence(td.Categorical(logits=p[:, s]), td.Categorical(logits=q[:, s]))
            for s in (slice(0, 3), slice(3, 5))
        )
    elif case == "multi_binary":
        space = ActionSpace(MULTI_BINARY, (3,), n=3)
        p, q = torch.randn(rows, 3, generator=g), torch.randn(rows, 3, generator=g)
        expected = td.kl_divergence(td.Bernoulli(logits=p), td.Bernoulli(logits=q)).sum(-1)
    else:
        space = ActionSpace(BOX, (2,), low=(-1.0, -1.0), high=(1.0, 1.0))
        p, q = torch.randn(rows, 2, generator=g), torch.randn(rows, 2, generator=g)
    reference, current = distribution_for(space, -0.5), distribution_for(space, 0.3)
    if case == "box":
        expected = td.kl_divergence(
            td.Normal(p, reference.log_std.exp()), td.Normal(q, current.log_std.exp())
        ).sum(-1)
    with torch.no_grad():
        kl = kl_divergence(reference, p, current, q, mask)
        same = kl_divergence(reference, p, reference, p, mask)
    assert torch.allclose(kl, expected.float(), atol=1e-5)
    assert torch.allclose(same, torch.zeros(rows), atol=1e-6)


# ---------------------------------------------------------------------- resume


@pytest.mark.parametrize("warmup", [4, 2])
def test_resume_of_a_warm_up_and_bc_term_run_equals_an_uninterrupted_run(
    interrupted_and_resumed, weak_clone, tmp_path, warmup
):
    """Stopped after update 2: inside a four-update warm-up (the resume continues the
    warm-up's own optimiser), or after a two-update one (it reloads the BC term's reference
    from the start checkpoint), with a linear BC schedule either way."""
    section = {
        **QUICK,
        "init_checkpoint": weak_clone,
        "critic_warmup_rollouts": warmup,
        "bc_weight": 0.5,
        "bc_weight_schedule": "linear",
    }
    resumed, state_before = interrupted_and_resumed(section, seed=3)
    assert state_before == "interrupted" and resumed.resumed_from_update == 2
    assert_same_weights(tmp_path / "whole" / "checkpoint", tmp_path / "parts" / "checkpoint")
    whole = metric_lines(tmp_path / "whole")
    assert whole == metric_lines(tmp_path / "parts")
    assert [line["bc_weight"] > 0 for line in whole][warmup:-1] == [True] * (5 - warmup)


def test_the_result_reports_the_warm_up_and_the_bc_term(train_ppo, weak_clone):
    section = {**QUICK, "init_checkpoint": weak_clone, "critic_warmup_rollouts": 1}
    result = train_ppo({**section, "bc_weight": 0.5})
    assert result.critic_warmup_updates == 1
    assert result.bc_weight == pytest.approx(0.5) and result.anneal_ratio == pytest.approx(1.0)
    assert result.bc_kl is not None
