"""Environment snapshots are data: they round-trip exactly, refuse what is not data, and
restoring one never trusts the tree it is given."""

from __future__ import annotations

import threading
from typing import Any

import gymnasium
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from townlet_core.envs import snapshot
from townlet_core.envs.make import make_vector_env


def _stepped(num_envs: int, steps: int, seed: int = 3) -> tuple[Any, np.random.Generator]:
    env, _how = make_vector_env("CartPole-v1", num_envs, 20)
    env.reset(seed=seed)
    actions = np.random.default_rng(seed)
    for _ in range(steps):
        env.step(actions.integers(0, 2, num_envs))
    return env, actions


def _leaves_are_data(tree: Any) -> bool:
    if isinstance(tree, dict):
        return all(isinstance(k, str) and _leaves_are_data(v) for k, v in tree.items())
    if isinstance(tree, list):
        return all(_leaves_are_data(v) for v in tree)
    return type(tree) in (type(None), bool, int, float, str, bytes)


def _assert_continue_alike(a: Any, b: Any, actions: np.random.Generator, num_envs: int) -> None:
    for t in range(80):  # 20-step episodes: several autoresets on the way
        chosen = actions.integers(0, 2, num_envs)
        for left, right in zip(a.step(chosen)[:4], b.step(chosen)[:4], strict=True):
            assert np.array_equal(left, right), f"step {t}"


@pytest.mark.parametrize(("num_envs", "kind"), [(2, "SyncVectorEnv"), (5, "CartPoleVectorEnv")])
def test_a_cartpole_vector_env_continues_exactly_from_its_snapshot_mid_episode(
    num_envs: int, kind: str
) -> None:
    original, actions = _stepped(num_envs, 13)
    assert type(original).__name__ == kind
    captured = snapshot.capture(original)
    assert _leaves_are_data(captured)
    restored, _how = make_vector_env("CartPole-v1", num_envs, 20)
    restored.reset(seed=99)  # another seed: everything that matters comes from the snapshot
    snapshot.restore(restored, captured)
    _assert_continue_alike(original, restored, actions, num_envs)


class _Opaque(gymnasium.Env[np.ndarray, int]):
    """A toy env holding a physics-engine-like object that is not data."""

    observation_space = gymnasium.spaces.Box(-1.0, 1.0, (4,), np.float32)
    action_space = gymnasium.spaces.Discrete(2)

    def __init__(self) -> None:
        self.world = threading.Lock()
        self.position = np.zeros(4, dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: Any = None) -> Any:
        super().reset(seed=seed)
        self.position = self.np_random.uniform(-0.1, 0.1, 4).astype(np.float32)
        return self.position.copy(), {}

    def step(self, action: Any) -> Any:
        self.position = self.position + (0.01 if action else -0.01)
        return self.position.copy(), 1.0, False, False, {}


class _ExplicitState(_Opaque):
    """The same env, saying itself what its state is."""

    def townlet_get_state(self) -> dict[str, Any]:
        return {"position": self.position, "rng": self.np_random.bit_generator.state}

    def townlet_set_state(self, state: dict[str, Any]) -> None:
        self.position = state["position"]
        self.np_random.bit_generator.state = state["rng"]


def _sync(env_class: type, num_envs: int = 2) -> Any:
    return SyncVectorEnv(
        [env_class for _ in range(num_envs)], autoreset_mode=AutoresetMode.NEXT_STEP
    )


def test_opaque_state_is_named_not_captured() -> None:
    env = _sync(_Opaque)
    env.reset(seed=0)
    with pytest.raises(snapshot.NotSnapshotable) as caught:
        snapshot.capture(env)
    assert caught.value.attribute == "env.envs[0].world"
    assert "world" in str(caught.value) and "lock" in str(caught.value).lower()


def test_an_env_that_defines_its_own_state_methods_is_captured_by_them() -> None:
    original = _sync(_ExplicitState)
    original.reset(seed=0)
    original.step(np.array([1, 0]))
    captured = snapshot.capture(original)
    restored = _sync(_ExplicitState)
    restored.reset(seed=5)
    snapshot.restore(restored, captured)
    assert np.array_equal(restored.envs[0].position, original.envs[0].position)
    assert np.array_equal(restored.envs[1].position, original.envs[1].position)
    draws = [e.np_random.random() for e in (original.envs[1], restored.envs[1])]
    assert draws[0] == draws[1]


def _fresh_and_snapshot() -> tuple[Any, dict[str, Any]]:
    original, _actions = _stepped(2, 7)
    fresh, _how = make_vector_env("CartPole-v1", 2, 20)
    fresh.reset(seed=11)
    return fresh, snapshot.capture(original)


def _unwrapped_attrs(tree: dict[str, Any]) -> dict[str, Any]:
    layer = next(
        layer
        for layer in tree["layers"]
        if layer["class"].endswith("CartPoleEnv") and layer["path"].startswith("env.envs[0]")
    )
    attrs: dict[str, Any] = layer["attrs"]
    return attrs


def _tamper_object_dtype(tree: dict[str, Any]) -> None:
    _unwrapped_attrs(tree)["state"]["dtype"] = "|O"


def _tamper_short_data(tree: dict[str, Any]) -> None:
    _unwrapped_attrs(tree)["state"]["data"] = b"\x00" * 3


def _tamper_method_name(tree: dict[str, Any]) -> None:
    _unwrapped_attrs(tree)["step"] = 1


def _tamper_unknown_tag(tree: dict[str, Any]) -> None:
    _unwrapped_attrs(tree)["state"] = {"t": "global", "module": "os", "name": "system"}


def _tamper_generator_kind(tree: dict[str, Any]) -> None:
    _unwrapped_attrs(tree)["_np_random"] = {"t": "python_random", "state": {"t": "list"}}


def _tamper_class(tree: dict[str, Any]) -> None:
    tree["layers"][0]["class"] = "os.system"


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (_tamper_object_dtype, "not plain data"),
        (_tamper_short_data, "needs 32 bytes"),
        (_tamper_method_name, "would hide the class's own step"),
        (_tamper_unknown_tag, "unknown snapshot entry"),
        (_tamper_generator_kind, "the snapshot a 'python_random'"),
        (_tamper_class, "the snapshot a os.system"),
    ],
)
def test_a_snapshot_that_does_not_fit_is_refused_and_changes_nothing(
    tamper: Any, message: str
) -> None:
    fresh, captured = _fresh_and_snapshot()
    before = snapshot.capture(fresh)
    tamper(captured)
    with pytest.raises(snapshot.SnapshotError, match=message):
        snapshot.restore(fresh, captured)
    assert snapshot.capture(fresh) == before


def test_plain_data_round_trips_bit_for_bit() -> None:
    value = {
        "observation": np.array([[1.5, -0.0, np.nan]], dtype=np.float32),
        "flags": np.array([True, False]),
        "count": np.int64(2**40),
        "nested": [(1, "a", None), {"k": np.uint16(7)}],
    }
    back = snapshot.decode_data(snapshot.encode_data(value))
    assert back["observation"].tobytes() == value["observation"].tobytes()
    assert back["observation"].dtype == np.float32
    assert back["flags"].dtype == bool and back["flags"].tolist() == [True, False]
    assert back["count"] == 2**40 and back["count"].dtype == np.int64
    assert back["nested"] == [(1, "a", None), {"k": 7}]
    assert back["nested"][1]["k"].dtype == np.uint16
