"""`townlet_core.load_policy(PATH).predict(observation)`: SB3's `(actions, state)`, one
observation or a batch, greedy by default and equal to the exported file's actions."""

from __future__ import annotations

import importlib.util
import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces

import townlet_core
from townlet_core.checkpoints import NetworkSpec, ObservationSpec
from townlet_core.data.action_space import ActionSpace
from townlet_core.envs.observations import adapter_for
from townlet_core.errors import DataError
from townlet_core.nn import build_network, save_checkpoint
from townlet_core.nn.predictor import LoadedPolicy

DISCRETE = ActionSpace("discrete", (), n=4)
BOX = ActionSpace("box", (2,), low=(-1.0, -2.0), high=(1.0, 2.0))
#: MiniGrid's observation once FilterObservation keeps image and direction.
MINIGRID_LIKE = spaces.Dict(
    {
        "image": spaces.Box(0, 255, (7, 7, 3), np.uint8),
        "direction": spaces.Discrete(4),
    }
)
CNN = NetworkSpec(
    hidden_sizes=(16,),
    encoder_hidden=16,
    map_encoder="cnn",
    cnn_channels=(4, 8),
    cnn_kernels=(2, 2),
    cnn_strides=(1, 1),
)


def make_checkpoint(
    path: Path,
    space: ActionSpace = DISCRETE,
    observation: ObservationSpec | None = None,
    spec: NetworkSpec | None = None,
) -> Path:
    """An untrained, seeded checkpoint whose actions vary with the observation."""
    observation = observation or ObservationSpec(features_dim=3)
    network = build_network(
        spec or NetworkSpec(hidden_sizes=(16,)),
        observation,
        space.count,
        seed=0,
        action_space=space,
    )
    state = network.state_dict()  # the layers by their checkpoint names
    state["policy_head.weight"].mul_(100.0)  # a fresh head (gain 0.01) barely varies
    network.load_state_dict(state)
    save_checkpoint(path, network, strategy="test", strategy_version="0", seed=0)
    return path


def features(rows: int, width: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, width)).astype(np.float32)


# ------------------------------------------------------------------ one or a batch


def test_one_observation_gives_one_action_and_the_state_back(tmp_path: Path) -> None:
    policy = townlet_core.load_policy(make_checkpoint(tmp_path / "ckpt"))
    action, state = policy.predict(features(1)[0])
    assert (action.shape, action.dtype, state) == ((), np.int64, None)
    assert policy.predict(features(1)[0], state="kept")[1] == "kept"  # SB3 passes state on


def test_a_batch_gives_a_batch_of_the_same_actions(tmp_path: Path) -> None:
    policy = townlet_core.load_policy(make_checkpoint(tmp_path / "ckpt"))
    batch = features(50)
    actions, state = policy.predict(batch)
    assert (actions.shape, state) == ((50,), None)
    assert len(np.unique(actions)) > 1
    one_by_one = [int(policy.predict(row)[0]) for row in batch]
    assert actions.tolist() == one_by_one


def test_box_actions_are_mapped_into_the_bounds(tmp_path: Path) -> None:
    policy = townlet_core.load_policy(make_checkpoint(tmp_path / "ckpt", BOX))
    single, _ = policy.predict(features(1)[0])
    assert (single.shape, single.dtype) == ((2,), np.float32)
    batch, _ = policy.predict(features(200) * 100.0)
    assert batch.shape == (200, 2)
    assert batch[:, 0].min() >= -1.0 and batch[:, 0].max() <= 1.0
    assert np.isclose(np.abs(batch[:, 0]), 1.0).any()  # some were clipped


def test_sampling_differs_from_greedy_and_repeats_with_the_seed(tmp_path: Path) -> None:
    checkpoint = make_checkpoint(tmp_path / "ckpt", BOX)
    batch = features(100)
    greedy, _ = townlet_core.load_policy(checkpoint).predict(batch)
    sampled = [
        townlet_core.load_policy(checkpoint, seed=7).predict(batch, deterministic=False)[0]
        for _ in range(2)
    ]
    np.testing.assert_array_equal(sampled[0], sampled[1])
    assert not np.allclose(sampled[0], greedy)


