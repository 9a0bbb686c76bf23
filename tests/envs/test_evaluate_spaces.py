"""`townlet evaluate` on checkpoints of every action space: Box, MultiDiscrete, MultiBinary
and masked Discrete; a checkpoint whose action space is not the environment's is refused by
name before anything runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from townlet_core.checkpoints import NetworkSpec, ObservationSpec
from townlet_core.data.action_space import ActionSpace
from townlet_core.envs.evaluation import environment_spaces, evaluate_policy
from townlet_core.envs.settings import EnvSettings
from townlet_core.errors import ConfigError

torch = pytest.importorskip("torch")

from townlet_core.nn import TorchPolicy, build_network, save_checkpoint  # noqa: E402

BOX = ActionSpace("box", (1,), low=(-2.0,), high=(2.0,))
MULTI_DISCRETE = ActionSpace("multi_discrete", (2,), nvec=(3, 4))
MULTI_BINARY = ActionSpace("multi_binary", (4,))
DISCRETE = ActionSpace("discrete", n=4)


def _checkpoint(path: Path, features: int, space: ActionSpace, env_id: str | None = None) -> Path:
    network = build_network(
        NetworkSpec(hidden_sizes=(8,)),
        ObservationSpec(features_dim=features),
        space.count,
        seed=0,
        action_space=space,
    )
    save_checkpoint(path, network, strategy="test", strategy_version="0", seed=0, env_id=env_id)
    return path


@pytest.mark.parametrize(
    ("env", "features", "space", "episode_length"),
    [
        ("Pendulum-v1", 3, BOX, 200),
        ("spaces_envs:MultiDiscreteMatch", 7, MULTI_DISCRETE, 8),
        ("spaces_envs:MultiBinaryMatch", 4, MULTI_BINARY, 8),
    ],
    ids=["box", "multi_discrete", "multi_binary"],
)
def test_evaluate_runs_a_checkpoint_of_each_action_space(
    spaces_envs, townlet, tmp_path, env, features, space, episode_length
):
    checkpoint = _checkpoint(tmp_path / "ckpt", features, space)
    code, out, err = townlet("evaluate", str(checkpoint), "--env", env, "--episodes", "2", "--json")
    assert (code, err) == (0, ""), err
    result = json.loads(out)
    assert result["episodes"] == 2 and result["mean_length"] == episode_length
    assert np.isfinite(result["mean_return"])
    stochastic = townlet(
        "evaluate", str(checkpoint), "--env", env, "--episodes", "2", "--stochastic", "--json"
    )
    assert stochastic[0] == 0, stochastic[2]


def test_environment_spaces_returns_the_action_space_and_still_unpacks_in_two(spaces_envs):
    spaces = environment_spaces("spaces_envs:MultiDiscreteMatch")
    layout, count = spaces
    assert (layout, count) == ({"features": (7,)}, 2)
    assert spaces.action_space == MULTI_DISCRETE
    assert spaces.layout == layout and spaces.action_count == 2
    pendulum = environment_spaces("Pendulum-v1")
    assert pendulum.action_space == BOX and pendulum == ({"features": (3,)}, 1)


def test_environment_spaces_leaves_the_mask_key_out_of_the_layout(spaces_envs):
    settings = EnvSettings(id="spaces_envs:MaskedChoice", kwargs={"mask_in_observation": True})
    spaces = environment_spaces(settings, action_mask_key="action_mask")
    assert spaces.layout == {"features": (3,)} and spaces.action_space == DISCRETE


def test_a_checkpoint_of_another_action_space_is_refused_by_name(spaces_envs, townlet, tmp_path):
    # Same observation width (4) and action width (4): only the kind differs.
    checkpoint = _checkpoint(
        tmp_path / "ckpt", 4, ActionSpace("box", (4,), low=(-1.0,) * 4, high=(1.0,) * 4)
    )
    code, out, err = townlet(
        "evaluate", str(checkpoint), "--env", "spaces_envs:MultiBinaryMatch", "--episodes", "1"
    )
    assert (code, out) == (2, "")
    assert "checkpoint does not fit (actions: checkpoint acts in box, shape (4,)" in err
    assert "the data has multi_binary, shape (4,))" in err


def test_a_multi_discrete_checkpoint_with_other_choices_is_refused(spaces_envs, townlet, tmp_path):
    other = ActionSpace("multi_discrete", (2,), nvec=(4, 3))
    checkpoint = _checkpoint(tmp_path / "ckpt", 7, other)
    code, _, err = townlet(
        "evaluate", str(checkpoint), "--env", "spaces_envs:MultiDiscreteMatch", "--episodes", "1"
    )
    assert code == 2
    assert "nvec [4, 3]" in err and "nvec [3, 4]" in err


def test_evaluate_passes_masks_to_a_checkpoint_so_no_illegal_action_is_taken(
    spaces_envs, townlet, tmp_path
):
    checkpoint = _checkpoint(tmp_path / "ckpt", 3, DISCRETE)
    for extra in ([], ["--env-kwargs", '{"mask_in_observation": true}', "--action-mask-key",
                       "action_mask"]):  # fmt: skip
        code, out, err = townlet(
            "evaluate", str(checkpoint), "--env", "spaces_envs:MaskedChoice", "--episodes", "6",
            "--stochastic", "--json", *extra,
        )  # fmt: skip
        assert (code, err) == (0, ""), err
        # An illegal action costs -1; the mask keeps every reward at 0 or above.
        assert json.loads(out)["min_return"] >= 0.0


def test_a_policy_that_ignores_masks_in_evaluation_is_refused_naming_the_step(spaces_envs):
    def zeros(observation: np.ndarray) -> np.ndarray:
        return np.zeros(len(observation), dtype=np.int64)

    with pytest.raises(ConfigError, match=r"chose action 0 for env \d+ at step \d+"):
        evaluate_policy("spaces_envs:MaskedChoice", zeros, episodes=4, seed=0)


def test_a_discrete_checkpoint_evaluates_greedily_with_masks(spaces_envs, tmp_path):
    policy = TorchPolicy.from_checkpoint(_checkpoint(tmp_path / "ckpt", 3, DISCRETE))
    result = evaluate_policy("spaces_envs:MaskedChoice", policy, episodes=4, seed=0)
    assert result.min_return >= 0.0
