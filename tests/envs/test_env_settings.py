"""Environment settings (issue 11): `env_kwargs` and wrappers by import string, applied in
training, capture and evaluation alike, refused by name before anything is written, and
never imported because a checkpoint names them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from townlet_core.envs.capture import capture
from townlet_core.envs.evaluation import environment_spaces, evaluate_policy
from townlet_core.envs.make import make_vector_env
from townlet_core.envs.settings import EnvSettings, EnvSettingsError, WrapperSpec
from townlet_core.errors import ConfigError

Townlet = Callable[..., tuple[int, str, str]]

FRAME_STACK = {"wrapper": "gymnasium.wrappers:FrameStackObservation", "kwargs": {"stack_size": 4}}
FLATTEN = {"wrapper": "gymnasium.wrappers:FlattenObservation"}
#: CartPole's 4 features, 4 frames stacked and flattened.
STACKED = EnvSettings(
    id="CartPole-v1",
    wrappers=(WrapperSpec.model_validate(FRAME_STACK), WrapperSpec.model_validate(FLATTEN)),
)
WRAPPER_FLAGS = ["--wrapper", json.dumps(FRAME_STACK), "--wrapper", FLATTEN["wrapper"]]

#: A PPO run small enough to take a second or two.
TINY_PPO = {
    "num_envs": 2,
    "num_steps": 16,
    "minibatch_size": 16,
    "total_timesteps": 64,
    "update_epochs": 1,
    "eval_every": None,
    "eval_episodes": 1,
    "stop_return": None,
    "max_episode_steps": 20,
}


def _rewards(settings: EnvSettings, num_envs: int, steps: int = 30) -> tuple[np.ndarray, str]:
    """Rewards of `steps` vector steps always pushing left (CartPole falls within ~10)."""
    env, how = make_vector_env(settings, num_envs)
    try:
        env.reset(seed=0)
        rewards = [env.step(np.zeros(num_envs, dtype=np.int64))[1] for _ in range(steps)]
    finally:
        env.close()
    return np.concatenate(rewards), how


# --------------------------------------------------------------------------- env_kwargs


@pytest.mark.parametrize("num_envs", [2, 8])  # SyncVectorEnv, and CartPole's native one
def test_env_kwargs_reach_a_registered_env(num_envs: int) -> None:
    plain, _ = _rewards(EnvSettings(id="CartPole-v1"), num_envs)
    settings = EnvSettings(id="CartPole-v1", kwargs={"sutton_barto_reward": True})
    sutton_barto, how = _rewards(settings, num_envs)
    assert how == ("native" if num_envs >= 5 else "sync")
    # (a NEXT_STEP reset step reads reward 0 either way)
    assert set(np.unique(plain).tolist()) == {0.0, 1.0}
    # Sutton and Barto's reward: 0 per step, -1 when the pole falls
    assert set(np.unique(sutton_barto).tolist()) == {0.0, -1.0}


def test_env_kwargs_reach_a_module_class_env() -> None:
    settings = EnvSettings(
        id="gymnasium.envs.classic_control.mountain_car:MountainCarEnv",
        kwargs={"goal_velocity": 0.25},
    )
    env, _how = make_vector_env(settings, 2)
    try:
        assert [sub.unwrapped.goal_velocity for sub in env.envs] == [0.25, 0.25]
    finally:
        env.close()


def test_env_kwargs_reach_evaluation() -> None:
    def left(observation: np.ndarray) -> np.ndarray:
        return np.zeros(len(observation), dtype=np.int64)

    plain = evaluate_policy("CartPole-v1", left, episodes=2, seed=0)
    settings = EnvSettings(id="CartPole-v1", kwargs={"sutton_barto_reward": True})
    sutton_barto = evaluate_policy(settings, left, episodes=2, seed=0)
    assert plain.mean_return > 5
    assert sutton_barto.returns == (-1.0, -1.0)
    assert sutton_barto.env_id == "CartPole-v1"


# --------------------------------------------------------------------------- wrappers


def test_wrappers_apply_in_order_to_each_sub_env() -> None:
    assert environment_spaces(STACKED) == ({"features": (16,)}, 2)
    env, how = make_vector_env(STACKED, 8)  # wrappers rule out the native vector env
    try:
        observation = env.reset(seed=0)[0].copy()  # the env reuses its buffers
        assert how == "sync" and observation.shape == (8, 16)
        # after a reset the stack holds the first observation four times; a step adds one
        assert np.all(observation[:, :4] == observation[:, 12:])
        stepped = env.step(np.zeros(8, dtype=np.int64))[0]
        assert np.all(stepped[:, :12] == observation[:, 4:])
        assert np.all(stepped[:, 12:] != observation[:, 12:])
    finally:
        env.close()


def test_capture_records_wrapped_observations_and_the_settings(tmp_path: Path) -> None:
    out = tmp_path / "data"
    summary = capture(STACKED, "random", episodes=2, num_envs=2, seed=0, out=out)
    assert summary.num_trajectories == 2
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    metadata = manifest.get("metadata", manifest)
    assert metadata["wrappers"] == [
        {"wrapper": FRAME_STACK["wrapper"], "kwargs": {"stack_size": 4}},
        {"wrapper": FLATTEN["wrapper"], "kwargs": {}},
    ]
    kept = capture(STACKED, "random", episodes=1, seed=0)
    assert kept.trajectories[0].features.shape[1] == 16


@pytest.mark.parametrize(
    ("wrapper", "expected"),
    [
        ({"wrapper": "no_such_module_xyz:Wrapper"}, "cannot import module 'no_such_module_xyz'"),
        ({"wrapper": "gymnasium.wrappers.FlattenObservation"}, "gymnasium.wrappers:Flatten"),
        ({"wrapper": "gymnasium.wrappers:NoSuchWrapper"}, "has no 'NoSuchWrapper'"),
        ({"wrapper": "gymnasium.spaces:Box"}, "not a gymnasium.Wrapper subclass"),
        ({"wrapper": "gymnasium.wrappers.vector:NormalizeObservation"}, "a vector wrapper"),
        (
            {"wrapper": FRAME_STACK["wrapper"], "kwargs": {"stack": 4}},
            "unexpected keyword argument 'stack'",
        ),
    ],
)
def test_an_unusable_wrapper_is_named(wrapper: dict[str, object], expected: str) -> None:
    settings = EnvSettings(id="CartPole-v1", wrappers=(FLATTEN, wrapper))  # type: ignore[arg-type]
    with pytest.raises(EnvSettingsError) as error:
        make_vector_env(settings, 2)
    assert error.value.field == "wrappers" and error.value.index == 1
    assert str(error.value.at("ppo.")).startswith("ppo.wrappers[1]: ")
    assert expected in str(error.value)


def test_kwargs_the_env_refuses_are_named() -> None:
    for num_envs in (2, 8):
        with pytest.raises(EnvSettingsError, match=r"^env_kwargs: .*'bogus'") as error:
            make_vector_env(EnvSettings(id="CartPole-v1", kwargs={"bogus": 1}), num_envs)
        assert error.value.field == "env_kwargs"
    with pytest.raises(EnvSettingsError, match="env_kwargs"):
        make_vector_env(
            EnvSettings(id="gymnasium.envs.classic_control:CartPoleEnv", kwargs={"bogus": 1}), 2
        )


def test_the_scripted_expert_is_refused_a_wrapped_observation(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="scripted expert for 'CartPole-v1' acts on its raw"):
        capture(STACKED, "scripted", episodes=1, out=tmp_path / "data")
    assert not (tmp_path / "data").exists()
    # a wrapper that leaves the observation alone leaves the expert its numbers
    clip = {"wrapper": "gymnasium.wrappers:ClipReward", "kwargs": {"max_reward": 0.5}}
    clipped = EnvSettings(id="CartPole-v1", wrappers=(WrapperSpec.model_validate(clip),))
    assert capture(clipped, "scripted", episodes=1).mean_return > 200  # 0.5 a step


def test_an_unknown_env_is_still_the_plain_error_it_was() -> None:
    with pytest.raises(ConfigError, match=r"^unknown environment 'CartPol-v1'"):
        make_vector_env(EnvSettings(id="CartPol-v1", kwargs={"x": 1}), 1)


# --------------------------------------------------------------------------- refused in prepare


def _config(tmp_path: Path, document: dict[str, object]) -> Path:
    folder = tmp_path / "inputs"
    folder.mkdir(exist_ok=True)
    path = folder / "config.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def _refused(townlet: Townlet, tmp_path: Path, document: dict[str, object]) -> str:
    """`townlet train -c CONFIG` must exit 2 having written nothing; returns stderr."""
    config = _config(tmp_path, document)
    code, _out, err = townlet("train", "-q", "-c", str(config), "--run-dir", "tmp/run")
    written = sorted(
        str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if "inputs" not in p.parts
    )
    assert code == 2, err
    assert written == [], f"files written before the refusal: {written}; stderr: {err}"
    return err


@pytest.mark.parametrize(
    ("ppo", "field", "expected"),
    [
        ({"wrappers": [{"wrapper": "no_such_module_xyz:W"}]}, "ppo.wrappers[0]", "cannot import"),
        ({"wrappers": [FLATTEN, {"wrapper": "gymnasium:Env"}]}, "ppo.wrappers[1]", "not a gym"),
        (
            {"wrappers": [{**FRAME_STACK, "kwargs": {"stack_size": "four"}}]},
            "ppo.wrappers[0]",
            "FrameStackObservation",
        ),
        ({"env_kwargs": {"bogus": True}}, "ppo.env_kwargs", "'bogus'"),
    ],
)
def test_ppo_refuses_bad_env_settings_before_the_run_directory(
    townlet_in_tmp: Townlet,
    tmp_path: Path,
    ppo: dict[str, object],
    field: str,
    expected: str,
) -> None:
    pytest.importorskip("torch")
    err = _refused(townlet_in_tmp, tmp_path, {"strategy": "ppo", "ppo": {**TINY_PPO, **ppo}})
    assert f"{field}: " in err and expected in err


def test_ppo_refuses_env_settings_on_replay_data(townlet_in_tmp: Townlet, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    document = {"strategy": "ppo", "ppo": {"dataset": "data", "wrappers": [FLATTEN]}}
    err = _refused(townlet_in_tmp, tmp_path, document)
    assert "ppo.wrappers" in err and "ppo.dataset" in err


@pytest.mark.parametrize(
    ("bc", "expected"),
    [
        (
            {"capture": {"env": "CartPole-v1", "wrappers": [{"wrapper": "nope_xyz:W"}]}},
            "bc.capture.wrappers[0]: cannot import",
        ),
        (
            {"capture": {"env": "CartPole-v1", "env_kwargs": {"bogus": 1}}},
            "bc.capture.env_kwargs: ",
        ),
        (
            {
                "capture": {"env": "CartPole-v1"},
                "eval_env": "CartPole-v1",
                "eval_env_kwargs": {"b": 1},
            },
            "bc.eval_env_kwargs: ",
        ),
        (
            {
                "capture": {"env": "CartPole-v1"},
                "eval_env": "CartPole-v1",
                "eval_wrappers": [FRAME_STACK, FLATTEN],
            },
            "does not fit bc.capture.env",
        ),
        ({"capture": {"env": "CartPole-v1"}, "eval_wrappers": [FLATTEN]}, "need bc.eval_env"),
        (
            {"capture": {"env": "CartPole-v1", "wrappers": [FRAME_STACK, FLATTEN]}},
            "bc.capture.policy: the scripted expert for 'CartPole-v1' acts on its raw",
        ),
    ],
)
def test_bc_refuses_bad_env_settings_before_the_run_directory(
    townlet_in_tmp: Townlet, tmp_path: Path, bc: dict[str, object], expected: str
) -> None:
    pytest.importorskip("torch")
    err = _refused(townlet_in_tmp, tmp_path, {"strategy": "bc", "bc": bc})
    assert expected in err


# --------------------------------------------------------------------------- end to end


def test_ppo_trains_and_evaluates_with_the_wrappers_it_was_given(
    townlet_in_tmp: Townlet, tmp_path: Path
) -> None:
    pytest.importorskip("torch")
    from townlet_core.checkpoints import read_info

    document = {
        "strategy": "ppo",
        "ppo": {**TINY_PPO, "wrappers": [FRAME_STACK, FLATTEN], "env_kwargs": {}},
    }
    config = _config(tmp_path, document)
    code, _out, err = townlet_in_tmp("train", "-q", "-c", str(config), "--run-dir", "run")
    assert code == 0, err
    checkpoint = tmp_path / "run" / "checkpoint"
    info = read_info(checkpoint)
    assert info.observation.features_dim == 16
    recorded = info.extra["env_settings"]  # as data, for evaluate to quote
    assert [w["wrapper"] for w in recorded["wrappers"]] == [
        FRAME_STACK["wrapper"],
        FLATTEN["wrapper"],
    ]

    # evaluation builds the same env only when told to: the checkpoint's wrappers are not
    # taken from it
    code, out, err = townlet_in_tmp(
        "evaluate", str(checkpoint), "--episodes", "2", "--json", *WRAPPER_FLAGS
    )
    assert code == 0, err
    assert json.loads(out)["episodes"] == 2
    code, _out, err = townlet_in_tmp("evaluate", str(checkpoint), "--episodes", "2")
    assert code == 2 and "does not fit" in err
    assert FRAME_STACK["wrapper"] in err  # the recorded settings, quoted for the user to pass


def test_evaluate_never_imports_a_wrapper_only_a_checkpoint_names(
    townlet_in_tmp: Townlet, tmp_path: Path
) -> None:
    pytest.importorskip("torch")
    from townlet_core.checkpoints import INFO_FILE

    config = _config(tmp_path, {"strategy": "ppo", "ppo": TINY_PPO})
    code, _out, err = townlet_in_tmp("train", "-q", "-c", str(config), "--run-dir", "run")
    assert code == 0, err
    checkpoint = tmp_path / "run" / "checkpoint"
    info_path = checkpoint / INFO_FILE
    info = json.loads(info_path.read_text(encoding="utf-8"))
    # a checkpoint that says it was trained with a wrapper that would fail loudly if
    # imported, and shapes (16 features) the plain env does not have
    info["extra"]["env_settings"] = {
        "id": "CartPole-v1",
        "kwargs": {},
        "wrappers": [{"wrapper": "townlet_never_imported_xyz:Evil", "kwargs": {}}],
    }
    info["observation"]["features_dim"] = 16
    info_path.write_text(json.dumps(info), encoding="utf-8")
    code, _out, err = townlet_in_tmp("evaluate", str(checkpoint), "--episodes", "1")
    assert code == 2
    assert "does not fit" in err and "townlet_never_imported_xyz:Evil" in err
    assert "--wrapper" in err and "cannot import" not in err


def test_bc_captures_trains_and_evaluates_in_the_wrapped_env(
    townlet_in_tmp: Townlet, tmp_path: Path
) -> None:
    pytest.importorskip("torch")
    from townlet_core.checkpoints import read_info

    document = {
        "strategy": "bc",
        "bc": {
            "capture": {
                "env": "CartPole-v1",
                "policy": "random",
                "episodes": 4,
                "num_envs": 2,
                "env_kwargs": {"sutton_barto_reward": True},
                "wrappers": [FRAME_STACK, FLATTEN],
            },
            "epochs": 1,
            "eval_episodes": 2,
        },
    }
    config = _config(tmp_path, document)
    code, _out, err = townlet_in_tmp("train", "-q", "-c", str(config), "--run-dir", "run")
    assert code == 0, err
    assert read_info(tmp_path / "run" / "checkpoint").observation.features_dim == 16
    result = json.loads((tmp_path / "run" / "result.json").read_text(encoding="utf-8"))
    # evaluated in the capture's env: stacked observations, Sutton and Barto's reward
    assert result["eval_episodes"] == 2 and result["eval_mean_return"] == -1.0


# --------------------------------------------------------------------------- townlet capture


def test_capture_cli_takes_env_kwargs_and_wrappers(townlet_in_tmp: Townlet, tmp_path: Path) -> None:
    code, out, err = townlet_in_tmp(
        "capture",
        "--env",
        "CartPole-v1",
        "--policy",
        "random",
        "--episodes",
        "2",
        "--out",
        "data",
        "--json",
        "-q",
        "--env-kwargs",
        '{"sutton_barto_reward": true}',
        *WRAPPER_FLAGS,
    )
    assert code == 0, err
    assert json.loads(out)["return"]["max"] == -1.0
    sample = next((tmp_path / "data").glob("*.npz"))
    with np.load(sample) as arrays:
        assert arrays["features"].shape[1] == 16


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (
            ["--wrapper", "gymnasium.wrappers:FlattenObservation", "--wrapper", "nope_xyz:W"],
            "--wrapper #2: cannot import",
        ),
        (["--env-kwargs", '{"bogus": 1}'], "--env-kwargs: "),
        (["--env-kwargs", "not json"], "--env-kwargs: not valid JSON"),
        (["--env-kwargs", "[1]"], "--env-kwargs: expected a JSON object"),
        (["--wrapper", '{"wrapper": 3}'], "--wrapper"),
    ],
)
def test_capture_cli_refuses_bad_settings_writing_nothing(
    townlet_in_tmp: Townlet, tmp_path: Path, flags: list[str], expected: str
) -> None:
    code, _out, err = townlet_in_tmp(
        "capture", "--env", "CartPole-v1", "--episodes", "1", "--out", "data", "-q", *flags
    )
    assert code == 2, err
    assert expected in err
    assert not (tmp_path / "data").exists()


def test_a_wrapped_env_snapshot_continues_exactly() -> None:
    """PPO's resume stores the envs as data: a wrapper's state (the frame stack) is part of
    it, so a resumed run sees the frames it would have seen."""
    from townlet_core.envs import snapshot

    left, right = np.zeros(2, dtype=np.int64), np.ones(2, dtype=np.int64)
    env, _how = make_vector_env(STACKED, 2)
    fresh, _how = make_vector_env(STACKED, 2)
    try:
        env.reset(seed=0)
        for _ in range(3):
            env.step(left)
        saved = snapshot.capture(env)
        expected = env.step(right)[0].copy()
        fresh.reset(seed=5)
        snapshot.restore(fresh, saved)
        assert np.array_equal(fresh.step(right)[0], expected)
    finally:
        env.close()
        fresh.close()
