"""Policy specs: scripted, random, module:factory and (not yet loadable) checkpoint paths."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from gymnasium import spaces

from townlet_core.envs.experts import ThresholdExpert
from townlet_core.envs.policies import PolicyOutput, RandomPolicy, as_output
from townlet_core.envs.resolve import resolve_policy
from townlet_core.errors import ConfigError, DataError

DISCRETE = spaces.Discrete(3)


@pytest.fixture
def factories(monkeypatch):
    """A module `fake_policies` with a zero-argument and an env-id-taking factory."""
    module = types.ModuleType("fake_policies")
    module.constant = lambda: lambda obs: np.zeros(len(obs), np.int64)  # type: ignore[attr-defined]
    module.seen = []  # type: ignore[attr-defined]

    def per_env(env_id):
        module.seen.append(env_id)  # type: ignore[attr-defined]
        return lambda obs: np.ones(len(obs), np.int64)

    module.per_env = per_env  # type: ignore[attr-defined]
    module.not_callable = 3  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_policies", module)
    return module


def test_scripted_is_the_registered_expert_for_the_env():
    assert isinstance(
        resolve_policy("scripted", "CartPole-v1", spaces.Discrete(2), 0), ThresholdExpert
    )


def test_scripted_for_an_env_without_expert_lists_the_envs_that_have_one():
    with pytest.raises(ConfigError, match="no scripted expert for 'Taxi-v3' .*CartPole-v1"):
        resolve_policy("scripted", "Taxi-v3", DISCRETE, 0)


def test_random_is_seeded_and_uses_the_action_space():
    first = resolve_policy("random", "X", DISCRETE, seed=1)(np.zeros((500, 2)))
    again = resolve_policy("random", "X", DISCRETE, seed=1)(np.zeros((500, 2)))
    other = resolve_policy("random", "X", DISCRETE, seed=2)(np.zeros((500, 2)))
    assert isinstance(first, PolicyOutput) and isinstance(again, PolicyOutput)
    assert isinstance(other, PolicyOutput)
    assert first.actions.tolist() == again.actions.tolist() != other.actions.tolist()
    assert set(first.actions.tolist()) == {0, 1, 2}


def test_random_policy_stream_differs_from_the_env_reset_stream():
    """Gymnasium seeds resets with `seed`; the policy must not replay that stream."""
    drawn = RandomPolicy(1000, seed=0)(np.zeros((5, 1))).actions
    assert drawn.tolist() != np.random.default_rng(0).integers(1000, size=5).tolist()


def test_random_needs_a_bounded_box():
    with pytest.raises(ConfigError, match="unbounded in some dimension"):
        resolve_policy("random", "X", spaces.Box(-np.inf, np.inf, (2,)), 0)


def test_import_string_calls_a_zero_argument_factory(factories):
    policy = resolve_policy("fake_policies:constant", "CartPole-v1", DISCRETE, 0)
    assert policy(np.zeros((2, 4))).tolist() == [0, 0]  # type: ignore[union-attr]


def test_import_string_passes_the_env_id_to_a_factory_that_takes_one(factories):
    policy = resolve_policy("fake_policies:per_env", "CartPole-v1", DISCRETE, 0)
    assert policy(np.zeros((2, 4))).tolist() == [1, 1]  # type: ignore[union-attr]
    assert factories.seen == ["CartPole-v1"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("fake_policies:missing", "cannot import policy factory 'fake_policies:missing'"),
        ("no_such_module_xyz:make", "cannot import policy factory 'no_such_module_xyz:make'"),
        (
            "fake_policies:not_callable",
            "policy factory 'fake_policies:not_callable' is not callable",
        ),
    ],
)
def test_bad_import_strings_are_config_errors(factories, spec, message):
    with pytest.raises(ConfigError, match=message):
        resolve_policy(spec, "CartPole-v1", DISCRETE, 0)


def test_existing_path_that_is_not_a_checkpoint_is_refused(tmp_path):
    checkpoint = tmp_path / "policy.pt"
    checkpoint.write_bytes(b"")
    with pytest.raises(DataError, match="not a Townlet checkpoint"):
        resolve_policy(str(checkpoint), "CartPole-v1", DISCRETE, 0)


def test_missing_checkpoint_path_says_it_does_not_exist(tmp_path):
    with pytest.raises(ConfigError, match=r"policy checkpoint .*nope\.pt does not exist"):
        resolve_policy(str(tmp_path / "nope.pt"), "CartPole-v1", DISCRETE, 0)


def test_unknown_policy_word_suggests_the_closest_name():
    with pytest.raises(ConfigError, match="unknown policy 'scriptd'; did you mean 'scripted'"):
        resolve_policy("scriptd", "CartPole-v1", DISCRETE, 0)


def test_as_output_accepts_plain_int_arrays_and_converts_them_to_int64():
    output = as_output(np.array([0, 2], dtype=np.int32), 2, 3, "p")
    assert output.actions.dtype == np.int64 and output.log_probs is None


@pytest.mark.parametrize(
    ("result", "message"),
    [
        (np.array([0.0, 1.0]), "dtype float64"),
        (np.array([0, 1, 2]), r"shape \(3,\)"),
        (np.array([0, -1]), "returned action -1, outside the action space 0..2"),
        (PolicyOutput(np.array([0, 1]), values=np.zeros(3)), r"values of shape \(3,\)"),
    ],
)
def test_as_output_rejects_what_would_corrupt_a_dataset(result, message):
    with pytest.raises(ConfigError, match=message):
        as_output(result, 2, 3, "p")
