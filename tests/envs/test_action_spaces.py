"""Gymnasium action spaces as Townlet records them, Box actions on their way, masks."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces

from townlet_core.data.action_space import ActionSpace
from townlet_core.envs.spaces import action_mask, action_space_of, env_actions
from townlet_core.errors import ConfigError, DataError

BOX = ActionSpace("box", (2,), low=(-2.0, 0.0), high=(2.0, 1.0))


@pytest.mark.parametrize(
    ("space", "expected"),
    [
        (spaces.Discrete(3), ActionSpace("discrete", (), n=3)),
        (
            spaces.Box(np.float32([-2.0, 0.0]), np.float32([2.0, 1.0]), dtype=np.float32),
            BOX,
        ),
        (spaces.MultiDiscrete([3, 4]), ActionSpace("multi_discrete", (2,), nvec=(3, 4))),
        (spaces.MultiBinary(5), ActionSpace("multi_binary", (5,))),
    ],
)
def test_supported_spaces(space, expected) -> None:
    assert action_space_of(space, "env") == expected


@pytest.mark.parametrize(
    ("space", "message"),
    [
        (spaces.Discrete(3, start=1), "must start at 0"),
        (spaces.Box(-1, 1, (2, 2)), r"shape \(2, 2\); actions must be a flat vector"),
        (spaces.MultiDiscrete([3, 4], start=[1, 0]), "choices start at 0"),
        (spaces.MultiBinary([2, 2]), "must be a flat vector"),
        (spaces.Tuple([spaces.Discrete(2)]), "Townlet trains Discrete, Box"),
    ],
)
def test_unsupported_spaces_are_named(space, message) -> None:
    with pytest.raises(ConfigError, match=message):
        action_space_of(space, "my-env")


def test_box_actions_are_clipped_or_squashed_into_the_bounds() -> None:
    sampled = np.array([[5.0, -3.0], [0.0, 0.5]], dtype=np.float32)
    np.testing.assert_array_equal(env_actions(BOX, sampled, "clip"), [[2.0, 0.0], [0.0, 0.5]])
    squashed = env_actions(BOX, sampled, "squash")
    assert np.all(squashed >= np.array([-2.0, 0.0])) and np.all(squashed <= np.array([2.0, 1.0]))
    np.testing.assert_allclose(squashed[1], [0.0, 0.5 + 0.5 * np.tanh(0.5)], rtol=1e-6)


def test_multi_binary_actions_reach_the_env_as_integers() -> None:
    out = env_actions(ActionSpace("multi_binary", (2,)), np.array([[1.0, 0.0]]), "clip")
    assert out.dtype == np.int8 and out.tolist() == [[1, 0]]


DISCRETE = ActionSpace("discrete", (), n=3)


def test_a_mask_comes_from_info_and_absent_rows_allow_everything() -> None:
    info = {"action_mask": np.array([[1, 0, 1], [0, 0, 0]]), "_action_mask": [True, False]}
    mask = action_mask(None, info, DISCRETE)
    assert mask is not None
    assert mask.tolist() == [[True, False, True], [True, True, True]]
    assert action_mask(None, {}, DISCRETE) is None


def test_a_mask_comes_from_the_observation_key_the_config_names() -> None:
    observation = {"features": np.zeros((1, 2)), "legal": np.array([[0, 1, 0]])}
    mask = action_mask(observation, None, DISCRETE, observation_key="legal")
    assert mask is not None and mask.tolist() == [[False, True, False]]
    with pytest.raises(ConfigError, match="action_mask_key 'nope' is not a key"):
        action_mask(observation, None, DISCRETE, observation_key="nope")


def test_a_state_with_every_action_masked_names_the_step() -> None:
    info = {"action_mask": np.array([[1, 0, 0], [0, 0, 0]])}
    with pytest.raises(DataError, match="every action is masked for env 1 at step 7"):
        action_mask(None, info, DISCRETE, where="step 7")


def test_multi_discrete_masks_need_a_choice_in_every_dimension() -> None:
    space = ActionSpace("multi_discrete", (2,), nvec=(2, 2))
    ok = {"action_mask": np.array([[1, 0, 0, 1]])}
    assert action_mask(None, ok, space) is not None
    with pytest.raises(DataError, match="every action is masked for env 0"):
        action_mask(None, {"action_mask": np.array([[1, 1, 0, 0]])}, space)
    with pytest.raises(DataError, match=r"expected \(num_envs, 4\)"):
        action_mask(None, {"action_mask": np.array([[1, 1, 0]])}, space)


def test_an_action_space_too_large_for_a_policy_is_refused() -> None:
    with pytest.raises(ConfigError, match="need 2,000,000 policy outputs"):
        action_space_of(spaces.Discrete(2_000_000), "huge")
