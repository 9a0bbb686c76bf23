"""Each action distribution against torch.distributions, masks, and greedy actions."""

from __future__ import annotations

import math

import pytest
import torch
from torch import distributions as td

from townlet_core.data.action_space import ActionSpace
from townlet_core.nn.distributions import (
    Bernoulli,
    Categorical,
    DiagonalGaussian,
    MultiCategorical,
    distribution_for,
)

ROWS = 64


def test_categorical_matches_torch() -> None:
    logits = torch.randn(ROWS, 5, generator=torch.Generator().manual_seed(0))
    actions = torch.randint(5, (ROWS,), generator=torch.Generator().manual_seed(1))
    log_prob, entropy = Categorical(5).log_prob_entropy(logits, actions)
    reference = td.Categorical(logits=logits)
    torch.testing.assert_close(log_prob, reference.log_prob(actions))
    torch.testing.assert_close(entropy, reference.entropy())


def test_gaussian_matches_torch_with_its_own_log_std() -> None:
    distribution = DiagonalGaussian(3, log_std_init=-0.5)
    means = torch.randn(ROWS, 3, generator=torch.Generator().manual_seed(0))
    actions = torch.randn(ROWS, 3, generator=torch.Generator().manual_seed(1))
    log_prob, entropy = distribution.log_prob_entropy(means, actions)
    std = torch.full((3,), math.exp(-0.5))
    reference = td.Independent(td.Normal(means, std), 1)
    torch.testing.assert_close(log_prob, reference.log_prob(actions))
    torch.testing.assert_close(entropy, reference.entropy())
    assert distribution.log_std.requires_grad  # learned, state-independent
    torch.testing.assert_close(distribution.greedy(means), means)


def test_gaussian_samples_have_its_spread_and_follow_the_generator() -> None:
    distribution = DiagonalGaussian(2, log_std_init=math.log(0.5))
    means = torch.zeros(20_000, 2)
    first = distribution.sample(means, torch.Generator().manual_seed(3))
    again = distribution.sample(means, torch.Generator().manual_seed(3))
    assert torch.equal(first, again)
    assert abs(float(first.detach().std()) - 0.5) < 0.02


def test_multi_categorical_is_a_product_of_categoricals() -> None:
    nvec = (3, 5, 2)
    distribution = MultiCategorical(nvec)
    logits = torch.randn(ROWS, sum(nvec), generator=torch.Generator().manual_seed(0))
    parts = torch.split(logits, nvec, dim=1)
    actions = torch.stack(
        [torch.randint(n, (ROWS,), generator=torch.Generator().manual_seed(i)) for i, n in
         enumerate(nvec)],
        dim=1,
    )  # fmt: skip
    log_prob, entropy = distribution.log_prob_entropy(logits, actions)
    references = [td.Categorical(logits=part) for part in parts]
    expected_log_prob = sum(r.log_prob(actions[:, i]) for i, r in enumerate(references))
    expected_entropy = sum(r.entropy() for r in references)
    torch.testing.assert_close(log_prob, expected_log_prob)
    torch.testing.assert_close(entropy, expected_entropy)
    greedy = distribution.greedy(logits)
    assert torch.equal(greedy, torch.stack([p.argmax(1) for p in parts], dim=1))


def test_bernoulli_matches_torch() -> None:
    logits = torch.randn(ROWS, 4, generator=torch.Generator().manual_seed(0))
    actions = (torch.rand(ROWS, 4, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    log_prob, entropy = Bernoulli(4).log_prob_entropy(logits, actions)
    reference = td.Independent(td.Bernoulli(logits=logits), 1)
    torch.testing.assert_close(log_prob, reference.log_prob(actions))
    torch.testing.assert_close(entropy, reference.entropy())
    assert torch.equal(Bernoulli(4).greedy(logits), (logits > 0).float())


def test_a_masked_action_is_never_sampled_nor_greedy_and_adds_no_entropy() -> None:
    logits = torch.zeros(5_000, 4)
    logits[:, 0] = 10.0  # the best-looking action
    mask = torch.ones(5_000, 4, dtype=torch.bool)
    mask[:, 0] = False
    distribution = Categorical(4)
    drawn = distribution.sample(logits, torch.Generator().manual_seed(0), mask)
    assert not bool((drawn == 0).any())
    assert not bool((distribution.greedy(logits, mask) == 0).any())
    log_prob, entropy = distribution.log_prob_entropy(logits, drawn, mask)
    torch.testing.assert_close(log_prob, torch.full((5_000,), -math.log(3)))
    torch.testing.assert_close(entropy, torch.full((5_000,), math.log(3)))
    assert bool(torch.isfinite(entropy).all())


def test_multi_discrete_masks_each_dimension() -> None:
    distribution = MultiCategorical((2, 3))
    logits = torch.zeros(2_000, 5)
    mask = torch.tensor([[True, False, False, True, True]]).expand(2_000, 5)
    drawn = distribution.sample(logits, torch.Generator().manual_seed(0), mask)
    assert bool((drawn[:, 0] == 0).all())
    assert set(drawn[:, 1].tolist()) == {1, 2}
    log_prob, entropy = distribution.log_prob_entropy(logits, drawn, mask)
    torch.testing.assert_close(log_prob, torch.full((2_000,), -math.log(2)))
    torch.testing.assert_close(entropy, torch.full((2_000,), math.log(2)))


@pytest.mark.parametrize(
    ("space", "kind", "param_dim", "action_shape"),
    [
        (ActionSpace("discrete", (), n=4), Categorical, 4, ()),
        (ActionSpace("box", (2,), low=(-1.0, -1.0), high=(1.0, 1.0)), DiagonalGaussian, 2, (2,)),
        (ActionSpace("multi_discrete", (2,), nvec=(3, 4)), MultiCategorical, 7, (2,)),
        (ActionSpace("multi_binary", (5,)), Bernoulli, 5, (5,)),
    ],
)
def test_each_space_gets_its_distribution(space, kind, param_dim, action_shape) -> None:
    distribution = distribution_for(space)
    assert isinstance(distribution, kind)
    assert (distribution.param_dim, distribution.action_shape) == (param_dim, action_shape)
