"""Behaviour cloning of Gymnasium's LunarLander heuristics, continuous and discrete.

bc records the scripted expert (`townlet_core.envs.experts`) with its own capture
(`bc.capture`, the path a user takes), clones it, and evaluates the clone greedily (the
Gaussian's mean, or the argmax) in the captured env over 20 episodes whose starts the
demonstrations never used.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("Box2D", reason="LunarLander needs gymnasium[box2d]")

#: 50 demonstrations (about 10,000 steps) and 20 epochs: 5-10 s a test here.
EPISODES = 50
EPOCHS = 20


def _clone(train, env_id):
    return train({"capture": {"env": env_id, "episodes": EPISODES}, "epochs": EPOCHS})


def _expert_return(tmp_path):
    manifest = json.loads((tmp_path / "run" / "demonstrations" / "manifest.json").read_text())
    return manifest["metadata"]["mean_return"]


@pytest.mark.slow
def test_the_continuous_clone_lands_like_the_heuristic(train_bc, tmp_path):
    """LunarLanderContinuous-v3: the heuristic scores about 285 here and a uniformly random
    policy about -200 (20 episodes); the clone measured 287, 268 and 277 for seeds 0-2, so
    200 leaves room and is far from random."""
    result = _clone(train_bc, "LunarLanderContinuous-v3")
    assert _expert_return(tmp_path) >= 250
    assert result.eval_episodes == 20
    assert result.accuracy is None and result.val_action_mse is not None
    assert result.eval_mean_return is not None and result.eval_mean_return >= 200


@pytest.mark.slow
def test_the_discrete_clone_lands(train_bc, tmp_path):
    """LunarLander-v3: the heuristic scores about 255 on these demonstrations and a uniformly
    random policy about -200 (20 episodes); the clone measured 249, 220 and 217 for seeds
    0-2 (the greedy discrete clone crashes now and then), so 180 leaves room and is far from
    random."""
    result = _clone(train_bc, "LunarLander-v3")
    assert _expert_return(tmp_path) >= 200
    assert result.val_accuracy is not None and result.val_accuracy >= 0.8
    assert result.eval_episodes == 20
    assert result.eval_mean_return is not None and result.eval_mean_return >= 180
