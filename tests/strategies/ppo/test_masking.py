"""Action masks in PPO: from `info["action_mask"]` or an observation key, in the rollout's
sampling and in the update's log-probabilities and entropy, for Discrete and MultiDiscrete.

`spaces_envs:MaskedChoice` (Discrete(4), 10-step episodes): action 0 pays most but is legal
in 30% of states; an illegal action costs -1 and is counted in `info["illegal_action"]`.
Best play scores 6.5 an episode, uniform play over the legal actions 3.25, and over all
four actions -2.25 (the fixture's docstring derives them).
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium import spaces

from townlet_core.checkpoints import NetworkSpec, ObservationSpec
from townlet_core.data.action_space import DISCRETE, ActionSpace
from townlet_core.errors import DataError
from townlet_core.nn import build_network
from townlet_core.runtime.metrics import read_metrics
from townlet_strategies_ppo.config import PPOConfig
from townlet_strategies_ppo.update import Batch, make_optimizer, ppo_update

#: Enough updates for MaskedChoice (2,560 steps, 10 updates of 8 envs x 32 steps).
MASKED: dict[str, Any] = {
    "env": "spaces_envs:MaskedChoice",
    "num_envs": 8,
    "num_steps": 32,
    "minibatch_size": 64,
    "update_epochs": 4,
    "learning_rate": 3e-3,
    "gamma": 0.5,
    "total_timesteps": 256 * 10,
    "eval_every": None,
    "eval_episodes": 20,
    "stop_return": None,
}


def _summed(run, key):
    lines = read_metrics(run / "metrics.jsonl")
    assert all(key in line for line in lines), f"{key} missing from the telemetry"
    return sum(line[key] for line in lines)


@pytest.mark.parametrize(
    "where",
    [
        pytest.param({}, id="info"),
        pytest.param(
            {"env_kwargs": {"mask_in_observation": True}, "action_mask_key": "action_mask"},
            id="observation-key",
        ),
    ],
)
def test_masked_choice_is_learned_without_an_illegal_action(
    train_ppo, spaces_envs, tmp_path, where
):
    """With the mask, no illegal action is taken in training (the env's counter sums to 0
    over every update) nor in the greedy evaluation, and the greedy return reaches 5.5
    (best 6.5, uniform legal play 3.25, uniform play -2.25)."""
    result = train_ppo({**MASKED, **where}, seed=0)
    run = tmp_path / "run"
    assert _summed(run, "info.illegal_action") == 0
    assert result.eval_mean_return is not None and result.eval_mean_return >= 5.5
    # a quarter of the actions is masked in 70% of the states, half in the others... :
    # 1 - (2 + 0.3) / 4 = 0.425 of the entries on average
    blocked = [line["action_blocked_ratio"] for line in read_metrics(run / "metrics.jsonl")]
    assert abs(float(np.mean(blocked)) - 0.425) < 0.03


def test_without_a_mask_the_same_run_takes_illegal_actions(train_ppo, spaces_envs, tmp_path):
    """The counter the test above reads does count: an observation-key mask the config does
    not name is not applied."""
    train_ppo({**MASKED, "env_kwargs": {"mask_in_observation": True}, "total_timesteps": 256})
    assert _summed(tmp_path / "run", "info.illegal_action") > 0


# ---------------------------------------------------------------------------- MultiDiscrete

MULTI_ID = "TownletTestMaskedMulti-v0"


class MaskedMulti(gymnasium.Env[np.ndarray, np.ndarray]):
    """MultiDiscrete([3, 4]); the mask (7 entries, dimension by dimension) allows one
    random choice of the first dimension and two of the second; `info["illegal_action"]`
    counts actions outside it. Reward 1 for each legal choice."""

    metadata = {"render_modes": ()}  # noqa: RUF012 (Gymnasium declares it a dict)

    def __init__(self) -> None:
        self.observation_space = spaces.Box(0.0, 1.0, (7,), np.float32)
        self.action_space = spaces.MultiDiscrete([3, 4])
        self._mask = np.ones(7, dtype=bool)
        self._t = 0

    def _draw(self) -> None:
        self._mask = np.zeros(7, dtype=bool)
        self._mask[self.np_random.integers(3)] = True
        self._mask[3 + self.np_random.choice(4, size=2, replace=False)] = True

    def _observation(self) -> np.ndarray:
        return self._mask.astype(np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._t = 0
        self._draw()
        return self._observation(), {"action_mask": self._mask.copy(), "illegal_action": 0}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        first, second = (int(a) for a in action)
        legal = int(self._mask[first]) + int(self._mask[3 + second])
        self._t += 1
        self._draw()
        info = {"action_mask": self._mask.copy(), "illegal_action": 2 - legal}
        return self._observation(), float(legal), False, self._t >= 8, info


@pytest.fixture
def masked_multi():
    gymnasium.register(MULTI_ID, entry_point=MaskedMulti)
    yield MULTI_ID
    gymnasium.registry.pop(MULTI_ID, None)


def test_multi_discrete_masks_are_never_violated(train_ppo, masked_multi, tmp_path):
    """Unmasked, a random policy would make 1 - (1/3 + 2/4) / 2 = 0.58 illegal choices a
    step; masked, none."""
    result = train_ppo({**MASKED, "env": masked_multi, "total_timesteps": 512})
    assert _summed(tmp_path / "run", "info.illegal_action") == 0
    assert result.eval_mean_return == 16.0  # 8 steps, both choices legal in each
    # 2 of 3 choices of the first dimension and 2 of 4 of the second masked: 4 of 7
    blocked = [
        line["action_blocked_ratio"] for line in read_metrics(tmp_path / "run" / "metrics.jsonl")
    ]
    assert blocked == pytest.approx([4 / 7] * len(blocked))


# ---------------------------------------------------------------------------- errors

ALL_MASKED_ID = "TownletTestAllMasked-v0"


class AllMaskedAtStep5(gymnasium.Env[np.ndarray, np.int64]):
    """Discrete(3) whose mask allows nothing from its fifth step on."""

    metadata = {"render_modes": ()}  # noqa: RUF012 (Gymnasium declares it a dict)

    def __init__(self) -> None:
        self.observation_space = spaces.Box(0.0, 1.0, (2,), np.float32)
        self.action_space = spaces.Discrete(3)
        self._t = 0

    def _info(self) -> dict[str, Any]:
        return {"action_mask": np.full(3, self._t < 5, dtype=np.int8)}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._t = 0
        return np.zeros(2, dtype=np.float32), self._info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self._t += 1
        return np.zeros(2, dtype=np.float32), 0.0, False, self._t >= 50, self._info()


def test_a_state_with_every_action_masked_is_an_error_naming_the_step(train_ppo):
    gymnasium.register(ALL_MASKED_ID, entry_point=AllMaskedAtStep5)
    try:
        with pytest.raises(
            DataError, match=r"every action is masked for env 0 at update 1, step 5"
        ):
            train_ppo({**MASKED, "env": ALL_MASKED_ID, "num_envs": 2, "total_timesteps": 64})
    finally:
        gymnasium.registry.pop(ALL_MASKED_ID, None)


def test_a_mask_key_the_observation_lacks_is_refused_before_the_run(
    train_ppo, spaces_envs, tmp_path
):
    from townlet_core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"ppo\.action_mask_key: 'legal' is not a key of"):
        train_ppo({**MASKED, "action_mask_key": "legal"})
    assert not (tmp_path / "run").exists()


def test_a_mask_key_for_box_actions_is_refused(train_ppo, tmp_path):
    from townlet_core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"masks apply to discrete and multi_discrete"):
        train_ppo({**MASKED, "env": "Pendulum-v1", "action_mask_key": "action_mask"})


# ---------------------------------------------------------------------------- the update


def test_the_update_reads_log_probabilities_and_entropy_under_the_masks():
    """Every row allows one action only: under the mask the policy is certain (entropy 0,
    log-probability 0, so nothing to clip), without it the entropy is about log 4."""
    space = ActionSpace(DISCRETE, (), n=4)
    network = build_network(NetworkSpec(), ObservationSpec(features_dim=3), 4, seed=0)
    generator = torch.Generator().manual_seed(0)
    size = 64
    actions = torch.randint(0, 4, (size,), generator=generator)
    masks = torch.nn.functional.one_hot(actions, 4).bool()
    features = torch.randn(size, 3, generator=generator)
    config = PPOConfig(update_epochs=1, minibatch_size=size, num_envs=8, num_steps=8)

    def batch(with_masks: bool) -> Batch:
        return Batch(
            features=features,
            map=None,
            actions=actions,
            old_log_probs=torch.zeros(size) if with_masks else torch.full((size,), -1.386),
            old_values=torch.zeros(size),
            advantages=torch.randn(size, generator=generator),
            returns=torch.zeros(size),
            rewards=torch.zeros(size),
            masks=masks if with_masks else None,
        )

    masked = ppo_update(
        network, make_optimizer(network, 1e-3), batch(True), config, 0.2, np.random.default_rng(0)
    )
    assert masked.batch_entropy_mean == pytest.approx(0.0, abs=1e-6)
    assert masked.clip_fraction == 0.0 and masked.approx_kl == pytest.approx(0.0, abs=1e-6)
    assert network.action_space == space
    free = ppo_update(
        network, make_optimizer(network, 1e-3), batch(False), config, 0.2, np.random.default_rng(0)
    )
    assert free.batch_entropy_mean == pytest.approx(np.log(4), abs=0.01)
