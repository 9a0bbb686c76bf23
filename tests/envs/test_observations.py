"""Any supported observation space becomes `features` (+ `map`) the same way everywhere."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces

from townlet_core.envs.make import make_vector_env, observation_layout
from townlet_core.envs.observations import adapter_for, needs_adapter
from townlet_core.envs.settings import EnvSettings, WrapperSpec
from townlet_core.errors import ConfigError

IMAGE = spaces.Box(0, 255, (7, 6, 3), np.uint8)


def test_townlet_layouts_pass_through_untouched() -> None:
    flat = spaces.Box(-1.0, 1.0, (4,), np.float32)
    townlet = spaces.Dict(
        {"map": spaces.Box(0.0, 1.0, (4, 5, 5)), "features": flat, "action_mask": spaces.MultiBinary(3)}
    )  # fmt: skip
    assert not needs_adapter(flat)
    assert not needs_adapter(townlet)


def test_an_hwc_uint8_image_becomes_a_chw_map_scaled_to_one() -> None:
    adapter = adapter_for(IMAGE, "env")
    image = np.random.default_rng(0).integers(0, 256, (7, 6, 3), dtype=np.uint8)
    out = adapter(image)
    assert out["map"].shape == (3, 7, 6) and out["map"].dtype == np.float32
    np.testing.assert_allclose(out["map"][2], image[:, :, 2] / 255.0, rtol=1e-6)
    assert out["features"].shape == (0,)
    assert adapter.space["map"].shape == (3, 7, 6)


def test_a_channels_first_image_keeps_its_axes() -> None:
    adapter = adapter_for(spaces.Box(0.0, 1.0, (2, 9, 9), np.float32), "env")
    assert adapter.space["map"].shape == (2, 9, 9)


def test_dict_parts_are_encoded_by_kind_in_key_order() -> None:
    space = spaces.Dict(
        {
            "direction": spaces.Discrete(4),
            "image": IMAGE,
            "position": spaces.Box(-5.0, 5.0, (2,), np.float32),
            "switches": spaces.MultiBinary(2),
        }
    )
    adapter = adapter_for(space, "env")
    observation = {
        "direction": 2,
        "image": np.zeros((7, 6, 3), np.uint8),
        "position": np.array([1.5, -2.0], np.float32),
        "switches": np.array([1, 0], np.int8),
    }
    out = adapter(observation)
    np.testing.assert_array_equal(out["features"], [0, 0, 1, 0, 1.5, -2.0, 1, 0])
    assert out["map"].shape == (3, 7, 6)


def test_a_part_that_cannot_be_encoded_is_named_with_the_way_to_leave_it_out() -> None:
    space = spaces.Dict({"image": IMAGE, "mission": spaces.Text(10)})
    with pytest.raises(ConfigError) as info:
        adapter_for(space, "MiniGrid")
    message = str(info.value)
    assert "'mission' (Text) cannot be encoded" in message
    assert 'gymnasium.wrappers:FilterObservation and kwargs {"filter_keys": ["image"]}' in message


def test_the_mask_key_is_passed_through_and_is_no_feature() -> None:
    space = spaces.Dict(
        {"features": spaces.Box(0.0, 1.0, (3,)), "legal": spaces.MultiBinary(4), "extra": spaces.Discrete(2)}
    )  # fmt: skip
    adapter = adapter_for(space, "env", mask_key="legal")
    out = adapter({"features": np.ones(3), "legal": np.array([1, 0, 1, 1]), "extra": 1})
    assert out["legal"].tolist() == [1, 0, 1, 1]
    assert out["features"].shape == (5,)
    layout = observation_layout(adapter.space, "env", mask_key="legal")
    assert layout == {"features": (5,)}


def test_frame_stacked_cartpole_is_flattened_into_features() -> None:
    stack = WrapperSpec(
        wrapper="gymnasium.wrappers:FrameStackObservation", kwargs={"stack_size": 4}
    )
    env, _how = make_vector_env(EnvSettings(id="CartPole-v1", wrappers=(stack,)), 2)
    try:
        assert observation_layout(env.single_observation_space, "CartPole") == {"features": (16,)}
        observation, _ = env.reset(seed=0)
        assert observation["features"].shape == (2, 16)
    finally:
        env.close()


def test_a_plain_cartpole_keeps_its_native_vector_env() -> None:
    env, how = make_vector_env("CartPole-v1", 8)
    env.close()
    assert how == "native"


def test_minigrid_steps_as_image_map_and_direction_features() -> None:
    pytest.importorskip("minigrid")
    keep = WrapperSpec(
        wrapper="gymnasium.wrappers:FilterObservation",
        kwargs={"filter_keys": ["image", "direction"]},
    )
    settings = EnvSettings(id="minigrid:MiniGrid-Empty-5x5-v0", wrappers=(keep,))
    env, _how = make_vector_env(settings, 2)
    try:
        layout = observation_layout(env.single_observation_space, settings.id)
        assert layout == {"map": (3, 7, 7), "features": (4,)}
        observation, _ = env.reset(seed=0)
        assert observation["features"].sum(axis=1).tolist() == [1.0, 1.0]  # one-hot
        assert observation["map"].min() >= 0.0 and observation["map"].max() <= 1.0
    finally:
        env.close()
