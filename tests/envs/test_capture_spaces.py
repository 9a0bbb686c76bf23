"""Capture of Box, MultiDiscrete and MultiBinary actions and of action masks: what is
recorded, how it reads back through the dataset API, and what is refused (naming the step)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from townlet_core.data import ReplayDataset
from townlet_core.data.action_space import ActionSpace
from townlet_core.data.validation import require_valid_dataset
from townlet_core.envs.capture import capture
from townlet_core.envs.policies import PolicyOutput, RandomPolicy, as_output
from townlet_core.envs.settings import EnvSettings
from townlet_core.errors import ConfigError

MASKED = "spaces_envs:MaskedChoice"
MASKED_EXPERT = "spaces_envs:masked_choice_expert"
PENDULUM = ActionSpace("box", (1,), low=(-2.0,), high=(2.0,))


def _box2d() -> None:
    pytest.importorskip("Box2D", reason="the LunarLander expert needs townlet-core[box2d]")


@pytest.mark.parametrize(
    ("env_id", "width", "low", "high"),
    [("Pendulum-v1", 1, [-2.0], [2.0]), ("LunarLanderContinuous-v3", 2, [-1.0, -1.0], [1.0, 1.0])],
)
def test_scripted_continuous_expert_records_float_vectors_with_their_space(
    tmp_path, env_id, width, low, high
):
    if env_id.startswith("Lunar"):
        _box2d()
    out = tmp_path / "demos"
    summary = capture(env_id, "scripted", episodes=2, num_envs=2, seed=0, out=out)
    dataset = ReplayDataset(out)
    for trajectory in dataset.trajectories():
        assert trajectory.actions.dtype == np.float32
        assert trajectory.actions.shape == (trajectory.timesteps, width)
        assert trajectory.metadata["action_space"] == {
            "kind": "box",
            "shape": [width],
            "low": low,
            "high": high,
        }
        assert (trajectory.actions >= np.float32(low)).all()
        assert (trajectory.actions <= np.float32(high)).all()
    assert dataset.action_space == ActionSpace("box", (width,), low=tuple(low), high=tuple(high))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["metadata"]["action_space"]["kind"] == "box"
    assert require_valid_dataset(out, action_kinds=("box",)).action_kind == "box"
    assert summary.mean_return > (-400 if env_id == "Pendulum-v1" else 200)  # experts, not noise


@pytest.mark.parametrize(
    ("env", "expert", "space"),
    [
        (
            "spaces_envs:MultiDiscreteMatch",
            "spaces_envs:multi_discrete_expert",
            {"kind": "multi_discrete", "shape": [2], "nvec": [3, 4]},
        ),
        (
            "spaces_envs:MultiBinaryMatch",
            "spaces_envs:multi_binary_expert",
            {"kind": "multi_binary", "shape": [4], "n": 4},
        ),
    ],
    ids=["multi_discrete", "multi_binary"],
)
def test_cli_captures_integer_vector_actions_that_read_back_as_their_space(
    spaces_envs, townlet, tmp_path, env, expert, space
):
    out = tmp_path / "d"
    code, stdout, err = townlet(
        "capture", "--env", env, "--policy", expert, "--episodes", "3", "--num-envs", "2",
        "--out", str(out), "--json", "-q",
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert json.loads(stdout)["return"]["mean"] == 8.0  # the expert matches every target
    dataset = ReplayDataset(out)
    assert dataset.action_space.as_dict() == space
    for trajectory in dataset.trajectories():
        assert trajectory.actions.dtype == np.int64
        assert trajectory.actions.shape == (8, space["shape"][0])
        assert trajectory.metadata["action_space"] == space
    assert require_valid_dataset(out, action_kinds=(space["kind"],)).action_kind == space["kind"]


def test_discrete_capture_metadata_names_no_action_space_or_masks():
    summary = capture("CartPole-v1", "scripted", episodes=1, seed=0)
    metadata = summary.trajectories[0].metadata
    assert "action_space" not in metadata and "action_masks" not in metadata
    assert "action_masks" not in summary.trajectories[0].extras
    assert "action_blocked_ratio" not in summary.to_dict()


# --------------------------------------------------------------------------- random policy


@pytest.mark.parametrize(
    ("space", "log_prob"),
    [
        (ActionSpace("discrete", n=4), -math.log(4)),
        (PENDULUM, -math.log(4.0)),
        (ActionSpace("box", (2,), low=(-1.0, 0.0), high=(1.0, 0.5)), -math.log(2.0 * 0.5)),
        (ActionSpace("multi_discrete", (2,), nvec=(3, 4)), -math.log(12)),
        (ActionSpace("multi_binary", (4,)), -4 * math.log(2)),
    ],
    ids=["discrete", "box", "box2", "multi_discrete", "multi_binary"],
)
def test_random_policy_draws_in_range_with_its_exact_log_probability(space, log_prob):
    output = RandomPolicy(space, seed=3)(np.zeros((2000, 1)))
    again = RandomPolicy(space, seed=3)(np.zeros((2000, 1)))
    np.testing.assert_array_equal(output.actions, again.actions)  # seeded
    np.testing.assert_allclose(output.log_probs, log_prob, rtol=1e-6)
    checked = as_output(output, 2000, space, "random")  # in range, right shape and dtype
    actions = checked.actions.reshape(2000, -1)
    if space.kind == "box":
        assert (actions >= np.float32(space.low)).all() and (
            actions <= np.float32(space.high)
        ).all()
        assert actions.std(axis=0).min() > 0.2 * (np.subtract(space.high, space.low)).min()
    else:
        expected = {"discrete": [4], "multi_discrete": [3, 4], "multi_binary": [2] * 4}
        assert [len(np.unique(column)) for column in actions.T] == expected[space.kind]


def test_random_policy_refuses_an_unbounded_box():
    space = ActionSpace("box", (2,), low=(-1.0, -math.inf), high=(1.0, math.inf))
    with pytest.raises(ConfigError, match="unbounded in some dimension"):
        RandomPolicy(space, seed=0)


def test_random_policy_keeps_to_the_mask_with_its_exact_log_probability():
    mask = np.array([[True, False, True, False], [False, False, False, True]] * 500)
    output = RandomPolicy(ActionSpace("discrete", n=4), seed=0)(np.zeros((1000, 1)), mask)
    assert set(output.actions[0::2].tolist()) == {0, 2}
    assert set(output.actions[1::2].tolist()) == {3}
    np.testing.assert_allclose(output.log_probs[0::2], -math.log(2), rtol=1e-6)
    np.testing.assert_allclose(output.log_probs[1::2], 0.0, atol=1e-7)
    space = ActionSpace("multi_discrete", (2,), nvec=(2, 3))
    multi = np.array([[True, False, False, True, True]] * 200)  # dim 0: {0}; dim 1: {1, 2}
    output = RandomPolicy(space, seed=0)(np.zeros((200, 1)), multi)
    assert set(output.actions[:, 0].tolist()) == {0}
    assert set(output.actions[:, 1].tolist()) == {1, 2}
    np.testing.assert_allclose(output.log_probs, -math.log(2), rtol=1e-6)


def test_random_policy_captures_every_space(spaces_envs):
    for env, kind in (
        ("Pendulum-v1", "box"),
        ("spaces_envs:MultiDiscreteMatch", "multi_discrete"),
        ("spaces_envs:MultiBinaryMatch", "multi_binary"),
    ):
        summary = capture(env, "random", episodes=2, num_envs=2, seed=1)
        trajectory = summary.trajectories[0]
        assert trajectory.metadata["action_space"]["kind"] == kind
        assert trajectory.old_log_probs.std() == 0.0 and trajectory.old_log_probs[0] < 0


# --------------------------------------------------------------------------- what is sent


def test_box_actions_outside_the_bounds_are_clipped_and_recorded_as_sent():
    def pushy(observation: np.ndarray) -> np.ndarray:
        return np.full((len(observation), 1), 5.0, dtype=np.float32)

    summary = capture("Pendulum-v1", pushy, episodes=1, seed=0, max_episode_steps=5)
    assert summary.trajectories[0].actions.tolist() == [[2.0]] * 5


@pytest.mark.parametrize(
    ("space", "result", "message"),
    [
        (PENDULUM, np.zeros((2, 1), dtype=np.int64), r"for box, shape \(1,\).* floats of shape"),
        (PENDULUM, np.zeros(2, dtype=np.float32), r"shape \(2,\)"),
        (PENDULUM, np.array([[0.0], [np.nan]]), "NaN or infinite"),
        (
            ActionSpace("multi_discrete", (2,), nvec=(3, 4)),
            np.array([[0, 1], [2, 4]]),
            r"returned 4 in dimension 1, outside 0..3",
        ),
        (
            ActionSpace("multi_discrete", (2,), nvec=(3, 4)),
            np.array([[0.0, 1.0], [2.0, 3.0]]),
            "integers of shape",
        ),
        (ActionSpace("multi_binary", (2,)), np.array([[0, 1], [2, 0]]), "other than 0 and 1"),
        (ActionSpace("multi_binary", (2,)), np.array([[0, -1], [1, 0]]), "other than 0 and 1"),
    ],
)
def test_as_output_refuses_what_would_corrupt_a_vector_dataset(space, result, message):
    with pytest.raises(ConfigError, match=message):
        as_output(result, 2, space, "p")


def test_as_output_sends_multi_binary_as_int8_and_box_as_float32():
    binary = as_output(np.array([[True, False]]), 1, ActionSpace("multi_binary", (2,)), "p")
    assert binary.actions.dtype == np.int8 and binary.actions.tolist() == [[1, 0]]
    box = as_output(PolicyOutput(np.array([[0.5]])), 1, PENDULUM, "p")
    assert box.actions.dtype == np.float32


# --------------------------------------------------------------------------- masks


def test_masked_capture_records_masks_and_never_an_illegal_action(spaces_envs, tmp_path):
    out = tmp_path / "masked"
    summary = capture(MASKED, MASKED_EXPERT, episodes=12, num_envs=3, seed=0, out=out)
    dataset = ReplayDataset(out)
    assert dataset.action_mask_width == 4
    blocked = []
    for trajectory in dataset.trajectories():
        masks = trajectory.action_masks
        assert masks is not None and masks.dtype == np.bool_ and masks.shape == (10, 4)
        assert masks[np.arange(10), trajectory.actions].all()  # every action was allowed
        assert trajectory.metadata["counters"]["illegal_action"] == 0
        assert trajectory.metadata["action_masks"] == {"width": 4, "source": "info['action_mask']"}
        blocked.append(1.0 - masks.mean())
        assert trajectory.metadata["metrics"]["action_blocked_ratio"] == pytest.approx(blocked[-1])
    # Two or three of four actions legal per state: a quarter to a half are masked out.
    assert 0.25 < summary.action_blocked_ratio < 0.5
    assert summary.action_blocked_ratio == pytest.approx(np.mean(blocked))
    assert summary.to_dict()["action_blocked_ratio"] == summary.action_blocked_ratio
    manifest = json.loads((out / "manifest.json").read_text())["metadata"]
    assert manifest["action_blocked_ratio"] == pytest.approx(summary.action_blocked_ratio)
    assert dataset.baseline_metrics["action_blocked_ratio"] == pytest.approx(np.mean(blocked))
    assert summary.mean_return > 5.0  # the expert: 6.5 expected, random-over-legal 3.25


def test_random_policy_keeps_to_the_masks_of_a_capture(spaces_envs):
    summary = capture(MASKED, "random", episodes=30, num_envs=3, seed=2)
    for trajectory in summary.trajectories:
        assert trajectory.metadata["counters"]["illegal_action"] == 0
    assert 2.0 < summary.mean_return < 4.5  # random over the legal actions: 3.25


def test_a_policy_that_ignores_masks_is_refused_naming_the_step(spaces_envs, tmp_path):
    def greedy(observation: np.ndarray) -> np.ndarray:
        return np.zeros(len(observation), dtype=np.int64)  # action 0, legal 30% of the time

    with pytest.raises(ConfigError, match=r"chose action 0 for env \d+ at step \d+, which the "
                       r"action mask \(info\['action_mask'\]\) forbids"):  # fmt: skip
        capture(MASKED, greedy, episodes=5, num_envs=2, seed=0, out=tmp_path / "d")


def test_cli_reads_masks_from_an_observation_key_and_records_no_mask_feature(
    spaces_envs, townlet, tmp_path
):
    out = tmp_path / "d"
    code, stdout, err = townlet(
        "capture", "--env", MASKED, "--env-kwargs", '{"mask_in_observation": true}',
        "--policy", MASKED_EXPERT, "--episodes", "4", "--action-mask-key", "action_mask",
        "--out", str(out), "-q",
    )  # fmt: skip
    assert (code, err) == (0, ""), err
    assert "action_blocked_ratio: " in stdout
    dataset = ReplayDataset(out)
    trajectory = dataset.trajectory(0)
    assert trajectory.features.shape == (10, 3)  # the one-hot state only, not the mask
    assert trajectory.metadata["action_masks"]["source"] == "observation['action_mask']"
    assert trajectory.metadata["counters"]["illegal_action"] == 0
    assert json.loads((out / "manifest.json").read_text())["metadata"]["action_mask_key"] == (
        "action_mask"
    )


def test_a_mask_key_that_is_not_an_observation_key_is_refused_before_writing(spaces_envs, tmp_path):
    settings = EnvSettings(id=MASKED, kwargs={"mask_in_observation": True})
    with pytest.raises(ConfigError, match=r"action mask key 'mask' is not a key of the obs"):
        capture(settings, MASKED_EXPERT, episodes=1, action_mask_key="mask", out=tmp_path / "d")
    assert not (tmp_path / "d").exists()


def test_a_mask_key_for_continuous_actions_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="masks apply to discrete and multi_discrete"):
        capture("Pendulum-v1", "random", episodes=1, action_mask_key="mask")


def test_masked_trajectories_round_trip_through_the_transition_loader(spaces_envs, tmp_path):
    from townlet_core.data import TransitionLoader

    out = tmp_path / "d"
    capture(MASKED, MASKED_EXPERT, episodes=4, num_envs=2, seed=0, out=out)
    for streaming in (False, True):
        loader = TransitionLoader(ReplayDataset(out, streaming=streaming), batch_size=16, seed=0)
        for batch in loader:
            assert batch.action_masks is not None and batch.action_masks.shape == (len(batch), 4)
            assert batch.action_masks[np.arange(len(batch)), batch.actions].all()
