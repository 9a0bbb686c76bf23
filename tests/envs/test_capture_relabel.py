"""DAgger-style relabelling in capture: the acting policy drives the environment, the
labeller's actions for the same observations are what is recorded."""

from __future__ import annotations

import json

import numpy as np
import pytest

from townlet_core.envs.capture import capture
from townlet_core.envs.experts import cartpole_expert
from townlet_core.errors import ConfigError


def expert_actions(features: np.ndarray) -> np.ndarray:
    """What the scripted CartPole expert answers for each recorded observation."""
    return np.asarray(cartpole_expert()(features), dtype=np.int64)


def test_random_acts_and_the_expert_labels() -> None:
    relabelled = capture(
        "CartPole-v1", "random", labeller="scripted", episodes=4, num_envs=2, seed=5
    )
    acted = capture("CartPole-v1", "random", episodes=4, num_envs=2, seed=5)
    # The random policy drove the env: its (short) episodes, not the expert's 500 steps.
    assert relabelled.returns == acted.returns
    assert relabelled.lengths == acted.lengths
    assert max(relabelled.lengths) < 200
    for labelled, own in zip(relabelled.trajectories, acted.trajectories, strict=True):
        np.testing.assert_array_equal(labelled.features, own.features)
        np.testing.assert_array_equal(labelled.actions, expert_actions(labelled.features))
        # The log-probs and values were the random policy's, for its own actions: not kept.
        assert not labelled.old_log_probs.any()
        assert not labelled.value_preds.any()
    # The random actions differ from the expert's somewhere, so the test can tell them apart.
    assert any(
        not np.array_equal(labelled.actions, own.actions)
        for labelled, own in zip(relabelled.trajectories, acted.trajectories, strict=True)
    )
    assert (relabelled.policy, relabelled.labeller) == ("random", "scripted")
    assert relabelled.to_dict()["labeller"] == "scripted"


def test_without_a_labeller_the_acting_policy_is_recorded() -> None:
    summary = capture("CartPole-v1", "random", episodes=2, seed=1)
    assert summary.labeller is None and summary.to_dict()["labeller"] is None
    trajectory = summary.trajectories[0]
    np.testing.assert_allclose(trajectory.old_log_probs, np.log(0.5))  # random's own
    assert not np.array_equal(trajectory.actions, expert_actions(trajectory.features))


def test_the_manifest_names_the_labeller(tmp_path) -> None:
    capture("CartPole-v1", "random", labeller="scripted", episodes=1, seed=0, out=tmp_path / "d")
    capture("CartPole-v1", "random", episodes=1, seed=0, out=tmp_path / "plain")
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    plain = json.loads((tmp_path / "plain" / "manifest.json").read_text())
    metadata = manifest.get("metadata", manifest)
    assert (metadata["policy"], metadata["labeller"]) == ("random", "scripted")
    assert "labeller" not in plain.get("metadata", plain)


def test_a_bad_labeller_answer_is_a_clear_error() -> None:
    def wrong_width(observation: np.ndarray) -> np.ndarray:
        return np.zeros(observation.shape[0] + 1, dtype=np.int64)

    with pytest.raises(ConfigError, match=r"wrong_width.*shape"):
        capture("CartPole-v1", "random", labeller=wrong_width, episodes=1, seed=0)


def test_an_unknown_labeller_spec_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="unknown policy 'scriptd'"):
        capture("CartPole-v1", "random", labeller="scriptd", episodes=1, seed=0)


def test_the_cli_labels_flag(townlet_in_tmp, tmp_path) -> None:
    code, out, err = townlet_in_tmp(
        "capture", "--env", "CartPole-v1", "--policy", "random", "--labels", "scripted",
        "--episodes", "2", "--out", "data", "--json", "-q",
    )  # fmt: skip
    assert (code, err) == (0, "")
    summary = json.loads(out)
    assert (summary["policy"], summary["labeller"]) == ("random", "scripted")
    assert summary["length"]["max"] < 200  # random acted
    from townlet_core.data import ReplayDataset

    dataset = ReplayDataset(tmp_path / "data")
    for index in range(dataset.num_trajectories):
        trajectory = dataset.trajectory(index)
        np.testing.assert_array_equal(trajectory.actions, expert_actions(trajectory.features))
