"""Behaviour cloning of Gymnasium's LunarLander heuristics, continuous and discrete.

The demonstrations are the scripted experts (`townlet_core.envs.experts`) recorded with the
data writer; the clone is evaluated greedily (the Gaussian's mean, or the argmax) by bc
itself, over 20 episodes its demonstrations never started from.
"""

from __future__ import annotations

import numpy as np
import pytest

from .helpers import record, train_box

pytest.importorskip("Box2D", reason="LunarLander needs gymnasium[box2d]")

#: Demonstrations and epochs: about 10,000 steps, and 5-10 s of training here.
EPISODES = 50
CLONE = {"epochs": 20, "eval_episodes": 20}


def _demonstrations(env_id, folder):
    import gymnasium

    from townlet_core.envs.experts import expert_for

    env = gymnasium.make(env_id)
    try:
        returns = record(env, expert_for(env_id), folder, episodes=EPISODES, seed=0)
    finally:
        env.close()
    return float(np.mean(returns))


@pytest.mark.slow
def test_the_continuous_clone_lands_like_the_heuristic(train_bc, tmp_path):
    """LunarLanderContinuous-v3: the heuristic scores about 285 here, a uniformly random
    policy about -200 (measured here over 20 episodes; wide of the 200 required); the clone measured 286 (seed 0)."""
    expert = _demonstrations("LunarLanderContinuous-v3", tmp_path / "data")
    assert expert >= 250
    section = CLONE | {"dataset": str(tmp_path / "data"), "eval_env": "LunarLanderContinuous-v3"}
    result = train_box(train_bc, section)
    assert result.eval_episodes == 20
    assert result.eval_mean_return is not None and result.eval_mean_return >= 200


@pytest.mark.slow
def test_the_discrete_clone_lands(train_bc, tmp_path):
    """LunarLander-v3: the heuristic scores about 260 on these demonstrations (240 over
    many seeds), a uniformly random policy about -200 (20 episodes here); the clone measured 239 (seed 0) and
    222-257 over other seeds and demonstrations, so 180 leaves room and stays far from
    random."""
    expert = _demonstrations("LunarLander-v3", tmp_path / "data")
    assert expert >= 200
    section = CLONE | {"dataset": str(tmp_path / "data"), "eval_env": "LunarLander-v3"}
    result = train_bc(section)
    assert result.val_accuracy is not None and result.val_accuracy >= 0.8
    assert result.eval_episodes == 20
    assert result.eval_mean_return is not None and result.eval_mean_return >= 180
