"""Each piece of the PPO objective against numbers worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from townlet_core.nn.distributions import Categorical
from townlet_strategies_ppo.losses import (
    clipped_surrogate,
    compute_gae,
    explained_variance,
    normalize,
    policy_log_probs,
    total_loss,
    value_loss,
)


def _column(values):
    return torch.tensor(values, dtype=torch.float32)[:, None]


def test_gae_single_step_matches_the_original_pinned_value():
    # r = 1, V = 0.5, next V = 0.4, no done, gamma 0.99, lambda 0.95: A = 0.896, R = 1.396
    advantages, returns = compute_gae(
        _column([1.0]),
        _column([0.5]),
        _column([0.0]),
        _column([0.0]),
        torch.tensor([0.4]),
        0.99,
        0.95,
    )
    assert advantages.item() == pytest.approx(0.896, abs=1e-6)
    assert returns.item() == pytest.approx(1.396, abs=1e-6)


def test_gae_over_three_steps_by_hand():
    gamma, lam = 0.9, 0.5
    rewards, values, last = [1.0, 0.0, 2.0], [0.5, 0.2, 0.1], 0.3
    # deltas: d2 = 2 + .9*.3 - .1 = 2.17; d1 = 0 + .9*.1 - .2 = -.11; d0 = 1 + .9*.2 - .5 = .68
    a2 = 2.17
    a1 = -0.11 + gamma * lam * a2
    a0 = 0.68 + gamma * lam * a1
    advantages, returns = compute_gae(
        _column(rewards),
        _column(values),
        _column([0, 0, 0]),
        _column([0, 0, 0]),
        torch.tensor([last]),
        gamma,
        lam,
    )
    assert advantages[:, 0].tolist() == pytest.approx([a0, a1, a2], abs=1e-6)
    assert returns[:, 0].tolist() == pytest.approx([a0 + 0.5, a1 + 0.2, a2 + 0.1], abs=1e-6)


def test_termination_does_not_bootstrap_but_truncation_does():
    gamma, lam = 0.9, 0.5
    # step 0 ends the episode; step 1 belongs to the next one (V(s1) = 0.7)
    rewards, values = _column([1.0, 0.0]), _column([0.5, 0.7])
    last = torch.tensor([0.0])
    terminated, _ = compute_gae(rewards, values, _column([1, 0]), _column([0, 0]), last, gamma, lam)
    truncated, _ = compute_gae(rewards, values, _column([0, 0]), _column([1, 0]), last, gamma, lam)
    assert terminated[0, 0].item() == pytest.approx(1.0 - 0.5)  # nothing after the end
    assert truncated[0, 0].item() == pytest.approx(1.0 + gamma * 0.7 - 0.5)  # bootstrap V(next)
    # in both cases step 1's advantage does not flow back into step 0
    assert terminated[1, 0].item() == truncated[1, 0].item() == pytest.approx(-0.7)


def test_gae_handles_several_environments_independently():
    rewards = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    values = torch.zeros(2, 2)
    zeros = torch.zeros(2, 2)
    advantages, _ = compute_gae(rewards, values, zeros, zeros, torch.zeros(2), 1.0, 1.0)
    assert advantages[:, 0].tolist() == [2.0, 1.0]
    assert advantages[:, 1].tolist() == [0.0, 0.0]


def test_normalize_uses_the_population_std():
    normalized, std = normalize(torch.tensor([1.0, 3.0]))
    assert std == pytest.approx(1.0)
    assert normalized.tolist() == pytest.approx([-1.0, 1.0], abs=1e-6)
    single, std = normalize(torch.tensor([5.0]))
    assert std == 0.0 and single.tolist() == [0.0]


def test_surrogate_clipping_and_clip_fraction():
    # new probabilities (0.5, 0.1) against old (0.2, 0.2), advantages (1, -1), eps 0.2:
    new = torch.log(torch.tensor([0.5, 0.1]))
    old = torch.log(torch.tensor([0.2, 0.2]))
    result = clipped_surrogate(new, old, torch.tensor([1.0, -1.0]), 0.2)
    # ratios 2.5 and 0.5: min(2.5, 1.2) * 1 = 1.2; min(-0.5, -0.8) = -0.8 -> loss = -(1.2 - 0.8)/2
    assert result.loss.item() == pytest.approx(-0.2, abs=1e-6)
    assert result.clip_fraction.item() == 1.0
    assert result.kl_divergence.item() == pytest.approx(
        -(math.log(2.5) + math.log(0.5)) / 2, abs=1e-6
    )
    assert result.approx_kl.item() == pytest.approx(
        ((1.5 - math.log(2.5)) + (-0.5 - math.log(0.5))) / 2, abs=1e-6
    )


def test_surrogate_inside_the_clip_range_is_the_plain_policy_gradient_objective():
    new = torch.log(torch.tensor([0.22]))
    old = torch.log(torch.tensor([0.2]))
    result = clipped_surrogate(new, old, torch.tensor([2.0]), 0.2)
    assert result.loss.item() == pytest.approx(-1.1 * 2.0, abs=1e-6)
    assert result.clip_fraction.item() == 0.0


def test_value_loss_plain_and_clipped():
    new, old, returns = torch.tensor([1.0, 0.0]), torch.tensor([0.5, 0.5]), torch.tensor([2.0, 0.0])
    assert value_loss(new, old, returns, None).item() == pytest.approx(0.5 * (1.0 + 0.0) / 2)
    # clipped to within 0.1 of old: (0.6, 0.4); losses max((1-2)^2,(0.6-2)^2)=1.96, max(0, 0.16)
    assert value_loss(new, old, returns, 0.1).item() == pytest.approx(
        0.5 * (1.96 + 0.16) / 2, abs=1e-6
    )


def test_log_probs_and_entropy_match_torch_distributions():
    logits = torch.tensor([[1.0, 2.0, 0.5], [0.0, 0.0, 0.0]])
    actions = torch.tensor([1, 2])
    log_probs, entropy = policy_log_probs(Categorical(3), logits, actions, None)
    reference = torch.distributions.Categorical(logits=logits)
    torch.testing.assert_close(log_probs, reference.log_prob(actions))
    torch.testing.assert_close(entropy, reference.entropy())


def test_total_loss_combines_the_pieces():
    total = total_loss(
        torch.tensor(1.0), torch.tensor(2.0), torch.tensor(0.5), vf_coef=0.5, ent_coef=0.01
    )
    assert total.item() == pytest.approx(1.0 + 1.0 - 0.005)


def test_explained_variance():
    target = torch.tensor([1.0, 2.0, 3.0])
    assert explained_variance(target, target) == pytest.approx(1.0)
    assert explained_variance(torch.zeros(3), target) == pytest.approx(0.0)
    assert explained_variance(torch.zeros(3), torch.ones(3)) == 0.0