def test_greedy_actions_equal_the_exported_files(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    import onnxruntime

    from townlet_core.nn.export import export_policy

    observation = ObservationSpec(features_dim=2, map_shape=(3, 5, 5))
    checkpoint = make_checkpoint(tmp_path / "ckpt", DISCRETE, observation)
    path = export_policy(checkpoint, tmp_path / "p.onnx", format="onnx").path
    rng = np.random.default_rng(3)
    batch = {
        "features": rng.standard_normal((1000, 2)).astype(np.float32),
        "map": rng.standard_normal((1000, 3, 5, 5)).astype(np.float32),
    }
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    exported = session.run(["actions"], batch)[0]
    predicted, _ = townlet_core.load_policy(checkpoint).predict(batch)
    assert len(np.unique(predicted)) > 1
    np.testing.assert_array_equal(predicted, exported)


# ------------------------------------------------------------------ raw env observations


def test_raw_observations_are_adapted_with_the_env_space(tmp_path: Path) -> None:
    """MiniGrid-like raw observations (HWC uint8 image, Discrete direction): one, and a
    batch as a vector env gives it, act as their adapted form does."""
    adapter = adapter_for(MINIGRID_LIKE, "test")
    observation = ObservationSpec(features_dim=4, map_shape=(3, 7, 7))
    checkpoint = make_checkpoint(tmp_path / "ckpt", DISCRETE, observation, CNN)
    raw = LoadedPolicy(checkpoint, observation_space=MINIGRID_LIKE)
    plain = townlet_core.load_policy(checkpoint)
    MINIGRID_LIKE.seed(0)
    samples = [MINIGRID_LIKE.sample() for _ in range(64)]
    adapted = [adapter(sample) for sample in samples]
    expected = plain.predict({k: np.stack([a[k] for a in adapted]) for k in ("features", "map")})
    assert len(np.unique(expected[0])) > 1
    assert int(raw.predict(samples[0])[0]) == expected[0][0]
    batched = {key: np.stack([sample[key] for sample in samples]) for key in MINIGRID_LIKE}
    np.testing.assert_array_equal(raw.predict(batched)[0], expected[0])


def test_raw_observations_without_the_space_say_how_to_pass_it(tmp_path: Path) -> None:
    observation = ObservationSpec(features_dim=4, map_shape=(3, 7, 7))
    policy = townlet_core.load_policy(make_checkpoint(tmp_path / "c", DISCRETE, observation, CNN))
    with pytest.raises(DataError, match=r"observation_space=env\.observation_space"):
        policy.predict(MINIGRID_LIKE.sample())


def test_an_env_space_the_policy_does_not_read_is_refused_at_load(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="features: checkpoint reads 3, the data has 5"):
        townlet_core.load_policy(
            make_checkpoint(tmp_path / "ckpt"),
            observation_space=spaces.Box(-1.0, 1.0, (5,), np.float32),
        )


def test_a_wrongly_shaped_observation_names_both_shapes(tmp_path: Path) -> None:
    policy = townlet_core.load_policy(make_checkpoint(tmp_path / "ckpt"))
    with pytest.raises(DataError, match=r"'features' has shape \(4,\), expected \(3,\)"):
        policy.predict(np.zeros(4, np.float32))


# ------------------------------------------------------------------ masks


def test_a_mask_restricts_the_actions(tmp_path: Path) -> None:
    policy = townlet_core.load_policy(make_checkpoint(tmp_path / "ckpt"))
    batch = features(100)
    free, _ = policy.predict(batch)
    mask = np.ones((100, 4), dtype=bool)
    mask[np.arange(100), free] = False
    restricted, _ = policy.predict(batch, action_mask=mask)
    assert not np.any(restricted == free)
    from_key, _ = policy.predict({"features": batch, "action_mask": mask})
    np.testing.assert_array_equal(from_key, restricted)
    only_two = policy.predict(batch[0], action_mask=np.array([0, 0, 1, 0]))[0]
    assert int(only_two) == 2


def test_a_mask_allowing_nothing_is_refused(tmp_path: Path) -> None:
    policy = townlet_core.load_policy(make_checkpoint(tmp_path / "ckpt"))
    with pytest.raises(DataError, match="every action is masked"):
        policy.predict(features(1)[0], action_mask=np.zeros(4, bool))


# ------------------------------------------------------------------ what PATH may be


def test_a_run_folder_means_its_final_checkpoint(tmp_path: Path) -> None:
    run = tmp_path / "run"
    make_checkpoint(run / "checkpoint")
    (run / "result.json").write_text(json.dumps({"checkpoint": "checkpoint"}))
    assert townlet_core.load_policy(run).checkpoint == run / "checkpoint"
    with pytest.raises(DataError, match="the run records no best checkpoint"):
        townlet_core.load_policy(run, best=True)


def test_a_folder_that_is_no_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a Townlet checkpoint"):
        townlet_core.load_policy(tmp_path)
    with pytest.raises(DataError, match="no such checkpoint or run folder"):
        townlet_core.load_policy(tmp_path / "missing")


def test_loading_runs_no_code_from_the_checkpoint(tmp_path: Path) -> None:
    """A pickle beside the weights that would create a file when unpickled stays unread."""
    checkpoint = make_checkpoint(tmp_path / "ckpt")
    marker = tmp_path / "code-ran"

    class Payload:
        def __reduce__(self) -> tuple[Any, ...]:
            return (open, (str(marker), "w"))

    (checkpoint / "state.pt").write_bytes(pickle.dumps(Payload()))
    townlet_core.load_policy(checkpoint).predict(features(1)[0])
    assert not marker.exists()


def test_load_policy_is_public_and_imports_no_torch_until_called() -> None:
    probe = (
        "import sys, townlet_core\n"
        "assert callable(townlet_core.load_policy) and 'load_policy' in townlet_core.__all__\n"
        "assert not [m for m in sys.modules if m == 'torch' or m.startswith('torch.')]\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


# ------------------------------------------------------------------ a real, briefly trained run


@pytest.mark.slow
def test_a_trained_cartpole_policy_plays_its_env_through_predict(tmp_path: Path) -> None:
    """`townlet train` a few seconds, then drive the env the SB3 way: one observation at a
    time, greedy, with the same actions as the ONNX export on the visited states."""
    config = tmp_path / "ppo.json"
    section = {"total_timesteps": 4096, "update_epochs": 4, "eval_every": None, "eval_episodes": 1}
    config.write_text(json.dumps({"strategy": "ppo", "ppo": section}))
    command = [sys.executable, "-m", "townlet_core.cli", "train", "-c", str(config)]
    done = subprocess.run(
        [*command, "--seed", "0", "--run-dir", str(tmp_path / "run"), "-q"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    env = gymnasium.make("CartPole-v1")
    model = townlet_core.load_policy(tmp_path / "run", observation_space=env.observation_space)
    observation, _ = env.reset(seed=0)
    visited, taken = [], []
    for _ in range(300):
        action, _state = model.predict(observation, deterministic=True)
        visited.append(observation)
        taken.append(int(action))
        observation, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            observation, _ = env.reset()
    assert len(set(taken)) == 2
    np.testing.assert_array_equal(model.predict(np.stack(visited))[0], taken)
    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime

        from townlet_core.nn.export import export_policy

        path = export_policy(tmp_path / "run", tmp_path / "p.onnx", format="onnx").path
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        exported = session.run(["actions"], {"features": np.stack(visited).astype(np.float32)})
        np.testing.assert_array_equal(exported[0], taken)
