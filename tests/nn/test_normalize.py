"""Running statistics agree with the statistics of all the data at once."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from townlet_core.nn.normalize import (
    OBSERVATION_CLIP,
    REWARD_CLIP,
    ObservationNormalizer,
    RewardScaler,
)


def test_batched_updates_give_the_statistics_of_all_the_data() -> None:
    data = np.random.default_rng(0).normal(3.0, 2.0, size=(1000, 4))
    normalizer = ObservationNormalizer(4)
    for chunk in np.array_split(data, 7):
        normalizer.update(torch.from_numpy(chunk))
    np.testing.assert_allclose(normalizer.mean.numpy(), data.mean(0), rtol=1e-6)
    np.testing.assert_allclose(normalizer.var.numpy(), data.var(0), rtol=1e-5)
    out = normalizer(torch.from_numpy(data).float())
    np.testing.assert_allclose(out.mean(0).numpy(), 0.0, atol=1e-3)
    np.testing.assert_allclose(out.std(0).numpy(), 1.0, atol=1e-2)


def test_outliers_are_clipped() -> None:
    normalizer = ObservationNormalizer(1)
    normalizer.update(torch.zeros(100, 1))
    assert float(normalizer(torch.tensor([[1e6]]))) == OBSERVATION_CLIP


def test_reward_scaling_divides_by_the_spread_of_discounted_returns() -> None:
    scaler = RewardScaler(num_envs=2, gamma=0.9)
    valid = np.ones(2, dtype=bool)
    done = np.zeros(2, dtype=bool)
    for _ in range(500):
        scaled = scaler.scale(np.full(2, 10.0), done, valid)
    # returns converge to 100, their spread shrinks but stays positive; rewards shrink a lot
    assert 0 < float(scaled[0]) < 10.0
    state = scaler.state_dict()
    again = RewardScaler(num_envs=2, gamma=0.9)
    again.load_state_dict(state)
    assert again.state_dict() == state
    step = (np.array([1.0, -1.0]), np.array([True, False]), valid)
    assert np.array_equal(scaler.scale(*step), again.scale(*step))


def test_scaled_rewards_are_clipped_as_sb3_clips_them() -> None:
    scaler = RewardScaler(num_envs=1, gamma=0.99)
    # a long history of returns with a standard deviation of 0.1
    scaler.load_state_dict({"mean": 0.0, "var": 0.01, "count": 1e9, "returns": [0.0]})
    valid, done = np.ones(1, dtype=bool), np.zeros(1, dtype=bool)
    assert float(scaler.scale(np.full(1, 0.5), done, valid)[0]) == pytest.approx(5.0, rel=1e-3)
    assert float(scaler.scale(np.full(1, 50.0), done, valid)[0]) == REWARD_CLIP
